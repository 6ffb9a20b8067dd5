// `best` on a phase with micro-batches: micro-step k of every rank runs in lock-step, so the phase
// lasts Σ_k max over ranks of micro-batch k's cost, not its heaviest rank. A grouping balanced by
// rank total can still hold several long items on one rank (keeping items where they were
// sampled does that), and then no numbering of its micro-batches lines them up with the other
// ranks'. So best's result is compared with LPT's (LPT gives the longest items one to a rank
// first), refined as best refines, by that lock-step time on the integer costs, and the shorter
// is kept (ties: best's). Best's result within its quality bar of the lower bound is kept without
// comparing. Micro-batches depend only on which items share a group, not on which rank runs it,
// so this is decided before placement, and the winner's micro-batches are handed on as they are.
// (Karmarkar–Karp as a third candidate measured the same on the built-in workload, within 0.1%
// of the lock-step time, and costs seconds on large phases.)
import { InputError } from '../errors.js';
import { assignMicroBatches, lockStepTimeOf, type MicroBatchInput, type MicroBatchResult } from '../microbatch.js';
import { lowerBound, partition, qualityBar, type PartitionResult } from '../partition/index.js';
import { rehome } from '../partition/locality.js';
import { refine } from '../partition/refine.js';
import type { Accelerator } from '../primitives/accelerator.js';
import type { MicroBatchConfig } from '../types.js';
import type { SortedPhase } from './phase.js';

export interface LockStepChoice {
  part: PartitionResult;
  /** The micro-batches of part's grouping (the same on whichever ranks placement puts its groups). */
  microBatches: MicroBatchResult;
}

export async function lockStepChoice(sp: SortedPhase, chosen: PartitionResult, spec: MicroBatchConfig, accel: Accelerator): Promise<LockStepChoice> {
  const { inp, items } = sp;
  const name = items.phase.name;
  const evaluate = (group: Int32Array): { mb: MicroBatchResult; time: number } | InputError => {
    const mi: MicroBatchInput = { rank: group, cost: inp.cost, tokens: inp.tokens, order: inp.order, ranks: inp.groups, padding: inp.padding };
    try {
      const mb = assignMicroBatches(mi, spec, name);
      return { mb, time: lockStepTimeOf(mi, mb) };
    } catch (e) {
      if (e instanceof InputError) return e; // a count with maxTokens this grouping cannot meet: another may
      throw e;
    }
  };
  const own = evaluate(chosen.group);
  // Σ_k max ≥ the heaviest group ≥ the lower bound: within best's own quality bar of it, keep it.
  const lb = lowerBound(inp, sp.costs.total);
  if (!(own instanceof InputError) && own.time <= qualityBar(inp, lb)) return { part: chosen, microBatches: own.mb };
  let alt: PartitionResult | null = null;
  try {
    const raw = (await partition(inp, 'lpt', items.sampledRank, sp.costs.total, accel, name)).group;
    const refined = inp.padding ? raw : await refine(inp, raw, { target: Math.ceil(lb) }, accel);
    // Equal items back to the ranks that sampled them (loads and micro-batch costs unchanged).
    const group = items.sampledRank.length === refined.length ? rehome(inp, refined, items.sampledRank) : refined;
    alt = { group, algorithm: inp.padding ? 'lpt' : 'lpt+refine' };
  } catch (e) {
    if (!(e instanceof InputError)) throw e; // LPT cannot meet the phase's constraints
  }
  const other = alt ? evaluate(alt.group) : null;
  if (other && !(other instanceof InputError) && (own instanceof InputError || other.time < own.time)) return { part: alt!, microBatches: other.mb };
  if (own instanceof InputError) throw own;
  return { part: chosen, microBatches: own.mb };
}
