// Local improvement of a grouping (sum loads only): repeatedly take the heaviest group and find,
// among all lighter groups (lightest first), the move of one item or the swap of two that cuts
// the heaviest load the most while keeping the other group below it. Every accepted step lowers
// (max load, number of groups at max) lexicographically, so it terminates; an iteration cap
// bounds the work and is deterministic (a count, never a clock).
import type { PartitionInput } from './common.js';

export interface RefineOptions {
  /** Stop as soon as the max load is ≤ this (a proven lower bound). */
  target: number;
  /** After a candidate is found, scan this many further groups for a better one. */
  extraScan?: number;
  maxIterations?: number;
}

/** Refines `group` in place and returns it. Sum loads only (not for padded phases). */
export function refine(inp: PartitionInput, group: Int32Array, opts: RefineOptions): Int32Array {
  const { cost, tokens, groups: R, cap, equalCount } = inp;
  const n = group.length;
  const q = Math.floor(n / R);
  const load = new Float64Array(R);
  const tok = new Float64Array(R);
  const members: number[][] = Array.from({ length: R }, () => []);
  for (let i = 0; i < n; i++) {
    const g = group[i];
    load[g] += cost[i];
    tok[g] += tokens[i];
    members[g].push(i);
  }
  // Each group's items by (cost, index) ascending, for binary searches by cost.
  const byCost = (a: number, b: number) => cost[a] - cost[b] || a - b;
  for (const m of members) m.sort(byCost);

  // Groups by (load, index) ascending; the last is the heaviest.
  const rankOrder = (a: number, b: number) => load[a] - load[b] || a - b;
  const sorted = Array.from({ length: R }, (_, g) => g).sort(rankOrder);
  const position = (g: number) => {
    let lo = 0, hi = sorted.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (rankOrder(sorted[mid], g) < 0) lo = mid + 1; else hi = mid;
    }
    return lo;
  };
  const insertAt = (g: number) => sorted.splice(position(g), 0, g);

  /** First index in m whose cost is ≥ c. */
  const lowerBoundCost = (m: number[], c: number) => {
    let lo = 0, hi = m.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cost[m[mid]] < c) lo = mid + 1; else hi = mid;
    }
    return lo;
  };

  const extraScan = opts.extraScan ?? 8;
  const maxIterations = opts.maxIterations ?? 20 * R + 1000;
  for (let iter = 0; iter < maxIterations; iter++) {
    const h = sorted[R - 1];
    const Lh = load[h];
    if (Lh <= opts.target) break;
    const H = members[h];
    // Best candidate so far: resulting pair max, then the items involved.
    let bestV = Lh, bestL = -1, bestX = -1, bestY = -1;
    let scannedAfterFind = 0;
    for (let s = 0; s < R - 1; s++) {
      const l = sorted[s];
      const g = Lh - load[l];
      if (g < 2) break; // an integer step d must satisfy 0 < d < g
      const L = members[l];
      const half = g / 2;
      const consider = (x: number, y: number) => {
        const d = cost[x] - (y >= 0 ? cost[y] : 0);
        if (d <= 0 || d >= g) return;
        if (cap !== undefined) {
          const dt = tokens[x] - (y >= 0 ? tokens[y] : 0);
          if (tok[l] + dt > cap || tok[h] - dt > cap) return;
        }
        const v = Math.max(Lh - d, load[l] + d);
        if (v < bestV) { bestV = v; bestL = l; bestX = x; bestY = y; }
      };
      // Move one item x from h to l: x closest to g/2 (equal counts allow it only q+1 → q).
      if (!equalCount || (H.length === q + 1 && L.length === q)) {
        const k = lowerBoundCost(H, half);
        if (k < H.length) consider(H[k], -1);
        if (k > 0) consider(H[k - 1], -1);
      }
      // Swap x ∈ h with y ∈ l: y closest to cost[x] − g/2, for each distinct cost in h.
      for (let a = 0; a < H.length; a++) {
        const x = H[a];
        if (a + 1 < H.length && cost[H[a + 1]] === cost[x]) continue;
        const k = lowerBoundCost(L, cost[x] - half);
        if (k < L.length) consider(x, L[k]);
        if (k > 0) consider(x, L[k - 1]);
      }
      if (bestL >= 0 && ++scannedAfterFind > extraScan) break;
    }
    if (bestL < 0) break; // local optimum: no move or swap lowers the heaviest group
    const l = bestL, x = bestX, y = bestY;
    sorted.splice(position(h), 1);
    sorted.splice(position(l), 1);
    // (cost, index) is a total order, so an item's insertion point is its position.
    const remove = (m: number[], i: number) => m.splice(lowerBoundInsert(m, i), 1);
    remove(members[h], x);
    members[l].splice(lowerBoundInsert(members[l], x), 0, x);
    group[x] = l;
    load[h] -= cost[x]; load[l] += cost[x];
    tok[h] -= tokens[x]; tok[l] += tokens[x];
    if (y >= 0) {
      remove(members[l], y);
      members[h].splice(lowerBoundInsert(members[h], y), 0, y);
      group[y] = h;
      load[l] -= cost[y]; load[h] += cost[y];
      tok[l] -= tokens[y]; tok[h] += tokens[y];
    }
    insertAt(h);
    insertAt(l);
  }
  return group;

  function lowerBoundInsert(m: number[], i: number): number {
    let lo = 0, hi = m.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (byCost(m[mid], i) < 0) lo = mid + 1; else hi = mid;
    }
    return lo;
  }
}

