// Local improvement of a grouping (sum loads only): repeatedly take the heaviest group and find,
// among all lighter groups (lightest first), the move of one item or the swap of two that cuts
// the heaviest load the most while keeping the other group below it. Every accepted step lowers
// (max load, number of groups at max) lexicographically, so it terminates; an iteration cap
// bounds the work and is deterministic (a count, never a clock).
//
// On large phases, balance rounds come first (balanceRounds): the groups over the target are
// paired, heaviest first, with the lightest groups (heaviest with lightest, second heaviest with
// second lightest, and so on), and every pair takes its best step at once. Pairs are disjoint, so their searches are independent: the
// accelerator evaluates them (a WGSL kernel on the GPU backend) and the host applies them. A
// few rounds do most of the work of thousands of sequential steps; the sequential loop then
// finishes from a much better start, so the result is still a local optimum for the heaviest
// group.
//
// Storage is typed arrays: every group's items, sorted by (cost, index), live in one block of an
// arena with their costs beside them (searches read costs directly, no comparator calls); groups
// are kept in an Int32Array sorted by (load, index), and a changed group moves to its new place
// with one copyWithin. The scan of lighter groups stops once no later group can beat the best
// step found: a step between the heaviest group h and l leaves max(L_h − d, L_l + d) ≥
// ⌈(L_h + L_l)/2⌉ (loads are integers), which only grows along the scan; the swap search walks
// l's costs with one pointer. The result is exactly that of the exhaustive rule above. Small
// module-level functions (not one large one) so V8 optimises each hot loop early.
import type { Accelerator } from '../primitives/accelerator.js';
import { LoadHeap, reposition, type PartitionInput } from './common.js';
import { pairStep, type PairArena } from '../primitives/pairstep.js';

export interface RefineOptions {
  /** Stop as soon as the max load is ≤ this (a proven lower bound). */
  target: number;
  /** After a candidate is found, scan this many further groups for a better one. */
  extraScan?: number;
  maxIterations?: number;
  /** Run balance rounds first on phases of ROUNDS_MIN_ITEMS or more (default true). */
  rounds?: boolean;
}

/** Balance rounds run on phases of at least this many items (and at least 2 groups). */
export const ROUNDS_MIN_ITEMS = 16384;
/** At most this many balance rounds (they stop earlier when a round changes nothing). */
export const MAX_ROUNDS = 32;

/**
 * The arena (PairArena: every group's members by (cost, index) in a block, costs in mc and
 * tokens in mt beside the item ids in mem) and what the loop needs around it.
 */
interface State extends PairArena {
  R: number;
  cost: Float64Array;
  tokens: Uint32Array;
  extraScan: number;
  room: Int32Array;
  mem: Int32Array;
  /** Item i's position in (cost, index) order. */
  rank: Int32Array;
  /** Groups by (load, index) ascending. */
  sorted: Int32Array;
  /** The step found by findStep: lighter group, item moved h → l, item moved back (or −1). */
  bestL: number;
  bestX: number;
  bestY: number;
  /** pairStep's output: positions in h's and l's blocks. */
  at: Int32Array;
}

/**
 * Refines `group` in place and returns it. Sum loads only (not for padded phases). The result
 * is the same whichever accelerator evaluates the balance rounds.
 */
export async function refine(inp: PartitionInput, group: Int32Array, opts: RefineOptions, accel: Accelerator): Promise<Int32Array> {
  const { cost, tokens, groups: R } = inp;
  const n = group.length;
  if (n === 0 || R < 2) return group;
  const load = new Float64Array(R);
  const tok = new Float64Array(R);
  const size = new Int32Array(R);
  const max = tally(group, cost, tokens, load, tok, size);
  const target = opts.target;
  if (max <= target) return group;
  const { byRank, rank } = ranks(inp);
  const off = new Int32Array(R);
  const room = new Int32Array(R);
  const top = layout(size, off, room);
  const mem = new Int32Array(top + (top >> 2) + 64);
  const mc = new Float64Array(mem.length);
  const mt = new Uint32Array(mem.length);
  fillMembers(byRank, group, cost, tokens, off, mem, mc, mt, R);
  const sorted = new Int32Array(R);
  sortGroups(sorted, load);
  const s: State = {
    R, cost, tokens, cap: inp.cap ?? Infinity, q: inp.equalCount ? Math.floor(n / R) : -1,
    extraScan: opts.extraScan ?? 8,
    load, tok, size, off, room, used: top, mem, mc, mt, rank, sorted, bestL: -1, bestX: -1, bestY: -1, at: new Int32Array(2),
  };
  if (opts.rounds !== false && n >= ROUNDS_MIN_ITEMS) await balanceRounds(s, group, target, accel);
  iterate(s, group, target, opts.maxIterations ?? 20 * R + 1000);
  return group;
}

