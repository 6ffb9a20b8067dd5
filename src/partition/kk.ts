// k-way Karmarkar–Karp largest differencing (as verl's balancer runs it). A partial solution is
// a list of up to k subsets sorted by sum; repeatedly take the two solutions whose largest-minus-
// smallest difference is greatest and join them, pairing the heaviest subsets of one with the
// lightest of the other.
//
// Storage is typed arrays throughout: subsets are linked lists of items (sum, head, tail), and a
// solution's sorted subset list is a block of one arena (power-of-two size classes, free lists)
// that the join mutates in place. A join sorts only the subsets whose sums changed, merges them
// with the shorter untouched run, and merges that from the back into the longer untouched run
// (binary search + copyWithin), so the common joins (a full solution with one item; two small
// solutions) move a few entries natively instead of copying k of them. The initial one-item
// solutions already come in heap order (cost desc, id asc), so they stay a queue outside the
// heap, which holds only joined solutions, bucketed by equal difference (FIFO within a bucket).
//
// The result is exactly the textbook order: subsets in a solution by (sum desc, creation order),
// solutions in the heap by (difference desc, solution id asc); the paired subset of the solution
// popped first keeps its identity.
//
// The state lives in one object (typed-array fields) and every step is a module-level function
// of it: no per-call closures, so the optimised code V8 builds during one call stays valid for
// the next (closures recreated per call would deoptimise it with "wrong call target").

import type { PartitionInput } from './common.js';

class KK {
  cost: Float64Array;
  k: number;
  // Subset pool: at most n subsets, created in deterministic order (id = creation index).
  sum: Float64Array;
  head: Int32Array;
  tail: Int32Array;
  next: Int32Array;
  subsets = 0;
  // Arena of subset lists: blocks of 2^c entries (c ≥ 2), recycled through per-class free lists.
  arena: Int32Array;
  top = 0;
  freeHead: number[][] = [];
  // Solutions: ids by creation (≤ n initial ones, then one per join: < 2n in all). A solution
  // with one subset and no block keeps it in `one` (cls 0); otherwise its list is
  // arena[off .. off + len), a block of class cls.
  off: Int32Array;
  cls: Uint8Array;
  one: Int32Array;
  len: Int32Array;
  diff: Float64Array;
  sols = 0;
  // Joined solutions waiting, by (diff desc, id asc): solutions of equal diff share a bucket, a
  // FIFO of ids (ids only grow, so FIFO order is id order), and a max-heap orders the buckets by
  // their diffs. Few distinct item costs make long tie runs, which then cost O(1); with many
  // distinct costs ties are rare and the map would only cost time, so every solution gets its own
  // bucket and the heap breaks equal diffs by id (the same order either way).
  shared = false;
  qnext: Int32Array;
  bHead: Int32Array;
  bTail: Int32Array;
  bKey: Float64Array;
  freeBuckets: number[] = [];
  buckets = 0;
  readonly bucketOf = new Map<number, number>();
  heap: Int32Array; // bucket ids
  hkey: Float64Array;
  hsize = 0;
  waiting = 0;
  // The one-item solutions 0 .. singles-1, already in (diff desc, id asc) order.
  singles = 0;
  nextSingle = 0;
  // Scratch: changed subsets (tmp) and the run merged into the kept one (tmp2).
  tmp: Int32Array;
  tmp2: Int32Array;
  tmp3: Int32Array;
  /** Capacity in items of the per-item and per-solution arrays. */
  cap = 0;
  constructor() {
    this.cost = new Float64Array(0);
    this.k = 0;
    this.sum = new Float64Array(0);
    this.head = new Int32Array(0);
    this.tail = new Int32Array(0);
    this.next = new Int32Array(0);
    this.arena = new Int32Array(64);
    this.off = new Int32Array(0);
    this.cls = new Uint8Array(0);
    this.one = new Int32Array(0);
    this.len = new Int32Array(0);
    this.diff = new Float64Array(0);
    this.qnext = new Int32Array(0);
    this.bHead = new Int32Array(0);
    this.bTail = new Int32Array(0);
    this.bKey = new Float64Array(0);
    this.heap = new Int32Array(0);
    this.hkey = new Float64Array(0);
    this.tmp = new Int32Array(0);
    this.tmp2 = new Int32Array(0);
    this.tmp3 = new Int32Array(0);
  }
}

