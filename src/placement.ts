// Stage 5: placement. Balancing decides the groups; placement decides which rank runs which
// group. Keeping a group on the rank that sampled most of its bytes (then on that rank's node)
// minimises what the all-to-all moves. This is a max-weight assignment; we solve it greedily by
// overlap (heaviest (group, rank) pairs first), which is fast at 16k ranks and deterministic.
import { sortDescCpu } from './primitives/sort.js';

/**
 * Returns rankOfGroup[g]. `weight[i]` is what item i costs to move (bytes; item counts break
 * ties so that zero-byte phases still keep items in place).
 */
export function placeGroups(
  group: Int32Array,
  sampledRank: Int32Array,
  weight: Float64Array,
  R: number,
  ranksPerNode: number,
): Int32Array {
  const rankOfGroup = new Int32Array(R).fill(-1);
  const groupOfRank = new Int32Array(R).fill(-1);

  // Phase 1: same rank. Aggregate (group, rank) overlaps, heaviest first.
  const all = new Uint32Array(group.length);
  for (let i = 0; i < all.length; i++) all[i] = i;
  const pairs = overlaps(group, sampledRank, weight, R, all, 1);
  for (let k = 0; k < pairs.size; k++) {
    const g = pairs.g[k], r = pairs.p[k];
    if (rankOfGroup[g] < 0 && groupOfRank[r] < 0) { rankOfGroup[g] = r; groupOfRank[r] = g; }
  }
  // Phase 2: same node, for groups still unplaced, onto the lowest free rank of the node.
  const nodes = Math.ceil(R / ranksPerNode);
  const nextFree = new Int32Array(nodes);
  for (let nd = 0; nd < nodes; nd++) nextFree[nd] = nd * ranksPerNode;
  const freeIn = (nd: number): number => {
    const end = Math.min(R, (nd + 1) * ranksPerNode);
    while (nextFree[nd] < end && groupOfRank[nextFree[nd]] >= 0) nextFree[nd]++;
    return nextFree[nd] < end ? nextFree[nd] : -1;
  };
  // Only the items of unplaced groups matter here (placed groups are skipped anyway).
  let m = 0;
  for (let i = 0; i < group.length; i++) if (rankOfGroup[group[i]] < 0) all[m++] = i;
  const nodePairs = overlaps(group, sampledRank, weight, R, all.subarray(0, m), ranksPerNode);
  for (let k = 0; k < nodePairs.size; k++) {
    const g = nodePairs.g[k], nd = nodePairs.p[k];
    if (rankOfGroup[g] >= 0) continue;
    const r = freeIn(nd);
    if (r >= 0) { rankOfGroup[g] = r; groupOfRank[r] = g; }
  }
  // Phase 3: the rest, in group order onto free ranks in rank order.
  let r = 0;
  for (let g = 0; g < R; g++) {
    if (rankOfGroup[g] >= 0) continue;
    while (groupOfRank[r] >= 0) r++;
    rankOfGroup[g] = r;
    groupOfRank[r] = g;
  }
  // The greedy keeps at least half of the best assignment; a grouping built around the sampled
  // layout (group g = rank g, the locality candidate) is best served by the identity. Keep the
  // identity when it leaves strictly more weight (then items) at home.
  let wG = 0, wI = 0, cG = 0, cI = 0;
  for (let i = 0; i < group.length; i++) {
    const s = sampledRank[i], g = group[i];
    if (rankOfGroup[g] === s) { wG += weight[i]; cG++; }
    if (g === s) { wI += weight[i]; cI++; }
  }
  if (wI > wG || (wI === wG && cI > cG)) return placeNaive(R);
  return rankOfGroup;
}

/** Placement that ignores locality: group g runs on rank g (the comparison baseline). */
export function placeNaive(R: number): Int32Array {
  return Int32Array.from({ length: R }, (_, g) => g);
}

/**
 * (group, place) pairs over the items `sel` with their summed weight and item count, sorted by
 * weight desc, count desc, group asc, place asc. place = sampled rank div `per` (1: the rank;
 * ranksPerNode: the node). Typed arrays and stable radix passes only: no per-pair objects and
 * no comparator sort.
 */
function overlaps(group: Int32Array, sampledRank: Int32Array, weight: Float64Array, R: number, sel: Uint32Array, per: number): { g: Int32Array; p: Int32Array; size: number } {
  const n = sel.length;
  // Items by (group asc, place asc, index asc): two stable counting passes (place, then group).
  const places = Math.ceil(R / per);
  const place = new Int32Array(n);
  if (per === 1) for (let t = 0; t < n; t++) place[t] = sampledRank[sel[t]];
  else for (let t = 0; t < n; t++) place[t] = Math.floor(sampledRank[sel[t]] / per);
  const byPlace = countingPass(place, null, places);
  const gkey = new Int32Array(n);
  for (let t = 0; t < n; t++) gkey[t] = group[sel[t]];
  const idx = countingPass(gkey, byPlace, R);
  // Runs of equal (group, place), in that order; each run's weight summed in item order.
  const rk = new Uint32Array(n), rc = new Uint32Array(n);
  const rw = new Float64Array(n);
  const runs = runsOf(idx, gkey, place, sel, weight, R, rk, rc, rw);
  // Stable sorts, least significant first: count desc, then weight desc.
  let ord = sortDescCpu(rc.subarray(0, runs));
  ord = stableSortDescF64(rw, ord);
  const g = new Int32Array(runs), p = new Int32Array(runs);
  for (let t = 0; t < runs; t++) { const k = rk[ord[t]]; g[t] = Math.floor(k / R); p[t] = k % R; }
  return { g, p, size: runs };
}

