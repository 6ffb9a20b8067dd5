// Contiguous partition of the items sorted by cost: the optimal greedy cut for a target T is
// monotone in T, so the smallest feasible T (≤ R groups) is found by a K-ary search whose
// every round evaluates K targets at once through the accelerator (the GPU's
// candidate-partition kernel, or its CPU reference). Optimal over contiguous partitions; for
// padded phases (load = count × longest) contiguous runs of similar lengths are what padding wants.
import type { Accelerator } from '../primitives/accelerator.js';
import type { PartitionInput } from './common.js';

/** Targets evaluated per round of the search. */
const K = 32;

export async function padded(inp: PartitionInput, lowerBound: number, accel: Accelerator): Promise<Int32Array> {
  const { cost, order, groups: R, padding } = inp;
  const n = order.length;
  const sorted = new Float64Array(n);
  for (let k = 0; k < n; k++) sorted[k] = cost[order[k]];
  const mode = padding ? 'padded' : 'sum';
  const prefix = await accel.prefixSum(sorted);
  // hi: one group holding everything is always feasible.
  let hi = padding ? n * (n > 0 ? sorted[0] : 0) : prefix[n];
  let lo = Math.min(Math.ceil(lowerBound), hi);
  while (lo < hi) {
    const span = hi - 1 - lo;
    const targets: number[] = [];
    for (let j = 0; j < K; j++) {
      const t = lo + Math.floor((span * j) / (K - 1));
      if (targets.length === 0 || t > targets[targets.length - 1]) targets.push(t);
    }
    const { groups } = await accel.cutCounts(sorted, prefix, Float64Array.from(targets), mode);
    let found = false;
    for (let j = 0; j < targets.length; j++) {
      if (groups[j] <= R) { hi = targets[j]; found = true; break; }
      lo = targets[j] + 1;
    }
    if (!found) lo = Math.min(lo, hi);
  }
  return cutAt(sorted, prefix, order, hi, padding);
}

/** Assign items to groups by the greedy contiguous cut at target T (the CPU walk of cutCounts). */
function cutAt(sorted: Float64Array, prefix: Float64Array, order: Uint32Array, T: number, padding: boolean): Int32Array {
  const n = order.length;
  const group = new Int32Array(n);
  let p = 0, g = 0;
  while (p < n) {
    let q: number;
    if (padding) {
      const c = sorted[p];
      q = p + (c > 0 ? Math.max(1, Math.min(n - p, Math.floor(T / c))) : n - p);
    } else {
      q = p + 1;
      while (q < n && prefix[q + 1] - prefix[p] <= T) q++;
    }
    for (let k = p; k < q; k++) group[order[k]] = g;
    g++;
    p = q;
  }
  return group;
}
