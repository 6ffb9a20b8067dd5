// Data-parallel balancing, the CPU reference of the balance kernels (src/gpu/balance/): a deal
// of the items over the groups, then balance rounds in which every pair of an over-target group
// and a light group takes its best move or swap at once. Every stage is a function of the whole
// state, specified exactly (integer costs, documented tie-breaks), so that a kernel and this
// code give the same groups, byte for byte.
//
// Items are seen by position k in cost order (cost descending, ties by index ascending), so the
// caller passes costs, tokens and sampled ranks by position and gets a group per position.
//
// Deals:
// - "snake": position k goes to group m or 2R−1−m for m = k mod 2R (m < R, else the mirror):
//   rows of R items dealt alternately left to right and right to left. Counts differ by at most
//   one; every group gets one item of each row.
// - "home": every group g is rank g. Each rank keeps its own items, largest first, while its
//   load stays ≤ target (and its tokens within the cap, and with equal counts fewer than q
//   items): one pass per rank. The rest (the pool, in cost order) is cut by the ranks' room:
//   ranks ordered by kept load ascending (ties by index) each own an interval of the
//   concatenated room (target − load, or with equal counts their free slots; the prefix
//   saturates at 2^52), and a pooled item goes to the rank whose interval holds its midpoint
//   (2·P_j + c_j against 2·room prefix; the last rank takes any excess). Everything a rank keeps
//   stays home.
//
// Rounds (until no pair takes a step, no group is over the target, or maxRounds): groups sorted
// by (load, index); the P = min(⌊R/2⌋, #groups with load > target) heaviest are paired with the
// P lightest, the i-th heaviest with the i-th lightest; each pair takes pairStep's best move or
// swap (pairstep.ts: blocks ascending by cost, ties by position descending, i.e. every block is
// its group's positions in descending order); all steps are applied at once (pairs are
// disjoint). Every step lowers its pair's max below the heavier load, so the max load never
// rises and Σ load² falls every round.
import { pairStep, type PairArena } from './pairstep.js';

export type Deal = 'snake' | 'home';

const ROOM_SATURATION = 2 ** 52;

export interface BalanceInput {
  /** By position: integer costs (descending), tokens, and (deal "home") sampled ranks. */
  cost: Float64Array;
  tokens: Uint32Array;
  home: Int32Array;
  groups: number;
  /** Integer target load (the rounds stop when no group is above it). */
  target: number;
  /** Token cap per group (Infinity when none; never NaN). */
  cap: number;
  /** Equal counts: ⌊n/R⌋ (moves only q+1 → q); −1 when counts are free. */
  q: number;
  deal: Deal;
  maxRounds: number;
}

export interface BalanceResult {
  /** Group of every position. */
  group: Int32Array;
  rounds: number;
  /** Steps applied over all rounds. */
  steps: number;
  /**
   * The final state (its `group` is the one above), where the implementation has it on the host
   * (the CPU reference): the caller's polish continues from it instead of rebuilding it.
   */
  state?: BalanceState;
}

export function balanceCpu(inp: BalanceInput): BalanceResult {
  const group = inp.deal === 'snake' ? snakeDeal(inp.cost.length, inp.groups) : homeDeal(inp);
  const s = arenaOf(inp, group);
  const { rounds, steps } = runRounds(s, inp.target, inp.maxRounds);
  return { group, rounds, steps, state: s };
}

/** The snake deal: position k to m = k mod 2R, mirrored to 2R−1−m on the way back. */
export function snakeDeal(n: number, R: number): Int32Array {
  const group = new Int32Array(n);
  const R2 = 2 * R;
  for (let k = 0, m = 0; k < n; k++) {
    group[k] = m < R ? m : R2 - 1 - m;
    if (++m === R2) m = 0;
  }
  return group;
}

