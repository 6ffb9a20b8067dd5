// `postbalance demo`: the main job on a built-in workload. Generates a realistic multimodal
// batch, plans it with every algorithm, and shows per phase how far each lands from the lower
// bound, how long planning took and what it moves; then the per-rank load before and after.
import { BACKENDS, getAccelerator } from '../backend.js';
import type { CliIO } from './io.js';
import { batchFromExamples, MAX_EXAMPLES, MAX_RANKS } from '../input.js';
import { planBatch } from '../plan/index.js';
import { ALGORITHMS, type Plan } from '../types.js';
import { generateWorkload } from '../workload.js';
import { loadSvg, fmtBytes, sparkline, table } from '../report.js';
import { intFlag, oneOf, parseFlags, writeOutput } from './args.js';

const FLAGS = {
  ranks: { type: 'string' },
  examples: { type: 'string' },
  seed: { type: 'string' },
  svg: { type: 'string' },
  backend: { type: 'string' },
  verbose: { type: 'boolean' },
} as const;

const USAGE = `usage: postbalance demo [--ranks 128] [--examples RANKS×32] [--seed 1] [--backend cpu|auto|gpu] [--svg FILE] [--verbose]
Plans a built-in multimodal workload with every algorithm and prints, per phase, how far each
lands from the lower bound and what it moves; then the per-rank load before and after.
--svg FILE also draws that load chart.
`;

/** Per phase: every rank's cost before (sampled) and after (balanced), to one scale. */
function loadChart(before: Plan, after: Plan): string {
  return loadSvg(`postbalance demo: per-rank cost on ${before.ranks} ranks, sampled vs balanced`,
    before.phases.map((b, p) => {
      const a = after.phases[p];
      return {
        title: `${b.name}: cost per rank, max/mean ${(b.maxCost / b.meanCost).toFixed(2)} → ${(a.maxCost / a.meanCost).toFixed(3)}`,
        before: b.ranks.map((r) => r.cost), after: a.ranks.map((r) => r.cost),
      };
    }), ['sampled (none)', `balanced (best)`]);
}

export async function main(args: string[], io: CliIO): Promise<number> {
  const f = parseFlags('demo', args, FLAGS);
  if (f === 'help') {
    io.stdout(USAGE);
    return 0;
  }
  const ranks = intFlag(f.ranks, '--ranks', 128, 1, MAX_RANKS);
  const examples = intFlag(f.examples, '--examples', Math.min(ranks * 32, MAX_EXAMPLES), 1, MAX_EXAMPLES);
  const seed = intFlag(f.seed, '--seed', 1, 0);
  const backend = oneOf(f.backend, BACKENDS, '--backend', 'cpu');
  const { config, examples: batchExamples } = generateWorkload({ ranks, examples, seed });
  const batch = batchFromExamples(batchExamples, config);
  const accel = await getAccelerator(backend, { verbose: f.verbose, warn: (l) => io.stderr(l + '\n') });
  const plans = new Map<string, Plan>();
  try {
    for (const algorithm of ALGORITHMS) plans.set(algorithm, await planBatch(batch, config, { algorithm }, accel));
    // The naive reference: balanced groups placed on ranks in group order, ignoring where data is.
    plans.set('lpt/naive', await planBatch(batch, config, { algorithm: 'lpt', placement: 'naive' }, accel));
  } finally {
    accel.destroy();
  }
  const none = plans.get('none')!, best = plans.get('best')!;
  const out: string[] = [];
  out.push(`postbalance demo: ${examples} examples on ${ranks} ranks (${config.ranksPerNode} per node), seed ${seed}, backend ${accel.backend}\n`);
  out.push(`items: ${none.phases.map((p) => `${p.name} ${p.items}`).join(', ')}\n\n`);
  for (let p = 0; p < config.phases.length; p++) {
    const rows = [['algorithm', 'max/mean', 'max/bound', 'plan ms', 'moved', 'bytes', 'inter-node']];
    for (const [name, plan] of plans) {
      const ph = plan.phases[p];
      rows.push([
        name === 'best' ? `best (${ph.algorithm})` : name === 'lpt/naive' ? 'lpt, naive placement' : name,
        (ph.maxCost / ph.meanCost).toFixed(4),
        (ph.maxCost / ph.lowerBound).toFixed(4),
        plan.stats.planMs.toFixed(1),
        String(ph.exchange.movedItems),
        fmtBytes(ph.exchange.bytes),
        fmtBytes(ph.exchange.interNodeBytes),
      ]);
    }
    out.push(`phase ${config.phases[p].name} (${none.phases[p].items} items, lower bound ${none.phases[p].lowerBound.toFixed(1)})\n`);
    out.push(table(rows) + '\n');
  }
  out.push('per-rank load, sampled (before) vs best (after), one column per rank, same scale per phase:\n');
  for (let p = 0; p < config.phases.length; p++) {
    const b = none.phases[p], a = best.phases[p];
    const scale = Math.max(b.maxCost, a.maxCost);
    out.push(`  ${b.name} before (max/mean ${(b.maxCost / b.meanCost).toFixed(2)})\n`);
    for (const l of sparkline(b.ranks.map((r) => r.cost), scale)) out.push(`    |${l}|\n`);
    out.push(`  ${a.name} after  (max/mean ${(a.maxCost / a.meanCost).toFixed(4)})\n`);
    for (const l of sparkline(a.ranks.map((r) => r.cost), scale)) out.push(`    |${l}|\n`);
  }
  io.stdout(out.join(''));
  if (f.svg) {
    await writeOutput(f.svg, loadChart(none, best), '--svg');
    io.stderr(`wrote ${f.svg}\n`);
  }
  return 0;
}
