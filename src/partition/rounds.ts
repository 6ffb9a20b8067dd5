// The data-parallel balancer (`--algorithm rounds`): sort → deal → balance rounds, all of them
// accelerator primitives (src/primitives/balance.ts, kernels on the GPU backend), then a bounded
// polish on the host: the heaviest group's best move or swap with any lighter group, one step at
// a time, for the few groups the rounds left above the target.
import type { Accelerator } from '../primitives/accelerator.js';
import { arenaOf, exchange, type BalanceState, type Deal } from '../primitives/balance.js';
import { pairStep } from '../primitives/pairstep.js';
import { reposition, type PartitionInput } from './common.js';

/** At most this many balance rounds (they stop earlier when a round changes nothing). */
export const MAX_BALANCE_ROUNDS = 64;

export interface RoundsOptions {
  deal: Deal;
  /** Sampled rank of every item (item order): needed by the "home" deal. */
  sampledRank?: Int32Array;
  /** Integer target: rounds and polish stop once no group is above it. */
  target: number;
  maxRounds?: number;
  /** Polish steps at most (default R). */
  polishSteps?: number;
}

export interface RoundsOutcome {
  /** Group of every item (item order). */
  group: Int32Array;
  rounds: number;
  steps: number;
  polishSteps: number;
  /** The largest group load, and whether every group meets the token cap and equal counts. */
  maxLoad: number;
  valid: boolean;
}

/** Costs, tokens and sampled ranks by position in cost order (the balancer's view of a phase). */
export function byPosition(inp: PartitionInput, sampledRank?: Int32Array): { cost: Float64Array; tokens: Uint32Array; home: Int32Array } {
  const { order, cost, tokens } = inp;
  const n = order.length;
  const home = new Int32Array(sampledRank ? n : 0);
  if (inp.byPosition) {
    if (sampledRank) gatherHome(order, sampledRank, home);
    return { ...inp.byPosition, home };
  }
  const c = new Float64Array(n), t = new Uint32Array(n);
  gather(order, cost, tokens, sampledRank, c, t, home);
  return { cost: c, tokens: t, home };
}

function gatherHome(order: Uint32Array, sampled: Int32Array, home: Int32Array): void {
  for (let k = 0; k < order.length; k++) home[k] = sampled[order[k]];
}

function gather(order: Uint32Array, cost: Float64Array, tokens: Uint32Array, sampled: Int32Array | undefined, c: Float64Array, t: Uint32Array, home: Int32Array): void {
  if (sampled) {
    for (let k = 0; k < order.length; k++) {
      const i = order[k];
      c[k] = cost[i];
      t[k] = tokens[i];
      home[k] = sampled[i];
    }
  } else {
    for (let k = 0; k < order.length; k++) {
      const i = order[k];
      c[k] = cost[i];
      t[k] = tokens[i];
    }
  }
}

/**
 * The deal and balance rounds on the accelerator, then the polish on the host (continuing from
 * the CPU reference's state, or from the groups the device read back).
 */
export async function roundsPartition(inp: PartitionInput, opts: RoundsOptions, accel: Accelerator): Promise<RoundsOutcome> {
  const { order, groups: R } = inp;
  const n = order.length;
  const view = byPosition(inp, opts.deal === 'home' ? opts.sampledRank : undefined);
  const cap = inp.cap ?? Infinity, q = inp.equalCount ? Math.floor(n / R) : -1;
  const res = await accel.balance({ ...view, groups: R, target: opts.target, cap, q, deal: opts.deal, maxRounds: opts.maxRounds ?? MAX_BALANCE_ROUNDS });
  const s = res.state ?? arenaOf({ cost: view.cost, tokens: view.tokens, groups: R, cap, q }, res.group);
  const polished = polish(s, opts.target, opts.polishSteps ?? R);
  const group = new Int32Array(n);
  toItemOrder(order, s.group, group);
  return { group, rounds: res.rounds, steps: res.steps, polishSteps: polished, maxLoad: s.load[s.sorted[R - 1]], valid: meetsConstraints(s) };
}

function toItemOrder(order: Uint32Array, byPos: Int32Array, group: Int32Array): void {
  for (let k = 0; k < order.length; k++) group[order[k]] = byPos[k];
}

/** Token cap and equal counts, from the groups' sums (what feasible() checks item by item). */
function meetsConstraints(s: BalanceState): boolean {
  for (let g = 0; g < s.R; g++) {
    if (s.tok[g] > s.cap) return false;
    if (s.q >= 0 && (s.size[g] < s.q || s.size[g] > s.q + 1)) return false;
  }
  return true;
}