/** The home deal: each rank keeps its largest items up to the target, the pool is cut by room. */
export function homeDeal(inp: BalanceInput): Int32Array {
  const { cost, tokens, home, groups: R, target, cap, q } = inp;
  const n = cost.length;
  const group = new Int32Array(n).fill(-1);
  const load = new Float64Array(R), tok = new Float64Array(R);
  const count = new Int32Array(R);
  const pooled = keepHome(cost, tokens, home, target, cap, q, group, load, tok, count);
  // Ranks by kept load ascending (ties by index): the emptiest takes the largest pooled items.
  const byLoad = sortByLoad(load);
  const room = new Float64Array(R + 1); // room[t + 1] − room[t]: the t-th rank's interval
  if (q < 0) {
    // Saturating at 2^52 keeps every prefix exact (R · target may pass 2^53); midpoints stay
    // below 2^42, so a saturated entry compares as the true sum would.
    for (let t = 0; t < R; t++) room[t + 1] = Math.min(room[t] + (target - load[byLoad[t]]), ROOM_SATURATION);
    cutByCost(cost, group, byLoad, room, pooled);
  } else {
    // Equal counts: free slots, q each, one more for the first n mod R ranks in this order.
    const extra = n % R;
    for (let t = 0; t < R; t++) room[t + 1] = room[t] + (q - count[byLoad[t]]) + (t < extra ? 1 : 0);
    cutBySlots(group, byLoad, room, pooled);
  }
  return group;
}

/** Keep pass (one loop per rank in the kernel: here one loop in position order, the same result). */
function keepHome(
  cost: Float64Array, tokens: Uint32Array, home: Int32Array, target: number, cap: number, q: number,
  group: Int32Array, load: Float64Array, tok: Float64Array, count: Int32Array,
): number {
  const n = cost.length;
  let pooled = 0;
  for (let k = 0; k < n; k++) {
    const r = home[k];
    if (load[r] + cost[k] <= target && tok[r] + tokens[k] <= cap && (q < 0 || count[r] < q)) {
      group[k] = r;
      load[r] += cost[k];
      tok[r] += tokens[k];
      count[r]++;
    } else pooled++;
  }
  return pooled;
}

/** Pooled positions (group −1, in position order) to the rank whose room interval holds their cost midpoint. */
function cutByCost(cost: Float64Array, group: Int32Array, byLoad: Int32Array, room: Float64Array, pooled: number): void {
  const n = cost.length, R = byLoad.length;
  let P2 = 0, t = 0; // 2 × Σ cost of the pooled items before this one
  for (let k = 0, seen = 0; k < n && seen < pooled; k++) {
    if (group[k] >= 0) continue;
    const mid2 = P2 + cost[k];
    while (t < R - 1 && 2 * room[t + 1] <= mid2) t++;
    group[k] = byLoad[t];
    P2 += 2 * cost[k];
    seen++;
  }
}

/** Pooled positions to ranks by free slots: the j-th pooled item to the interval holding j. */
function cutBySlots(group: Int32Array, byLoad: Int32Array, room: Float64Array, pooled: number): void {
  const n = group.length, R = byLoad.length;
  let j = 0, t = 0;
  for (let k = 0; k < n && j < pooled; k++) {
    if (group[k] >= 0) continue;
    while (t < R - 1 && room[t + 1] <= j) t++;
    group[k] = byLoad[t];
    j++;
  }
}

/** Groups by (load, index) ascending. */
function sortByLoad(load: Float64Array): Int32Array {
  const R = load.length;
  const idx = new Int32Array(R);
  for (let g = 0; g < R; g++) idx[g] = g;
  return idx.sort((a, b) => load[a] - load[b] || a - b);
}

/** The balance state: the arena of PairArena plus the positions in it and the sorted groups. */
export interface BalanceState extends PairArena {
  R: number;
  group: Int32Array;
  /** Positions: block g is mem[off[g] .. off[g] + size[g]), descending (ascending cost). */
  mem: Int32Array;
  room: Int32Array;
  cost: Float64Array;
  tokens: Uint32Array;
  /** Groups by (load, index) ascending. */
  sorted: Int32Array;
  /**
   * No single move or swap can change a pair whose gap g is at most this: the smallest positive
   * cost, or the smallest difference between two distinct costs, whichever is less (pairStep
   * would find nothing; skipping it changes no result).
   */
  resolution: number;
}

