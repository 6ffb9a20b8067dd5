// Output forms of a plan, both built from the item-indexed result. The full JSON document (the
// CLI's and the sidecar's default output contract): per rank, its items' ids in item order, cost,
// tokens, and optionally where each item came from and where its encoder output goes. The compact
// form: per phase the rank of every item as one integer array in item order, and per-rank cost
// and tokens, so a client that numbers items itself needs no ids at all.
import { InputError } from '../errors.js';
import type { CompactPhasePlan, CompactPlan, Config, Plan, PhasePlan, PhaseResult, PlanOptions, PlanResult, RankPlan } from '../types.js';
import { tidy } from './phase.js';

/** The full plan document from the item-indexed result. */
export function toPlanDocument(result: PlanResult, config: Config, options: PlanOptions): Plan {
  const { rankOfExample, routeTo } = result;
  const phases: PhasePlan[] = result.phases.map((ph) => {
    const route = rankOfExample && ph.items.phase.unit === 'segment' ? rankOfExample : null;
    const ranks = rankEntries(ph, result.ranks, { from: options.exchange === 'full', route });
    const out: PhasePlan = {
      name: ph.items.phase.name, ranks,
      lowerBound: ph.lowerBound, maxCost: ph.maxCost, meanCost: ph.meanCost,
      exchange: ph.exchange, algorithm: ph.algorithm, items: ph.rank.length,
    };
    if (route) out.routeTo = config.phases[routeTo].name;
    if (ph.microBatches !== undefined) Object.assign(out, microBatchSummary(ph, result.ranks));
    return out;
  });
  return { ranks: result.ranks, phases, stats: result.stats };
}

/**
 * Most characters of JSON one plan may take (ids dominate): the document is built as one string,
 * written at once, and the sidecar wraps it in its response.
 */
export const MAX_PLAN_BYTES = 256 * 1024 * 1024;

/** The CLI's output: one JSON document. Sidecar responses embed the same object. */
export function formatPlan(plan: Plan): string {
  const size = planJsonSize(plan);
  if (size > MAX_PLAN_BYTES) throw tooLarge(`about ${Math.ceil(size / 1e6)} MB`);
  try {
    return JSON.stringify(plan);
  } catch (e) {
    // Past the estimate only if ids are full of characters JSON must escape.
    if (e instanceof RangeError) throw tooLarge('more than JavaScript\'s longest string');
    throw e;
  }
}

function tooLarge(size: string): InputError {
  return new InputError(`plan: ${size} of JSON, over the limit of ${MAX_PLAN_BYTES} bytes (256 MiB) for one plan; use shorter ids or split the batch`);
}

/** The plan's JSON length, from above (ids as written, numbers at their widest in the plan). */
export function planJsonSize(plan: Plan): number {
  const digits = (x: number) => String(x).length;
  const rank = Math.max(2, digits(plan.ranks - 1)) + 1; // a rank number (or -1) and its comma
  let n = 1024;
  for (const ph of plan.phases) {
    let items = 0, bytes = 0;
    for (const p of ph.exchange.pairs) { if (p[2] > items) items = p[2]; if (p[3] > bytes) bytes = p[3]; }
    n += 512 + ph.name.length + (2 * rank + digits(items) + digits(bytes) + 4) * ph.exchange.pairs.length;
    // Micro-batches: per step two costs (12 significant digits, sign, exponent: ≤ 20 characters).
    const mb = ph.microBatches === undefined ? 0 : digits(Math.max(0, ph.microBatches - 1)) + 1;
    if (mb) n += 96 + 2 * 21 * ph.microBatches!;
    for (const r of ph.ranks) {
      n += 96 + 3 * r.items.length;
      for (let i = 0; i < r.items.length; i++) n += r.items[i].length;
      if (r.from) n += rank * r.from.length;
      if (r.routeRanks) n += rank * r.routeRanks.length;
      if (r.microBatch) n += 16 + mb * r.microBatch.length;
    }
  }
  return n;
}

/** The compact form from the item-indexed result (the rank arrays are the result's own). */
export function toCompactPlan(result: PlanResult, config: Config): CompactPlan {
  const R = result.ranks;
  const phases = result.phases.map((ph): CompactPhasePlan => {
    const tokens = new Float64Array(R);
    const start = new Uint32Array(R + 1);
    countByRank(ph, R, start, tokens);
    const out: CompactPhasePlan = {
      name: ph.items.phase.name, items: ph.rank.length, rank: ph.rank,
      cost: Array.from(ph.loads, tidy), tokens: Array.from(tokens),
      lowerBound: ph.lowerBound, maxCost: ph.maxCost, meanCost: ph.meanCost,
      exchange: ph.exchange, algorithm: ph.algorithm,
    };
    if (result.rankOfExample && ph.items.phase.unit === 'segment') out.routeTo = config.phases[result.routeTo].name;
    if (ph.microBatches !== undefined) Object.assign(out, { microBatch: ph.microBatch }, microBatchSummary(ph, R));
    return out;
  });
  return { format: 'compact', ranks: R, phases, stats: result.stats };
}

