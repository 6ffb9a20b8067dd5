// Stage 6: micro-batches (gradient accumulation, pipeline schedules). After placement every rank
// knows its items; a rank does not run them at once but as N micro-batches under a token budget,
// and every rank must run the same N (or the gradient all-reduce and the pipeline schedule
// hang). Micro-step k of every rank runs in lock-step, so a step lasts Σ_k max over ranks of
// micro-batch k's cost: this stage gives every item a micro-batch 0..N-1 on its rank so that
// every micro-batch fits the token cap and that sum stays close to the rank's balanced load.
//
// - N: `count` if the phase sets it; otherwise the smallest N for which every rank's items fit
//   micro-batches of `maxTokens` tokens as first-fit decreasing (FFD) packs them: the largest
//   FFD bin count over the ranks (at least 1). FFD is a heuristic (at most 11/9 of the optimal
//   count + 1 bins), so N is the smallest count this stage guarantees, not always the smallest
//   any packing could reach. With both `count` and `maxTokens`, a rank that FFD cannot pack into
//   `count` micro-batches is an input error naming the count it needs.
// - Packing, per rank (items by cost descending, ties by tokens, then item index): a rank of at
//   most N items runs one item a micro-batch, heaviest first (under lock-step numbering, a rank
//   of fewer than N may run several in one: see lockStep). Otherwise the first N items open
//   one bin each (so no micro-batch is empty), then each item goes to the bin of least (cost,
//   index) that has token room (LPT). Where LPT finds no room, the rank starts from its FFD
//   packing (empty bins filled from the heaviest bins of ≥ 2 items). On sum-cost phases a local
//   search then moves one item or swaps two between the heaviest bin and the lighter ones while
//   that lowers the heaviest (within the cap, never emptying a bin, a counted number of steps).
// - Lock-step numbering, level by level (k = 0, 1, …): T_k = the heaviest bin still unnumbered
//   on any rank; every rank numbers its heaviest unnumbered bin k and (sum-cost phases) tops it
//   up to T_k with items from its other unnumbered bins (cost descending, each if it fits under
//   T_k and the cap, never a bin's last item; then a swap that brings it closer), then
//   rebalances those bins with the local search. Micro-step k lasts T_k whatever the other ranks
//   do, so filling every rank's micro-batch k up to it costs nothing and leaves less for the
//   later steps: a rank holding one very long item makes micro-step 0 long, and the other ranks
//   then run more of their work in it. Empty micro-batches come last. Padded phases, and counts
//   past LOCK_STEP_MAX_COUNT, number each rank's bins heaviest first instead.
//
// Decisions use the phase's integer costs (cost.ts), so the result is the same on every backend;
// pure functions over typed arrays, deterministic (no clocks, no Math.random; ties as stated).
import { InputError } from './errors.js';
import { LoadHeap } from './partition/common.js';
import type { MicroBatchConfig, PhaseResult } from './types.js';

export type MicroBatchIndex = Uint8Array | Uint16Array | Uint32Array;

/** What the stage needs of a placed phase. */
export interface MicroBatchInput {
  /** Rank of every item (item order). */
  rank: Int32Array;
  /** Integer cost per item (decisions). */
  cost: Float64Array;
  tokens: Uint32Array;
  /** Items by tokens (so cost) descending, ties by index ascending (the phase's sort). */
  order: Uint32Array;
  ranks: number;
  /** A micro-batch costs count × its largest item instead of Σ cost. */
  padding: boolean;
}

export interface MicroBatchResult {
  /** N: micro-batches on every rank. */
  count: number;
  /** Micro-batch of every item (item order), 0..N-1. */
  of: MicroBatchIndex;
}

/** The smallest typed array that holds 0..count-1. */
export function indexArray(n: number, count: number): MicroBatchIndex {
  return count <= 0x100 ? new Uint8Array(n) : count <= 0x10000 ? new Uint16Array(n) : new Uint32Array(n);
}

/**
 * Items of each rank in `order` (cost descending, ties by index): rank r's are
 * byRank[start[r] .. start[r+1]).
 */
