// Planner benchmark: plan time and quality per size, algorithm and backend, on the built-in
// workload. Prints Markdown tables (docs/BENCHMARKS.md keeps them with the machine and date).
//
//   npm run bench                         # default grid
//   node dist-bench/bench/run.js --grid 4096x64,65536x1024 --backends cpu,gpu --algorithms rounds,best
//   ... --form full            time the full plan document (per-rank id lists) instead of the
//                              item-indexed result every form shares (the compact form's cost)
//   ... --kk-worker on,off     best with KK on a worker thread (default) and on the main thread
//   ... --stages               then a table of where the plan time went (stats.stages)
//   ... --uncapped             drop the workload's vision token cap (sized for ~32 examples a rank)
// Backends run interleaved, repeat by repeat, so that a busy machine slows both alike; the
// table gives each one's median and the GPU/CPU ratio of the medians.
import { cpuAccelerator, type Accelerator } from '../src/primitives/accelerator.js';
import { getAccelerator } from '../src/backend.js';
import { batchFromExamples } from '../src/input.js';
import { planBatch, planIndexed } from '../src/plan/index.js';
import type { Algorithm, Batch, Config, PlanStats } from '../src/types.js';
import { generateWorkload } from '../src/workload.js';
import { cpus, loadavg } from 'node:os';
import { intFlag, numberFlag } from '../src/commands/args.js';
import { benchFlags } from './flags.js';

const flags = benchFlags('bench/run', {
  grid: { type: 'string' }, algorithms: { type: 'string' }, backends: { type: 'string' }, repeats: { type: 'string' },
  'kk-limit': { type: 'string' }, 'kk-worker': { type: 'string' }, stages: { type: 'boolean' }, form: { type: 'string' }, uncapped: { type: 'boolean' },
}, 'usage: node dist-bench/bench/run.js [--grid EXAMPLESxRANKS,...] [--algorithms none,lpt,kk,padded,rounds,best] [--backends cpu,gpu]\n' +
  '         [--repeats 3] [--kk-limit 2e10] [--kk-worker on|off|on,off] [--stages] [--form indexed|full] [--uncapped]\n');
const grid = (flags.grid ?? '256x64,4096x64,4096x1024,65536x1024,65536x16384,262144x4096,262144x16384')
  .split(',').map((s) => s.split('x').map(Number) as [number, number]);
const algorithms = (flags.algorithms ?? 'none,lpt,kk,padded,rounds,best').split(',') as Algorithm[];
const backends = (flags.backends ?? 'cpu,gpu').split(',');
const repeats = intFlag(flags.repeats, '--repeats', 3);
/** KK's joins are O(items × ranks) in the worst case: skip it past this much work. */
const kkLimit = numberFlag(flags['kk-limit'], '--kk-limit', 2e10, (n) => n > 0, 'a positive number');
const kkWorker = (flags['kk-worker'] ?? 'on').split(',');
const showStages = flags.stages === true;
const form = flags.form ?? 'indexed';
if (form !== 'indexed' && form !== 'full') { process.stderr.write('bench/run: --form: must be indexed or full\n'); process.exit(2); }
const stageRows: string[] = [];

interface Measured { ms: number; stats: PlanStats; quality: number; moved: number; algorithms: string }

async function planOnce(batch: Batch, config: Config, algorithm: Algorithm, accel: Accelerator): Promise<Measured> {
  if (form === 'full') {
    const p = await planBatch(batch, config, { algorithm }, accel);
    return { ms: p.stats.planMs, stats: p.stats, quality: Math.max(...p.phases.map((x) => x.items ? x.maxCost / x.lowerBound : 1)), moved: p.phases.reduce((s, x) => s + x.exchange.bytes, 0), algorithms: p.phases.map((x) => x.algorithm).join(', ') };
  }
  const p = await planIndexed(batch, config, { algorithm }, accel);
  return { ms: p.stats.planMs, stats: p.stats, quality: Math.max(...p.phases.map((x) => x.rank.length ? x.maxCost / x.lowerBound : 1)), moved: p.phases.reduce((s, x) => s + x.exchange.bytes, 0), algorithms: p.phases.map((x) => x.algorithm).join(', ') };
}

