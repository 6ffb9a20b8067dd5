// Micro-batch balance on the built-in workload: per phase and micro-batch config, N, the grouping
// best chose, micro-step k's max over ranks / mean over ranks, and the lock-step step time
// Σ_k max_r cost(r, k) over the phase's max rank load (1.000 = micro-batching costs nothing under
// lock-step); then the same for the same grouping with each rank's balanced micro-batches numbered
// heaviest first (no top-up), and for best's grouping of the phase without micro-batches.
//   node dist-bench/bench/microbatch.js [--ranks 128] [--examples 4096] [--seed 1]
import { cpus } from 'node:os';
import { intFlag } from '../src/commands/args.js';
import { quantiseCosts } from '../src/cost.js';
import { batchFromExamples } from '../src/input.js';
import { assignMicroBatches, microBatchLoads } from '../src/microbatch.js';
import { planIndexed } from '../src/plan/index.js';
import { sortDescCpu } from '../src/primitives/accelerator.js';
import type { MicroBatchConfig } from '../src/types.js';
import { generateWorkload } from '../src/workload.js';
import { benchFlags } from './flags.js';

const flags = benchFlags('bench/microbatch', { ranks: { type: 'string' }, examples: { type: 'string' }, seed: { type: 'string' } },
  'usage: node dist-bench/bench/microbatch.js [--ranks 128] [--examples RANKS×32] [--seed 1]\n');
const ranks = intFlag(flags.ranks, '--ranks', 128);
const examples = intFlag(flags.examples, '--examples', ranks * 32);
const seed = intFlag(flags.seed, '--seed', 1, 0);

const SPECS: Record<string, MicroBatchConfig[]> = {
  vision: [{ count: 2 }, { count: 8 }, { maxTokens: 32768 }],
  audio: [{ count: 2 }, { count: 3 }],
  llm: [{ count: 2 }, { count: 4 }, { count: 8 }, { maxTokens: 16384 }, { maxTokens: 14000 }, { count: 6, maxTokens: 14000 }],
};

const { config, examples: ex } = generateWorkload({ ranks, examples, seed });
const batch = batchFromExamples(ex, config);
const R = config.ranks;

console.log(`machine: ${cpus()[0]?.model ?? 'unknown cpu'} × ${cpus().length}, node ${process.version}`);
console.log(`workload: ${examples} examples, ${ranks} ranks, seed ${seed}, algorithm best\n`);
console.log('| phase | items/rank | micro-batches | N | grouping (best) | micro-step k: max/mean over ranks | lock-step / max rank load | numbered only | grouping as without micro-batches |');
console.log('|---|---:|---|---:|---|---|---:|---:|---:|');
// best's grouping when the phase has no micro-batches (its rank-balanced result, kept at home).
const unaware = await planIndexed(batch, config, { algorithm: 'best' });
/** Lock-step time over the max rank load of a grouping's micro-batches (float costs). */
function lockStepRatio(rank: Int32Array, items: (typeof unaware.phases)[number]['items'], spec: MicroBatchConfig, topUp: boolean): number {
  const costs = quantiseCosts(items);
  const { count: N, of } = assignMicroBatches({ rank, cost: costs.cost, tokens: items.tokens, order: sortDescCpu(items.tokens), ranks: R, padding: false }, spec, items.phase.name, { topUp });
  const loads = microBatchLoads(rank, of, costs.float, R, N, false);
  let lock = 0, heaviest = 0;
  for (let k = 0; k < N; k++) { let max = 0; for (let r = 0; r < R; r++) if (loads[r * N + k] > max) max = loads[r * N + k]; lock += max; }
  for (let r = 0; r < R; r++) { let l = 0; for (let k = 0; k < N; k++) l += loads[r * N + k]; if (l > heaviest) heaviest = l; }
  return lock / heaviest;
}
for (const [p, phase] of config.phases.entries()) {
  for (const spec of SPECS[phase.name] ?? []) {
    const cfg = structuredClone(config);
    cfg.phases[p].microBatches = spec;
    const ph = (await planIndexed(batch, cfg, { algorithm: 'best' })).phases[p];
    const N = ph.microBatches!;
    const perK: number[] = [];
    let lockStep = 0;
    for (let k = 0; k < N; k++) {
      let max = 0, sum = 0;
      for (let r = 0; r < R; r++) { const l = ph.microBatchLoads![r * N + k]; sum += l; if (l > max) max = l; }
      lockStep += max;
      perK.push(sum > 0 ? max / (sum / R) : 1);
    }
    // The same grouping, each rank's balanced micro-batches numbered heaviest first.
    const plainLock = lockStepRatio(ph.rank, ph.items, spec, false);
    let asWithout = '–';
    try { asWithout = lockStepRatio(unaware.phases[p].rank, ph.items, spec, true).toFixed(4); } catch { /* count × maxTokens not met there */ }
    const shown = perK.length <= 8 ? perK.map((x) => x.toFixed(3)).join(' ') : `${perK.slice(0, 6).map((x) => x.toFixed(3)).join(' ')} … (${N})`;
    console.log(`| ${phase.name} | ${(ph.rank.length / R).toFixed(1)} | ${JSON.stringify(spec)} | ${N} | ${ph.algorithm} | ${shown} | ${(lockStep / ph.maxCost).toFixed(4)} | ${plainLock.toFixed(4)} | ${asWithout} (${unaware.phases[p].algorithm}) |`);
  }
}
