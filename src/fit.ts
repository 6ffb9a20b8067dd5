// Cost models fitted from measured times (`postbalance fit`). A sample is one rank's measured
// time for one phase of one step and the lengths of the items it ran there:
//   {"phase":"vision","lengths":[576,256,...],"ms":12.3}
// Under the cost model a rank's time is Σ over its items of perItem + perToken·L +
// perTokenSquared·L², so each sample is one linear equation in the three coefficients with
// features (count, Σ L, Σ L²) (padded phases: count × (1, L_max, L_max²), as the planner counts
// a padded rank). The coefficients are the non-negative least-squares fit of those equations,
// each divided by its measured time first: timing noise grows with the time, and unweighted, the
// longest steps drown the short ones that alone show perItem (600 synthetic samples with ±2%
// noise, 300 seeds: the worst coefficient off by 76% unweighted, by 1% weighted). R² and the
// residual are reported in ms.
//
// NNLS for three unknowns, exactly: the optimum's non-zero coefficients are the unconstrained
// least-squares solution on their own support (the KKT conditions), so the fit solves least
// squares on each of the 7 non-empty supports (and the empty one), keeps the solutions whose
// coefficients are all ≥ 0, and takes the one of least residual (ties: the larger support, in a
// fixed order). Each least-squares problem is solved by Householder QR on the columns scaled to
// unit length (the features span ~10 orders of magnitude: count vs Σ L²), never by normal
// equations. A design whose scaled condition number exceeds 1e8 (e.g. every item of one length:
// the three features are then proportional) cannot tell the coefficients apart and is refused.
import { describe, inputError, InputError } from './errors.js';
import { forEachJsonLine } from './input.js';
import type { Config, CostModel } from './types.js';

/** One phase's samples as equations: features (count, Σ L, Σ L²) and the measured ms. */
export interface PhaseSamples {
  count: number[];
  sumL: number[];
  sumL2: number[];
  ms: number[];
}

const SAMPLE_KEYS = ['phase', 'lengths', 'ms', 'rank', 'step'];
const MAX_U32 = 0xffffffff;
/**
 * A sample's ms is 0 or in [MIN_MS, MAX_MS] (a picosecond to 31 years): past these the fit's
 * arithmetic overflows (ms² in the residual, features / ms in the weighted rows), and no timer
 * gives them; such a line is a corrupt one, named as such.
 */
export const MIN_MS = 1e-9;
export const MAX_MS = 1e12;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parses samples JSONL against a config: per phase name, its equations. `rank` and `step` may be
 * given (non-negative integers, for the record); other fields are an error. Blank lines are
 * skipped.
 */
export function parseSamples(text: string, config: Config): Map<string, PhaseSamples> {
  const phases = new Map(config.phases.map((p) => [p.name, p]));
  const out = new Map<string, PhaseSamples>();
  forEachJsonLine(text, 'samples', (obj, where) => {
    if (!isObject(obj)) throw inputError(where, `must be a JSON object like {"phase":"vision","lengths":[576,256],"ms":12.3}, got ${describe(obj)}`);
    for (const k of Object.keys(obj)) {
      if (!SAMPLE_KEYS.includes(k)) throw inputError(`${where}, field "${k}"`, `unknown field (allowed: ${SAMPLE_KEYS.join(', ')})`);
    }
    if (typeof obj.phase !== 'string') throw inputError(`${where}, field "phase"`, `must be a phase name, got ${describe(obj.phase)}`);
    const phase = phases.get(obj.phase);
    if (!phase) throw inputError(`${where}, field "phase"`, `${describe(obj.phase)} is not a phase of the config (${config.phases.map((p) => p.name).join(', ')})`);
    if (!Array.isArray(obj.lengths)) throw inputError(`${where}, field "lengths"`, `must be an array of item lengths, got ${describe(obj.lengths)}`);
    const ms = obj.ms;
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) throw inputError(`${where}, field "ms"`, `must be a non-negative number of milliseconds, got ${describe(ms)}`);
    if (ms > MAX_MS || (ms > 0 && ms < MIN_MS)) throw inputError(`${where}, field "ms"`, `must be 0 or between 1e-9 and 1e12 milliseconds (a picosecond to 31 years), got ${describe(ms)}`);
    for (const k of ['rank', 'step'] as const) {
      const v = obj[k];
      if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 0)) throw inputError(`${where}, field "${k}"`, `must be a non-negative integer, got ${describe(v)}`);
    }
    let sumL = 0, sumL2 = 0, longest = 0;
    const lengths = obj.lengths as unknown[];
    for (let j = 0; j < lengths.length; j++) {
      const L = lengths[j];
      if (typeof L !== 'number' || !Number.isInteger(L) || L < 0 || L > MAX_U32) {
        throw inputError(`${where}, field "lengths"[${j}]`, `must be an integer length in [0, 2^32-1], got ${describe(L)}`);
      }
      sumL += L;
      sumL2 += L * L;
      if (L > longest) longest = L;
    }
    const n = lengths.length;
    let s = out.get(phase.name);
    if (!s) out.set(phase.name, (s = { count: [], sumL: [], sumL2: [], ms: [] }));
    // A padded rank costs count × the cost of its longest item.
    s.count.push(n);
    s.sumL.push(phase.padding ? n * longest : sumL);
    s.sumL2.push(phase.padding ? n * longest * longest : sumL2);
    s.ms.push(ms);
  });
  return out;
}