/**
 * Make a grouping satisfy the token cap and equal counts, by moving the smallest items of
 * overfull groups to the lightest groups with room. Returns null if it cannot.
 */
export function repair(inp: PartitionInput, group: Int32Array): Int32Array | null {
  const { cost, tokens, groups: R, cap, equalCount } = inp;
  const n = group.length;
  const members: number[][] = Array.from({ length: R }, () => []);
  const load = new Float64Array(R);
  const tok = new Float64Array(R);
  for (let i = 0; i < n; i++) { members[group[i]].push(i); load[group[i]] += cost[i]; tok[group[i]] += tokens[i]; }
  const move = (i: number, from: number, to: number) => {
    members[from].splice(members[from].indexOf(i), 1);
    members[to].push(i);
    group[i] = to;
    load[from] -= cost[i]; load[to] += cost[i];
    tok[from] -= tokens[i]; tok[to] += tokens[i];
  };
  const byLoad = (a: number, b: number) => load[a] - load[b] || a - b;
  if (equalCount) {
    // Target counts: the r groups with the most items keep q+1, the rest q.
    const q = Math.floor(n / R), r = n % R;
    const byCount = Array.from({ length: R }, (_, g) => g).sort((a, b) => members[b].length - members[a].length || a - b);
    const want = new Uint32Array(R);
    byCount.forEach((g, k) => { want[g] = k < r ? q + 1 : q; });
    const under = byCount.filter((g) => members[g].length < want[g]);
    for (const g of byCount) {
      while (members[g].length > want[g]) {
        const i = members[g].reduce((a, b) => (cost[b] < cost[a] || (cost[b] === cost[a] && b < a) ? b : a));
        under.sort(byLoad);
        const to = under.find((u) => members[u].length < want[u] && (cap === undefined || tok[u] + tokens[i] <= cap));
        if (to === undefined) return null;
        move(i, g, to);
      }
    }
  }
  if (cap !== undefined) {
    for (let g = 0; g < R; g++) {
      while (tok[g] > cap) {
        if (equalCount) return null; // moves would break the counts
        const i = members[g].reduce((a, b) => (tokens[b] > tokens[a] || (tokens[b] === tokens[a] && b < a) ? b : a));
        let to = -1;
        for (let u = 0; u < R; u++) if (u !== g && tok[u] + tokens[i] <= cap && (to < 0 || byLoad(u, to) < 0)) to = u;
        if (to < 0) return null;
        move(i, g, to);
      }
    }
  }
  return group;
}
