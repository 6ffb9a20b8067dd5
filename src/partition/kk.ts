// k-way Karmarkar–Karp largest differencing (as verl's balancer runs it). A partial solution is
// a list of k subsets sorted by sum; repeatedly take the two solutions whose largest-minus-
// smallest difference is greatest and join them, pairing the heaviest subsets of one with the
// lightest of the other. Subsets are stored sparsely (empty ones implied) and as linked lists of
// items, so a join costs O(changed subsets), not O(k), while solutions are still small.
import type { PartitionInput } from './common.js';

export function kk(inp: PartitionInput): Int32Array {
  const { cost, order, groups: k, equalCount } = inp;
  const n = order.length;
  // Subset pool: sum, linked list of items (head, tail), created in deterministic order.
  const sum: number[] = [];
  const head: number[] = [];
  const tail: number[] = [];
  const next = new Int32Array(n).fill(-1);
  const newSet = (item: number): number => {
    sum.push(cost[item]);
    head.push(item);
    tail.push(item);
    return sum.length - 1;
  };
  // Subset order inside a solution: sum descending, then creation order.
  const bySum = (a: number, b: number) => sum[b] - sum[a] || a - b;

  // Solutions: sorted subset lists; heap ordered by difference descending, then solution id.
  const sols: number[][] = [];
  const diff: number[] = [];
  const diffOf = (s: number[]) => (s.length < k ? sum[s[0]] : sum[s[0]] - sum[s[k - 1]]);
  const heap: number[] = [];
  const before = (a: number, b: number) => diff[a] > diff[b] || (diff[a] === diff[b] && a < b);
  const push = (id: number) => {
    let i = heap.length;
    heap.push(id);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(heap[i], heap[p])) break;
      [heap[i], heap[p]] = [heap[p], heap[i]];
      i = p;
    }
  };
  const pop = (): number => {
    const top = heap[0];
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < heap.length && before(heap[l], heap[m])) m = l;
        if (r < heap.length && before(heap[r], heap[m])) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m], heap[i]];
        i = m;
      }
    }
    return top;
  };
  const addSolution = (s: number[]) => {
    sols.push(s);
    diff.push(diffOf(s));
    push(sols.length - 1);
  };

  if (equalCount) {
    // Equal-size variant: chunks of k consecutive items (by cost) start as solutions with one
    // item per subset, so joins keep subset sizes equal (±1 from the last, partial chunk).
    for (let s = 0; s < n; s += k) {
      const sets: number[] = [];
      for (let j = s; j < Math.min(n, s + k); j++) sets.push(newSet(order[j]));
      addSolution(sets.sort(bySum));
    }
  } else {
    for (let j = 0; j < n; j++) addSolution([newSet(order[j])]);
  }

  while (heap.length > 1) {
    const ia = pop(), ib = pop();
    const A = sols[ia], B = sols[ib];
    sols[ia] = sols[ib] = []; // joined: free them
    const a = A.length, b = B.length;
    // Padded to k subsets, A[i] (descending) pairs with B[k-1-i] (ascending).
    const keep = Math.min(a, k - b); // A's heaviest subsets, untouched
    const changed: number[] = [];
    for (let i = Math.max(keep, 0); i < a; i++) {
      const x = A[i], y = B[k - 1 - i];
      sum[x] += sum[y];
      next[tail[x]] = head[y];
      tail[x] = tail[y];
      changed.push(x);
    }
    for (let j = 0; j < k - Math.max(a, k - b); j++) changed.push(B[j]);
    changed.sort(bySum);
    // Merge the untouched prefix with the re-sorted changed subsets.
    const out: number[] = new Array(keep + changed.length);
    let i = 0, j = 0, o = 0;
    while (i < keep && j < changed.length) out[o++] = bySum(A[i], changed[j]) <= 0 ? A[i++] : changed[j++];
    while (i < keep) out[o++] = A[i++];
    while (j < changed.length) out[o++] = changed[j++];
    addSolution(out);
  }

  const group = new Int32Array(n).fill(-1);
  if (heap.length === 0) return group;
  const final = sols[heap[0]];
  for (let g = 0; g < final.length; g++) {
    for (let it = head[final[g]]; it >= 0; it = next[it]) group[it] = g;
  }
  return group;
}