export function itemsByRank(rank: Int32Array, order: Uint32Array, R: number): { start: Uint32Array; byRank: Uint32Array } {
  const start = new Uint32Array(R + 1);
  for (let i = 0; i < rank.length; i++) start[rank[i] + 1]++;
  for (let r = 0; r < R; r++) start[r + 1] += start[r];
  const fill = start.slice(0, R);
  const byRank = new Uint32Array(order.length);
  for (let k = 0; k < order.length; k++) { const i = order[k]; byRank[fill[rank[i]]++] = i; }
  return { start, byRank };
}

/** A max-tree over the remaining token room of `bins` bins: first fit in O(log bins). */
class RoomTree {
  readonly size: number;
  readonly t: Float64Array;
  constructor(bins: number, cap: number) {
    let p = 1;
    while (p < bins) p *= 2;
    this.size = p;
    this.t = new Float64Array(2 * p).fill(-1); // leaves past `bins` never fit
    for (let b = 0; b < bins; b++) this.t[p + b] = cap;
    for (let v = p - 1; v >= 1; v--) this.t[v] = Math.max(this.t[2 * v], this.t[2 * v + 1]);
  }
  /** The lowest bin with room ≥ need, or −1. */
  first(need: number): number {
    const t = this.t;
    if (t[1] < need) return -1;
    let v = 1;
    while (v < this.size) v = t[2 * v] >= need ? 2 * v : 2 * v + 1;
    return v - this.size;
  }
  take(bin: number, amount: number): void {
    const t = this.t;
    let v = bin + this.size;
    t[v] -= amount;
    for (v >>= 1; v >= 1; v >>= 1) t[v] = Math.max(t[2 * v], t[2 * v + 1]);
  }
}

/**
 * First-fit decreasing by tokens of items[a..b) (by tokens descending) into at most `bins` bins
 * of `cap` tokens; out[k - a] = bin of items[k]. Returns the bins used, or −1 when an item fits
 * no bin.
 */
export function firstFitDecreasing(items: Uint32Array, a: number, b: number, tokens: Uint32Array, cap: number, bins: number, out: Int32Array): number {
  const tree = new RoomTree(Math.max(bins, 1), cap);
  let used = 0;
  for (let k = a; k < b; k++) {
    const t = tokens[items[k]];
    const bin = tree.first(t);
    if (bin < 0) return -1;
    tree.take(bin, t);
    out[k - a] = bin;
    if (bin + 1 > used) used = bin + 1;
  }
  return used;
}

/**
 * N for a phase: `count`, or the smallest count that FFD packs every rank into (at least 1).
 * Throws an InputError when `count` and `maxTokens` are both set and some rank needs more.
 */
export function microBatchCount(spec: MicroBatchConfig, start: Uint32Array, byRank: Uint32Array, tokens: Uint32Array, R: number, phaseName: string): number {
  if (spec.maxTokens === undefined) return spec.count ?? 1;
  const cap = spec.maxTokens;
  let worst = 0, need = 0;
  let scratch = new Int32Array(0);
  for (let r = 0; r < R; r++) {
    const a = start[r], b = start[r + 1];
    if (a === b) continue;
    if (scratch.length < b - a) scratch = new Int32Array(b - a);
    const used = firstFitDecreasing(byRank, a, b, tokens, cap, b - a, scratch);
    if (used < 0) throw new Error(`micro-batches: phase "${phaseName}" has an item over maxTokens (checked with the input)`);
    if (used > need) { need = used; worst = r; }
  }
  if (spec.count === undefined) return Math.max(1, need);
  if (need > spec.count) {
    let tok = 0;
    for (let k = start[worst]; k < start[worst + 1]; k++) tok += tokens[byRank[k]];
    const why = tok > spec.count * cap ? 'cannot fit' : 'first-fit decreasing cannot pack them into';
    throw new InputError(`phase "${phaseName}" microBatches: rank ${worst} runs ${start[worst + 1] - start[worst]} items of ${tok} tokens, which ${why} count ${spec.count} micro-batches of maxTokens ${cap} (they need ${need})`);
  }
  return spec.count;
}

/** Per-bin arrays of the LPT packing, allocated once per phase and reset per rank. */
interface LptScratch {
  load: Float64Array;
  tok: Float64Array;
  count: Uint32Array;
  first: Float64Array;
  heap: LoadHeap;
}

function lptScratch(N: number): LptScratch {
  return { load: new Float64Array(N), tok: new Float64Array(N), count: new Uint32Array(N), first: new Float64Array(N), heap: new LoadHeap(N) };
}