/** The arena of a grouping: every group's positions descending, with slack to grow. */
export function arenaOf(inp: Pick<BalanceInput, 'cost' | 'tokens' | 'groups' | 'cap' | 'q'>, group: Int32Array): BalanceState {
  const { cost, tokens, groups: R } = inp;
  const n = group.length;
  const size = new Int32Array(R), off = new Int32Array(R), room = new Int32Array(R);
  const load = new Float64Array(R), tok = new Float64Array(R);
  tallyGroups(group, cost, tokens, size, load, tok);
  let used = 0;
  for (let g = 0; g < R; g++) {
    off[g] = used;
    room[g] = size[g] + 4 + (size[g] >> 3);
    used += room[g];
  }
  const len = used + (used >> 2) + 64;
  const mem = new Int32Array(len), mc = new Float64Array(len), mt = new Uint32Array(len);
  fillBlocks(group, cost, tokens, off, size, mem, mc, mt);
  return {
    R, group, mem, mc, mt, off, size, room, load, tok, cost, tokens, used,
    cap: inp.cap, q: inp.q, sorted: sortByLoad(load), resolution: resolutionOf(cost),
  };
}

/** See BalanceState.resolution: `cost` is in cost order (descending). */
function resolutionOf(cost: Float64Array): number {
  let r = Infinity;
  for (let k = 0; k < cost.length; k++) {
    const c = cost[k];
    if (c > 0 && c < r) r = c;
    if (k > 0 && cost[k - 1] !== c && cost[k - 1] - c < r) r = cost[k - 1] - c;
  }
  return r;
}

function tallyGroups(group: Int32Array, cost: Float64Array, tokens: Uint32Array, size: Int32Array, load: Float64Array, tok: Float64Array): void {
  for (let k = 0; k < group.length; k++) {
    const g = group[k];
    size[g]++;
    load[g] += cost[k];
    tok[g] += tokens[k];
  }
}

/** Positions in descending order into their blocks (sequential reads, one write stream per group). */
function fillBlocks(group: Int32Array, cost: Float64Array, tokens: Uint32Array, off: Int32Array, size: Int32Array, mem: Int32Array, mc: Float64Array, mt: Uint32Array): void {
  const fill = new Int32Array(size.length);
  for (let k = group.length - 1; k >= 0; k--) {
    const g = group[k];
    const p = off[g] + fill[g]++;
    mem[p] = k;
    mc[p] = cost[k];
    mt[p] = tokens[k];
  }
}

/** Balance rounds on the state (see the header); returns how many rounds ran and steps applied. */
export function runRounds(s: BalanceState, target: number, maxRounds: number): { rounds: number; steps: number } {
  const { R, sorted, load } = s;
  const half = R >> 1;
  const pairs = new Int32Array(2 * half);
  const steps = new Int32Array(2 * half);
  const out = new Int32Array(2);
  const scratch = new Int32Array(R), mark = new Uint8Array(R);
  let round = 0, total = 0;
  for (; round < maxRounds; round++) {
    let P = 0;
    while (P < half && load[sorted[R - 1 - P]] > target) {
      pairs[2 * P] = sorted[R - 1 - P];
      pairs[2 * P + 1] = sorted[P];
      P++;
    }
    if (P === 0) break;
    for (let i = 0; i < P; i++) {
      const h = pairs[2 * i], l = pairs[2 * i + 1];
      out[0] = -1; out[1] = -1;
      if (load[h] - load[l] > s.resolution) pairStep(s, h, l, load[h], out);
      steps[2 * i] = out[0];
      steps[2 * i + 1] = out[1];
    }
    const applied = applySteps(s, pairs, steps, P);
    if (applied === 0) break;
    total += applied;
    resort(s, pairs, P, scratch, mark);
  }
  return { rounds: round, steps: total };
}

/** Applies every pair's step (positions in the blocks); returns how many. */
export function applySteps(s: BalanceState, pairs: Int32Array, steps: Int32Array, P: number): number {
  let applied = 0;
  for (let i = 0; i < P; i++) {
    const th = steps[2 * i];
    if (th < 0) continue;
    const h = pairs[2 * i], l = pairs[2 * i + 1], tl = steps[2 * i + 1];
    // Read both positions before the blocks change (s.mem: an earlier step may have grown it).
    const x = s.mem[s.off[h] + th], y = tl >= 0 ? s.mem[s.off[l] + tl] : -1;
    exchange(s, h, l, x, y);
    applied++;
  }
  return applied;
}

