// Stage 4: partition a phase's items into R groups with the chosen algorithm, and the lower
// bound every result is measured against.
import type { Accelerator } from '../primitives/accelerator.js';
import { InputError } from '../errors.js';
import type { Algorithm } from '../types.js';
import { feasible, groupLoads, maxOf, type PartitionInput } from './common.js';
import { kkInLine, type KkJob } from './kk-background.js';
import { locality, rehome } from './locality.js';
import { lpt, tokenFit } from './lpt.js';
import { padded } from './padded.js';
import { refine, repair } from './refine.js';
import { roundsPartition } from './rounds.js';

export type { PartitionInput } from './common.js';
export { groupLoads } from './common.js';

/**
 * Lower bound on the max group load of any valid grouping (integer cost units):
 * max(total / R, largest item). With equal counts, a group of ⌊n/R⌋ items may hold the largest
 * item, so it carries at least largest + the ⌊n/R⌋−1 smallest: that is the count-aware bound
 * (⌊n/R⌋ rather than ⌈n/R⌉ because ranks may differ by one item). A padded phase with equal
 * counts: that group costs at least ⌊n/R⌋ × largest. Token caps keep the plain bound. Works on
 * any cost array (the integer costs for decisions, the float costs for the report).
 */
export function lowerBound(inp: PartitionInput, total: number): number {
  const { cost, order, groups: R } = inp;
  const n = order.length;
  if (n === 0) return 0;
  let lb = Math.max(total / R, cost[order[0]]);
  if (inp.equalCount) {
    const q = Math.floor(n / R);
    if (inp.padding) return Math.max(lb, q * cost[order[0]]);
    let s = cost[order[0]];
    for (let k = 1; k < q; k++) s += cost[order[n - k]];
    lb = Math.max(lb, s);
  }
  return lb;
}

export interface PartitionResult {
  group: Int32Array;
  /** Which algorithm produced it ("best" reports its winning candidate, e.g. "lpt+refine"). */
  algorithm: string;
  /** Group g is rank g by construction (the home deal): placement keeps it so. */
  placed?: boolean;
}

/**
 * `best`'s quality bar: the lower bound + max(0.1%, one smallest item). A data-parallel result
 * within it is taken on large phases (see bestEligible).
 */
export function qualityBar(inp: PartitionInput, lb: number): number {
  const { cost, order } = inp;
  return lb + Math.max(0.001 * lb, cost[order[order.length - 1]]);
}

/**
 * Phases where `best` starts with `rounds` (and takes its result within the quality bar): sum
 * loads with at least 8 items per rank, where the bar's 0.1% is within reach of single steps.
 */
export function bestEligible(inp: PartitionInput): boolean {
  return !inp.padding && inp.order.length >= 8 * inp.groups;
}

/**
 * The data-parallel algorithm: the home deal (items stay on the rank that sampled them up to
 * the target) with balance rounds and polish; where that is invalid (a token cap or equal counts
 * the deal could not meet) or above the quality bar, also the snake deal; the lighter valid one
 * (ties: home). Padded phases: the contiguous cut (`padded`), which is data-parallel too. Null
 * when no result meets the constraints.
 */
async function roundsValid(inp: PartitionInput, target: number, lb: number, accel: Accelerator, sampledRank: Int32Array): Promise<(PartitionResult & { score: number }) | null> {
  if (inp.padding) {
    const g = await paddedValid(inp, lb, accel);
    return g ? { group: g, algorithm: 'padded', score: maxOf(groupLoads(inp, g)) } : null;
  }
  let win: (PartitionResult & { score: number }) | null = null;
  if (sampledRank.length === inp.order.length) {
    const home = await roundsPartition(inp, { deal: 'home', sampledRank, target }, accel);
    if (home.valid) win = { group: home.group, algorithm: 'home+rounds', placed: true, score: home.maxLoad };
  }
  if (!win || win.score > qualityBar(inp, lb)) {
    const snake = await roundsPartition(inp, { deal: 'snake', target }, accel);
    if (snake.valid && (!win || snake.maxLoad < win.score)) win = { group: snake.group, algorithm: 'snake+rounds', score: snake.maxLoad };
  }
  return win;
}

function sampledLayout(sampledRank: Int32Array): Int32Array {
  return Int32Array.from(sampledRank);
}

/** A valid grouping from LPT, falling back to a token-balancing fit, then repaired; null if none. */
function lptOrNull(inp: PartitionInput): Int32Array | null {
  let g = lpt(inp);
  if (g && feasible(inp, g)) return g;
  g = g ?? tokenFit(inp);
  const fixed = g ? repair(inp, g) : null;
  return fixed && feasible(inp, fixed) ? fixed : null;
}

function capError(inp: PartitionInput, phaseName: string, who: string): InputError {
  return new InputError(`phase "${phaseName}": ${who} found no placement within maxTokensPerRank ${inp.cap}${inp.equalCount ? ' with equal counts' : ''} (the cap may be too tight for this batch${who === 'best' ? '' : '; try --algorithm best'})`);
}