/**
 * The compact form as one line of JSON: each phase's `rank` and `microBatch` written as a JSON
 * array of integers. They become plain arrays first: a replacer would be called for every item.
 */
export function formatCompactPlan(plan: CompactPlan): string {
  const phases = plan.phases.map((ph) => {
    const out: Record<string, unknown> = { ...ph, rank: Array.from(ph.rank) };
    if (ph.microBatch) out.microBatch = Array.from(ph.microBatch);
    return out;
  });
  return JSON.stringify({ ...plan, phases });
}

/** Per-rank lists in item order; checks that every item is placed exactly once. */
function rankEntries(ph: PhaseResult, R: number, extra: { from: boolean; route: Int32Array | null }): RankPlan[] {
  const { items, rank, loads } = ph;
  // start[r]: where rank r's items begin in `byRank` (items bucketed by rank, item order kept).
  const start = new Uint32Array(R + 1);
  const tokens = new Float64Array(R);
  countByRank(ph, R, start, tokens);
  const byRank = bucketByRank(rank, start, R);
  const ids = items.ids;
  const out: RankPlan[] = new Array(R);
  for (let r = 0; r < R; r++) {
    const a = start[r], b = start[r + 1];
    const e: RankPlan = { items: pick(ids, byRank, a, b), cost: tidy(loads[r]), tokens: tokens[r] };
    if (extra.from) e.from = pickRank(items.sampledRank, byRank, a, b);
    if (extra.route) e.routeRanks = pickRoute(extra.route, items.example, byRank, a, b);
    if (ph.microBatch) e.microBatch = pickIndex(ph.microBatch, byRank, a, b);
    out[r] = e;
  }
  return out;
}

/**
 * start[r + 1] = rank r's item count, then prefix sums; tokens[r] = its Σ tokens. Its own
 * function (not a loop inside rankEntries) so the per-rank loop after it does not deoptimise the
 * code compiled on stack replacement in this one.
 */
function countByRank(ph: PhaseResult, R: number, start: Uint32Array, tokens: Float64Array): void {
  const { rank, items } = ph;
  const n = rank.length;
  for (let i = 0; i < n; i++) {
    const r = rank[i];
    if (!(r >= 0 && r < R)) throw new Error(`phase "${items.phase.name}": item ${items.ids[i]} was not placed`);
    start[r + 1]++;
    tokens[r] += items.tokens[i];
  }
  for (let r = 0; r < R; r++) start[r + 1] += start[r];
}

/** Item indices grouped by rank (stable): rank r's items are byRank[start[r] .. start[r+1]). */
function bucketByRank(rank: Int32Array, start: Uint32Array, R: number): Uint32Array {
  const n = rank.length;
  const fill = start.slice(0, R);
  const byRank = new Uint32Array(n);
  for (let i = 0; i < n; i++) byRank[fill[rank[i]]++] = i;
  return byRank;
}

function pick(ids: string[], byRank: Uint32Array, a: number, b: number): string[] {
  const o = new Array<string>(b - a);
  for (let t = a; t < b; t++) o[t - a] = ids[byRank[t]];
  return o;
}

function pickRank(src: Int32Array, byRank: Uint32Array, a: number, b: number): number[] {
  const o = new Array<number>(b - a);
  for (let t = a; t < b; t++) o[t - a] = src[byRank[t]];
  return o;
}

function pickIndex(src: ArrayLike<number>, byRank: Uint32Array, a: number, b: number): number[] {
  const o = new Array<number>(b - a);
  for (let t = a; t < b; t++) o[t - a] = src[byRank[t]];
  return o;
}

/** A phase's micro-batch fields: N, and per micro-batch k the max and mean over ranks of its cost. */
function microBatchSummary(ph: PhaseResult, R: number): Pick<PhasePlan, 'microBatches' | 'microBatchMaxCost' | 'microBatchMeanCost'> {
  const N = ph.microBatches!;
  const loads = ph.microBatchLoads!;
  const max = new Array<number>(N).fill(0), mean = new Array<number>(N).fill(0);
  for (let k = 0; k < N; k++) {
    let m = 0, s = 0;
    for (let r = 0; r < R; r++) { const l = loads[r * N + k]; s += l; if (l > m) m = l; }
    max[k] = tidy(m);
    mean[k] = tidy(s / R);
  }
  return { microBatches: N, microBatchMaxCost: max, microBatchMeanCost: mean };
}

function pickRoute(route: Int32Array, example: Uint32Array, byRank: Uint32Array, a: number, b: number): number[] {
  const o = new Array<number>(b - a);
  for (let t = a; t < b; t++) o[t - a] = route[example[byRank[t]]];
  return o;
}