// One state, reused by every call (kk is synchronous, so calls never overlap): its typed arrays
// are allocated once at the largest size seen instead of ~114 bytes per item on every call.
const pool = new KK();
const EMPTY = new Float64Array(0);

/** The pooled state, reset for n items into k subsets (arrays grown only when too small). */
function reset(cost: Float64Array, k: number, n: number, shared: boolean): KK {
  const st = pool;
  st.cost = cost;
  st.k = k;
  if (n > st.cap) {
    st.cap = n;
    st.sum = new Float64Array(n);
    st.head = new Int32Array(n);
    st.tail = new Int32Array(n);
    st.next = new Int32Array(n);
    const maxSols = 2 * n;
    st.off = new Int32Array(maxSols);
    st.cls = new Uint8Array(maxSols);
    st.one = new Int32Array(maxSols);
    st.len = new Int32Array(maxSols);
    st.diff = new Float64Array(maxSols);
    st.qnext = new Int32Array(maxSols);
    st.bHead = new Int32Array(n);
    st.bTail = new Int32Array(n);
    st.bKey = new Float64Array(n);
    st.heap = new Int32Array(n);
    st.hkey = new Float64Array(n);
  }
  if (st.arena.length < 4 * n) st.arena = new Int32Array(Math.max(64, 4 * n));
  if (st.tmp.length < k) {
    st.tmp = new Int32Array(k);
    st.tmp2 = new Int32Array(k);
    st.tmp3 = new Int32Array(k);
  }
  st.next.fill(-1, 0, n);
  st.cls.fill(0, 0, 2 * n);
  st.subsets = 0;
  st.top = 0;
  st.freeHead.length = 0;
  st.sols = 0;
  st.shared = shared;
  st.freeBuckets.length = 0;
  st.buckets = 0;
  st.bucketOf.clear();
  st.hsize = 0;
  st.waiting = 0;
  st.singles = 0;
  st.nextSingle = 0;
  return st;
}

export function kk(inp: PartitionInput): Int32Array {
  const { cost, order, groups: k, equalCount } = inp;
  const n = order.length;
  const group = new Int32Array(n).fill(-1);
  if (n === 0) return group;
  const st = reset(cost, k, n, distinctCosts(cost, order) * 16 <= n);
  if (equalCount) initChunks(st, order, n, k);
  else {
    initSingles(cost, order, st.sum, st.head, st.tail, st.one, st.len, st.diff, k);
    st.subsets = n;
    st.sols = n;
    st.singles = n;
  }
  // The loops live in their own functions: kk itself stays short and is never compiled on
  // stack replacement mid-loop, which left the code after the loop without type feedback and
  // deoptimised every call at the loop's exit.
  joinAll(st);
  labelAll(st, group);
  st.cost = EMPTY; // the pool keeps no reference to the caller's costs
  return group;
}

/**
 * Equal-size variant: chunks of k consecutive items (by cost) start as solutions with one item
 * per subset, so joins keep subset sizes equal (±1 from the last, partial chunk).
 */
function initChunks(st: KK, order: Uint32Array, n: number, k: number): void {
  const tmp = st.tmp;
  for (let s = 0; s < n; s += k) {
    const m = Math.min(n, s + k) - s;
    for (let j = 0; j < m; j++) tmp[j] = newSet(st, order[s + j]);
    sortTmp(st, m);
    const id = st.sols++;
    const c = classOf(m);
    st.off[id] = alloc(st, c); st.cls[id] = c; st.len[id] = m;
    st.arena.set(tmp.subarray(0, m), st.off[id]);
    setDiff(st, id);
    push(st, id);
  }
}

