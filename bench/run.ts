// Planner benchmark: plan time and quality per size, algorithm and backend, on the built-in
// workload. Prints a Markdown table (paste it into the README with the machine it came from).
//
//   npm run bench                         # default grid
//   node dist-bench/bench/run.js --grid 4096x64,65536x1024 --backends cpu,gpu --algorithms best
//   ... --kk-worker on,off     best with KK on a worker thread (default) and on the main thread
//   ... --stages               then a table of where best's plan time went (stats.stages)
// (the workload caps vision tokens per rank, so keep examples/ranks ≤ ~100)
import { cpuAccelerator, type Accelerator } from '../src/primitives/accelerator.js';
import { getAccelerator } from '../src/primitives/backend.js';
import { batchFromExamples } from '../src/input.js';
import { planBatch } from '../src/plan/index.js';
import type { Algorithm } from '../src/types.js';
import { generateWorkload } from '../src/workload.js';
import { cpus } from 'node:os';
import { intFlag, numberFlag } from '../src/commands/args.js';
import { benchFlags } from './flags.js';

const flags = benchFlags('bench/run', {
  grid: { type: 'string' }, algorithms: { type: 'string' }, backends: { type: 'string' }, repeats: { type: 'string' },
  'kk-limit': { type: 'string' }, 'kk-worker': { type: 'string' }, stages: { type: 'boolean' },
}, 'usage: node dist-bench/bench/run.js [--grid EXAMPLESxRANKS,...] [--algorithms none,lpt,kk,padded,best] [--backends cpu,gpu]\n' +
  '         [--repeats 3] [--kk-limit 2e10] [--kk-worker on|off|on,off] [--stages]\n');
const grid = (flags.grid ?? '256x64,4096x64,4096x1024,65536x1024,65536x16384,262144x4096,262144x16384')
  .split(',').map((s) => s.split('x').map(Number) as [number, number]);
const algorithms = (flags.algorithms ?? 'none,lpt,kk,padded,best').split(',') as Algorithm[];
const backends = (flags.backends ?? 'cpu,gpu').split(',');
const repeats = intFlag(flags.repeats, '--repeats', 3);
/** KK's joins are O(items × ranks) in the worst case: skip it past this much work. */
const kkLimit = numberFlag(flags['kk-limit'], '--kk-limit', 2e10, (n) => n > 0, 'a positive number');
const kkWorker = (flags['kk-worker'] ?? 'on').split(',');
const showStages = flags.stages === true;
const stageRows: string[] = [];

async function main() {
  const accels: Accelerator[] = [];
  for (const b of backends) {
    if (b === 'cpu') accels.push(cpuAccelerator);
    else {
      try {
        accels.push(await getAccelerator('gpu'));
      } catch (e) {
        console.log(`(gpu backend unavailable: ${(e as Error).message})`);
      }
    }
  }
  console.log(`machine: ${cpus()[0]?.model ?? 'unknown cpu'} × ${cpus().length}, node ${process.version}; adapters: ${accels.map((a) => `${a.backend}=${a.adapter}`).join(', ')}`);
  console.log('time = median of ' + repeats + ' runs of stats.planMs (parsing excluded); quality = worst phase max/lower bound; moved = bytes exchanged\n');
  console.log('| examples | items | ranks | algorithm | backend | plan ms | max/bound (worst phase) | moved |');
  console.log('|---:|---:|---:|---|---|---:|---:|---:|');
  for (const [examples, ranks] of grid) {
    const { config, examples: ex } = generateWorkload({ ranks, examples, seed: 1 });
    const batch = batchFromExamples(ex, config);
    try {
      await planBatch(batch, config, { algorithm: 'none' }, cpuAccelerator);
    } catch (e) {
      console.log(`| ${examples} | | ${ranks} | | | ${(e as Error).message} | | |`);
      continue;
    }
    for (const accel of accels) {
      for (const algorithm of algorithms) {
        if (accel.backend !== 'cpu' && algorithm !== 'best' && algorithm !== 'padded') continue;
        let items = 0;
        const probe = await planBatch(batch, config, { algorithm: 'none' }, cpuAccelerator);
        items = probe.phases.reduce((s, p) => s + p.items, 0);
        if (algorithm === 'kk' && items * ranks > kkLimit) {
          console.log(`| ${examples} | ${items} | ${ranks} | kk | ${accel.backend} | skipped (items × ranks > ${kkLimit.toExponential()}) | | |`);
          continue;
        }
        for (const mode of algorithm === 'best' ? kkWorker : ['on']) {
          process.env.POSTBALANCE_KK_WORKER = mode === 'off' ? '0' : '1';
          const plans = [];
          for (let r = 0; r < repeats; r++) plans.push(await planBatch(batch, config, { algorithm }, accel));
          plans.sort((a, b) => a.stats.planMs - b.stats.planMs);
          const plan = plans[Math.floor(plans.length / 2)];
          const quality = Math.max(...plan.phases.map((p) => p.maxCost / p.lowerBound));
          const moved = plan.phases.reduce((s, p) => s + p.exchange.bytes, 0);
          const label = kkWorker.length > 1 && algorithm === 'best' ? `best (kk worker ${mode})` : algorithm;
          console.log(`| ${examples} | ${items} | ${ranks} | ${label} | ${accel.backend} | ${plan.stats.planMs.toFixed(1)} | ${quality.toFixed(5)} | ${(moved / 1e9).toFixed(2)} GB |`);
          const st = plan.stats.stages ?? {};
          if (algorithm === 'best') {
            const acc = (st.sort ?? 0) + (st.scan ?? 0) + (st.candidates ?? 0) + (st.pairSteps ?? 0);
            const ms = plan.stats.planMs;
            stageRows.push(`| ${examples} × ${ranks} | ${label} | ${accel.backend} | ${ms.toFixed(0)} | ${(st.items ?? 0).toFixed(0)} | ${(st.sort ?? 0).toFixed(0)} | ${(st.pairSteps ?? 0).toFixed(0)} | ${(st.hostPartition ?? 0).toFixed(0)} | ${((st.placement ?? 0) + (st.output ?? 0)).toFixed(0)} | ${(100 * acc / ms).toFixed(1)}% | ${(ms / Math.max(1e-9, ms - acc)).toFixed(2)}x |`);
          }
        }
      }
    }
  }
  delete process.env.POSTBALANCE_KK_WORKER;
  if (showStages && stageRows.length > 0) {
    console.log('\nWhere best\'s time went (median plan above; ms). accelerator = sort stage + scan + candidates + pair steps; bound = planMs / (planMs − accelerator), the most any accelerator could gain end to end:\n');
    console.log('| workload | algorithm | backend | planMs | items | sort | pair steps | host partition | placement + output | accelerator share | bound |');
    console.log('|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const row of stageRows) console.log(row);
  }
  for (const a of accels) a.destroy();
}

await main();
process.exit(0);
