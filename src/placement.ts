// Stage 5: placement. Balancing decides the groups; placement decides which rank runs which
// group. Keeping a group on the rank that sampled most of its bytes (then on that rank's node)
// minimises what the all-to-all moves. This is a max-weight assignment; we solve it greedily by
// overlap (heaviest (group, rank) pairs first), which is fast at 16k ranks and deterministic.
import { sortDescCpu } from './accel.js';

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
  const pairs = overlaps(group, sampledRank, weight, R, (r) => r);
  for (const [g, r] of pairs) {
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
  const nodePairs = overlaps(group, sampledRank, weight, R, (r) => Math.floor(r / ranksPerNode));
  for (const [g, nd] of nodePairs) {
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
  return rankOfGroup;
}

/** Placement that ignores locality: group g runs on rank g (the comparison baseline). */
export function placeNaive(R: number): Int32Array {
  return Int32Array.from({ length: R }, (_, g) => g);
}

/**
 * (group, place) pairs with their summed weight and item count, sorted by weight desc, count
 * desc, group asc, place asc. `placeOf` maps a sampled rank to a rank or a node.
 */
function overlaps(group: Int32Array, sampledRank: Int32Array, weight: Float64Array, R: number, placeOf: (r: number) => number): [number, number][] {
  const n = group.length;
  // group · R + place < 2^28 for R ≤ 16,384: a u32 radix sort groups equal keys together.
  const key = new Uint32Array(n);
  for (let i = 0; i < n; i++) key[i] = group[i] * R + placeOf(sampledRank[i]);
  const idx = sortDescCpu(key);
  const runs: { g: number; p: number; w: number; c: number }[] = [];
  for (let s = 0; s < n; ) {
    let e = s, w = 0;
    while (e < n && key[idx[e]] === key[idx[s]]) { w += weight[idx[e]]; e++; }
    const k = key[idx[s]];
    runs.push({ g: Math.floor(k / R), p: k % R, w, c: e - s });
    s = e;
  }
  runs.sort((a, b) => b.w - a.w || b.c - a.c || a.g - b.g || a.p - b.p);
  return runs.map((x) => [x.g, x.p]);
}