// refine's loops each live in a small function of their own: a loop inside refine itself gets
// compiled on stack replacement, and the code after it, without type feedback yet, then
// deoptimised on every call.

/** Group loads, tokens and sizes of `group`; returns the max load. */
function tally(group: Int32Array, cost: Float64Array, tokens: Uint32Array, load: Float64Array, tok: Float64Array, size: Int32Array): number {
  const n = group.length;
  for (let i = 0; i < n; i++) {
    const g = group[i];
    load[g] += cost[i];
    tok[g] += tokens[i];
    size[g]++;
  }
  let max = -Infinity;
  for (let g = 0; g < load.length; g++) if (load[g] > max) max = load[g];
  return max;
}

/** Each group's block in the member arena (its size plus slack); returns the arena's used length. */
function layout(size: Int32Array, off: Int32Array, room: Int32Array): number {
  let top = 0;
  for (let g = 0; g < size.length; g++) {
    off[g] = top;
    room[g] = size[g] + 4 + (size[g] >> 3);
    top += room[g];
  }
  return top;
}

/** sorted = the groups by (load, index) ascending. */
function sortGroups(sorted: Int32Array, load: Float64Array): void {
  const order = Array.from({ length: load.length }, (_, g) => g).sort((a, b) => load[a] - load[b] || a - b);
  sorted.set(order);
}

/**
 * Balance rounds: pair the i-th heaviest group with the i-th lightest (i < R/2) and give every
 * pair its best step at once; stop when the heaviest group is within target, no pair has a
 * step, or after MAX_ROUNDS. Each step lowers its pair's max below the heavier load, so the
 * max load never rises and Σ load² falls every round.
 */
async function balanceRounds(s: State, group: Int32Array, target: number, accel: Accelerator): Promise<void> {
  const { R, sorted, load } = s;
  const pairsAll = new Int32Array(2 * (R >> 1));
  for (let round = 0; round < MAX_ROUNDS && load[sorted[R - 1]] > target; round++) {
    // Only groups over the target take part: the rest are left where they are (and their
    // items where they were sampled).
    let P = 0;
    while (P < R >> 1 && load[sorted[R - 1 - P]] > target) {
      pairsAll[2 * P] = sorted[R - 1 - P];
      pairsAll[2 * P + 1] = sorted[P];
      P++;
    }
    const pairs = pairsAll.subarray(0, 2 * P);
    const steps = await accel.pairSteps(s, pairs);
    if (applySteps(s, group, pairs, steps) === 0) break;
    sortGroups(sorted, load);
  }
}

/** Applies every pair's step (positions in the blocks, as pairStep gives them); returns how many. */
function applySteps(s: State, group: Int32Array, pairs: Int32Array, steps: Int32Array): number {
  let applied = 0;
  for (let i = 0; i < pairs.length >> 1; i++) {
    const th = steps[2 * i];
    if (th < 0) continue;
    const h = pairs[2 * i], l = pairs[2 * i + 1], tl = steps[2 * i + 1];
    // Read both items before their blocks change (s.mem: an earlier step may have grown it).
    const x = s.mem[s.off[h] + th], y = tl >= 0 ? s.mem[s.off[l] + tl] : -1;
    swapItems(s, group, h, l, x, y);
    applied++;
  }
  return applied;
}

/** x moves h → l and (if y ≥ 0) y moves l → h: blocks, grouping, loads and tokens. */
function swapItems(s: State, group: Int32Array, h: number, l: number, x: number, y: number): void {
  const { cost, tokens, load, tok } = s;
  remove(s, h, x);
  insert(s, l, x);
  group[x] = l;
  load[h] -= cost[x]; load[l] += cost[x];
  tok[h] -= tokens[x]; tok[l] += tokens[x];
  if (y >= 0) {
    remove(s, l, y);
    insert(s, h, y);
    group[y] = h;
    load[l] -= cost[y]; load[h] += cost[y];
    tok[l] -= tokens[y]; tok[h] += tokens[y];
  }
}

/** Steps until the heaviest group is within target, a local optimum, or the iteration cap. */
function iterate(s: State, group: Int32Array, target: number, maxIterations: number): void {
  const { sorted, load, R } = s;
  for (let iter = 0; iter < maxIterations; iter++) {
    const h = sorted[R - 1];
    if (load[h] <= target) break;
    if (!findStep(s, h)) break; // local optimum: no move or swap lowers the heaviest group
    apply(s, group, h);
  }
}

