// The data-parallel primitives the planner needs, behind one interface so that the GPU path
// accelerates stages without forking them. Every implementation must return exactly what the
// CPU reference below returns (same permutation, same integers): that is what makes a GPU plan
// byte-identical to a CPU plan.

import { pairStepsCpu, type PairArena } from './partition/pairstep.js';

export type { PairArena } from './partition/pairstep.js';

/** Result of evaluating greedy contiguous cuts for a set of targets. */
export interface CutResult {
  /** Number of groups the greedy cut needs, per target. */
  groups: Uint32Array;
  /** Largest group load the greedy cut produces, per target (exact integer, < 2^53). */
  maxLoad: Float64Array;
}

export interface Accelerator {
  readonly backend: 'cpu' | 'webgpu';
  /** Human-readable adapter name (e.g. "llvmpipe", "NVIDIA H100"); "cpu" for the CPU path. */
  readonly adapter: string;
  /**
   * Permutation that orders items by key descending, ties by index ascending (a stable sort).
   */
  sortDesc(keys: Uint32Array): Promise<Uint32Array>;
  /**
   * Exclusive prefix sum with a trailing total: out[0] = 0, out[i] = Σ values[0..i), length n+1.
   * Values are non-negative integers and every partial sum is < 2^53 (exact in float64; the GPU
   * carries them as two u32 words).
   */
  prefixSum(values: Float64Array): Promise<Float64Array>;
  /**
   * Greedy contiguous cut of items in the given order, for each target T:
   * - mode "sum": a group starting at p takes the longest run p..q-1 with Σ cost ≤ T (at least one item);
   *   `prefix` is prefixSum(costs in that order).
   * - mode "padded": a group starting at p (its longest item, costs sorted descending) takes
   *   max(1, min(n-p, floor(T / cost[p]))) items; its load is count × cost[p].
   * Targets are non-negative integers.
   */
  cutCounts(costs: Float64Array, prefix: Float64Array, targets: Float64Array, mode: 'sum' | 'padded'): Promise<CutResult>;
  /**
   * The best move or swap for each disjoint (heavier, lighter) group pair of a balance round:
   * exactly pairStepsCpu (src/partition/pairstep.ts): 2 entries a pair, [position in h's block,
   * position in l's block or −1 for a move], [−1, −1] for none.
   */
  pairSteps(arena: PairArena, pairs: Int32Array): Promise<Int32Array>;
  /** Release device resources (no-op on the CPU). */
  destroy(): void;
}

/** Stable LSD radix sort on inverted keys: descending key, ascending index. */
export function sortDescCpu(keys: Uint32Array): Uint32Array {
  const n = keys.length;
  let idx: Uint32Array = new Uint32Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  if (n < 2) return idx;
  let tmp: Uint32Array = new Uint32Array(n);
  const count = new Uint32Array(256);
  // Skip passes whose digit is the same for every key (short lengths need one or two passes).
  let or = 0, and = 0xffffffff;
  for (let i = 0; i < n; i++) { const k = ~keys[i] >>> 0; or |= k; and &= k; }
  for (let shift = 0; shift < 32; shift += 8) {
    if ((((or ^ and) >>> shift) & 0xff) === 0) continue;
    count.fill(0);
    for (let i = 0; i < n; i++) count[((~keys[idx[i]] >>> 0) >>> shift) & 0xff]++;
    let sum = 0;
    for (let d = 0; d < 256; d++) { const c = count[d]; count[d] = sum; sum += c; }
    for (let i = 0; i < n; i++) {
      const id = idx[i];
      tmp[count[((~keys[id] >>> 0) >>> shift) & 0xff]++] = id;
    }
    const t = idx; idx = tmp; tmp = t;
  }
  return idx;
}

export function prefixSumCpu(values: Float64Array): Float64Array {
  const out = new Float64Array(values.length + 1);
  let s = 0;
  for (let i = 0; i < values.length; i++) { out[i] = s; s += values[i]; }
  out[values.length] = s;
  return out;
}

/** Index of the last prefix entry ≤ limit, searching prefix[lo..hi]. */
function lastAtMost(prefix: Float64Array, lo: number, hi: number, limit: number): number {
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (prefix[mid] <= limit) lo = mid; else hi = mid - 1;
  }
  return lo;
}

export function cutCountsCpu(costs: Float64Array, prefix: Float64Array, targets: Float64Array, mode: 'sum' | 'padded'): CutResult {
  const n = costs.length;
  const groups = new Uint32Array(targets.length);
  const maxLoad = new Float64Array(targets.length);
  for (let t = 0; t < targets.length; t++) {
    const T = targets[t];
    let p = 0, g = 0, worst = 0;
    while (p < n) {
      let q: number, load: number;
      if (mode === 'sum') {
        q = lastAtMost(prefix, p, n, prefix[p] + T);
        if (q === p) q = p + 1;
        load = prefix[q] - prefix[p];
      } else {
        const c = costs[p];
        const take = c > 0 ? Math.max(1, Math.min(n - p, Math.floor(T / c))) : n - p;
        q = p + take;
        load = take * c;
      }
      if (load > worst) worst = load;
      g++;
      p = q;
    }
    groups[t] = g;
    maxLoad[t] = worst;
  }
  return { groups, maxLoad };
}

export const cpuAccelerator: Accelerator = {
  backend: 'cpu',
  adapter: 'cpu',
  sortDesc: async (keys) => sortDescCpu(keys),
  prefixSum: async (values) => prefixSumCpu(values),
  cutCounts: async (costs, prefix, targets, mode) => cutCountsCpu(costs, prefix, targets, mode),
  pairSteps: async (arena, pairs) => pairStepsCpu(arena, pairs),
  destroy: () => {},
};
