// Balance rounds vs the sequential refinement alone, per phase of the built-in workload: the
// same LPT and KK starting groupings refined both ways (refine's `rounds` option), min time
// of --repeats, and the max load over the lower bound in ppm.
//   node dist-bench/bench/refine.js [--grid 65536x1024,262144x4096] [--repeats 3]
import { cpuAccelerator, sortDescCpu } from '../src/primitives/accelerator.js';
import { quantiseCosts } from '../src/cost.js';
import { batchFromExamples } from '../src/input.js';
import { buildPhaseItems } from '../src/items.js';
import { groupLoads, maxOf, type PartitionInput } from '../src/partition/common.js';
import { lowerBound } from '../src/partition/index.js';
import { kk } from '../src/partition/kk.js';
import { lpt } from '../src/partition/lpt.js';
import { refine } from '../src/partition/refine.js';
import { generateWorkload } from '../src/workload.js';
import { cpus } from 'node:os';
import { intFlag } from '../src/commands/args.js';
import { benchFlags } from './flags.js';

const flags = benchFlags('bench/refine', { grid: { type: 'string' }, repeats: { type: 'string' } },
  'usage: node dist-bench/bench/refine.js [--grid 65536x1024,262144x4096] [--repeats 3]\n');
const grid = (flags.grid ?? '65536x1024,262144x4096').split(',').map((s) => s.split('x').map(Number) as [number, number]);
const repeats = intFlag(flags.repeats, '--repeats', 3);

console.log(`machine: ${cpus()[0]?.model ?? 'unknown cpu'} × ${cpus().length}, node ${process.version}; min of ${repeats}; ppm = max load over the lower bound`);
console.log('\n| workload | phase | items | start | sequential only | with rounds |');
console.log('|---|---|---:|---|---:|---:|');
for (const [examples, ranks] of grid) {
  const { config, examples: ex } = generateWorkload({ ranks, examples, seed: 1 });
  const batch = batchFromExamples(ex, config);
  for (const items of buildPhaseItems(batch, config)) {
    const costs = quantiseCosts(items);
    const { phase } = items;
    if (phase.padding) continue; // refinement is for sum loads
    const inp: PartitionInput = {
      cost: costs.cost, tokens: items.tokens, order: sortDescCpu(items.tokens), groups: ranks,
      cap: phase.maxTokensPerRank, equalCount: phase.equalCount ?? false, padding: false,
    };
    const target = Math.ceil(lowerBound(inp, costs.total));
    for (const [name, start] of [['LPT', lpt(inp)], ['KK', kk(inp)]] as const) {
      if (!start) continue;
      const cell: Record<string, string> = {};
      for (const rounds of [false, true]) {
        let best = Infinity, ppm = 0;
        for (let r = 0; r < repeats; r++) {
          const g = Int32Array.from(start);
          const t = performance.now();
          await refine(inp, g, { target, rounds }, cpuAccelerator);
          best = Math.min(best, performance.now() - t);
          ppm = (maxOf(groupLoads(inp, g)) / target - 1) * 1e6;
        }
        cell[String(rounds)] = `${best.toFixed(1)} ms, ${ppm.toFixed(0)} ppm`;
      }
      console.log(`| ${examples} × ${ranks} | ${phase.name} | ${inp.order.length} | ${name} | ${cell.false} | ${cell.true} |`);
    }
  }
}