/**
 * Items by (cost, index) ascending and each item's position there: the same for every grouping
 * of a phase (best refines up to three), so computed once per input and shared (read-only).
 */
const rankCache = new WeakMap<PartitionInput, { order: Uint32Array; cost: Float64Array; byRank: Int32Array; rank: Int32Array }>();
function ranks(inp: PartitionInput): { byRank: Int32Array; rank: Int32Array } {
  const { order, cost } = inp;
  const hit = rankCache.get(inp);
  if (hit && hit.order === order && hit.cost === cost) return hit;
  const byRank = rankOrder(order, cost);
  const rank = invert(byRank);
  const entry = { order, cost, byRank, rank };
  rankCache.set(inp, entry);
  return entry;
}

/** rank[byRank[k]] = k. */
function invert(byRank: Int32Array): Int32Array {
  const rank = new Int32Array(byRank.length);
  for (let k = 0; k < byRank.length; k++) rank[byRank[k]] = k;
  return rank;
}

/** Items by (cost, index) ascending, from `order` (cost descending; equal-cost runs re-sorted by index). */
function rankOrder(order: Uint32Array, cost: Float64Array): Int32Array {
  const n = order.length;
  const out = new Int32Array(n);
  let w = 0;
  for (let b = n; b > 0; ) {
    let a = b - 1;
    const c = cost[order[a]];
    while (a > 0 && cost[order[a - 1]] === c) a--;
    let inOrder = true;
    for (let k = a; k < b; k++) {
      out[w + k - a] = order[k];
      if (k > a && order[k] < order[k - 1]) inOrder = false;
    }
    if (!inOrder) out.subarray(w, w + b - a).sort();
    w += b - a;
    b = a;
  }
  return out;
}

function fillMembers(byRank: Int32Array, group: Int32Array, cost: Float64Array, tokens: Uint32Array, off: Int32Array, mem: Int32Array, mc: Float64Array, mt: Uint32Array, R: number): void {
  const fill = new Int32Array(R);
  for (let k = 0; k < byRank.length; k++) {
    const i = byRank[k], g = group[i];
    const p = off[g] + fill[g]++;
    mem[p] = i;
    mc[p] = cost[i];
    mt[p] = tokens[i];
  }
}

/**
 * The best step for the heaviest group h (into s.bestL/X/Y): the move or swap with a lighter
 * group that leaves the pair's max lowest, lightest groups first, ties to the first found.
 */
function findStep(s: State, h: number): boolean {
  const { R, load, sorted, mem, off, at } = s;
  const Lh = load[h];
  let bestV = Lh, bestL = -1, bestX = -1, bestY = -1;
  let scannedAfterFind = 0;
  for (let si = 0; si < R - 1; si++) {
    const l = sorted[si];
    const Ll = load[l];
    if (Lh - Ll < 2) break; // an integer step d must satisfy 0 < d < g
    // No step with l or any heavier group can leave the pair below ⌈(Lh + Ll)/2⌉.
    if (bestV <= Math.ceil((Lh + Ll) / 2)) break;
    const v = pairStep(s, h, l, bestV, at);
    if (v < bestV) {
      bestV = v; bestL = l;
      bestX = mem[off[h] + at[0]];
      bestY = at[1] >= 0 ? mem[off[l] + at[1]] : -1;
    }
    if (bestL >= 0 && ++scannedAfterFind > s.extraScan) break;
  }
  s.bestL = bestL; s.bestX = bestX; s.bestY = bestY;
  return bestL >= 0;
}

function apply(s: State, group: Int32Array, h: number): void {
  const l = s.bestL;
  const oldH = s.load[h], oldL = s.load[l];
  swapItems(s, group, h, l, s.bestX, s.bestY);
  // reposition finds a group by its old load: h moves first, with l still at its old load (so
  // the order stays consistent), then l.
  const newH = s.load[h], newL = s.load[l];
  s.load[h] = oldH; s.load[l] = oldL;
  reposition(s, h, newH);
  reposition(s, l, newL);
}

/** Position of item rank r in group g's members (where it is, or where it would go). */
function find(s: State, g: number, r: number): number {
  const { mem, rank } = s;
  let lo = s.off[g], hi = lo + s.size[g];
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (rank[mem[mid]] < r) lo = mid + 1; else hi = mid;
  }
  return lo;
}

