// Stage 7: the plan. Runs items → cost → sort → partition → placement → exchange for every
// phase (phase.ts), routes encoder items to their example's backbone rank, checks the input
// constraints that only show once items exist, and hands the item-indexed result to an output
// form (format.ts). Timings go to stats.stages (instrument.ts).
import { InputError } from '../errors.js';
import { buildPhaseItems } from '../items.js';
import { withMicroBatches } from '../microbatch.js';
import { bestEligible } from '../partition/index.js';
import { kkInBackground, type KkJob } from '../partition/kk-background.js';
import { cpuAccelerator, type Accelerator } from '../primitives/accelerator.js';
import { ALGORITHMS, type Algorithm, type Batch, type Config, type PhaseItems, type PhaseResult, type Plan, type PlanOptions, type PlanResult, type PlanStats, type CompactPlan } from '../types.js';
import { toCompactPlan, toPlanDocument } from './format.js';
import { stageBreakdown, stopwatch, timedAccelerator, round3, type AcceleratorTimes, type Stopwatch } from './instrument.js';
import { lockStepChoice } from './lockstep.js';
import { emptyPhase, partitionPhase, placePhase, sortPhase, type SortedPhase } from './phase.js';

export { formatCompactPlan, formatPlan, toCompactPlan, toPlanDocument } from './format.js';

/** The phase encoder items are routed to: the last phase whose unit is the whole example. */
export function routeTarget(config: Config): number {
  for (let p = config.phases.length - 1; p >= 0; p--) if (config.phases[p].unit === 'example') return p;
  return -1;
}

function exampleLabel(batch: Batch, e: number): string {
  const line = batch.lines?.[e];
  return line ? `batch line ${line}` : `batch example ${JSON.stringify(batch.ids[e])}`;
}

/** Bad inputs that only show once items exist: impossible caps and counts. */
function checkPhase(items: PhaseItems, batch: Batch, R: number): void {
  const { phase } = items;
  const n = items.tokens.length;
  if (n === 0) return; // planned as R empty ranks (emptyPhase)
  if (phase.equalCount && n < R) throw new InputError(`phase "${phase.name}" equalCount: ${n} items cannot give each of ${R} ranks an equal count (need at least ${R} items)`);
  const cap = phase.maxTokensPerRank;
  if (cap !== undefined) {
    const { over, total } = tokensWithin(items.tokens, cap);
    if (over >= 0) {
      throw new InputError(`${exampleLabel(batch, items.example[over])}: item "${items.ids[over]}" has ${items.tokens[over]} tokens, over phase "${phase.name}" maxTokensPerRank ${cap}`);
    }
    if (total > cap * R) throw new InputError(`phase "${phase.name}" maxTokensPerRank: ${total} tokens cannot fit ${R} ranks × ${cap} (infeasible cap)`);
  }
  const mb = phase.microBatches;
  if (mb?.maxTokens !== undefined) {
    const { over, total } = tokensWithin(items.tokens, mb.maxTokens);
    if (over >= 0) {
      throw new InputError(`${exampleLabel(batch, items.example[over])}: item "${items.ids[over]}" has ${items.tokens[over]} tokens, over phase "${phase.name}" microBatches.maxTokens ${mb.maxTokens}`);
    }
    if (mb.count !== undefined && total > mb.count * mb.maxTokens * R) {
      throw new InputError(`phase "${phase.name}" microBatches: ${total} tokens cannot fit ${R} ranks × count ${mb.count} × maxTokens ${mb.maxTokens}`);
    }
  }
}

/** The first item over `limit` tokens (−1: none) and the tokens' sum (a small function: see phase.ts). */
function tokensWithin(tokens: Uint32Array, limit: number): { over: number; total: number } {
  let total = 0;
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i] > limit) return { over: i, total };
    total += tokens[i];
  }
  return { over: -1, total };
}

/** rankOfExample[e] = the rank of example e's item in the routing phase (−1 where it has none). */
function examplesRanks(examples: number, example: Uint32Array, rank: Int32Array): Int32Array {
  const out = new Int32Array(examples).fill(-1);
  for (let i = 0; i < example.length; i++) out[example[i]] = rank[i];
  return out;
}

interface Planned {
  result: PlanResult;
  sw: Stopwatch;
  times: AcceleratorTimes;
  t0: number;
}

