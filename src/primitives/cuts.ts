// CPU reference of the candidate-cut primitive: greedy contiguous cuts for many targets.
/** Result of evaluating greedy contiguous cuts for a set of targets. */
export interface CutResult {
  /** Number of groups the greedy cut needs, per target. */
  groups: Uint32Array;
  /** Largest group load the greedy cut produces, per target (exact integer, < 2^53). */
  maxLoad: Float64Array;
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