/** Least squares on the columns `cols` (each of length m): coefficients and residual sum of squares; null when singular. */
export function leastSquares(cols: readonly Float64Array[], y: Float64Array): { coef: Float64Array; ss: number } | null {
  const m = y.length, k = cols.length;
  if (k === 0) {
    let ss = 0;
    for (let i = 0; i < m; i++) ss += y[i] * y[i];
    return { coef: new Float64Array(0), ss };
  }
  if (m < k) return null;
  // Householder QR of [cols | y], column by column.
  const a = cols.map((c) => Float64Array.from(c));
  const b = Float64Array.from(y);
  const r = new Float64Array(k * k);
  for (let j = 0; j < k; j++) {
    const v = a[j];
    let norm = 0;
    for (let i = j; i < m; i++) norm += v[i] * v[i];
    norm = Math.sqrt(norm);
    if (norm === 0) return null;
    const alpha = v[j] > 0 ? -norm : norm;
    // Reflector u = v[j..] − alpha·e_j, applied to the later columns and to b.
    const u0 = v[j] - alpha;
    let uu = u0 * u0;
    for (let i = j + 1; i < m; i++) uu += v[i] * v[i];
    const apply = (w: Float64Array) => {
      let dot = u0 * w[j];
      for (let i = j + 1; i < m; i++) dot += v[i] * w[i];
      const f = (2 * dot) / uu;
      w[j] -= f * u0;
      for (let i = j + 1; i < m; i++) w[i] -= f * v[i];
    };
    for (let c = j + 1; c < k; c++) apply(a[c]);
    if (uu > 0) apply(b);
    r[j * k + j] = alpha;
    for (let c = j + 1; c < k; c++) r[j * k + c] = a[c][j];
  }
  // Back substitution R·coef = (Qᵀy)[0..k).
  const coef = new Float64Array(k);
  for (let j = k - 1; j >= 0; j--) {
    let s = b[j];
    for (let c = j + 1; c < k; c++) s -= r[j * k + c] * coef[c];
    coef[j] = s / r[j * k + j];
  }
  let ss = 0;
  for (let i = k; i < m; i++) ss += b[i] * b[i];
  return { coef, ss };
}

/**
 * Singular values of a matrix with columns `cols`, largest first: square roots of the
 * eigenvalues of its Gram matrix, by cyclic Jacobi rotations (exact enough for a condition
 * check on 3 columns scaled to unit length).
 */
export function singularValues(cols: readonly Float64Array[]): number[] {
  const k = cols.length;
  const g = Array.from({ length: k }, (_, i) => Array.from({ length: k }, (_, j) => {
    let s = 0;
    for (let t = 0; t < cols[i].length; t++) s += cols[i][t] * cols[j][t];
    return s;
  }));
  for (let sweep = 0; sweep < 64; sweep++) {
    let off = 0;
    for (let p = 0; p < k; p++) for (let q = p + 1; q < k; q++) off += g[p][q] * g[p][q];
    if (off === 0) break;
    for (let p = 0; p < k; p++) {
      for (let q = p + 1; q < k; q++) {
        if (g[p][q] === 0) continue;
        const theta = (g[q][q] - g[p][p]) / (2 * g[p][q]);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let i = 0; i < k; i++) { // columns p, q
          const gp = g[i][p], gq = g[i][q];
          g[i][p] = c * gp - s * gq;
          g[i][q] = s * gp + c * gq;
        }
        for (let i = 0; i < k; i++) { // rows p, q
          const gp = g[p][i], gq = g[q][i];
          g[p][i] = c * gp - s * gq;
          g[q][i] = s * gp + c * gq;
        }
      }
    }
  }
  return g.map((row, i) => Math.sqrt(Math.max(0, row[i]))).sort((x, y) => y - x);
}

/**
 * Non-negative least squares over columns `cols` (see the header: every support, the best
 * feasible one). Returns the coefficients (0 off the support) and the residual sum of squares.
 */
export function nnls(cols: readonly Float64Array[], y: Float64Array): { coef: Float64Array; ss: number } {
  const k = cols.length;
  let best: { coef: Float64Array; ss: number } | null = null;
  // Supports by size descending, then in index order: the first of equal residuals wins.
  const supports: number[][] = [];
  for (let mask = (1 << k) - 1; mask >= 0; mask--) supports.push([...Array(k).keys()].filter((j) => mask & (1 << j)));
  supports.sort((x, y) => y.length - x.length);
  for (const support of supports) {
    const ls = leastSquares(support.map((j) => cols[j]), y);
    if (!ls || ls.coef.some((c) => !(c >= 0))) continue;
    if (best && !(ls.ss < best.ss)) continue;
    const coef = new Float64Array(k);
    support.forEach((j, t) => { coef[j] = ls.coef[t]; });
    best = { coef, ss: ls.ss };
  }
  return best!; // the empty support is always feasible
}

