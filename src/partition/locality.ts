// Locality-preserving candidate: start from the sampled layout, let every rank keep its own items
// (largest first) up to a capacity near the target load, pool the rest, and give the pool out
// LPT-style (largest first, each to the least-loaded rank with room). Group g is rank g, so
// everything a rank keeps stays at home; the caller refines the result like any other candidate.
// Sum loads only (not for padded phases). Deterministic: items by (cost desc, index asc), ranks
// by (load, index).
import { LoadHeap, type PartitionInput } from './common.js';
import { GreedyState, placeAll } from './lpt.js';

/**
 * Returns group[i] = the rank item i runs on (group g = rank g), or null when the pool cannot
 * be placed within the token cap. `capacity` is the load (integer cost units) up to which a rank
 * keeps its own items.
 */
export function locality(inp: PartitionInput, sampledRank: Int32Array, capacity: number): Int32Array | null {
  const { order, groups: R } = inp;
  const n = order.length;
  const st = new GreedyState(inp, n, R, false);
  // Keep: items by cost descending; each stays home if it fits under the capacity, the token
  // cap and (equal counts) the floor quota.
  const pool = new Uint32Array(n);
  const pooled = keep(st, order, sampledRank, capacity, pool);
  // Pool: largest first to the least-loaded rank that can take it.
  const heap = new LoadHeap(R);
  for (let g = 0; g < R; g++) heap.push(g, st.load[g]);
  return placeAll(st, heap, pool, pooled) ? st.group : null;
}

/** The keep pass; returns how many items went to the pool. */
function keep(st: GreedyState, order: Uint32Array, sampledRank: Int32Array, capacity: number, pool: Uint32Array): number {
  const { cost, tokens, cap, equalCount, q, group, load, tok, count } = st;
  const n = order.length;
  let pooled = 0;
  for (let k = 0; k < n; k++) {
    const i = order[k];
    const g = sampledRank[i];
    if (load[g] + cost[i] <= capacity && tok[g] + tokens[i] <= cap && (!equalCount || count[g] < q)) {
      group[i] = g;
      load[g] += cost[i];
      tok[g] += tokens[i];
      count[g]++;
    } else {
      pool[pooled++] = i;
    }
  }
  return pooled;
}

/**
 * Re-home a grouping without changing any group's load: items of equal length (hence equal
 * cost) are interchangeable, so within each length class, every group keeps its count but takes
 * the items sampled on its own rank (group g = rank g) first. Group loads, token sums, counts
 * and (padded) longest items are all unchanged; only which copy of an equal item goes where.
 * Returns a new grouping.
 */
export function rehome(inp: PartitionInput, group: Int32Array, sampledRank: Int32Array): Int32Array {
  const { tokens, order, groups: R } = inp;
  const n = order.length;
  const out = new Int32Array(group);
  const need = new Int32Array(R); // slots of the current class per group
  const left = new Uint32Array(n); // items of the class not placed at home
  const open = new Int32Array(n); // groups with slots of the current class, in first-seen order
  for (let a = 0; a < n; ) {
    const b = classEnd(tokens, order, a);
    if (b - a > 1) rehomeClass(order, group, sampledRank, out, need, left, open, a, b);
    a = b;
  }
  return out;
}

/** End of the run of equal lengths that starts at position a of `order`. */
function classEnd(tokens: Uint32Array, order: Uint32Array, a: number): number {
  const n = order.length;
  const t = tokens[order[a]];
  let b = a + 1;
  while (b < n && tokens[order[b]] === t) b++;
  return b;
}

/** Re-homes the items order[a .. b) (one length class); leaves `need` all zero. */
function rehomeClass(
  order: Uint32Array, group: Int32Array, sampledRank: Int32Array, out: Int32Array,
  need: Int32Array, left: Uint32Array, open: Int32Array, a: number, b: number,
): void {
  for (let k = a; k < b; k++) need[group[order[k]]]++;
  // Home first: an item whose rank's group has a slot of this class stays there.
  let m = 0;
  for (let k = a; k < b; k++) {
    const i = order[k], h = sampledRank[i];
    if (need[h] > 0) { out[i] = h; need[h]--; } else left[m++] = i;
  }
  // The rest: its original group if that still has a slot, else the next open group.
  let no = 0;
  for (let k = a; k < b; k++) { const g = group[order[k]]; if (need[g] > 0) open[no++] = g; }
  let p = 0;
  for (let j = 0; j < m; j++) {
    const i = left[j], g = group[i];
    if (need[g] > 0) { out[i] = g; need[g]--; continue; }
    while (need[open[p]] === 0) p++;
    out[i] = open[p]; need[open[p]]--;
  }
}