/** x moves h → l and (if y ≥ 0) y moves l → h: blocks, groups, loads and tokens. */
export function exchange(s: BalanceState, h: number, l: number, x: number, y: number): void {
  const { cost, tokens, load, tok, group } = s;
  removeAt(s, h, x);
  insertAt(s, l, x);
  group[x] = l;
  load[h] -= cost[x]; load[l] += cost[x];
  tok[h] -= tokens[x]; tok[l] += tokens[x];
  if (y >= 0) {
    removeAt(s, l, y);
    insertAt(s, h, y);
    group[y] = h;
    load[l] -= cost[y]; load[h] += cost[y];
    tok[l] -= tokens[y]; tok[h] += tokens[y];
  }
}

/** Where position k is (or would go) in group g's block: blocks are descending. */
function find(s: BalanceState, g: number, k: number): number {
  const { mem } = s;
  let lo = s.off[g], hi = lo + s.size[g];
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (mem[mid] > k) lo = mid + 1; else hi = mid;
  }
  return lo;
}

function insertAt(s: BalanceState, g: number, k: number): void {
  if (s.size[g] === s.room[g]) grow(s, g);
  const p = find(s, g, k), e = s.off[g] + s.size[g];
  s.mem.copyWithin(p + 1, p, e);
  s.mc.copyWithin(p + 1, p, e);
  s.mt.copyWithin(p + 1, p, e);
  s.mem[p] = k;
  s.mc[p] = s.cost[k];
  s.mt[p] = s.tokens[k];
  s.size[g]++;
}

/** A full block moves to the end of the arena with twice the room (the arena grows as needed). */
function grow(s: BalanceState, g: number): void {
  const nr = 2 * s.room[g], o = s.off[g], e = o + s.size[g];
  if (s.used + nr > s.mem.length) {
    const len = 2 * (s.used + nr);
    const m2 = new Int32Array(len); m2.set(s.mem.subarray(0, s.used));
    const c2 = new Float64Array(len); c2.set(s.mc.subarray(0, s.used));
    const t2 = new Uint32Array(len); t2.set(s.mt.subarray(0, s.used));
    s.mem = m2; s.mc = c2; s.mt = t2;
  }
  s.mem.copyWithin(s.used, o, e);
  s.mc.copyWithin(s.used, o, e);
  s.mt.copyWithin(s.used, o, e);
  s.off[g] = s.used;
  s.room[g] = nr;
  s.used += nr;
}

function removeAt(s: BalanceState, g: number, k: number): void {
  const p = find(s, g, k), e = s.off[g] + s.size[g];
  s.mem.copyWithin(p, p + 1, e);
  s.mc.copyWithin(p, p + 1, e);
  s.mt.copyWithin(p, p + 1, e);
  s.size[g]--;
}

/**
 * s.sorted again by (load, index) after the pairs' groups changed: the unchanged groups keep
 * their relative order, so the changed ones are sorted and merged in (O(R + P log P)).
 */
function resort(s: BalanceState, pairs: Int32Array, P: number, scratch: Int32Array, mark: Uint8Array): void {
  const { R, sorted, load } = s;
  const m = 2 * P;
  const changed = scratch.subarray(0, m);
  changed.set(pairs.subarray(0, m));
  changed.sort((a, b) => load[a] - load[b] || a - b);
  for (let i = 0; i < m; i++) mark[changed[i]] = 1;
  // The unchanged groups, in order, into the rest of scratch; then merge back into sorted.
  const rest = scratch.subarray(m, R);
  let w = 0;
  for (let i = 0; i < R; i++) if (!mark[sorted[i]]) rest[w++] = sorted[i];
  for (let i = 0; i < m; i++) mark[changed[i]] = 0;
  let a = 0, b = 0;
  const nr = R - m;
  for (let i = 0; i < R; i++) {
    if (b >= m || (a < nr && (load[rest[a]] < load[changed[b]] || (load[rest[a]] === load[changed[b]] && rest[a] < changed[b])))) sorted[i] = rest[a++];
    else sorted[i] = changed[b++];
  }
}