/** Up to this many bins, the least-loaded bin with room is found by a scan (same choice as the heap). */
const LINEAR_SCAN_MAX = 32;

/** Item i (position k) into bin g; returns g's new load. */
function put(st: LptScratch, g: number, i: number, k: number, cost: Float64Array, tokens: Uint32Array, padding: boolean, bin: Int32Array): number {
  bin[k] = g;
  const c = ++st.count[g];
  st.tok[g] += tokens[i];
  if (c === 1) st.first[g] = cost[i];
  st.load[g] = padding ? c * st.first[g] : st.load[g] + cost[i];
  return st.load[g];
}

/**
 * LPT over items[a..b) (cost descending, more than N of them) into bin[0..b-a): the first N open
 * one bin each, then each item to the bin of least (load, index) with token room. False when an
 * item finds none.
 */
function lptPack(items: Uint32Array, a: number, b: number, inp: MicroBatchInput, N: number, cap: number, bin: Int32Array, st: LptScratch): boolean {
  const { cost, tokens, padding } = inp;
  const m = b - a;
  const { load, tok } = st;
  load.fill(0); tok.fill(0); st.count.fill(0); st.first.fill(0);
  for (let g = 0; g < N; g++) put(st, g, items[a + g], g, cost, tokens, padding, bin);
  if (N <= LINEAR_SCAN_MAX) {
    for (let k = N; k < m; k++) {
      const i = items[a + k], t = tokens[i];
      let g = -1;
      for (let x = 0; x < N; x++) if (tok[x] + t <= cap && (g < 0 || load[x] < load[g])) g = x;
      if (g < 0) return false;
      put(st, g, i, k, cost, tokens, padding, bin);
    }
    return true;
  }
  const heap = st.heap;
  heap.size = 0;
  for (let g = 0; g < N; g++) heap.push(g, load[g]);
  const aside: number[] = [];
  for (let k = N; k < m; k++) {
    const i = items[a + k], t = tokens[i];
    let g = -1;
    while (heap.size > 0) {
      const top = heap.pop();
      if (tok[top] + t <= cap) { g = top; break; }
      aside.push(top);
    }
    for (const x of aside) heap.push(x, load[x]);
    aside.length = 0;
    if (g < 0) return false;
    heap.push(g, put(st, g, i, k, cost, tokens, padding, bin));
  }
  return true;
}

/**
 * FFD packing into N bins, then every empty bin (FFD fills bins 0..used-1) given the cheapest
 * item of the heaviest bin of ≥ 2 items (ties: the lower bin). (Where LPT runs out of room, FFD
 * has so far always needed all N bins; the filling keeps the no-empty promise regardless.)
 */
export function ffdPack(items: Uint32Array, a: number, b: number, inp: MicroBatchInput, N: number, cap: number, bin: Int32Array): void {
  const m = b - a;
  const used = firstFitDecreasing(items, a, b, inp.tokens, cap, N, bin);
  if (used < 0) throw new Error('micro-batches: first-fit decreasing failed on a count it was sized for');
  if (used === N || m <= N) return;
  // Each used bin's items, cost descending (k ascending): the cheapest is the last.
  const members: number[][] = Array.from({ length: used }, () => []);
  const load = new Float64Array(used);
  for (let k = 0; k < m; k++) { members[bin[k]].push(k); load[bin[k]] += inp.cost[items[a + k]]; }
  // Donors by load descending (keys −load in the min-heap, ties to the lower bin).
  const donors = new LoadHeap(used);
  for (let g = 0; g < used; g++) if (members[g].length >= 2) donors.push(g, -load[g]);
  for (let e = used; e < N; e++) {
    const g = donors.top();
    const k = members[g].pop()!;
    bin[k] = e;
    load[g] -= inp.cost[items[a + k]];
    if (members[g].length >= 2) donors.replaceTop(-load[g]);
    else donors.pop();
  }
}

/**
 * One rank's bins while they are worked on. `members[g]`: bin g's items by cost ascending;
 * `binOf[i]`: the bin of item i (shared by every rank: each writes only its own items).
 */
interface Bins {
  load: Float64Array;
  tok: Float64Array;
  members: number[][];
  binOf: Int32Array;
}