function joinAll(st: KK): void {
  while (st.waiting + (st.singles - st.nextSingle) > 1) join(st);
}

/** The last solution's subsets are the groups. */
function labelAll(st: KK, group: Int32Array): void {
  const fin = st.waiting > 0 ? st.bHead[st.heap[0]] : st.nextSingle;
  for (let g = 0; g < st.len[fin]; g++) label(group, st.head, st.next, at(st, fin, g), g);
}

function newSet(st: KK, item: number): number {
  const s = st.subsets++;
  st.sum[s] = st.cost[item];
  st.head[s] = item;
  st.tail[s] = item;
  return s;
}

/** Does subset a come before subset b (sum desc, then creation order)? */
function first(sum: Float64Array, a: number, b: number): boolean {
  return sum[a] > sum[b] || (sum[a] === sum[b] && a < b);
}

function classOf(need: number): number {
  return Math.max(2, 32 - Math.clz32(need - 1));
}

function alloc(st: KK, c: number): number {
  const fl = st.freeHead[c];
  if (fl && fl.length > 0) return fl.pop()!;
  const size = 1 << c;
  if (st.top + size > st.arena.length) {
    const grown = new Int32Array(Math.max(2 * st.arena.length, st.top + size));
    grown.set(st.arena.subarray(0, st.top));
    st.arena = grown;
  }
  const o = st.top;
  st.top += size;
  return o;
}

function release(st: KK, o: number, c: number): void {
  if (c > 0) (st.freeHead[c] ??= []).push(o);
}

function push(st: KK, id: number): void {
  const d = st.diff[id];
  st.waiting++;
  st.qnext[id] = -1;
  const known = st.shared ? st.bucketOf.get(d) : undefined;
  if (known !== undefined) {
    st.qnext[st.bTail[known]] = id;
    st.bTail[known] = id;
    return;
  }
  const b = st.freeBuckets.length > 0 ? st.freeBuckets.pop()! : st.buckets++;
  st.bKey[b] = d; st.bHead[b] = id; st.bTail[b] = id;
  if (st.shared) st.bucketOf.set(d, b);
  const heap = st.heap, hkey = st.hkey, bHead = st.bHead;
  let i = st.hsize++;
  while (i > 0) {
    const p = (i - 1) >> 1;
    const dp = hkey[p];
    if (!(d > dp || (d === dp && id < bHead[heap[p]]))) break;
    heap[i] = heap[p];
    hkey[i] = dp;
    i = p;
  }
  heap[i] = b;
  hkey[i] = d;
}

function popHeap(st: KK): number {
  const heap = st.heap, hkey = st.hkey, bHead = st.bHead;
  const b = heap[0];
  const id = bHead[b];
  st.waiting--;
  if (st.qnext[id] >= 0) { bHead[b] = st.qnext[id]; return id; }
  if (st.shared) st.bucketOf.delete(st.bKey[b]);
  st.freeBuckets.push(b);
  const hsize = --st.hsize;
  const last = heap[hsize];
  if (hsize > 0) {
    const d = hkey[hsize];
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= hsize) break;
      let m = l, dm = hkey[l];
      const r = l + 1;
      if (r < hsize) {
        const dr = hkey[r];
        if (dr > dm || (dr === dm && bHead[heap[r]] < bHead[heap[l]])) { m = r; dm = dr; }
      }
      if (!(dm > d || (dm === d && bHead[heap[m]] < bHead[last]))) break;
      heap[i] = heap[m];
      hkey[i] = dm;
      i = m;
    }
    heap[i] = last;
    hkey[i] = d;
  }
  return id;
}

