// `best` on a phase with micro-batches: micro-step k of every rank runs in lock-step, so the phase
// lasts Σ_k max over ranks of micro-batch k's cost, not its heaviest rank. A grouping balanced by
// rank total can still hold several long items on one rank (keeping items where they were
// sampled does that), and then no numbering of its micro-batches lines them up with the other
// ranks'. So best's result is compared with LPT and Karmarkar–Karp (LPT spreads the longest
// items one to a rank first), each refined as best refines, by that lock-step time on the
// integer costs, and the shortest is kept (ties: best's own, then LPT). Best's result within its
// quality bar of the lower bound is kept without comparing. Micro-batches depend only
// on which items share a group, not on which rank runs the group, so this is decided before
// placement.
import { InputError } from '../errors.js';
import { lockStepTime } from '../microbatch.js';
import { lowerBound, partition, qualityBar, type PartitionResult } from '../partition/index.js';
import type { KkJob } from '../partition/kk-background.js';
import { rehome } from '../partition/locality.js';
import { refine } from '../partition/refine.js';
import type { Accelerator } from '../primitives/accelerator.js';
import type { MicroBatchConfig } from '../types.js';
import type { SortedPhase } from './phase.js';

export async function lockStepChoice(sp: SortedPhase, chosen: PartitionResult, spec: MicroBatchConfig, accel: Accelerator, kkJob: KkJob | null): Promise<PartitionResult> {
  const { inp, items } = sp;
  const name = items.phase.name;
  const time = (group: Int32Array): number =>
    lockStepTime({ rank: group, cost: inp.cost, tokens: inp.tokens, order: inp.order, ranks: inp.groups, padding: inp.padding }, spec, name);
  let best = chosen, bestTime = Infinity, firstError: unknown = null;
  try {
    bestTime = time(chosen.group);
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    firstError = e; // a count with maxTokens this grouping cannot meet: another may
  }
  // Σ_k max ≥ the heaviest group ≥ the lower bound: within best's own quality bar of it, keep it.
  const lb = lowerBound(inp, sp.costs.total);
  if (bestTime <= qualityBar(inp, lb)) return chosen;
  for (const algorithm of ['lpt', 'kk'] as const) {
    let group: Int32Array;
    try {
      group = (await partition(inp, algorithm, items.sampledRank, sp.costs.total, accel, name, kkJob)).group;
    } catch (e) {
      if (e instanceof InputError) continue; // cannot meet the phase's constraints
      throw e;
    }
    if (!inp.padding) group = await refine(inp, group, { target: Math.ceil(lb) }, accel);
    let t: number;
    try { t = time(group); } catch (e) { if (e instanceof InputError) continue; throw e; }
    if (t < bestTime) {
      bestTime = t;
      best = { group: items.sampledRank.length === group.length ? rehome(inp, group, items.sampledRank) : group, algorithm: `${algorithm}${inp.padding ? '' : '+refine'}` };
    }
  }
  if (bestTime === Infinity) throw firstError;
  return best;
}