async function planStages(batch: Batch, config: Config, options: PlanOptions, accelIn: Accelerator): Promise<Planned> {
  const t0 = performance.now();
  const sw = stopwatch();
  const { accel, times } = timedAccelerator(accelIn);
  const algorithm: Algorithm = options.algorithm ?? 'best';
  if (!ALGORITHMS.includes(algorithm)) throw new InputError(`algorithm: must be one of ${ALGORITHMS.join(', ')}, got ${JSON.stringify(algorithm)}`);
  const R = config.ranks;

  if (batch.ids.length === 0) throw new InputError('batch is empty (no examples)');
  const allItems = buildPhaseItems(batch, config);
  for (const items of allItems) checkPhase(items, batch, R);
  sw.lap('items');

  // Every phase's costs and order first, so that KK for the large ones can start off the main
  // thread as each is sorted (it is needed only later in `best`, after LPT and its refinement).
  const sorted: (SortedPhase | null)[] = [];
  const kkJobs: (KkJob | null)[] = [];
  const phases: PhaseResult[] = [];
  try {
    for (const items of allItems) {
      // A step may draw no item of a phase (no audio this time): every rank runs nothing.
      if (items.tokens.length === 0) { sorted.push(null); kkJobs.push(null); continue; }
      const sp = await sortPhase(items, R, accel);
      sorted.push(sp);
      sw.lap('sort');
      // KK only where best will run its sequential candidates (not where rounds usually suffice).
      kkJobs.push(algorithm === 'best' && !bestEligible(sp.inp) ? kkInBackground(sp.inp) : null);
      sw.lap('partition'); // handing KK to the worker is partition work
    }
    for (const [p, sp] of sorted.entries()) {
      const mb = config.phases[p].microBatches;
      if (!sp) {
        const empty = emptyPhase(allItems[p], R);
        phases.push(mb ? withMicroBatches(empty, mb, null, null, R) : empty);
        continue;
      }
      let part = await partitionPhase(sp, algorithm, accel, kkJobs[p]);
      kkJobs[p]?.cancel();
      // best on a micro-batched phase: the grouping whose micro-steps line up (plan/lockstep.ts).
      const choice = mb && algorithm === 'best' ? await lockStepChoice(sp, part, mb, accel) : null;
      if (choice) part = choice.part;
      sw.lap('partition');
      const placed = placePhase(sp, part, algorithm, config, options);
      // Micro-batches are part of placement: where on its rank each item runs.
      phases.push(mb ? withMicroBatches(placed, mb, sp.costs, sp.inp.order, R, choice?.microBatches) : placed);
      sw.lap('placement');
    }
  } finally {
    for (const job of kkJobs) job?.cancel(); // not started yet, not needed any more (or an error)
  }

  // Encoder items are routed to the rank that holds their example in the target phase.
  const routeTo = routeTarget(config);
  let rankOfExample: Int32Array | null = null;
  if (routeTo >= 0) {
    rankOfExample = examplesRanks(batch.ids.length, allItems[routeTo].example, phases[routeTo].rank);
  }
  sw.lap('placement');
  const stats: PlanStats = { algorithm, backend: accel.backend, planMs: 0, adapter: accel.adapter };
  if (accelIn.reason !== undefined) stats.backendReason = accelIn.reason;
  return { result: { ranks: R, phases, routeTo, rankOfExample, stats }, sw, times, t0 };
}

function finishStats(p: Planned): void {
  p.result.stats.planMs = round3(performance.now() - p.t0);
  p.result.stats.stages = stageBreakdown(p.sw.stages, p.times);
}

/**
 * The plan, item-indexed (per phase the rank of every item): for callers that read ranks as
 * arrays (the compact form, the simulator) rather than the full document.
 */
export async function planIndexed(batch: Batch, config: Config, options: PlanOptions = {}, accel: Accelerator = cpuAccelerator): Promise<PlanResult> {
  const planned = await planStages(batch, config, options, accel);
  finishStats(planned);
  return planned.result;
}

/** The plan as the full document of the output contract (README). */
export async function planBatch(batch: Batch, config: Config, options: PlanOptions = {}, accel: Accelerator = cpuAccelerator): Promise<Plan> {
  const planned = await planStages(batch, config, options, accel);
  const doc = toPlanDocument(planned.result, config, options);
  planned.sw.lap('output');
  finishStats(planned);
  return doc;
}

/** The plan in the compact form: per phase the rank of every item in item order (README). */
export async function planCompact(batch: Batch, config: Config, options: PlanOptions = {}, accel: Accelerator = cpuAccelerator): Promise<CompactPlan> {
  const planned = await planStages(batch, config, options, accel);
  const doc = toCompactPlan(planned.result, config);
  planned.sw.lap('output');
  finishStats(planned);
  return doc;
}
