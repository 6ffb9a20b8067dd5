// Micro-batch balance on the built-in workload: per phase and micro-batch config, N, micro-step
// k's max over ranks / mean over ranks, and the lock-step step time Σ_k max_r cost(r, k) over
// the phase's balanced max rank load (1.000 = micro-batching costs nothing under lock-step),
// with the stage's numbering (top-up) and with each rank's balanced bins numbered heaviest first.
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
  llm: [{ count: 2 }, { count: 4 }, { count: 8 }, { maxTokens: 16384 }, { maxTokens: 8192 }],
};

const { config, examples: ex } = generateWorkload({ ranks, examples, seed });
const batch = batchFromExamples(ex, config);
const plan = await planIndexed(batch, config, { algorithm: 'best' });
const R = config.ranks;

console.log(`machine: ${cpus()[0]?.model ?? 'unknown cpu'} × ${cpus().length}, node ${process.version}`);
console.log(`workload: ${examples} examples, ${ranks} ranks, seed ${seed}, algorithm best\n`);
console.log('| phase | items/rank | micro-batches | N | micro-step k: max/mean over ranks | lock-step / max rank load | numbered only |');
console.log('|---|---:|---|---:|---|---:|---:|');
for (const ph of plan.phases) {
  const { phase } = ph.items;
  const costs = quantiseCosts(ph.items);
  const order = sortDescCpu(ph.items.tokens);
  for (const spec of SPECS[phase.name] ?? []) {
    const ratios = (topUp: boolean) => {
      const { count: N, of } = assignMicroBatches({ rank: ph.rank, cost: costs.cost, tokens: ph.items.tokens, order, ranks: R, padding: false }, spec, phase.name, { topUp });
      const loads = microBatchLoads(ph.rank, of, costs.float, R, N, false);
      let lockStep = 0;
      const perK: number[] = [];
      for (let k = 0; k < N; k++) {
        let max = 0, sum = 0;
        for (let r = 0; r < R; r++) { const l = loads[r * N + k]; sum += l; if (l > max) max = l; }
        lockStep += max;
        perK.push(sum > 0 ? max / (sum / R) : 1);
      }
      return { N, perK, lockStep: lockStep / ph.maxCost };
    };
    const t = ratios(true), plain = ratios(false);
    const perK = t.perK.length <= 8 ? t.perK.map((x) => x.toFixed(3)).join(' ') : `${t.perK.slice(0, 6).map((x) => x.toFixed(3)).join(' ')} … (${t.N})`;
    console.log(`| ${phase.name} | ${(ph.rank.length / R).toFixed(1)} | ${JSON.stringify(spec)} | ${t.N} | ${perK} | ${t.lockStep.toFixed(4)} | ${plain.lockStep.toFixed(4)} |`);
  }
}
