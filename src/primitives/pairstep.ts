// The search at the heart of refinement: the best single step between a heavier group h and a
// lighter group l — move one item h → l, or swap an item of h with one of l — that leaves the
// pair's larger load as low as possible. Sequential refinement asks it for one h against many l;
// balance rounds ask it for many disjoint (h, l) pairs at once, which is what the GPU kernel
// (shaders/pair_steps.wgsl) evaluates in parallel, one workgroup a pair, with exactly this
// result (this function is its CPU reference).
//
// Candidates, in scan order (ties go to the first): the move of the item at position a and then
// a − 1 of h's block, where a is the first cost ≥ g/2 (g = L_h − L_l); then, for each distinct
// cost c_x in h (the last item of its run), ascending, the swap with l's item at position k and
// then k − 1, where k is the first cost in l ≥ c_x − g/2. A candidate moves d = c_x − c_y in
// (0, g) from h to l and leaves max(L_h − d, L_l + d); it must respect the token cap on both
// sides, and with equal counts a move only goes from a group of q + 1 items to one of q.
// Searching stops once the pair reaches ⌈(L_h + L_l)/2⌉, below which no step can go.

/** Groups' members as blocks of one arena, each block ascending by (cost, index). */
export interface PairArena {
  /** Member costs: group g's block is mc[off[g] .. off[g] + size[g]). Integers < 2^53. */
  mc: Float64Array;
  /** Member tokens, beside mc. */
  mt: Uint32Array;
  off: Int32Array;
  size: Int32Array;
  /** Group loads (Σ member cost) and token sums; integers < 2^53. */
  load: Float64Array;
  tok: Float64Array;
  /** Token cap per group (Infinity when none). */
  cap: number;
  /** Equal counts: the floor quota ⌊n/R⌋ (moves only q+1 → q); −1 when counts are free. */
  q: number;
  /** Length of the arena prefix that holds every block (entries past it are never read). */
  used: number;
}

/**
 * The best step between h and l that leaves the pair's max below `bestV`: writes the position of
 * x in h's block to out[0] and of y in l's block to out[1] (−1 for a move) and returns its
 * value; leaves `out` alone and returns bestV when no candidate beats it.
 */
export function pairStep(a: PairArena, h: number, l: number, bestV: number, out: Int32Array): number {
  const { mc, mt, tok, cap, q } = a;
  const Lh = a.load[h], Ll = a.load[l];
  const g = Lh - Ll;
  if (g < 2) return bestV; // an integer step d must satisfy 0 < d < g
  const ho = a.off[h], hn = a.size[h];
  const lo = a.off[l], ln = a.size[l];
  const th = tok[h], tl = tok[l];
  const floorV = Math.ceil((Lh + Ll) / 2);
  const half = g / 2;
  if (q < 0 || (hn === q + 1 && ln === q)) {
    let p = 0, b = hn;
    while (p < b) {
      const mid = (p + b) >> 1;
      if (mc[ho + mid] < half) p = mid + 1; else b = mid;
    }
    for (let t = p; t >= p - 1; t--) {
      if (t < 0 || t >= hn) continue;
      const d = mc[ho + t];
      if (d <= 0 || d >= g) continue;
      const tx = mt[ho + t];
      if (tl + tx > cap || th - tx > cap) continue;
      const v = Lh - d > Ll + d ? Lh - d : Ll + d;
      if (v < bestV) { bestV = v; out[0] = t; out[1] = -1; }
    }
  }
  // The search point c_x − g/2 grows with c_x, so one pointer walks l. Both walks gallop: where
  // few lengths exist (images), runs of equal costs are long.
  let k = 0;
  for (let x = 0; x < hn && bestV > floorV; x++) {
    const cx = mc[ho + x];
    if (x + 1 < hn && mc[ho + x + 1] === cx) x = lastOfRun(mc, ho, x, hn);
    const want = cx - half;
    if (k < ln && mc[lo + k] < want) k = firstAtLeast(mc, lo, k, ln, want);
    for (let t = k; t >= k - 1; t--) {
      if (t < 0 || t >= ln) continue;
      const d = cx - mc[lo + t];
      if (d <= 0 || d >= g) continue;
      const dt = mt[ho + x] - mt[lo + t];
      if (tl + dt > cap || th - dt > cap) continue;
      const v = Lh - d > Ll + d ? Lh - d : Ll + d;
      if (v < bestV) { bestV = v; out[0] = x; out[1] = t; }
    }
  }
  return bestV;
}

/** The last index of the run of costs equal to mc[o + x] (x < n), galloping then bisecting. */
function lastOfRun(mc: Float64Array, o: number, x: number, n: number): number {
  const c = mc[o + x];
  let step = 1;
  while (x + step < n && mc[o + x + step] === c) { x += step; step *= 2; }
  let hi = Math.min(x + step, n); // mc[o + x] === c; mc[o + hi] !== c (or hi === n)
  while (hi - x > 1) {
    const mid = (x + hi) >> 1;
    if (mc[o + mid] === c) x = mid; else hi = mid;
  }
  return x;
}

/** The first index ≥ k (k < n, mc[o + k] < want) with mc ≥ want, or n: galloping then bisecting. */
function firstAtLeast(mc: Float64Array, o: number, k: number, n: number, want: number): number {
  let step = 1;
  while (k + step < n && mc[o + k + step] < want) { k += step; step *= 2; }
  let hi = Math.min(k + step, n); // mc[o + k] < want; mc[o + hi] >= want (or hi === n)
  while (hi - k > 1) {
    const mid = (k + hi) >> 1;
    if (mc[o + mid] < want) k = mid; else hi = mid;
  }
  return hi;
}

/**
 * Every pair's best step (pairs = [h0, l0, h1, l1, …], disjoint, each h at least as heavy as
 * its l): 2 entries a pair, [position in h, position in l or −1 for a move], or [−1, −1] when
 * no step lowers the pair's max.
 */
export function pairStepsCpu(a: PairArena, pairs: Int32Array): Int32Array {
  const P = pairs.length >> 1;
  const steps = new Int32Array(2 * P).fill(-1);
  const out = new Int32Array(2);
  for (let i = 0; i < P; i++) {
    const h = pairs[2 * i];
    out[0] = -1; out[1] = -1;
    pairStep(a, h, pairs[2 * i + 1], a.load[h], out);
    steps[2 * i] = out[0];
    steps[2 * i + 1] = out[1];
  }
  return steps;
}
