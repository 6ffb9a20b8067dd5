// Shared shapes of the partition stage: a phase's items reduced to what balancing needs, and
// the load of a grouping. Groups are anonymous here; placement later decides which rank gets
// which group.

export interface PartitionInput {
  /** Integer cost per item. */
  cost: Float64Array;
  tokens: Uint32Array;
  /** Items by cost descending, ties by index ascending (costs are non-decreasing in tokens). */
  order: Uint32Array;
  /** Number of groups (ranks). */
  groups: number;
  /** Cap on Σ tokens per group. */
  cap?: number;
  /** Every group gets floor(n/R) or ceil(n/R) items. */
  equalCount: boolean;
  /** Group load is count × largest cost instead of Σ cost. */
  padding: boolean;
}

/** Load of every group under the phase's cost (sum, or count × max when padded). */
export function groupLoads(inp: PartitionInput, group: Int32Array): Float64Array {
  const R = inp.groups;
  const loads = new Float64Array(R);
  if (!inp.padding) {
    for (let i = 0; i < group.length; i++) loads[group[i]] += inp.cost[i];
    return loads;
  }
  const count = new Float64Array(R);
  const max = new Float64Array(R);
  for (let i = 0; i < group.length; i++) {
    const g = group[i];
    count[g]++;
    if (inp.cost[i] > max[g]) max[g] = inp.cost[i];
  }
  for (let g = 0; g < R; g++) loads[g] = count[g] * max[g];
  return loads;
}

export function maxOf(a: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) if (a[i] > m) m = a[i];
  return m;
}

/** Does the grouping satisfy the phase's constraints (token cap, equal counts)? */
export function feasible(inp: PartitionInput, group: Int32Array): boolean {
  const R = inp.groups;
  const n = group.length;
  if (inp.cap !== undefined) {
    const tok = new Float64Array(R);
    for (let i = 0; i < n; i++) tok[group[i]] += inp.tokens[i];
    for (let g = 0; g < R; g++) if (tok[g] > inp.cap) return false;
  }
  if (inp.equalCount) {
    const cnt = new Uint32Array(R);
    for (let i = 0; i < n; i++) cnt[group[i]]++;
    const q = Math.floor(n / R);
    for (let g = 0; g < R; g++) if (cnt[g] < q || cnt[g] > q + 1) return false;
  }
  return true;
}

/**
 * Min-heap of groups keyed by (load, group index): the "least loaded rank" of greedy
 * algorithms, with the lowest index winning ties so the result is deterministic.
 */
export function groupHeap(R: number) {
  const heap = new Int32Array(R);
  let size = 0;
  let key: Float64Array = new Float64Array(R);
  const less = (a: number, b: number) => key[a] < key[b] || (key[a] === key[b] && a < b);
  function push(g: number): void {
    let i = size++;
    heap[i] = g;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(heap[i], heap[p])) break;
      const t = heap[i]; heap[i] = heap[p]; heap[p] = t;
      i = p;
    }
  }
  function pop(): number {
    const top = heap[0];
    size--;
    if (size > 0) {
      heap[0] = heap[size];
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < size && less(heap[l], heap[m])) m = l;
        if (r < size && less(heap[r], heap[m])) m = r;
        if (m === i) break;
        const t = heap[i]; heap[i] = heap[m]; heap[m] = t;
        i = m;
      }
    }
    return top;
  }
  return {
    setKeys(k: Float64Array) { key = k; },
    push,
    pop,
    get size() { return size; },
  };
}
