// Output forms of a plan, both built from the item-indexed result. The full JSON document (the
// CLI's and the sidecar's default output contract): per rank, its items' ids in item order, cost,
// tokens, and optionally where each item came from and where its encoder output goes. The compact
// form: per phase the rank of every item as one integer array in item order, and per-rank cost
// and tokens, so a client that numbers items itself needs no ids at all.
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
    return out;
  });
  return { ranks: result.ranks, phases, stats: result.stats };
}

/** The CLI's output: one JSON document. Sidecar responses embed the same object. */
export function formatPlan(plan: Plan): string {
  return JSON.stringify(plan);
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
    return out;
  });
  return { format: 'compact', ranks: R, phases, stats: result.stats };
}

/** The compact form as one line of JSON: each `rank` array written as a JSON array of integers. */
export function formatCompactPlan(plan: CompactPlan): string {
  return JSON.stringify(plan, (key, value) => (key === 'rank' && value instanceof Int32Array ? Array.from(value) : value));
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

function pickRoute(route: Int32Array, example: Uint32Array, byRank: Uint32Array, a: number, b: number): number[] {
  const o = new Array<number>(b - a);
  for (let t = a; t < b; t++) o[t - a] = route[example[byRank[t]]];
  return o;
}