function lptValid(inp: PartitionInput, phaseName: string): Int32Array {
  const g = lptOrNull(inp);
  if (!g) throw capError(inp, phaseName, 'lpt');
  return g;
}

/**
 * `best`'s starting point: LPT; where greedy placement cannot meet a token cap, the other valid
 * groupings (KK, the contiguous cut, the sampled layout itself), whichever is lightest.
 */
async function startValid(inp: PartitionInput, lb: number, accel: Accelerator, sampledRank: Int32Array, phaseName: string, kkJob: KkJob): Promise<PartitionResult> {
  const g = lptOrNull(inp);
  if (g) return { group: g, algorithm: 'lpt' };
  const options: PartitionResult[] = [];
  const k = await kkValid(inp, kkJob);
  if (k) options.push({ group: k, algorithm: 'kk' });
  const pv = await paddedValid(inp, lb, accel);
  if (pv) options.push({ group: pv, algorithm: 'padded' });
  const sampled = sampledLayout(sampledRank);
  if (sampled.length === inp.order.length && feasible(inp, sampled)) options.push({ group: sampled, algorithm: 'sampled' });
  if (options.length === 0) throw capError(inp, phaseName, 'best');
  let win = options[0], winScore = maxOf(groupLoads(inp, win.group));
  for (const o of options.slice(1)) {
    const s = maxOf(groupLoads(inp, o.group));
    if (s < winScore) { win = o; winScore = s; }
  }
  return win;
}

/**
 * Padded phases with equal counts: items by cost, cut into contiguous runs of ⌊n/R⌋ items, the
 * ⌈n/R⌉-item runs last (where items are shortest, so the extra item costs least). Each run's
 * padded load is its count × its first item: close to optimal when lengths vary smoothly.
 */
function equalChunks(inp: PartitionInput): Int32Array {
  const { order, groups: R } = inp;
  const n = order.length;
  const q = Math.floor(n / R), r = n % R;
  const group = new Int32Array(n);
  let k = 0;
  for (let g = 0; g < R; g++) {
    const size = g < R - r ? q : q + 1;
    for (let j = 0; j < size; j++) group[order[k++]] = g;
  }
  return group;
}

/** The contiguous cut, then repaired to the constraints; null if it cannot be made valid. */
async function paddedValid(inp: PartitionInput, lb: number, accel: Accelerator): Promise<Int32Array | null> {
  const g = await padded(inp, lb, accel);
  if (feasible(inp, g)) return g;
  const fixed = repair(inp, g);
  return fixed && feasible(inp, fixed) ? fixed : null;
}

/** KK's grouping (from the phase's job), then repaired to the constraints; null if it cannot be made valid. */
async function kkValid(inp: PartitionInput, job: KkJob): Promise<Int32Array | null> {
  const g = await job.group();
  if (feasible(inp, g)) return g;
  const fixed = repair(inp, g);
  return fixed && feasible(inp, fixed) ? fixed : null;
}

export async function partition(
  inp: PartitionInput,
  algorithm: Algorithm,
  sampledRank: Int32Array,
  total: number,
  accel: Accelerator,
  phaseName: string,
  /** KK for this phase already started off the main thread (kkInBackground), if any. */
  kkJob?: KkJob | null,
): Promise<PartitionResult> {
  const lb = lowerBound(inp, total);
  const target = Math.ceil(lb);
  const job = kkJob ?? kkInLine(inp); // KK at most once per phase, wherever it runs
  switch (algorithm) {
    case 'none':
      return { group: sampledLayout(sampledRank), algorithm: 'none' };
    case 'lpt':
      return { group: lptValid(inp, phaseName), algorithm: 'lpt' };
    case 'kk': {
      const g = await kkValid(inp, job);
      if (!g) throw new InputError(`phase "${phaseName}": kk could not be made to respect the phase's constraints; try --algorithm best`);
      return { group: g, algorithm: 'kk' };
    }
    case 'padded': {
      const g = await paddedValid(inp, lb, accel);
      if (!g) throw new InputError(`phase "${phaseName}": padded could not respect the phase's constraints; try --algorithm best`);
      return { group: g, algorithm: 'padded' };
    }
    case 'rounds': {
      const r = await roundsValid(inp, target, lb, accel, sampledRank);
      if (!r) throw new InputError(`phase "${phaseName}": rounds found no placement within the phase's constraints; try --algorithm best`);
      return { group: r.group, algorithm: r.algorithm, placed: r.placed };
    }
    case 'best': {
      // Large phases: the data-parallel result when it is within the quality bar.
      let dp: (PartitionResult & { score: number }) | null = null;
      if (bestEligible(inp)) {
        dp = await roundsValid(inp, target, lb, accel, sampledRank);
        if (dp && dp.score <= qualityBar(inp, lb)) {
          return dp.placed ? { group: dp.group, algorithm: dp.algorithm, placed: true } : { group: rehome(inp, dp.group, sampledRank), algorithm: dp.algorithm };
        }
      }
      const b = await best(inp, target, lb, accel, phaseName, sampledRank, job);
      // Otherwise today's candidates, and the data-parallel result if it is lighter still.
      if (dp && dp.score < maxOf(groupLoads(inp, b.group))) {
        return dp.placed ? { group: dp.group, algorithm: dp.algorithm, placed: true } : { group: rehome(inp, dp.group, sampledRank), algorithm: dp.algorithm };
      }
      return b;
    }
  }
}