function pop(st: KK): number {
  if (st.nextSingle < st.singles) {
    const s = st.nextSingle;
    if (st.waiting === 0) { st.nextSingle++; return s; }
    const ds = st.diff[s], dh = st.hkey[0];
    if (ds > dh || (ds === dh && s < st.bHead[st.heap[0]])) { st.nextSingle++; return s; }
  }
  return popHeap(st);
}

function setDiff(st: KK, id: number): void {
  const l = st.len[id];
  const c = st.cls[id];
  const t = c ? st.arena[st.off[id]] : st.one[id];
  st.diff[id] = l < st.k ? st.sum[t] : st.sum[t] - st.sum[c ? st.arena[st.off[id] + l - 1] : t];
}

/** Entry t of solution s. */
function at(st: KK, s: number, t: number): number {
  return st.cls[s] ? st.arena[st.off[s] + t] : st.one[s];
}

function insertionSort(sum: Float64Array, t: Int32Array, from: number, to: number): void {
  for (let i = from + 1; i < to; i++) {
    const v = t[i], sv = sum[v];
    let j = i - 1;
    while (j >= from) {
      const w = t[j], sw = sum[w];
      if (!(sv > sw || (sv === sw && v < w))) break;
      t[j + 1] = w;
      j--;
    }
    t[j + 1] = v;
  }
}

/** Sorts tmp[0..m) by (sum desc, id asc): insertion-sorted blocks of 16, merged bottom-up. */
function sortTmp(st: KK, m: number): void {
  const B = 16;
  const sum = st.sum, tmp = st.tmp;
  for (let s = 0; s < m; s += B) insertionSort(sum, tmp, s, Math.min(m, s + B));
  if (m <= B) return;
  let src = tmp, dst = st.tmp3;
  for (let w = B; w < m; w *= 2) {
    for (let lo = 0; lo < m; lo += 2 * w) {
      const mid = Math.min(m, lo + w), hi = Math.min(m, lo + 2 * w);
      let i = lo, j = mid, o = lo;
      while (i < mid && j < hi) {
        const x = src[i], y = src[j], sx = sum[x], sy = sum[y];
        if (sy > sx || (sy === sx && y < x)) { dst[o++] = y; j++; } else { dst[o++] = x; i++; }
      }
      while (i < mid) dst[o++] = src[i++];
      while (j < hi) dst[o++] = src[j++];
    }
    const t = src; src = dst; dst = t;
  }
  if (src !== tmp) tmp.set(src.subarray(0, m));
}

/**
 * Sorted merge of arena[o .. o+p) with src[0..c) into arena[o .. o+p+c), from the back: each
 * src entry finds its place by binary search and the run entries after it shift with one
 * copyWithin, so every run entry moves at most once.
 */
function mergeBack(st: KK, o: number, p: number, src: Int32Array, c: number): void {
  const a = st.arena, sum = st.sum;
  let end = o + p; // a[o .. end) not yet moved
  for (let j = c - 1; j >= 0; j--) {
    const v = src[j];
    // Gallop from the back: most entries land at or near the end.
    let lo = o, hi = end;
    if (end === o || first(sum, a[end - 1], v)) { a[end + j] = v; continue; }
    for (let step = 1; ; step *= 2) {
      const probe = end - 1 - step;
      if (probe < o) break;
      if (first(sum, a[probe], v)) { lo = probe + 1; break; }
      hi = probe;
    }
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (first(sum, v, a[mid])) hi = mid; else lo = mid + 1;
    }
    if (lo < end) a.copyWithin(lo + j + 1, lo, end);
    a[lo + j] = v;
    end = lo;
  }
}

