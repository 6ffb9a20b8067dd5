// Longest-processing-time greedy: items by cost descending, each to the least-loaded group that
// can still take it (token cap, equal-count quota). The paper's style of balancer.
import { groupHeap, type PartitionInput } from './common.js';

/** Returns the grouping, or null when the greedy cannot respect the token cap. */
export function lpt(inp: PartitionInput): Int32Array | null {
  const { cost, tokens, order, groups: R, cap, equalCount, padding } = inp;
  const n = order.length;
  const group = new Int32Array(n).fill(-1);
  const load = new Float64Array(R);
  const tok = new Float64Array(R);
  const count = new Uint32Array(R);
  const first = new Float64Array(R); // largest cost in the group (its first item: costs arrive descending)
  // Equal counts: r groups get q+1 items, the others q.
  const q = Math.floor(n / R), r = n % R;
  let big = 0;
  const heap = groupHeap(R);
  heap.setKeys(load);
  for (let g = 0; g < R; g++) heap.push(g);
  const aside: number[] = [];
  for (let k = 0; k < n; k++) {
    const i = order[k];
    let chosen = -1;
    while (heap.size > 0) {
      const g = heap.pop();
      if (equalCount && (count[g] > q || (count[g] === q && big >= r))) continue; // full for good
      if (cap !== undefined && tok[g] + tokens[i] > cap) { aside.push(g); continue; }
      chosen = g;
      break;
    }
    for (const g of aside) heap.push(g);
    aside.length = 0;
    if (chosen < 0) return null;
    const g = chosen;
    group[i] = g;
    count[g]++;
    tok[g] += tokens[i];
    if (count[g] === 1) first[g] = cost[i];
    load[g] = padding ? count[g] * first[g] : load[g] + cost[i];
    if (equalCount && count[g] === q + 1) big++;
    heap.push(g);
  }
  return group;
}

/**
 * Fallback when LPT by cost cannot meet the token cap: worst-fit decreasing by tokens (each
 * item, longest first, to the group with the most token room). Balances tokens, not cost; the
 * refinement then rebalances cost within the cap.
 */
export function tokenFit(inp: PartitionInput): Int32Array | null {
  const { tokens, order, groups: R, cap } = inp;
  const n = order.length;
  const byTokens = Array.from(order).sort((a, b) => tokens[b] - tokens[a] || a - b);
  const group = new Int32Array(n).fill(-1);
  const tok = new Float64Array(R);
  const heap = groupHeap(R);
  heap.setKeys(tok);
  for (let g = 0; g < R; g++) heap.push(g);
  for (const i of byTokens) {
    const g = heap.pop();
    if (cap !== undefined && tok[g] + tokens[i] > cap) return null;
    group[i] = g;
    tok[g] += tokens[i];
    heap.push(g);
  }
  return group;
}