const median = (xs: Measured[]) => [...xs].sort((a, b) => a.ms - b.ms)[xs.length >> 1];

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
  console.log(`machine: ${cpus()[0]?.model ?? 'unknown cpu'} × ${cpus().length}, node ${process.version}; adapters: ${accels.map((a) => `${a.backend}=${a.adapter}`).join(', ')}; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}; ${new Date().toISOString()}`);
  console.log(`time = median of ${repeats} runs of stats.planMs (${form === 'full' ? 'the full document' : 'the item-indexed plan every output form shares'}; parsing excluded), backends interleaved; quality = worst phase max/lower bound; moved = bytes exchanged\n`);
  const gpuCols = accels.length > 1;
  console.log(`| examples | items | ranks | algorithm | ${accels.map((a) => `${a.backend} ms`).join(' | ')}${gpuCols ? ' | gpu/cpu' : ''} | max/bound (worst phase) | moved | per phase |`);
  console.log(`|---:|---:|---:|---|${accels.map(() => '---:').join('|')}${gpuCols ? '|---:' : ''}|---:|---:|---|`);
  for (const [examples, ranks] of grid) {
    const { config, examples: ex } = generateWorkload({ ranks, examples, seed: 1 });
    if (flags.uncapped) for (const p of config.phases) delete p.maxTokensPerRank;
    const batch = batchFromExamples(ex, config, undefined, { maxExamples: Infinity, maxSegments: Infinity }); // in memory: no JSON to guard
    let items = 0;
    try {
      const probe = await planIndexed(batch, config, { algorithm: 'none' }, cpuAccelerator);
      items = probe.phases.reduce((s, p) => s + p.rank.length, 0);
    } catch (e) {
      console.log(`| ${examples} | | ${ranks} | | ${(e as Error).message} |`);
      continue;
    }
    for (const algorithm of algorithms) {
      if (algorithm === 'kk' && items * ranks > kkLimit) {
        console.log(`| ${examples} | ${items} | ${ranks} | kk | skipped (items × ranks > ${kkLimit.toExponential()}) |`);
        continue;
      }
      for (const mode of algorithm === 'best' ? kkWorker : ['on']) {
        process.env.POSTBALANCE_KK_WORKER = mode === 'off' ? '0' : '1';
        const runs: Measured[][] = accels.map(() => []);
        for (let r = 0; r < repeats; r++) {
          for (let a = 0; a < accels.length; a++) {
            const i = r % 2 === 0 ? a : accels.length - 1 - a; // alternate which backend goes first
            runs[i].push(await planOnce(batch, config, algorithm, accels[i]));
          }
        }
        const med = runs.map(median);
        const m = med[0];
        const label = kkWorker.length > 1 && algorithm === 'best' ? `best (kk worker ${mode})` : algorithm;
        const ratio = gpuCols ? ` | ${(med[1].ms / med[0].ms).toFixed(2)}x` : '';
        console.log(`| ${examples} | ${items} | ${ranks} | ${label} | ${med.map((x) => x.ms.toFixed(1)).join(' | ')}${ratio} | ${m.quality.toFixed(5)} | ${(m.moved / 1e9).toFixed(2)} GB | ${m.algorithms} |`);
        if (algorithm === 'best' || algorithm === 'rounds') {
          med.forEach((x, a) => {
            const st = x.stats.stages ?? {};
            const acc = (st.sort ?? 0) + (st.scan ?? 0) + (st.candidates ?? 0) + (st.pairSteps ?? 0) + (st.balance ?? 0);
            const ms = x.ms;
            stageRows.push(`| ${examples} × ${ranks} | ${label} | ${accels[a].backend} | ${ms.toFixed(0)} | ${(st.items ?? 0).toFixed(0)} | ${(st.sort ?? 0).toFixed(0)} | ${(st.balance ?? 0).toFixed(0)} | ${(st.pairSteps ?? 0).toFixed(0)} | ${(st.hostPartition ?? 0).toFixed(0)} | ${((st.placement ?? 0) + (st.output ?? 0)).toFixed(0)} | ${(100 * acc / ms).toFixed(1)}% |`);
          });
        }
      }
    }
  }
  delete process.env.POSTBALANCE_KK_WORKER;
  if (showStages && stageRows.length > 0) {
    console.log('\nWhere the plan time went (the median plans above; ms). accelerator = sort stage + scan + candidates + pair steps + balance (deal and rounds): the share an accelerator runs:\n');
    console.log('| workload | algorithm | backend | planMs | items | sort | balance | pair steps | host partition | placement + output | accelerator share |');
    console.log('|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const row of stageRows) console.log(row);
  }
  for (const a of accels) a.destroy();
}

await main();
process.exit(0);