/** Bins from the packing: members in cost-ascending order (items[a..b) reversed). */
function binsOf(items: Uint32Array, a: number, b: number, bin: Int32Array, inp: MicroBatchInput, N: number, binOf: Int32Array): Bins {
  const { cost, tokens, padding } = inp;
  const bins: Bins = { load: new Float64Array(N), tok: new Float64Array(N), members: Array.from({ length: N }, () => []), binOf };
  for (let k = b - a - 1; k >= 0; k--) {
    const i = items[a + k], g = bin[k];
    binOf[i] = g;
    bins.members[g].push(i);
    bins.tok[g] += tokens[i];
    bins.load[g] += cost[i];
  }
  if (padding) for (let g = 0; g < N; g++) { const mg = bins.members[g]; bins.load[g] = mg.length === 0 ? 0 : mg.length * cost[mg[mg.length - 1]]; }
  return bins;
}

/** Inserts i after every member of cost ≤ its own (members stay cost-ascending). */
function insertByCost(list: number[], i: number, cost: Float64Array): void {
  let lo = 0, hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cost[list[mid]] <= cost[i]) lo = mid + 1;
    else hi = mid;
  }
  list.splice(lo, 0, i);
}

/** First position in `list` (cost-ascending) whose cost is ≥ c. */
function firstAtLeast(list: number[], cost: Float64Array, c: number): number {
  let lo = 0, hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cost[list[mid]] < c) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function moveItem(bins: Bins, from: number, to: number, i: number, cost: Float64Array, tokens: Uint32Array): void {
  const src = bins.members[from];
  src.splice(src.indexOf(i), 1);
  insertByCost(bins.members[to], i, cost);
  bins.load[from] -= cost[i]; bins.load[to] += cost[i];
  bins.tok[from] -= tokens[i]; bins.tok[to] += tokens[i];
  bins.binOf[i] = to;
}

/**
 * Local search over the bins in `active` (sum loads): while the heaviest bin h can be lowered by
 * moving one of its items to a lighter bin l, or swapping one of its items with a cheaper one of
 * l, within the token cap and without emptying h, take the step that leaves max(L_h, L_l)
 * lowest (the PAIR_LIMIT lightest bins, lightest first, ties to the first found). Every step lowers (max load,
 * bins at max) lexicographically; it stops at `lowerBound` or after `maxSteps` steps.
 */
function refineBins(bins: Bins, active: number[], cost: Float64Array, tokens: Uint32Array, cap: number, lowerBound: number, maxSteps: number): void {
  const { load, tok, members } = bins;
  const B = active.length;
  if (B < 2) return;
  // Bins by (load, index) ascending (insertion sort: after a step only two bins moved).
  if (sortedScratch.length < B) sortedScratch = new Int32Array(Math.max(B, 2 * sortedScratch.length));
  const sorted = sortedScratch;
  for (let p = 0; p < B; p++) sorted[p] = active[p];
  insertionSort(sorted, B, load);
  for (let stepNo = 0; stepNo < maxSteps; stepNo++) {
    const h = sorted[B - 1];
    const Lh = load[h];
    if (Lh <= lowerBound) return;
    const hm = members[h];
    step.best = Lh; step.l = -1; step.x = -1; step.y = -1;
    for (let p = 0, e = Math.min(B - 1, PAIR_LIMIT); p < e; p++) {
      const l = sorted[p];
      const Ll = load[l];
      // A step between h and l leaves max(L_h − d, L_l + d) ≥ ⌈(L_h + L_l) / 2⌉ (integer
      // loads), which only grows along the scan.
      if (Math.ceil((Lh + Ll) / 2) >= step.best) break;
      const gap = Lh - Ll;
      const lm = members[l];
      // Moves of x from h: 0 < c_x < gap, best c_x nearest gap / 2 on either side (the first
      // within the cap on each side is that side's best; at most SCAN_LIMIT tried per side).
      if (hm.length >= 2) {
        const pos = firstAtLeast(hm, cost, gap / 2);
        for (let q = pos, e = Math.min(hm.length, pos + SCAN_LIMIT); q < e && cost[hm[q]] < gap; q++) {
          if (tok[l] + tokens[hm[q]] <= cap) { consider(Ll + cost[hm[q]], l, hm[q], -1); break; }
        }
        for (let q = pos - 1, e = Math.max(-1, pos - 1 - SCAN_LIMIT); q > e && cost[hm[q]] > 0; q--) {
          if (tok[l] + tokens[hm[q]] <= cap) { consider(Lh - cost[hm[q]], l, hm[q], -1); break; }
        }
      }
      // Swaps of x (h) with y (l): 0 < c_x − c_y < gap, the difference nearest gap / 2.
      for (let t = 0; t < hm.length; t++) {
        const x = hm[t], cx = cost[x];
        const pos = firstAtLeast(lm, cost, cx - gap / 2);
        for (let q = pos, e = Math.min(lm.length, pos + SCAN_LIMIT); q < e && cx - cost[lm[q]] > 0; q++) {
          const y = lm[q];
          if (tok[l] - tokens[y] + tokens[x] <= cap && tok[h] - tokens[x] + tokens[y] <= cap) { consider(Lh - (cx - cost[y]), l, x, y); break; }
        }
        for (let q = pos - 1, e = Math.max(-1, pos - 1 - SCAN_LIMIT); q > e && cx - cost[lm[q]] < gap; q--) {
          const y = lm[q];
          if (tok[l] - tokens[y] + tokens[x] <= cap && tok[h] - tokens[x] + tokens[y] <= cap) { consider(Ll + (cx - cost[y]), l, x, y); break; }
        }
      }
    }
    if (step.l < 0) return;
    const l = step.l, y = step.y;
    moveItem(bins, h, l, step.x, cost, tokens);
    if (y >= 0) moveItem(bins, l, h, y, cost, tokens);
    insertionSort(sorted, B, load);
  }
}

