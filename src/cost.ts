// Stage 3: the cost model. Item costs are quantised once to integers (scaled by a power of two
// so that every sum the planner forms stays below 2^53 and is exact in float64, on the CPU and
// as two u32 words on the GPU): every decision is taken on those exact integers. Reported costs
// are float64 sums of the unquantised item costs, in item order, so they match a float64
// recomputation even where one huge item makes the integer grid coarse for small ones.
import { InputError } from './errors.js';
import type { CostModel, PhaseItems } from './types.js';

export interface PhaseCosts {
  /** Integer cost per item (a float64 holding an integer). */
  cost: Float64Array;
  /** Power of two the float costs were multiplied by; reported cost = integer / scale. */
  scale: number;
  /** Σ cost (integer). */
  total: number;
  /** Largest item cost (integer). */
  max: number;
  /** Unquantised float64 cost per item, for reporting. */
  float: Float64Array;
  /** Σ float (in item order). */
  floatTotal: number;
}

export function itemCost(model: CostModel, L: number): number {
  return (model.perItem ?? 0) + (model.perToken ?? 0) * L + (model.perTokenSquared ?? 0) * L * L;
}

/** Largest power of two 2^k with bound · 2^k ≤ 2^52 (k within float64's exponent range). */
function scaleFor(bound: number): number {
  if (bound <= 0) return 1;
  const k = Math.floor(52 - Math.log2(bound));
  return Math.pow(2, Math.min(1023, Math.max(k, -1074)));
}

export function quantiseCosts(items: PhaseItems): PhaseCosts {
  const model = items.phase.cost;
  const n = items.tokens.length;
  const f = new Float64Array(n);
  let total = 0, max = 0;
  for (let i = 0; i < n; i++) {
    const c = itemCost(model, items.tokens[i]);
    f[i] = c;
    total += c;
    if (c > max) max = c;
  }
  if (!Number.isFinite(total) || (items.phase.padding && !Number.isFinite(n * max))) {
    throw new InputError(`phase "${items.phase.name}" cost: item costs overflow float64 (largest ${max}, total ${total}); scale the cost model down`);
  }
  // Padded loads are count × longest: bound them by n · max as well as by the total.
  const bound = items.phase.padding ? Math.max(total, n * max) : total;
  // One unit of slack for per-item rounding (each item rounds up by at most 1/2).
  const scale = scaleFor(bound * 1.001 + n);
  const cost = new Float64Array(n);
  let qt = 0, qm = 0;
  for (let i = 0; i < n; i++) {
    const q = Math.round(f[i] * scale);
    cost[i] = q;
    qt += q;
    if (q > qm) qm = q;
  }
  return { cost, scale, total: qt, max: qm, float: f, floatTotal: total };
}