/**
 * When `best` prefers the locality candidate (group g = rank g, most items stay where they were
 * sampled) over the lightest balanced one:
 * - 'winner': only if its max load is ≤ the winning candidate's (never a heavier max);
 * - 'contract': if its max load is ≤ the raw LPT and KK results and within the quality bar
 *   (lower bound + max(0.1%, one smallest item) with ≥ 8 items per rank; otherwise, and
 *   with equal counts, the 'winner' rule). Trades a few parts per million of max load for
 *   several times fewer bytes moved.
 */
export const LOCALITY_RULE = 'contract' as 'winner' | 'contract';

/**
 * Never worse than LPT or KK: refine LPT; if that does not reach the bound, also refine KK
 * (and, for padded phases, try the contiguous cut) and keep the lightest max load (ties go to
 * the earlier candidate, so the choice is deterministic). Sum-load phases also try the
 * locality candidate (sampled layout kept up to the target, the rest LPT, refined) and prefer it
 * under LOCALITY_RULE. Work that cannot change the result is skipped: when the refined locality
 * candidate is already within min(raw LPT, raw KK, the quality bar), it is accepted whatever the
 * refined KK would score, so KK is not refined.
 */
async function best(inp: PartitionInput, target: number, lb: number, accel: Accelerator, phaseName: string, sampledRank: Int32Array, kkJob: KkJob): Promise<PartitionResult> {
  const score = (g: Int32Array) => maxOf(groupLoads(inp, g));
  const candidates: PartitionResult[] = [];
  const polish = async (g: Int32Array) => (inp.padding ? g : refine(inp, g, { target }, accel));
  const start = await startValid(inp, lb, accel, sampledRank, phaseName, kkJob);
  const first = start.group;
  const firstScore = score(first);
  const n = inp.order.length;
  const withLocality = !inp.padding && sampledRank.length === n;
  const contract = LOCALITY_RULE === 'contract' && !inp.equalCount && n >= 8 * inp.groups;
  // The refined locality candidate and its score, computed at most once (null: none valid).
  let loc: Int32Array | null | undefined, locScore = Infinity;
  const locCandidate = async (): Promise<Int32Array | null> => {
    if (loc !== undefined) return loc;
    const l0 = locality(inp, sampledRank, target);
    const lv = l0 && (feasible(inp, l0) ? l0 : repair(inp, l0));
    loc = lv && feasible(inp, lv) ? await refine(inp, lv, { target, rounds: false }, accel) : null;
    if (loc) locScore = score(loc);
    return loc;
  };
  const qualityBar = () => lb + Math.max(0.001 * lb, inp.cost[inp.order[n - 1]]);
  // Raw KK ≥ ceil(lb) = target whenever it is not computed (loads are integers).
  let kkScore = target;
  candidates.push({ group: await polish(first), algorithm: inp.padding ? start.algorithm : `${start.algorithm}+refine` });
  const polishedScore = score(candidates[0].group);
  if (polishedScore > target || inp.padding) {
    // The locality candidate is built whenever withLocality (here or at the end): first, so
    // that a KK started in the background has longer to finish.
    if (withLocality) await locCandidate();
    const k = await kkValid(inp, kkJob);
    if (k) {
      kkScore = score(k);
      // Accepted below whatever the KK candidate refines to (the bar is ≥ this minimum).
      if (withLocality && contract && (await locCandidate()) && locScore <= Math.min(firstScore, kkScore, qualityBar())) {
        return { group: rehome(inp, loc!, sampledRank), algorithm: 'locality+refine' };
      }
      candidates.push({ group: await polish(k), algorithm: inp.padding ? 'kk' : 'kk+refine' });
    }
    if (inp.padding && inp.equalCount) {
      const c = equalChunks(inp);
      if (feasible(inp, c)) candidates.push({ group: c, algorithm: 'equal-chunks' });
    }
    if (inp.padding) {
      const pv = await paddedValid(inp, lb, accel);
      if (pv) candidates.push({ group: pv, algorithm: 'padded' });
    }
  }
  let win = candidates[0], winScore = polishedScore;
  for (const c of candidates.slice(1)) {
    const s = score(c.group);
    if (s < winScore) { win = c; winScore = s; }
  }
  if (winScore > firstScore) throw new Error('best: refinement made a grouping worse'); // cannot happen: refine only accepts improvements
  if (withLocality) {
    const bar = contract ? Math.max(winScore, Math.min(firstScore, kkScore, qualityBar())) : winScore;
    const g = await locCandidate();
    if (g && locScore <= bar) return { group: rehome(inp, g, sampledRank), algorithm: 'locality+refine' };
  }
  // Otherwise keep the winner's loads exactly, but let equal items stay where they were sampled.
  if (sampledRank.length === n) return { group: rehome(inp, win.group, sampledRank), algorithm: win.algorithm };
  return win;
}