/** The best step found so far by refineBins (module-level: no closure per call). */
const step = { best: 0, l: -1, x: -1, y: -1 };
function consider(v: number, l: number, x: number, y: number): void {
  if (v < step.best) { step.best = v; step.l = l; step.x = x; step.y = y; }
}

let sortedScratch = new Int32Array(64);

/** a[0..n) by (load, index) ascending. */
function insertionSort(a: Int32Array, n: number, load: Float64Array): void {
  for (let p = 1; p < n; p++) {
    const g = a[p], lg = load[g];
    let q = p - 1;
    while (q >= 0 && (load[a[q]] > lg || (load[a[q]] === lg && a[q] > g))) { a[q + 1] = a[q]; q--; }
    a[q + 1] = g;
  }
}

/**
 * Candidates tried on each side of the ideal cost in one search of the local search: past the
 * first few, a candidate is rejected only by the token cap, and the cap rejects its neighbours
 * too. Bounds a search at O(SCAN_LIMIT) per item where the cap binds.
 */
const SCAN_LIMIT = 8;

/** A local-search step looks at the PAIR_LIMIT lightest bins only (all of them up to 17 bins). */
const PAIR_LIMIT = 16;

/** At most this many local-search steps per call (each costs O(bins)): a count, not a clock. */
const MAX_REFINE_STEPS = 4096;

/** Refinement bounds for a rank's active bins: the lower bound max(⌈Σ/B⌉, largest item) and a step budget. */
function refineActive(bins: Bins, active: number[], cost: Float64Array, tokens: Uint32Array, cap: number): void {
  let total = 0, items = 0, big = 0, max = 0;
  for (const g of active) {
    total += bins.load[g];
    if (bins.load[g] > max) max = bins.load[g];
    const mg = bins.members[g];
    items += mg.length;
    if (mg.length > 0 && cost[mg[mg.length - 1]] > big) big = cost[mg[mg.length - 1]];
  }
  if (items <= active.length) return; // one item a bin at most: nothing to move
  const lowerBound = Math.max(Math.ceil(total / active.length), big);
  if (max <= lowerBound) return;
  refineBins(bins, active, cost, tokens, cap, lowerBound, Math.min(4 * items, 64 + 16 * active.length, MAX_REFINE_STEPS));
}

/** Bin order, heaviest first: (load, tokens, items) descending, then the lower bin index. */
function heavier(bins: Bins, x: number, y: number): number {
  return bins.load[y] - bins.load[x] || bins.tok[y] - bins.tok[x] || bins.members[y].length - bins.members[x].length || x - y;
}

/** The heaviest of `active` (the first in `heavier` order). */
function heaviest(bins: Bins, active: number[]): number {
  let h = active[0];
  for (const g of active) if (heavier(bins, g, h) < 0) h = g;
  return h;
}

