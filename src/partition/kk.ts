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
import type { PartitionInput } from './common.js';

export function kk(inp: PartitionInput): Int32Array {
  const { cost, order, groups: k, equalCount } = inp;
  const n = order.length;
  const group = new Int32Array(n).fill(-1);
  if (n === 0) return group;

  // Subset pool: at most n subsets, created in deterministic order (id = creation index).
  const sum = new Float64Array(n);
  const head = new Int32Array(n);
  const tail = new Int32Array(n);
  const next = new Int32Array(n).fill(-1);
  let subsets = 0;
  const newSet = (item: number): number => {
    const s = subsets++;
    sum[s] = cost[item];
    head[s] = item;
    tail[s] = item;
    return s;
  };
  /** Does subset a come before subset b (sum desc, then creation order)? */
  const first = (a: number, b: number): boolean => sum[a] > sum[b] || (sum[a] === sum[b] && a < b);

  // Arena of subset lists: blocks of 2^c entries (c ≥ 2), recycled through per-class free lists.
  let arena = new Int32Array(Math.max(64, 4 * n));
  let top = 0;
  const freeHead: number[][] = [];
  const classOf = (need: number): number => Math.max(2, 32 - Math.clz32(need - 1));
  const alloc = (c: number): number => {
    const fl = freeHead[c];
    if (fl && fl.length > 0) return fl.pop()!;
    const size = 1 << c;
    if (top + size > arena.length) {
      const grown = new Int32Array(Math.max(2 * arena.length, top + size));
      grown.set(arena.subarray(0, top));
      arena = grown;
    }
    const o = top;
    top += size;
    return o;
  };
  const release = (o: number, c: number): void => {
    if (c > 0) (freeHead[c] ??= []).push(o);
  };

  // Solutions: ids by creation (≤ n initial ones, then one per join: < 2n in all). A solution
  // with one subset and no block keeps it in `one` (cls 0); otherwise its list is
  // arena[off .. off + len), a block of class cls.
  const maxSols = 2 * n;
  const off = new Int32Array(maxSols);
  const cls = new Uint8Array(maxSols);
  const one = new Int32Array(maxSols);
  const len = new Int32Array(maxSols);
  const diff = new Float64Array(maxSols);
  let sols = 0;

  // Joined solutions waiting, by (diff desc, id asc): solutions of equal diff share a bucket, a
  // FIFO of ids (ids only grow, so FIFO order is id order), and a max-heap orders the buckets by
  // their diffs. Few distinct item costs make long tie runs, which then cost O(1); with many
  // distinct costs ties are rare and the map would only cost time, so every solution gets its own
  // bucket and the heap breaks equal diffs by id (the same order either way).
  const distinct = distinctCosts(cost, order);
  const shared = distinct * 16 <= n;
  const qnext = new Int32Array(maxSols);
  const bHead = new Int32Array(n);
  const bTail = new Int32Array(n);
  const bKey = new Float64Array(n);
  const freeBuckets: number[] = [];
  let buckets = 0;
  const bucketOf = new Map<number, number>();
  const heap = new Int32Array(n); // bucket ids
  const hkey = new Float64Array(n);
  let hsize = 0;
  let waiting = 0;
  const push = (id: number): void => {
    const d = diff[id];
    waiting++;
    qnext[id] = -1;
    const known = shared ? bucketOf.get(d) : undefined;
    if (known !== undefined) {
      qnext[bTail[known]] = id;
      bTail[known] = id;
      return;
    }
    const b = freeBuckets.length > 0 ? freeBuckets.pop()! : buckets++;
    bKey[b] = d; bHead[b] = id; bTail[b] = id;
    if (shared) bucketOf.set(d, b);
    let i = hsize++;
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
  };
  const popHeap = (): number => {
    const b = heap[0];
    const id = bHead[b];
    waiting--;
    if (qnext[id] >= 0) { bHead[b] = qnext[id]; return id; }
    if (shared) bucketOf.delete(bKey[b]);
    freeBuckets.push(b);
    const last = heap[--hsize];
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
  };
  // The one-item solutions 0 .. singles-1, already in (diff desc, id asc) order.
  let singles = 0, nextSingle = 0;
  const pop = (): number => {
    if (nextSingle < singles) {
      const s = nextSingle;
      if (waiting === 0) { nextSingle++; return s; }
      const ds = diff[s], dh = hkey[0];
      if (ds > dh || (ds === dh && s < bHead[heap[0]])) { nextSingle++; return s; }
    }
    return popHeap();
  };
  const setDiff = (id: number): void => {
    const l = len[id];
    const t = cls[id] ? arena[off[id]] : one[id];
    diff[id] = l < k ? sum[t] : sum[t] - sum[cls[id] ? arena[off[id] + l - 1] : t];
  };
  /** Entry t of solution s. */
  const at = (s: number, t: number): number => (cls[s] ? arena[off[s] + t] : one[s]);

  // Scratch: changed subsets (tmp) and the run merged into the kept one (tmp2).
  const tmp = new Int32Array(k);
  const tmp2 = new Int32Array(k);
  const tmp3 = new Int32Array(k);
  const insertionSort = (t: Int32Array, from: number, to: number): void => {
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
  };
  /** Sorts tmp[0..m) by (sum desc, id asc): insertion-sorted blocks of 16, merged bottom-up. */
  const sortTmp = (m: number): void => {
    const B = 16;
    for (let s = 0; s < m; s += B) insertionSort(tmp, s, Math.min(m, s + B));
    if (m <= B) return;
    let src = tmp, dst = tmp3;
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
  };
  /**
   * Sorted merge of arena[o .. o+p) with src[0..c) into arena[o .. o+p+c), from the back: each
   * src entry finds its place by binary search and the run entries after it shift with one
   * copyWithin, so every run entry moves at most once.
   */
  const mergeBack = (o: number, p: number, src: Int32Array, c: number): void => {
    const a = arena;
    let end = o + p; // a[o .. end) not yet moved
    for (let j = c - 1; j >= 0; j--) {
      const v = src[j];
      // Gallop from the back: most entries land at or near the end.
      let lo = o, hi = end;
      if (end === o || first(a[end - 1], v)) { a[end + j] = v; continue; }
      for (let step = 1; ; step *= 2) {
        const probe = end - 1 - step;
        if (probe < o) break;
        if (first(a[probe], v)) { lo = probe + 1; break; }
        hi = probe;
      }
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (first(v, a[mid])) hi = mid; else lo = mid + 1;
      }
      if (lo < end) a.copyWithin(lo + j + 1, lo, end);
      a[lo + j] = v;
      end = lo;
    }
  };

  if (equalCount) {
    // Equal-size variant: chunks of k consecutive items (by cost) start as solutions with one
    // item per subset, so joins keep subset sizes equal (±1 from the last, partial chunk).
    for (let s = 0; s < n; s += k) {
      const m = Math.min(n, s + k) - s;
      for (let j = 0; j < m; j++) tmp[j] = newSet(order[s + j]);
      sortTmp(m);
      const id = sols++;
      const c = classOf(m);
      off[id] = alloc(c); cls[id] = c; len[id] = m;
      arena.set(tmp.subarray(0, m), off[id]);
      setDiff(id);
      push(id);
    }
  } else {
    initSingles(cost, order, sum, head, tail, one, len, diff, k);
    subsets = n;
    sols = n;
    singles = n;
  }

  /** One join: the two solutions of largest difference become one (a small function, so V8
   * optimises it early instead of re-entering the whole of kk on stack replacement). */
  const join = (): void => {
    const ia = pop(), ib = pop();
    const a = len[ia], b = len[ib];
    // Padded to k subsets, A[i] (descending) pairs with B[k-1-i] (ascending).
    const keep = Math.min(a, k - b); // A's heaviest subsets, untouched
    const u = Math.min(k - a, b); // B's heaviest subsets, unpaired (untouched)
    let m = 0;
    for (let i = keep; i < a; i++) {
      const x = at(ia, i), y = at(ib, k - 1 - i);
      sum[x] += sum[y];
      next[tail[x]] = head[y];
      tail[x] = tail[y];
      tmp[m++] = x;
    }
    sortTmp(m);
    const id = sols++;
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
        const x = at(otherSol, i);
        if (first(x, tmp[j])) { tmp2[o++] = x; i++; } else tmp2[o++] = tmp[j++];
      }
      while (i < r) tmp2[o++] = at(otherSol, i++);
      while (j < m) tmp2[o++] = tmp[j++];
      c = o;
      src = tmp2;
    }
    release(off[otherSol], cls[otherSol]);
    if (total === 1) {
      // k = 1, or two one-subset solutions whose subsets merged: no block needed.
      release(off[runSol], cls[runSol]);
      one[id] = p > 0 ? at(runSol, 0) : src[0];
      cls[id] = 0;
    } else {
      let o: number, cc = cls[runSol];
      if (cc === 0 || (1 << cc) < total) {
        // Move the kept run to a block that fits the result.
        const nc = classOf(Math.max(total, cc === 0 ? 4 : 2 << cc));
        o = alloc(nc);
        if (p > 0) {
          if (cc === 0) arena[o] = one[runSol];
          else arena.copyWithin(o, off[runSol], off[runSol] + p);
        }
        release(off[runSol], cc);
        cc = nc;
      } else {
        o = off[runSol];
      }
      mergeBack(o, p, src, c);
      off[id] = o; cls[id] = cc;
    }
    setDiff(id);
    push(id);
  };
  while (waiting + (singles - nextSingle) > 1) join();

  const fin = waiting > 0 ? bHead[heap[0]] : nextSingle;
  for (let g = 0; g < len[fin]; g++) label(group, head, next, at(fin, g), g);
  return group;
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
