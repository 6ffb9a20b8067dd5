// Stage 7: the plan. Runs items → cost → partition → placement → exchange for every phase,
// checks that every item lands exactly once, and builds the output contract.
import { cpuAccelerator, type Accelerator } from './accel.js';
import { quantiseCosts } from './cost.js';
import { InputError } from './errors.js';
import { exchangeMatrix } from './exchange.js';
import { buildPhaseItems } from './items.js';
import { groupLoads, lowerBound, partition, type PartitionInput } from './partition/index.js';
import { placeGroups, placeNaive } from './placement.js';
import { ALGORITHMS, type Batch, type Config, type PhaseItems, type PhasePlan, type Plan, type PlanOptions, type RankPlan } from './types.js';

/** The phase encoder items are routed to: the last phase whose unit is the whole example. */
export function routeTarget(config: Config): number {
  for (let p = config.phases.length - 1; p >= 0; p--) if (config.phases[p].unit === 'example') return p;
  return -1;
}

function exampleLabel(batch: Batch, e: number): string {
  const line = batch.lines?.[e];
  return line ? `batch line ${line}` : `batch example ${JSON.stringify(batch.ids[e])}`;
}

/** Bad inputs that only show once items exist: empty phases, impossible caps and counts. */
function checkPhase(items: PhaseItems, batch: Batch, R: number): void {
  const { phase } = items;
  const n = items.tokens.length;
  if (n === 0) throw new InputError(`phase "${phase.name}": no items in the batch (no example has ${phase.modalities.join(' or ')})`);
  if (phase.equalCount && n < R) throw new InputError(`phase "${phase.name}" equalCount: ${n} items cannot give each of ${R} ranks an equal count (need at least ${R} items)`);
  const cap = phase.maxTokensPerRank;
  if (cap !== undefined) {
    let total = 0;
    for (let i = 0; i < n; i++) {
      if (items.tokens[i] > cap) {
        throw new InputError(`${exampleLabel(batch, items.example[i])}: item "${items.ids[i]}" has ${items.tokens[i]} tokens, over phase "${phase.name}" maxTokensPerRank ${cap}`);
      }
      total += items.tokens[i];
    }
    if (total > cap * R) throw new InputError(`phase "${phase.name}" maxTokensPerRank: ${total} tokens cannot fit ${R} ranks × ${cap} (infeasible cap)`);
  }
}