/**
 * Lock-step numbering (top-up) up to this many micro-batches; past it (a schedule no pipeline
 * runs) each rank's bins are numbered heaviest first, which bounds the work at O(N) per level.
 */
export const LOCK_STEP_MAX_COUNT = 256;

/** Positions top-up's swap search looks at for each item of the bin (a count, not a clock). */
const SWAP_SCAN = 32;

/** Rounds of topUp's add-then-swap loop (a count, not a clock). */
const TOP_UP_ROUNDS = 2;

/** First position in items[a..b) (cost descending) whose cost is ≤ c. */
function firstAtMost(items: Uint32Array, a: number, b: number, cost: Float64Array, c: number): number {
  let lo = a, hi = b;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (cost[items[mid]] > c) lo = mid + 1; else hi = mid; }
  return lo;
}

/**
 * Tops bin h up to `target` (and the cap) with items of the rank's other unnumbered bins
 * (`active`, h among them), items[a..b) being the rank's items by cost descending (ties by
 * index): first each item that fits, in that order, while the other bins keep at least one item
 * each between them; then the swap of one of h's items for a costlier one of another bin that
 * brings h closest to `target` (a subset sum the greedy pass can miss); TOP_UP_ROUNDS rounds of
 * both at most, fewer when h reaches the target or neither changes it. A bin emptied on the way
 * then gets the cheapest item of the heaviest bin of ≥ 2 items (ties: the lower bin).
 */
function topUp(bins: Bins, h: number, active: number[], numbered: Uint8Array, at: number, items: Uint32Array, a: number, b: number, target: number, cost: Float64Array, tokens: Uint32Array, cap: number): void {
  const { load, tok, members, binOf } = bins;
  // Items the other bins can give up and still have one each.
  let spare = 0;
  for (const g of active) if (g !== h) spare += members[g].length - 1;
  for (let round = 0; round < TOP_UP_ROUNDS && load[h] < target; round++) {
    // From the first item that fits under the target (costlier ones never will: h only grows).
    for (let k = firstAtMost(items, a, b, cost, target - load[h]); k < b && load[h] < target && spare > 0; k++) {
      const i = items[k], g = binOf[i];
      if (g === h || numbered[at + g] || load[h] + cost[i] > target || tok[h] + tokens[i] > cap) continue;
      moveItem(bins, g, h, i, cost, tokens);
      spare--;
    }
    if (load[h] >= target) break;
    // The best swap: x of h for y (another unnumbered bin), c_x < c_y ≤ target − L_h + c_x.
    let bestGain = 0, bestX = -1, bestY = -1;
    for (const x of members[h]) {
      const cx = cost[x], most = target - load[h] + cx;
      // At most SWAP_SCAN candidates (numbered ones, h's own and those over the cap are skipped).
      for (let k = firstAtMost(items, a, b, cost, most), e = Math.min(b, k + SWAP_SCAN); k < e; k++) {
        const y = items[k], gain = cost[y] - cx;
        if (gain <= bestGain) break; // costs only fall from here
        const g = binOf[y];
        if (g === h || numbered[at + g] || tok[h] - tokens[x] + tokens[y] > cap || tok[g] - tokens[y] + tokens[x] > cap) continue;
        bestGain = gain; bestX = x; bestY = y;
        break;
      }
    }
    if (bestX < 0) break;
    const g = binOf[bestY];
    moveItem(bins, h, g, bestX, cost, tokens);
    moveItem(bins, g, h, bestY, cost, tokens);
  }
  for (const e of active) {
    if (e === h || members[e].length > 0) continue;
    let from = -1;
    for (const g of active) if (g !== h && members[g].length >= 2 && (from < 0 || load[g] > load[from])) from = g;
    moveItem(bins, from, e, members[from][0], cost, tokens);
  }
}

/**
 * The micro-batch of every item of a placed phase (see the header). Throws an InputError when
 * `count` and `maxTokens` cannot both be met on some rank. `options.topUp: false` numbers each
 * rank's balanced bins heaviest first without topping them up (a reference for the benchmark).
 */
