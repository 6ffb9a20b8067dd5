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
  /** Where the sort gave them: cost and tokens by position in `order` (cost[order[k]], …). */
  byPosition?: { cost: Float64Array; tokens: Uint32Array };
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
 * algorithms, with the lowest index winning ties so the result is deterministic. Each entry
 * carries a copy of its key (a group's load does not change while it waits in the heap), so
 * comparisons read two parallel typed arrays. `replaceTop` gives the top group a new key that
 * is not smaller and sifts it down: one pass instead of a pop and a push, with the same heap
 * contents, hence the same sequence of pops.
 */
export class LoadHeap {
  readonly g: Int32Array;
  readonly k: Float64Array;
  size = 0;
  constructor(R: number) {
    this.g = new Int32Array(R);
    this.k = new Float64Array(R);
  }
  /** The least-loaded group (heap must not be empty). */
  top(): number {
    return this.g[0];
  }
  push(grp: number, key: number): void {
    const g = this.g, k = this.k;
    let i = this.size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const kp = k[p];
      if (!(key < kp || (key === kp && grp < g[p]))) break;
      g[i] = g[p];
      k[i] = kp;
      i = p;
    }
    g[i] = grp;
    k[i] = key;
  }
  pop(): number {
    const g = this.g, k = this.k;
    const out = g[0];
    const n = --this.size;
    if (n > 0) this.siftDown(g[n], k[n], n);
    return out;
  }
  /** The top group's key becomes `key` (≥ its old key). */
  replaceTop(key: number): void {
    this.siftDown(this.g[0], key, this.size);
  }
  /** Places (grp, key) from the root down, within the first n entries. */
  private siftDown(grp: number, key: number, n: number): void {
    const g = this.g, k = this.k;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      let m = l, km = k[l];
      const r = l + 1;
      if (r < n) {
        const kr = k[r];
        if (kr < km || (kr === km && g[r] < g[l])) { m = r; km = kr; }
      }
      if (!(km < key || (km === key && g[m] < grp))) break;
      g[i] = g[m];
      k[i] = km;
      i = m;
    }
    g[i] = grp;
    k[i] = key;
  }
}

/** Groups kept sorted by (load, index) ascending, and their loads. */
export interface SortedGroups {
  sorted: Int32Array;
  load: Float64Array;
}

/** First index in [lo, hi) of s.sorted whose group is not before (L, g) in (load, index) order. */
function upper(s: SortedGroups, L: number, g: number, lo: number, hi: number): number {
  const { sorted, load } = s;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const m = sorted[mid], lm = load[m];
    if (lm < L || (lm === L && m < g)) lo = mid + 1; else hi = mid;
  }
  return lo;
}

/** Sets g's load to `now` and moves g (at its old load in s.sorted) to its place for it. */
export function reposition(s: SortedGroups, g: number, now: number): void {
  const { sorted, load } = s;
  const R = sorted.length;
  const was = load[g];
  const from = upper(s, was, g, 0, R); // sorted[from] === g
  load[g] = now;
  if (now < was) {
    const to = upper(s, now, g, 0, from);
    sorted.copyWithin(to + 1, to, from);
    sorted[to] = g;
  } else {
    const to = upper(s, now, g, from + 1, R) - 1;
    sorted.copyWithin(from, from + 1, to + 1);
    sorted[to] = g;
  }
}