/** After a step is found, scan this many further lighter groups for a better one. */
const EXTRA_SCAN = 8;
/** The polish tries at most this many lighter groups for the heaviest (lightest first). */
export const POLISH_SCAN = 64;

/**
 * Steps for the heaviest group until it is within target, at a local optimum, or `limit` steps:
 * its best move or swap with a lighter group (lightest first; the scan stops once no later group
 * can beat the best found, or EXTRA_SCAN groups after the first find). Returns the steps taken.
 */
export function polish(s: BalanceState, target: number, limit: number): number {
  const { sorted, load, R } = s;
  const at = new Int32Array(2), at2 = new Int32Array(5);
  const runs = runsCache(s);
  let steps = 0;
  for (; steps < limit; steps++) {
    const h = sorted[R - 1];
    if (load[h] <= target) break;
    const Lh = load[h];
    let bestV = Lh, bestL = -1, bestX = -1, bestY = -1, after = 0;
    const scanEnd = Math.min(R - 1, POLISH_SCAN);
    for (let si = 0; si < scanEnd; si++) {
      const l = sorted[si];
      const Ll = load[l];
      if (Lh - Ll < 2 || Lh - Ll <= s.resolution) break; // no step fits in the gap (0 < d < g)
      if (bestV <= Math.ceil((Lh + Ll) / 2)) break; // no step with l or heavier can do better
      const v = pairStep(s, h, l, bestV, at);
      if (v < bestV) {
        bestV = v; bestL = l;
        bestX = s.mem[s.off[h] + at[0]];
        bestY = at[1] >= 0 ? s.mem[s.off[l] + at[1]] : -1;
      }
      if (bestL >= 0 && ++after > EXTRA_SCAN) break;
    }
    if (bestL < 0) {
      // A local optimum for single moves and swaps: try one item against two.
      if (!compoundSearch(s, h, at2, runs)) break;
      const l = at2[0];
      runs.changed(h); runs.changed(l);
      const oldH = load[h], oldL = load[l];
      exchange(s, h, l, at2[1], at2[2]);
      if (at2[3] >= 0) exchange(s, h, l, at2[3], -1);
      else exchange(s, l, h, at2[4], -1);
      const newH = load[h], newL = load[l];
      load[h] = oldH; load[l] = oldL;
      reposition(s, h, newH);
      reposition(s, l, newL);
      continue;
    }
    const oldH = load[h], oldL = load[bestL];
    runs.changed(h); runs.changed(bestL);
    exchange(s, h, bestL, bestX, bestY);
    const newH = load[h], newL = load[bestL];
    load[h] = oldH; load[bestL] = oldL;
    reposition(s, h, newH);
    reposition(s, bestL, newL);
  }
  return steps;
}

/** Compound steps are searched only between blocks of at most this many distinct item sizes. */
const COMPOUND_MAX_RUNS = 32;
/** ... and with this many of the lightest groups. */
const COMPOUND_SCAN = 32;

/**
 * The best compound step for h with one of the lightest groups: one item of h for two of l, or
 * two of h for one of l (where few distinct item sizes make single swaps too coarse: a 576-token
 * image for two 256-token ones moves far less than either). Writes [l, x, y, x2, y2] (x2 or y2
 * the second item of h or of l, the other −1; x moves h → l, y moves l → h) and returns whether
 * one lowers the pair's max. Items of equal (cost, tokens) are interchangeable, so the search runs
 * over runs of equal items: the last item of a run is taken (and the one before it, for a pair
 * from the same run). Scan order: lighter groups lightest first (up to COMPOUND_SCAN of them, and
 * EXTRA_SCAN more after the first that has a step), then one-for-two before two-for-one, runs
 * ascending; ties go to the first found.
 */
function compoundSearch(s: BalanceState, h: number, out: Int32Array, runs: RunsCache): boolean {
  const { sorted, load, R } = s;
  const Lh = load[h];
  let bestV = Lh, found = false;
  const hr = runs.of(h);
  if (hr.length > COMPOUND_MAX_RUNS * 3) return false;
  const scanEnd = Math.min(R - 1, COMPOUND_SCAN);
  let after = 0;
  for (let si = 0; si < scanEnd; si++) {
    const l = sorted[si];
    const Ll = load[l];
    const g = Lh - Ll;
    if (g < 2 || bestV <= Math.ceil((Lh + Ll) / 2)) break;
    const lr = runs.of(l);
    if (lr.length > COMPOUND_MAX_RUNS * 3) continue;
    const v1 = oneForTwo(s, h, l, hr, lr, bestV, out, false);
    if (v1 < bestV) { bestV = v1; found = true; }
    const v2 = oneForTwo(s, l, h, lr, hr, bestV, out, true);
    if (v2 < bestV) { bestV = v2; found = true; }
    if (found && ++after > EXTRA_SCAN) break; // as the single-step search: a few more, then stop
  }
  return found;
}