export function assignMicroBatches(inp: MicroBatchInput, spec: MicroBatchConfig, phaseName: string, options: { topUp?: boolean } = {}): MicroBatchResult {
  const R = inp.ranks;
  const n = inp.rank.length;
  const { padding } = inp;
  const { start, byRank } = itemsByRank(inp.rank, inp.order, R);
  // Everything below works on positions in byRank (each rank's items contiguous, cost
  // descending): costs and tokens gathered once, so the passes over a rank read local memory.
  const cost = new Float64Array(n), tokens = new Uint32Array(n), pos = new Uint32Array(n);
  for (let k = 0; k < n; k++) { const i = byRank[k]; cost[k] = inp.cost[i]; tokens[k] = inp.tokens[i]; pos[k] = k; }
  const local: MicroBatchInput = { ...inp, cost, tokens };
  const N = microBatchCount(spec, start, pos, tokens, R, phaseName);
  const cap = spec.maxTokens ?? Infinity;
  const at = new Uint32Array(n); // micro-batch of each position
  const all = Array.from({ length: N }, (_, g) => g);
  const binOf = new Int32Array(n);
  const leveled = !padding && options.topUp !== false && N <= LOCK_STEP_MAX_COUNT;
  // Every rank's bins, packed and balanced. A rank of at most N items runs one a micro-batch,
  // heaviest first (its items are in that order already): nothing to pack or top up.
  const rankBins: (Bins | null)[] = new Array(R).fill(null);
  let scratch = new Int32Array(0);
  const st = lptScratch(N);
  for (let r = 0; r < R; r++) {
    const a = start[r], b = start[r + 1];
    if (b - a <= N) {
      for (let k = a; k < b; k++) at[k] = k - a;
      continue;
    }
    if (scratch.length < b - a) scratch = new Int32Array(b - a);
    if (!lptPack(pos, a, b, local, N, cap, scratch, st)) ffdPack(pos, a, b, local, N, cap, scratch);
    const bins = binsOf(pos, a, b, scratch, local, N, binOf);
    if (!padding) refineActive(bins, all, cost, tokens, cap);
    if (leveled) { rankBins[r] = bins; continue; }
    // Numbered heaviest first.
    const ids = all.slice().sort((x, y) => heavier(bins, x, y));
    for (let k = 0; k < N; k++) for (const p of bins.members[ids[k]]) at[p] = k;
  }
  if (leveled) lockStep(rankBins, start, at, N, cost, tokens, cap, pos, all);
  const of = indexArray(n, N);
  for (let k = 0; k < n; k++) of[byRank[k]] = at[k];
  return { count: N, of };
}

/**
 * Lock-step numbering, level by level (header); at[p] = micro-batch of position p. Packed ranks
 * (more than N items) number their bins; a rank of exactly N items keeps one item a micro-batch;
 * a rank of fewer than N items may run several in one micro-batch (it has empty ones anyway):
 * its costliest unnumbered item opens level k, then each further one that fits under T_k and
 * the cap joins it, cost descending.
 */
function lockStep(rankBins: (Bins | null)[], start: Uint32Array, at: Uint32Array, N: number, cost: Float64Array, tokens: Uint32Array, cap: number, pos: Uint32Array, all: number[]): void {
  const R = rankBins.length;
  const active: number[][] = rankBins.map((b) => (b ? all.slice() : []));
  const numbered = new Uint8Array(R * N);
  const h = new Int32Array(R);
  // Ranks of fewer than N items: the first position not yet numbered, and which are.
  const next = Uint32Array.from(start.subarray(0, R));
  const done = new Uint8Array(at.length);
  for (let k = 0; k < N; k++) {
    let target = 0;
    for (let r = 0; r < R; r++) {
      const bins = rankBins[r];
      const a = start[r], b = start[r + 1];
      let c = 0;
      if (bins) {
        h[r] = heaviest(bins, active[r]);
        c = bins.load[h[r]];
      } else if (b - a === N) {
        c = cost[a + k];
      } else if (next[r] < b) {
        c = cost[next[r]];
      }
      if (c > target) target = c;
    }
    for (let r = 0; r < R; r++) {
      const bins = rankBins[r];
      const a = start[r], b = start[r + 1];
      if (!bins) {
        if (b - a < N && next[r] < b) fewer(next, done, at, r, b, k, k < N - 1 ? target : 0, cost, tokens, cap);
        continue;
      }
      const hr = h[r];
      if (k < N - 1) topUp(bins, hr, active[r], numbered, r * N, pos, a, b, target, cost, tokens, cap);
      for (const p of bins.members[hr]) at[p] = k;
      numbered[r * N + hr] = 1;
      active[r].splice(active[r].indexOf(hr), 1);
      if (k < N - 2) refineActive(bins, active[r], cost, tokens, cap);
    }
  }
}

