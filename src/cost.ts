// Stage 3: the cost model. Item costs are quantised once to integers (as fractions of the
// largest item cost on a power-of-two grid, so that every sum the planner forms stays below 2^53
// and is exact in float64, on the CPU and as two u32 words on the GPU, and so that the unit of
// the cost model does not matter): every decision is taken on those exact integers. Reported costs
// are float64 sums of the unquantised item costs, in item order, so they match a float64
// recomputation even where one huge item makes the integer grid coarse for small ones.
import { InputError } from './errors.js';
import type { CostModel, PhaseItems } from './types.js';

export interface PhaseCosts {
  /** Integer cost per item (a float64 holding an integer). */
  cost: Float64Array;
  /** Integer units per cost unit (integer ≈ float cost × scale). */
  scale: number;
  /** Σ cost (integer). */
  total: number;
  /** Largest item cost (integer). */
  max: number;
  /** Unquantised float64 cost per item, for reporting. */
  float: Float64Array;
  /** Σ float (in item order). */
  floatTotal: number;
  /**
   * The integer cost of an item of L tokens, as `cost` holds it (the same arithmetic): for
   * arrays of lengths in another order, such as sorted by length.
   */
  at(L: number): number;
}

export function itemCost(model: CostModel, L: number): number {
  return (model.perItem ?? 0) + (model.perToken ?? 0) * L + (model.perTokenSquared ?? 0) * L * L;
}

/**
 * Bits of the integer grid: n items of at most 2^(GRID_BITS - ceil(log2 n)) units each (so
 * every sum stays below about 2^40). Each cost is kept to about 2^-20 of the largest at a million
 * items, far finer than any balance decision needs, yet coarse enough that the last-bit noise of float costs computed in another unit (1e-12 is
 * not a power of two) almost never moves an item across a rounding boundary: 52 bits changed
 * plans between units, 44 and 40 did not (15,000 random plans × 25 units).
 */
const GRID_BITS = 40;

export function quantiseCosts(items: PhaseItems): PhaseCosts {
  const model = items.phase.cost;
  const n = items.tokens.length;
  const f = new Float64Array(n);
  const { total, max } = floatCosts(model, items.tokens, f);
  if (!Number.isFinite(total) || (items.phase.padding && !Number.isFinite(n * max))) {
    throw new InputError(`phase "${items.phase.name}" cost: item costs overflow float64 (largest ${max}, total ${total}); scale the cost model down`);
  }
  // Unit-free grid: each cost as a fraction of the largest, times 2^k with n · 2^k ≤ 2^GRID_BITS
  // (n items of at most 2^k units each, so every sum and every padded load stays below 2^53
  // even after each item rounds up by 1/2). Neither the unit of the cost model nor a float sum
  // enters the grid, so costs × 1e-12 give the same integers as costs × 1.
  const k = GRID_BITS - Math.ceil(Math.log2(Math.max(n, 1)));
  const unit = Math.pow(2, k);
  const scale = max > 0 ? unit / max : 1;
  const cost = new Float64Array(n);
  const q = onGrid(f, max, unit, cost);
  const a = model.perItem ?? 0, b = model.perToken ?? 0, c = model.perTokenSquared ?? 0;
  const at = (L: number) => (max > 0 ? Math.round(((a + b * L + c * L * L) / max) * unit) : 0);
  return { cost, scale, total: q.total, max: q.max, float: f, floatTotal: total, at };
}

/** costs.at(L) for every length of `tokens` (computed once per run of equal lengths). */
export function costsOfLengths(costs: PhaseCosts, tokens: Uint32Array): Float64Array {
  const out = new Float64Array(tokens.length);
  let last = -1, c = 0;
  for (let k = 0; k < tokens.length; k++) {
    const L = tokens[k];
    if (L !== last) { c = costs.at(L); last = L; }
    out[k] = c;
  }
  return out;
}

// The loops of quantiseCosts, each a small function (optimised on its first calls rather than by
// stack replacement in the middle of a larger one).

/** f[i] = the cost model at tokens[i]; their float64 sum (item order) and max. */
function floatCosts(model: CostModel, tokens: Uint32Array, f: Float64Array): { total: number; max: number } {
  const a = model.perItem ?? 0, b = model.perToken ?? 0, c = model.perTokenSquared ?? 0;
  let total = 0, max = 0;
  for (let i = 0; i < tokens.length; i++) {
    const L = tokens[i];
    const x = a + b * L + c * L * L; // itemCost, term for term
    f[i] = x;
    total += x;
    if (x > max) max = x;
  }
  return { total, max };
}

/** cost[i] = f[i] / max on a grid of `unit` steps; their (integer) sum and max. */
function onGrid(f: Float64Array, max: number, unit: number, cost: Float64Array): { total: number; max: number } {
  let total = 0, top = 0;
  for (let i = 0; i < f.length; i++) {
    const q = max > 0 ? Math.round((f[i] / max) * unit) : 0;
    cost[i] = q;
    total += q;
    if (q > top) top = q;
  }
  return { total, max: top };
}