export async function planBatch(batch: Batch, config: Config, options: PlanOptions = {}, accel: Accelerator = cpuAccelerator): Promise<Plan> {
  const t0 = performance.now();
  const algorithm = options.algorithm ?? 'best';
  if (!ALGORITHMS.includes(algorithm)) throw new InputError(`algorithm: must be one of ${ALGORITHMS.join(', ')}, got ${JSON.stringify(algorithm)}`);
  const R = config.ranks;
  const stages: Record<string, number> = { items: 0, sort: 0, partition: 0, placement: 0, output: 0 };
  let t = performance.now();
  const lap = (stage: string) => { const now = performance.now(); stages[stage] += now - t; t = now; };

  const allItems = buildPhaseItems(batch, config);
  for (const items of allItems) checkPhase(items, batch, R);
  lap('items');

  const phaseRanks: Int32Array[] = [];
  const partial: Omit<PhasePlan, 'ranks'>[] = [];
  const loadsPerPhase: Float64Array[] = [];
  for (const items of allItems) {
    const { phase } = items;
    const costs = quantiseCosts(items);
    // Costs are non-decreasing in length, so sorting by length descending (ties by index)
    // is sorting by cost descending: one u32 key, the GPU's radix sort.
    const order = await accel.sortDesc(items.tokens);
    lap('sort');
    const inp: PartitionInput = {
      cost: costs.cost, tokens: items.tokens, order, groups: R,
      cap: phase.maxTokensPerRank, equalCount: phase.equalCount ?? false, padding: phase.padding ?? false,
    };
    // The report uses the unquantised costs (see cost.ts); decisions use the integers.
    const reportInp: PartitionInput = { ...inp, cost: costs.float };
    const { group, algorithm: used } = await partition(inp, algorithm, items.sampledRank, costs.total, accel, phase.name);
    lap('partition');
    // The sampled layout's groups are its ranks; `naive` ignores where the data is.
    const rankOfGroup = algorithm === 'none' || options.placement === 'naive'
      ? placeNaive(R)
      : placeGroups(group, items.sampledRank, items.bytes, R, config.ranksPerNode);
    const rank = mapGroups(group, rankOfGroup);
    const exchange = exchangeMatrix(items.sampledRank, rank, items.bytes, R, config.ranksPerNode);
    lap('placement');
    const loads = groupLoads(reportInp, rank);
    let max = 0;
    for (let r = 0; r < R; r++) if (tidy(loads[r]) > max) max = tidy(loads[r]);
    phaseRanks.push(rank);
    loadsPerPhase.push(loads);
    partial.push({
      name: phase.name,
      lowerBound: tidy(lowerBound(reportInp, costs.floatTotal)),
      maxCost: max,
      meanCost: tidy(costs.floatTotal / R),
      exchange,
      algorithm: used,
      items: group.length,
    });
  }

  // Encoder items are routed to the rank that holds their example in the target phase.
  const target = routeTarget(config);
  let rankOfExample: Int32Array | null = null;
  if (target >= 0) {
    rankOfExample = new Int32Array(batch.ids.length).fill(-1);
    const ex = allItems[target].example, rk = phaseRanks[target];
    for (let i = 0; i < ex.length; i++) rankOfExample[ex[i]] = rk[i];
  }

  const phases: PhasePlan[] = allItems.map((items, p) => {
    const ranks = rankEntries(items, phaseRanks[p], loadsPerPhase[p], R, {
      from: options.exchange === 'full',
      route: rankOfExample && items.phase.unit === 'segment' ? rankOfExample : null,
    });
    const { name, ...rest } = partial[p];
    const out: PhasePlan = { name, ranks, ...rest };
    if (rankOfExample && items.phase.unit === 'segment') out.routeTo = config.phases[target].name;
    return out;
  });
  lap('output');
  const plan: Plan = {
    ranks: R,
    phases,
    stats: { algorithm, backend: accel.backend, planMs: round3(performance.now() - t0), adapter: accel.adapter, stages: roundAll(stages) },
  };
  return plan;
}

/** rank[i] = rankOfGroup[group[i]] (its own small function: optimised early, not by OSR of planBatch). */
function mapGroups(group: Int32Array, rankOfGroup: Int32Array): Int32Array {
  const rank = new Int32Array(group.length);
  for (let i = 0; i < group.length; i++) rank[i] = rankOfGroup[group[i]];
  return rank;
}

/** Per-rank lists in item order; checks that every item is placed exactly once. */
function rankEntries(
  items: PhaseItems, rank: Int32Array, loads: Float64Array, R: number,
  extra: { from: boolean; route: Int32Array | null },
): RankPlan[] {
  // start[r]: where rank r's items begin in `byRank` (items bucketed by rank, item order kept).
  const start = new Uint32Array(R + 1);
  const tokens = new Float64Array(R);
  countByRank(items, rank, R, start, tokens);
  const byRank = bucketByRank(rank, start, R);
  const out: RankPlan[] = new Array(R);
  for (let r = 0; r < R; r++) {
    const a = start[r], b = start[r + 1];
    const e: RankPlan = { items: pick(items.ids, byRank, a, b), cost: tidy(loads[r]), tokens: tokens[r] };
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
function countByRank(items: PhaseItems, rank: Int32Array, R: number, start: Uint32Array, tokens: Float64Array): void {
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

/**
 * Reported costs: float64 sums of the item costs, shown to 12 significant digits (far inside
 * the 1e-6 contract, and free of summation noise like ...00046).
 */
const tidy = (x: number) => Number(x.toPrecision(12));
const round3 = (x: number) => Math.round(x * 1000) / 1000;
function roundAll(r: Record<string, number>): Record<string, number> {
  const o: Record<string, number> = {};
  for (const [k, v] of Object.entries(r)) o[k] = round3(v);
  return o;
}

/** The CLI's output: one JSON document. Sidecar responses embed the same object. */
export function formatPlan(plan: Plan): string {
  return JSON.stringify(plan);
}