/** One join: the two solutions of largest difference become one. */
function join(st: KK): void {
  const k = st.k, sum = st.sum, next = st.next, head = st.head, tail = st.tail, len = st.len;
  const tmp = st.tmp, tmp2 = st.tmp2;
  const ia = pop(st), ib = pop(st);
  const a = len[ia], b = len[ib];
  // Padded to k subsets, A[i] (descending) pairs with B[k-1-i] (ascending).
  const keep = Math.min(a, k - b); // A's heaviest subsets, untouched
  const u = Math.min(k - a, b); // B's heaviest subsets, unpaired (untouched)
  let m = 0;
  for (let i = keep; i < a; i++) {
    const x = at(st, ia, i), y = at(st, ib, k - 1 - i);
    sum[x] += sum[y];
    next[tail[x]] = head[y];
    tail[x] = tail[y];
    tmp[m++] = x;
  }
  sortTmp(st, m);
  const id = st.sols++;
  const total = keep + u + m;
  len[id] = total;
  // The longer untouched run stays where it is (its block becomes the result's); the shorter
  // one is merged with the sorted changed subsets, and that is merged in from the back.
  const kA = keep >= u;
  const runSol = kA ? ia : ib, otherSol = kA ? ib : ia;
  const p = kA ? keep : u, r = kA ? u : keep;
  let c = m;
  let src = tmp;
  if (r > 0) {
    // tmp2 = merge(other run, tmp[0..m)).
    let i = 0, j = 0, o = 0;
    while (i < r && j < m) {
      const x = at(st, otherSol, i);
      if (first(sum, x, tmp[j])) { tmp2[o++] = x; i++; } else tmp2[o++] = tmp[j++];
    }
    while (i < r) tmp2[o++] = at(st, otherSol, i++);
    while (j < m) tmp2[o++] = tmp[j++];
    c = o;
    src = tmp2;
  }
  release(st, st.off[otherSol], st.cls[otherSol]);
  if (total === 1) {
    // k = 1, or two one-subset solutions whose subsets merged: no block needed.
    release(st, st.off[runSol], st.cls[runSol]);
    st.one[id] = p > 0 ? at(st, runSol, 0) : src[0];
    st.cls[id] = 0;
  } else {
    let o: number, cc = st.cls[runSol];
    if (cc === 0 || (1 << cc) < total) {
      // Move the kept run to a block that fits the result.
      const nc = classOf(Math.max(total, cc === 0 ? 4 : 2 << cc));
      o = alloc(st, nc);
      if (p > 0) {
        if (cc === 0) st.arena[o] = st.one[runSol];
        else st.arena.copyWithin(o, st.off[runSol], st.off[runSol] + p);
      }
      release(st, st.off[runSol], cc);
      cc = nc;
    } else {
      o = st.off[runSol];
    }
    mergeBack(st, o, p, src, c);
    st.off[id] = o; st.cls[id] = cc;
  }
  setDiff(st, id);
  push(st, id);
}

/** Number of distinct costs (order is by cost). */
function distinctCosts(cost: Float64Array, order: Uint32Array): number {
  let distinct = 0;
  for (let j = 0; j < order.length; j++) if (j === 0 || cost[order[j]] !== cost[order[j - 1]]) distinct++;
  return distinct;
}

/**
 * The one-item solutions: solution j holds subset j = {order[j]} (what newSet and setDiff do
 * for each, in one loop): one subset, so its difference is its sum (k > 1) or 0 (k = 1).
 */
function initSingles(
  cost: Float64Array, order: Uint32Array, sum: Float64Array, head: Int32Array, tail: Int32Array,
  one: Int32Array, len: Int32Array, diff: Float64Array, k: number,
): void {
  for (let j = 0; j < order.length; j++) {
    const item = order[j];
    const c = cost[item];
    sum[j] = c;
    head[j] = item;
    tail[j] = item;
    one[j] = j;
    len[j] = 1;
    diff[j] = 1 < k ? c : 0;
  }
}

/** Every item of subset s's linked list goes to group g. */
function label(group: Int32Array, head: Int32Array, next: Int32Array, s: number, g: number): void {
  for (let it = head[s]; it >= 0; it = next[it]) group[it] = g;
}
