// Refinement's building blocks: the pair-step search (the CPU reference of the GPU kernel) on
// hand-checked arenas and against an exhaustive search, and balance rounds inside refine on a
// phase large enough to run them.
import { describe, expect, it } from 'vitest';
import { cpuAccelerator, sortDescCpu, type Accelerator, type PairArena } from '../src/primitives/accelerator.js';
import { groupLoads, maxOf, type PartitionInput } from '../src/partition/common.js';
import { lpt } from '../src/partition/lpt.js';
import { pairStep, pairStepsCpu } from '../src/primitives/pairstep.js';
import { refine, ROUNDS_MIN_ITEMS } from '../src/partition/refine.js';
import { mulberry, testSeed } from './helpers.js';

/** An arena from per-group cost lists (each sorted ascending here), tokens = costs unless given. */
function arena(groups: number[][], opts: { tokens?: number[][]; cap?: number; q?: number; gap?: number } = {}): PairArena {
  const R = groups.length;
  const off = new Int32Array(R), size = new Int32Array(R);
  const load = new Float64Array(R), tok = new Float64Array(R);
  const mc: number[] = [], mt: number[] = [];
  for (let g = 0; g < R; g++) {
    for (let k = 0; k < (opts.gap ?? 0); k++) { mc.push(-1); mt.push(0); } // slack between blocks: never read
    off[g] = mc.length;
    const order = groups[g].map((c, k) => [c, opts.tokens?.[g][k] ?? c]).sort((a, b) => a[0] - b[0]);
    for (const [c, t] of order) { mc.push(c); mt.push(t); load[g] += c; tok[g] += t; }
    size[g] = order.length;
  }
  return {
    mc: Float64Array.from(mc), mt: Uint32Array.from(mt), off, size, load, tok,
    cap: opts.cap ?? Infinity, q: opts.q ?? -1, used: mc.length,
  };
}

function step(a: PairArena, h: number, l: number): { v: number; at: number[] } {
  const out = Int32Array.from([-1, -1]);
  const v = pairStep(a, h, l, a.load[h], out);
  return { v, at: Array.from(out) };
}

describe('pairStep (hand-checked)', () => {
  it('h = 1,3,5,8 (17), l = 2,4 (6): moving the 5 leaves max(12, 11) = 12, the floor', () => {
    // g = 11: moves try 8 (max 14) then 5 (max 12); 12 = ⌈23/2⌉, so no swap is searched.
    expect(step(arena([[1, 3, 5, 8], [2, 4]]), 0, 1)).toEqual({ v: 12, at: [2, -1] });
  });

  it('h = 6,6 (12), l = 1,5 (6): no move fits (d = 6 = g), swapping a 6 for the 1 gives 11', () => {
    // Swaps for c = 6 (last of its run): y closest to 6 − 3 = 3 is 5 (d = 1, max 11) then 1
    // (d = 5, max 11, not better): the first found wins.
    expect(step(arena([[6, 6], [1, 5]]), 0, 1)).toEqual({ v: 11, at: [1, 1] });
  });

  it('a token cap that forbids the best move falls back to the next valid candidate', () => {
    // Without a cap: move the 5 (max 12). With cap 12 on tokens (l holds 6 tokens): the 5's
    // 5 tokens would make 11 on l, allowed; give the 5 ten tokens and it is not.
    const free = arena([[1, 3, 5, 8], [2, 4]], { tokens: [[1, 3, 10, 8], [2, 4]], cap: Infinity });
    expect(step(free, 0, 1)).toEqual({ v: 12, at: [2, -1] });
    const capped = arena([[1, 3, 5, 8], [2, 4]], { tokens: [[1, 3, 10, 8], [2, 4]], cap: 12 });
    const r = step(capped, 0, 1);
    expect(r.at).not.toEqual([2, -1]);
    expect(r.v).toBeGreaterThan(12);
  });

  it('equal counts: a move only from q+1 items to q', () => {
    // h = 4,4,4 (12), l = 1,1 (2): moving a 4 leaves max(8, 6) = 8, better than any swap (9).
    expect(step(arena([[4, 4, 4], [1, 1]], { q: 2 }), 0, 1)).toEqual({ v: 8, at: [2, -1] });
    // h = 4,4,4,4 (16) has q + 2 items: no move; swapping a 4 for a 1 leaves 13.
    expect(step(arena([[4, 4, 4, 4], [1, 1]], { q: 2 }), 0, 1)).toEqual({ v: 13, at: [3, 0] });
    expect(step(arena([[4, 4, 4, 4], [1, 1]]), 0, 1)).toEqual({ v: 12, at: [3, -1] }); // free counts: a move
  });

  it('no step when the pair differs by less than 2, or nothing fits', () => {
    expect(step(arena([[3], [2]]), 0, 1)).toEqual({ v: 3, at: [-1, -1] });
    expect(step(arena([[10], []]), 0, 1)).toEqual({ v: 10, at: [-1, -1] }); // moving 10 leaves 10
  });
});