/** Level k of a rank of fewer than N items (positions next[r] .. b): see lockStep. */
function fewer(next: Uint32Array, done: Uint8Array, at: Uint32Array, r: number, b: number, k: number, target: number, cost: Float64Array, tokens: Uint32Array, cap: number): void {
  const first = next[r];
  let load = cost[first], tok = tokens[first];
  at[first] = k;
  done[first] = 1;
  for (let q = first + 1; q < b && load < target; q++) {
    if (done[q] || load + cost[q] > target || tok + tokens[q] > cap) continue;
    at[q] = k;
    done[q] = 1;
    load += cost[q];
    tok += tokens[q];
  }
  let p = first;
  while (p < b && done[p]) p++;
  next[r] = p;
}

/**
 * Cost of every (rank, micro-batch), row-major R × N: float64 sums of `cost` in item order, or
 * count × largest on padded phases. For the report (the unquantised costs).
 */
export function microBatchLoads(rank: Int32Array, of: MicroBatchIndex, cost: Float64Array, R: number, N: number, padding: boolean): Float64Array {
  const loads = new Float64Array(R * N);
  if (!padding) {
    for (let i = 0; i < rank.length; i++) loads[rank[i] * N + of[i]] += cost[i];
    return loads;
  }
  const count = new Float64Array(R * N);
  for (let i = 0; i < rank.length; i++) {
    const s = rank[i] * N + of[i];
    count[s]++;
    if (cost[i] > loads[s]) loads[s] = cost[i];
  }
  for (let s = 0; s < R * N; s++) loads[s] *= count[s];
  return loads;
}

/**
 * A placed phase with its micro-batches (the phase's `microBatches` config): the micro-batch of
 * every item and the cost of every (rank, micro-batch). `costs.cost` holds the integer costs the
 * decisions use, `costs.float` the unquantised ones the report sums. A phase with no item: N is
 * `count` (or 1), every micro-batch empty.
 */
export function withMicroBatches(
  ph: PhaseResult, spec: MicroBatchConfig, costs: { cost: Float64Array; float: Float64Array } | null, order: Uint32Array | null, R: number,
  /** Already assigned on the phase's grouping (the same whichever rank runs each group). */
  assigned?: MicroBatchResult,
): PhaseResult {
  const { phase } = ph.items;
  const padding = phase.padding ?? false;
  if (!costs || !order || ph.rank.length === 0) {
    const N = spec.count ?? 1;
    return { ...ph, microBatch: indexArray(0, N), microBatches: N, microBatchLoads: new Float64Array(R * N) };
  }
  const { count, of } = assigned ?? assignMicroBatches({ rank: ph.rank, cost: costs.cost, tokens: ph.items.tokens, order, ranks: R, padding }, spec, phase.name);
  return { ...ph, microBatch: of, microBatches: count, microBatchLoads: microBatchLoads(ph.rank, of, costs.float, R, count, padding) };
}

/**
 * The lock-step time of a grouping's micro-batches (`inp.rank`: the rank or group of every item):
 * Σ_k max over ranks of micro-batch k's integer cost. At least the heaviest rank's load; equal to
 * it when micro-batching costs nothing under lock-step.
 */
export function lockStepTimeOf(inp: MicroBatchInput, mb: MicroBatchResult): number {
  const N = mb.count;
  const loads = microBatchLoads(inp.rank, mb.of, inp.cost, inp.ranks, N, inp.padding);
  let sum = 0;
  for (let k = 0; k < N; k++) {
    let max = 0;
    for (let r = 0; r < inp.ranks; r++) if (loads[r * N + k] > max) max = loads[r * N + k];
    sum += max;
  }
  return sum;
}

/** lockStepTimeOf the micro-batches this stage assigns. */
export function lockStepTime(inp: MicroBatchInput, spec: MicroBatchConfig, phaseName: string): number {
  return lockStepTimeOf(inp, assignMicroBatches(inp, spec, phaseName));
}