/** Each group's runs (runsOf), kept until a step changes the group: the lightest groups are asked again and again. */
interface RunsCache {
  of(g: number): number[];
  changed(g: number): void;
}

function runsCache(s: BalanceState): RunsCache {
  const cached = new Map<number, number[]>();
  return {
    of(g) {
      let r = cached.get(g);
      if (r === undefined) { r = runsOf(s, g); cached.set(g, r); }
      return r;
    },
    changed(g) { cached.delete(g); },
  };
}

/**
 * Runs of equal (cost, tokens) in group g's block, as triples [cost, tokens, last position in
 * the block]: ascending cost.
 */
function runsOf(s: BalanceState, g: number): number[] {
  const o = s.off[g], n = s.size[g];
  const { mc, mt } = s;
  const runs: number[] = [];
  for (let p = 0; p < n && runs.length <= COMPOUND_MAX_RUNS * 3; p++) {
    const c = mc[o + p], t = mt[o + p];
    // Gallop to the run's last item: where runs are long (few sizes) this skips most of them.
    let step = 1;
    while (p + step < n && mc[o + p + step] === c && mt[o + p + step] === t) { p += step; step *= 2; }
    let hi = Math.min(p + step, n);
    while (hi - p > 1) {
      const mid = (p + hi) >> 1;
      if (mc[o + mid] === c && mt[o + mid] === t) p = mid; else hi = mid;
    }
    runs.push(c, t, p);
  }
  return runs;
}

/**
 * One item of `one` against two of `two` (one-for-two: one = h, two = l; two-for-one,
 * `reversed`: one = l, two = h). The move lowers h by d = (what h gives) − (what h gets), needing
 * 0 < d < g; returns the pair's new max if below bestV (and writes out), else bestV.
 */
function oneForTwo(s: BalanceState, one: number, two: number, ar: number[], br: number[], bestV: number, out: Int32Array, reversed: boolean): number {
  const h = reversed ? two : one, l = reversed ? one : two;
  const Lh = s.load[h], Ll = s.load[l], g = Lh - Ll;
  const th = s.tok[h], tl = s.tok[l], cap = s.cap, q = s.q;
  // Counts: one-for-two gives h one item more; two-for-one one fewer.
  if (q >= 0 && !(reversed ? s.size[h] === q + 1 && s.size[l] === q : s.size[h] === q && s.size[l] === q + 1)) return bestV;
  const nb = br.length / 3;
  const floorV = Math.ceil((Lh + Ll) / 2); // no step leaves the pair below this
  for (let a = 0; a < ar.length && bestV > floorV; a += 3) {
    const ca = ar[a], ta = ar[a + 1];
    for (let b = 0; b < nb; b++) {
      const cb = br[3 * b], tb = br[3 * b + 1];
      // The second of `two`, from run c ≥ b, with cost near what leaves d ≈ g/2:
      // one-for-two: d = ca − cb − cc; two-for-one: d = cb + cc − ca.
      const want = reversed ? ca - cb + g / 2 : ca - cb - g / 2;
      let lo = b, hi = nb;
      while (lo < hi) { const mid = (lo + hi) >> 1; if (br[3 * mid] < want) lo = mid + 1; else hi = mid; }
      for (let c = lo; c >= lo - 1; c--) {
        if (c < b || c >= nb) continue;
        if (c === b && (br[3 * b + 2] === 0 || (b > 0 && br[3 * b + 2] - 1 === br[3 * (b - 1) + 2]))) continue; // run of one item
        const cc = br[3 * c], tc = br[3 * c + 1];
        const d = reversed ? cb + cc - ca : ca - cb - cc;
        if (d <= 0 || d >= g) continue;
        const dt = reversed ? tb + tc - ta : ta - tb - tc; // tokens h gives away, net
        if (tl + dt > cap || th - dt > cap) continue;
        const v = Lh - d > Ll + d ? Lh - d : Ll + d;
        if (v >= bestV) continue;
        bestV = v;
        const pa = s.mem[s.off[one] + ar[a + 2]];
        const pb = s.mem[s.off[two] + br[3 * b + 2]];
        const pc = s.mem[s.off[two] + br[3 * c + 2] - (c === b ? 1 : 0)];
        if (!reversed) { out[0] = l; out[1] = pa; out[2] = pb; out[3] = -1; out[4] = pc; }
        else { out[0] = l; out[1] = pb; out[2] = pa; out[3] = pc; out[4] = -1; }
      }
    }
  }
  return bestV;
}