function insert(s: State, g: number, i: number): void {
  if (s.size[g] === s.room[g]) {
    // Full: the block moves to the end of the arena with twice the room.
    const nr = 2 * s.room[g], o = s.off[g], e = o + s.size[g];
    if (s.used + nr > s.mem.length) {
      const m2 = new Int32Array(2 * (s.used + nr));
      m2.set(s.mem.subarray(0, s.used));
      const c2 = new Float64Array(m2.length);
      c2.set(s.mc.subarray(0, s.used));
      const t2 = new Uint32Array(m2.length);
      t2.set(s.mt.subarray(0, s.used));
      s.mem = m2;
      s.mc = c2;
      s.mt = t2;
    }
    s.mem.copyWithin(s.used, o, e);
    s.mc.copyWithin(s.used, o, e);
    s.mt.copyWithin(s.used, o, e);
    s.off[g] = s.used;
    s.room[g] = nr;
    s.used += nr;
  }
  const p = find(s, g, s.rank[i]), e = s.off[g] + s.size[g];
  s.mem.copyWithin(p + 1, p, e);
  s.mc.copyWithin(p + 1, p, e);
  s.mt.copyWithin(p + 1, p, e);
  s.mem[p] = i;
  s.mc[p] = s.cost[i];
  s.mt[p] = s.tokens[i];
  s.size[g]++;
}

function remove(s: State, g: number, i: number): void {
  const p = find(s, g, s.rank[i]), e = s.off[g] + s.size[g];
  s.mem.copyWithin(p, p + 1, e);
  s.mc.copyWithin(p, p + 1, e);
  s.mt.copyWithin(p, p + 1, e);
  s.size[g]--;
}

/**
 * Make a grouping satisfy the token cap and equal counts, by moving the smallest items of
 * overfull groups to the lightest groups with room. Returns null if it cannot.
 */
export function repair(inp: PartitionInput, group: Int32Array): Int32Array | null {
  const { cost, tokens, groups: R, cap, equalCount } = inp;
  const n = group.length;
  const members: number[][] = Array.from({ length: R }, () => []);
  const load = new Float64Array(R);
  const tok = new Float64Array(R);
  for (let i = 0; i < n; i++) { members[group[i]].push(i); load[group[i]] += cost[i]; tok[group[i]] += tokens[i]; }
  const move = (i: number, from: number, to: number) => {
    members[from].splice(members[from].indexOf(i), 1);
    members[to].push(i);
    group[i] = to;
    load[from] -= cost[i]; load[to] += cost[i];
    tok[from] -= tokens[i]; tok[to] += tokens[i];
  };
  const byLoad = (a: number, b: number) => load[a] - load[b] || a - b;
  if (equalCount) {
    // Target counts: the r groups with the most items keep q+1, the rest q.
    const q = Math.floor(n / R), r = n % R;
    const count = Uint32Array.from(members, (m) => m.length);
    const byCount = Array.from({ length: R }, (_, g) => g).sort((a, b) => count[b] - count[a] || a - b);
    const want = new Uint32Array(R);
    byCount.forEach((g, k) => { want[g] = k < r ? q + 1 : q; });
    // Groups short of their count, least loaded first (ties: lower index).
    const under = new LoadHeap(R);
    for (const g of byCount) if (count[g] < want[g]) under.push(g, load[g]);
    const aside: number[] = [];
    for (const g of byCount) {
      if (count[g] <= want[g]) continue;
      // The excess leaves smallest first (cost, then index).
      const out = members[g].slice().sort((a, b) => cost[a] - cost[b] || a - b).slice(0, count[g] - want[g]);
      for (const i of out) {
        let to = -1;
        while (under.size > 0) {
          const u = under.pop();
          if (cap === undefined || tok[u] + tokens[i] <= cap) { to = u; break; }
          aside.push(u);
        }
        for (const u of aside) under.push(u, load[u]);
        aside.length = 0;
        if (to < 0) return null;
        // Counts only from here on: with equal counts the cap pass below moves nothing.
        group[i] = to;
        load[g] -= cost[i]; load[to] += cost[i];
        tok[g] -= tokens[i]; tok[to] += tokens[i];
        count[g]--; count[to]++;
        if (count[to] < want[to]) under.push(to, load[to]);
      }
    }
  }
  if (cap !== undefined) {
    for (let g = 0; g < R; g++) {
      while (tok[g] > cap) {
        if (equalCount) return null; // moves would break the counts
        const i = members[g].reduce((a, b) => (tokens[b] > tokens[a] || (tokens[b] === tokens[a] && b < a) ? b : a));
        let to = -1;
        for (let u = 0; u < R; u++) if (u !== g && tok[u] + tokens[i] <= cap && (to < 0 || byLoad(u, to) < 0)) to = u;
        if (to < 0) return null;
        move(i, g, to);
      }
    }
  }
  return group;
}
