// Longest-processing-time greedy: items by cost descending, each to the least-loaded group that
// can still take it (token cap, equal-count quota). The paper's style of balancer.
import { LoadHeap, type PartitionInput } from './common.js';

/** Returns the grouping, or null when the greedy cannot respect the token cap. */
export function lpt(inp: PartitionInput): Int32Array | null {
  const { order, groups: R } = inp;
  const n = order.length;
  const st = new GreedyState(inp, n, R);
  const heap = new LoadHeap(R);
  for (let g = 0; g < R; g++) heap.push(g, 0);
  return placeAll(st, heap, order, n) ? st.group : null;
}

/** Per-group state of the greedy (loads, tokens, counts, first cost) and the grouping so far. */
export class GreedyState {
  readonly cost: Float64Array;
  readonly tokens: Uint32Array;
  readonly cap: number;
  readonly equalCount: boolean;
  readonly padding: boolean;
  readonly group: Int32Array;
  readonly load: Float64Array;
  readonly tok: Float64Array;
  readonly count: Uint32Array;
  /** Largest cost in the group (its first item: costs arrive descending). */
  readonly first: Float64Array;
  /** Equal counts: r groups get q+1 items, the others q; big counts the groups at q+1. */
  readonly q: number;
  readonly r: number;
  big = 0;
  constructor(inp: PartitionInput, n: number, R: number, padding = inp.padding) {
    this.cost = inp.cost;
    this.tokens = inp.tokens;
    this.cap = inp.cap ?? Infinity;
    this.equalCount = inp.equalCount;
    this.padding = padding;
    this.group = new Int32Array(n).fill(-1);
    this.load = new Float64Array(R);
    this.tok = new Float64Array(R);
    this.count = new Uint32Array(R);
    this.first = new Float64Array(R);
    this.q = Math.floor(n / R);
    this.r = n % R;
  }
}

/** Can group g still take item i? 0: yes; 1: not this item (token cap); 2: full for good. */
function room(st: GreedyState, g: number, i: number): number {
  if (st.equalCount) {
    const c = st.count[g];
    if (c > st.q || (c === st.q && st.big >= st.r)) return 2;
  }
  return st.tok[g] + st.tokens[i] > st.cap ? 1 : 0;
}

/** Item i to group g; returns g's new load. */
function assign(st: GreedyState, g: number, i: number): number {
  st.group[i] = g;
  const c = ++st.count[g];
  st.tok[g] += st.tokens[i];
  const ci = st.cost[i];
  if (c === 1) st.first[g] = ci;
  const l = st.padding ? c * st.first[g] : st.load[g] + ci;
  st.load[g] = l;
  if (st.equalCount && c === st.q + 1) st.big++;
  return l;
}

/**
 * Item i to the least-loaded group that can take it; false when none can. The least-loaded
 * group usually can: its key is updated in place. Otherwise groups are popped until one fits;
 * those full for good leave the heap, the others go back.
 */
export function place(st: GreedyState, heap: LoadHeap, i: number): boolean {
  if (heap.size > 0) {
    const g = heap.top();
    if (room(st, g, i) === 0) {
      heap.replaceTop(assign(st, g, i));
      return true;
    }
  }
  return placeSlow(st, heap, i);
}

const aside: number[] = [];
function placeSlow(st: GreedyState, heap: LoadHeap, i: number): boolean {
  let chosen = -1;
  while (heap.size > 0) {
    const g = heap.pop();
    const why = room(st, g, i);
    if (why === 2) continue; // full for good
    if (why === 1) { aside.push(g); continue; }
    chosen = g;
    break;
  }
  for (const g of aside) heap.push(g, st.load[g]);
  aside.length = 0;
  if (chosen < 0) return false;
  heap.push(chosen, assign(st, chosen, i));
  return true;
}

/**
 * items[0..count) (cost descending) each to the least-loaded group that can take it, as `place`
 * does one by one; false when one cannot be placed. With sum loads and free counts, runs of
 * equal cost take a shortcut with the same result (see sumRuns).
 */
export function placeAll(st: GreedyState, heap: LoadHeap, items: Uint32Array, count: number): boolean {
  if (!st.equalCount && !st.padding) return sumRuns(st, heap, items, count);
  for (let k = 0; k < count; k++) if (!place(st, heap, items[k])) return false;
  return true;
}

/**
 * Sum loads, free counts: each item goes to the group of least (load, index) that has token
 * room. Within a run of items of equal cost c, once the least group's key plus c exceeds the
 * greatest group's key ((load, index) lexicographically), the greedy visits the groups in
 * (load, index) order round after round as long as each has room: the group just given c is then
 * above every other, and the invariant carries over. So the run is dealt out in that order (the
 * heap drained once, refilled once) instead of one sift per item, up to the first item whose
 * group lacks token room, which goes through `place` as usual; the same assignments, in the same
 * order, as the heap would make. Keys are distinct (index breaks ties), so the refilled heap pops
 * exactly as the updated one would.
 */
function sumRuns(st: GreedyState, heap: LoadHeap, items: Uint32Array, count: number): boolean {
  const { cost, load, group } = st;
  const R = heap.size;
  const hk = heap.k, hg = heap.g;
  // The greatest (load, index) key.
  let maxL = -Infinity, maxG = -1;
  for (let g = 0; g < R; g++) if (load[g] >= maxL) { maxL = load[g]; maxG = g; }
  let k = 0;
  while (k < count) {
    const c = cost[items[k]];
    let e = k + 1;
    while (e < count && cost[items[e]] === c) e++;
    let deal = true;
    while (k < e) {
      if (deal && e - k >= 2 * R && heap.size === R) {
        const lf = hk[0] + c;
        if (lf > maxL || (lf === maxL && hg[0] > maxG)) {
          const dealt = equalRun(st, heap, items, k, e);
          maxL = -Infinity;
          for (let g = 0; g < R; g++) if (load[g] >= maxL) { maxL = load[g]; maxG = g; }
          // Stopped short by the token cap: the rest of the run goes item by item.
          if (k + dealt < e) deal = false;
          k += dealt;
          continue;
        }
      }
      const i = items[k++];
      if (!place(st, heap, i)) return false;
      const g = group[i], l = load[g];
      if (l > maxL || (l === maxL && g > maxG)) { maxL = l; maxG = g; }
    }
  }
  return true;
}

const dealOrder: { a: Int32Array } = { a: new Int32Array(0) };
/**
 * items[k..e) dealt round-robin over the groups in heap order, up to the first item its group
 * has no token room for; returns how many were dealt. The heap is rebuilt from the new loads.
 */
function equalRun(st: GreedyState, heap: LoadHeap, items: Uint32Array, k: number, e: number): number {
  const R = heap.size;
  if (dealOrder.a.length < R) dealOrder.a = new Int32Array(R);
  const S = dealOrder.a;
  for (let t = 0; t < R; t++) S[t] = heap.pop();
  const { tok, tokens, cap } = st;
  let t = 0, j = k;
  for (; j < e; j++) {
    const g = S[t], i = items[j];
    if (tok[g] + tokens[i] > cap) break;
    assign(st, g, i);
    if (++t === R) t = 0;
  }
  for (let g = 0; g < R; g++) heap.push(g, st.load[g]);
  return j - k;
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
  const heap = new LoadHeap(R);
  for (let g = 0; g < R; g++) heap.push(g, 0);
  for (const i of byTokens) {
    const g = heap.top();
    if (cap !== undefined && tok[g] + tokens[i] > cap) return null;
    group[i] = g;
    tok[g] += tokens[i];
    heap.replaceTop(tok[g]);
  }
  return group;
}