/** Condition numbers past this (columns scaled to unit length) are refused: the fit would be noise. */
export const MAX_CONDITION = 1e8;

export interface PhaseFit {
  cost: Required<CostModel>;
  samples: number;
  /** 1 − SS_res / SS_tot (null when every sample took the same time). */
  r2: number | null;
  /** Root mean square of the residuals, ms. */
  rmsMs: number;
}

/** The cost model of one phase fitted from its samples (one-line InputError when it cannot be). */
export function fitPhase(name: string, s: PhaseSamples): PhaseFit {
  const m = s.ms.length;
  const distinct = new Set(s.count.map((c, i) => `${c},${s.sumL[i]},${s.sumL2[i]}`)).size;
  if (distinct < 3) {
    throw new InputError(`phase "${name}": ${distinct} distinct sample${distinct === 1 ? '' : 's'} (item count, Σ length, Σ length²) in ${m} line${m === 1 ? '' : 's'}; at least 3 are needed to fit perItem, perToken and perTokenSquared`);
  }
  const raw = [Float64Array.from(s.count), Float64Array.from(s.sumL), Float64Array.from(s.sumL2)];
  const scale = raw.map((c) => Math.sqrt(c.reduce((a, x) => a + x * x, 0)));
  if (scale.some((x) => x === 0)) {
    throw new InputError(`phase "${name}": every sample ran no item or only items of length 0; the samples cannot tell perItem, perToken and perTokenSquared apart`);
  }
  // Rows weighted by 1 / ms (relative error: timing noise grows with the time), then columns
  // scaled to unit length.
  const w = s.ms.map((v) => (v > 0 ? 1 / v : 1));
  const weighted = raw.map((c) => c.map((x, i) => x * w[i]));
  const wscale = weighted.map((c) => Math.sqrt(c.reduce((a, x) => a + x * x, 0)));
  const cols = weighted.map((c, j) => c.map((x) => x / wscale[j]));
  const sv = singularValues(cols);
  const cond = sv[sv.length - 1] > 0 ? sv[0] / sv[sv.length - 1] : Infinity;
  if (!(cond <= MAX_CONDITION)) {
    throw new InputError(`phase "${name}": the samples cannot tell perItem, perToken and perTokenSquared apart (condition number ${cond === Infinity ? 'infinite' : cond.toExponential(1)}, over ${MAX_CONDITION.toExponential(0)}: e.g. every item of one length); sample steps with items of varied lengths and counts`);
  }
  const y = Float64Array.from(s.ms);
  const { coef } = nnls(cols, Float64Array.from(s.ms, (v, i) => v * w[i]));
  const c = Array.from(coef, (x, j) => x / wscale[j]);
  let ss = 0;
  for (let i = 0; i < m; i++) { const d = c[0] * raw[0][i] + c[1] * raw[1][i] + c[2] * raw[2][i] - y[i]; ss += d * d; }
  let mean = 0;
  for (const v of y) mean += v;
  mean /= m;
  let tot = 0;
  for (const v of y) tot += (v - mean) * (v - mean);
  return {
    cost: { perItem: c[0], perToken: c[1], perTokenSquared: c[2] },
    samples: m,
    r2: tot > 0 ? 1 - ss / tot : null,
    rmsMs: Math.sqrt(ss / m),
  };
}

/**
 * The fitted config: `original` (the config JSON as written, validated as `config`) with the
 * `cost` of every sampled phase replaced by its fit (6 significant digits); other phases keep
 * theirs. Also the fits, by phase name, for the report.
 */
export function fitConfig(original: Record<string, unknown>, config: Config, samples: Map<string, PhaseSamples>): { config: Record<string, unknown>; fits: Map<string, PhaseFit> } {
  if (samples.size === 0) throw new InputError('samples: no sample lines (expected one JSON line per rank, phase and step, like {"phase":"vision","lengths":[576,256],"ms":12.3})');
  const fits = new Map<string, PhaseFit>();
  for (const p of config.phases) {
    const s = samples.get(p.name);
    if (s) fits.set(p.name, fitPhase(p.name, s));
  }
  const out = structuredClone(original);
  const phases = out.phases as Record<string, unknown>[];
  config.phases.forEach((p, i) => {
    const f = fits.get(p.name);
    if (!f) return;
    const six = (x: number) => Number(x.toPrecision(6));
    phases[i].cost = { perItem: six(f.cost.perItem), perToken: six(f.cost.perToken), perTokenSquared: six(f.cost.perTokenSquared) };
  });
  return { config: out, fits };
}