/** Exhaustive: the lowest max(L_h − d, L_l + d) over every move and swap with 0 < d < g. */
function bruteForce(a: PairArena, h: number, l: number): number {
  const Lh = a.load[h], Ll = a.load[l], g = Lh - Ll;
  let best = Lh;
  const hc = Array.from(a.mc.subarray(a.off[h], a.off[h] + a.size[h]));
  const lc = Array.from(a.mc.subarray(a.off[l], a.off[l] + a.size[l]));
  const moveOk = a.q < 0 || (a.size[h] === a.q + 1 && a.size[l] === a.q);
  for (const x of hc) {
    if (moveOk && x > 0 && x < g) best = Math.min(best, Math.max(Lh - x, Ll + x));
    for (const y of lc) {
      const d = x - y;
      if (d > 0 && d < g) best = Math.min(best, Math.max(Lh - d, Ll + d));
    }
  }
  return best;
}

describe('pairStepsCpu', () => {
  it('finds the exhaustive optimum for every pair of random arenas (no cap)', () => {
    const rand = mulberry(testSeed('pair steps vs brute force'));
    for (let trial = 0; trial < 200; trial++) {
      const R = 2 + Math.floor(rand() * 8);
      const spread = rand() < 0.5 ? 20 : 1e6;
      const groups = Array.from({ length: R }, () => Array.from({ length: Math.floor(rand() * 12) }, () => Math.floor(rand() * spread)));
      const a = arena(groups, { gap: trial % 3 });
      const byLoad = Array.from({ length: R }, (_, g) => g).sort((x, y) => a.load[x] - a.load[y] || x - y);
      const pairs = new Int32Array(2 * (R >> 1));
      for (let i = 0; i < R >> 1; i++) { pairs[2 * i] = byLoad[R - 1 - i]; pairs[2 * i + 1] = byLoad[i]; }
      const steps = pairStepsCpu(a, pairs);
      for (let i = 0; i < R >> 1; i++) {
        const h = pairs[2 * i], l = pairs[2 * i + 1];
        const want = bruteForce(a, h, l);
        const [th, tl] = [steps[2 * i], steps[2 * i + 1]];
        if (want === a.load[h]) { expect([th, tl]).toEqual([-1, -1]); continue; }
        expect(th).toBeGreaterThanOrEqual(0);
        const d = a.mc[a.off[h] + th] - (tl >= 0 ? a.mc[a.off[l] + tl] : 0);
        expect(Math.max(a.load[h] - d, a.load[l] + d), `trial ${trial} pair ${i}`).toBe(want);
      }
    }
  });
});

describe('refine with balance rounds', () => {
  it(`runs rounds on ≥ ${ROUNDS_MIN_ITEMS} items and ends no heavier than LPT, valid and locally optimal`, async () => {
    const rand = mulberry(testSeed('refine rounds'));
    const n = ROUNDS_MIN_ITEMS + 3001, R = 48;
    const tokens = Uint32Array.from({ length: n }, () => 1 + Math.floor(Math.exp(rand() * 8)));
    const cost = Float64Array.from(tokens, (t) => 7 + t + Math.floor(t * t / 500));
    const inp: PartitionInput = { cost, tokens, order: sortDescCpu(tokens), groups: R, equalCount: false, padding: false };
    const start = lpt(inp)!;
    const startMax = maxOf(groupLoads(inp, start));
    let calls = 0;
    const spy: Accelerator = { ...cpuAccelerator, pairSteps: async (a, p) => { calls++; return cpuAccelerator.pairSteps(a, p); } };
    // A target below anything reachable, so refinement runs until it is stuck.
    const total = cost.reduce((s, c) => s + c, 0);
    const group = await refine(inp, Int32Array.from(start), { target: Math.floor(total / R) - 1 }, spy);
    expect(calls).toBeGreaterThan(0);
    expect(group.every((g) => g >= 0 && g < R)).toBe(true);
    const loads = groupLoads(inp, group);
    const max = maxOf(loads);
    expect(max).toBeLessThanOrEqual(startMax);
    expect(loads.reduce((s, x) => s + x, 0)).toBe(total);
    // Local optimum: no move or swap between the heaviest group and any other lowers its load
    // without raising the other's to it.
    const h = loads.lastIndexOf(max); // the heaviest in (load, index) order, the one refine works on
    const members = Array.from({ length: R }, () => [] as number[]);
    group.forEach((g, i) => members[g].push(cost[i]));
    const a = arena(members);
    for (let l = 0; l < R; l++) if (l !== h && a.load[l] < max) expect(bruteForce(a, h, l), `group ${l}`).toBe(max);
    // Deterministic: the same call gives the same grouping.
    const again = await refine(inp, Int32Array.from(start), { target: Math.floor(total / R) - 1 }, cpuAccelerator);
    expect(Array.from(again)).toEqual(Array.from(group));
  });
});