/**
 * Stable counting sort of `within` (all positions 0..n-1 when null) by key[t] ∈ [0, buckets):
 * the positions reordered by key ascending, ties in their order in `within`.
 */
function countingPass(key: Int32Array, within: Uint32Array | null, buckets: number): Uint32Array {
  const start = bucketStarts(key, buckets);
  const out = new Uint32Array(key.length);
  if (within === null) scatterAll(key, start, out);
  else scatterWithin(key, within, start, out);
  return out;
}

// Each loop in its own small function: one function with several loops gets compiled on stack
// replacement inside the first and then deoptimised on reaching a later loop (or the other
// branch) without type feedback, on every call.

/** start[b]: where bucket b begins (exclusive prefix sums of the key counts). */
function bucketStarts(key: Int32Array, buckets: number): Uint32Array {
  const n = key.length;
  const start = new Uint32Array(buckets + 1);
  for (let t = 0; t < n; t++) start[key[t] + 1]++;
  for (let b = 0; b < buckets; b++) start[b + 1] += start[b];
  return start;
}

function scatterAll(key: Int32Array, start: Uint32Array, out: Uint32Array): void {
  const n = key.length;
  for (let t = 0; t < n; t++) out[start[key[t]]++] = t;
}

function scatterWithin(key: Int32Array, within: Uint32Array, start: Uint32Array, out: Uint32Array): void {
  const n = key.length;
  for (let j = 0; j < n; j++) { const t = within[j]; out[start[key[t]]++] = t; }
}

/** Runs of equal (group, place) along idx: key group·R + place, item count, summed weight. */
function runsOf(
  idx: Uint32Array, gkey: Int32Array, place: Int32Array, sel: Uint32Array, weight: Float64Array, R: number,
  rk: Uint32Array, rc: Uint32Array, rw: Float64Array,
): number {
  const n = idx.length;
  let runs = 0;
  for (let s = 0; s < n; ) {
    const g = gkey[idx[s]], p = place[idx[s]];
    let e = s, w = 0;
    while (e < n && gkey[idx[e]] === g && place[idx[e]] === p) { w += weight[sel[idx[e]]]; e++; }
    rk[runs] = g * R + p; rc[runs] = e - s; rw[runs] = w; runs++;
    s = e;
  }
  return runs;
}

/**
 * Reorders `ord` (indices into `values`, non-negative finite doubles) by value descending,
 * stably: LSD radix on the IEEE-754 bits (which order non-negative doubles like integers),
 * 8-bit digits, skipping digits that are equal for all entries.
 */
function stableSortDescF64(values: Float64Array, ord: Uint32Array): Uint32Array {
  const n = ord.length;
  const f = new Float64Array(1);
  const u = new Uint32Array(f.buffer);
  const lo = new Uint32Array(n), hi = new Uint32Array(n);
  let orL = 0, andL = 0xffffffff, orH = 0, andH = 0xffffffff;
  for (let t = 0; t < n; t++) {
    f[0] = values[ord[t]];
    const l = ~u[0] >>> 0, h = ~u[1] >>> 0; // complement: descending becomes ascending
    lo[t] = l; hi[t] = h;
    orL |= l; andL &= l; orH |= h; andH &= h;
  }
  let pos = new Uint32Array(n), tmp = new Uint32Array(n);
  for (let t = 0; t < n; t++) pos[t] = t;
  const count = new Uint32Array(256);
  for (let pass = 0; pass < 8; pass++) {
    const words = pass < 4 ? lo : hi;
    const shift = (pass & 3) * 8;
    if (((((pass < 4 ? orL ^ andL : orH ^ andH)) >>> shift) & 0xff) === 0) continue;
    count.fill(0);
    for (let t = 0; t < n; t++) count[(words[pos[t]] >>> shift) & 0xff]++;
    let sum = 0;
    for (let d = 0; d < 256; d++) { const c = count[d]; count[d] = sum; sum += c; }
    for (let t = 0; t < n; t++) { const i = pos[t]; tmp[count[(words[i] >>> shift) & 0xff]++] = i; }
    const x = pos; pos = tmp; tmp = x;
  }
  const out = new Uint32Array(n);
  for (let t = 0; t < n; t++) out[t] = ord[pos[t]];
  return out;
}
