// The per-phase planner: a phase's items → integer costs and cost order → partition (groups)
// → placement (group → rank) → exchange, giving the rank of every item (item order) and the
// per-rank loads: the item-indexed result that every output form reads.
import { costsOfLengths, quantiseCosts, type PhaseCosts } from '../cost.js';
import { exchangeMatrix } from '../exchange.js';
import { groupLoads, lowerBound, partition, type PartitionInput, type PartitionResult } from '../partition/index.js';
import type { KkJob } from '../partition/kk-background.js';
import { placeGroups } from '../placement.js';
import type { Accelerator } from '../primitives/accelerator.js';
import type { Algorithm, Config, PhaseItems, PhaseResult, PlanOptions } from '../types.js';

/** A phase ready to partition: integer costs and the items in cost order. */
export interface SortedPhase {
  items: PhaseItems;
  costs: PhaseCosts;
  inp: PartitionInput;
}

export async function sortPhase(items: PhaseItems, R: number, accel: Accelerator): Promise<SortedPhase> {
  const { phase } = items;
  const costs = quantiseCosts(items);
  // Costs are non-decreasing in length, so sorting by length descending (ties by index) is
  // sorting by cost descending: one u32 key, the GPU's radix sort. Where the sort hands back the
  // sorted lengths too, the costs by position follow from them without a gather.
  const keyed = accel.sortDescKeyed ? await accel.sortDescKeyed(items.tokens) : null;
  const order = keyed ? keyed.order : await accel.sortDesc(items.tokens);
  const inp: PartitionInput = {
    cost: costs.cost, tokens: items.tokens, order, groups: R,
    cap: phase.maxTokensPerRank, equalCount: phase.equalCount ?? false, padding: phase.padding ?? false,
  };
  if (keyed) inp.byPosition = { cost: costsOfLengths(costs, keyed.sorted), tokens: keyed.sorted };
  return { items, costs, inp };
}

/** Partition of a sorted phase; placement and exchange follow in placePhase. */
export async function partitionPhase(sp: SortedPhase, algorithm: Algorithm, accel: Accelerator, kkJob: KkJob | null): Promise<PartitionResult> {
  return partition(sp.inp, algorithm, sp.items.sampledRank, sp.costs.total, accel, sp.items.phase.name, kkJob);
}

/** Groups onto ranks, the exchange that implies, and the reported loads. */
export function placePhase(
  sp: SortedPhase, part: PartitionResult, algorithm: Algorithm, config: Config, options: PlanOptions,
): PhaseResult {
  const { items, costs, inp } = sp;
  const R = config.ranks;
  const { group, algorithm: used } = part;
  // The sampled layout's groups are its ranks, and so are the home deal's; `naive` ignores where
  // the data is.
  const rank = algorithm === 'none' || part.placed || options.placement === 'naive'
    ? group
    : mapGroups(group, placeGroups(group, items.sampledRank, items.bytes, R, config.ranksPerNode));
  const exchange = exchangeMatrix(items.sampledRank, rank, items.bytes, R, config.ranksPerNode);
  // The report uses the unquantised costs (see cost.ts); decisions use the integers.
  const reportInp: PartitionInput = { ...inp, cost: costs.float };
  const loads = groupLoads(reportInp, rank);
  let max = 0;
  for (let r = 0; r < R; r++) if (tidy(loads[r]) > max) max = tidy(loads[r]);
  return {
    items, rank, loads,
    lowerBound: tidy(lowerBound(reportInp, costs.floatTotal)),
    maxCost: max,
    meanCost: tidy(costs.floatTotal / R),
    exchange,
    algorithm: used,
  };
}

/** A phase with no items: bound, loads and exchange all zero. */
export function emptyPhase(items: PhaseItems, R: number): PhaseResult {
  return {
    items, rank: new Int32Array(0), loads: new Float64Array(R),
    lowerBound: 0, maxCost: 0, meanCost: 0,
    exchange: { movedItems: 0, bytes: 0, interNodeBytes: 0, intraNodeBytes: 0, pairs: [] },
    algorithm: 'empty',
  };
}

/** rank[i] = rankOfGroup[group[i]] (its own small function: optimised early, not by OSR of the caller). */
function mapGroups(group: Int32Array, rankOfGroup: Int32Array): Int32Array {
  const rank = new Int32Array(group.length);
  for (let i = 0; i < group.length; i++) rank[i] = rankOfGroup[group[i]];
  return rank;
}

/**
 * Reported costs: float64 sums of the item costs, shown to 12 significant digits (far inside
 * the 1e-6 contract, and free of summation noise like ...00046).
 */
export const tidy = (x: number) => Number(x.toPrecision(12));
