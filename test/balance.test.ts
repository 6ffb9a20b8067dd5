// The data-parallel balancer's CPU reference (the spec its kernels must match): the deals on
// hand-checked cases, the rounds against a from-scratch restatement of the round rule, and the
// `rounds` algorithm's invariants (every item once, caps and counts, polish never worse).
import { describe, expect, it } from 'vitest';
import { groupLoads, maxOf, type PartitionInput } from '../src/partition/common.js';
import { byPosition, roundsPartition } from '../src/partition/rounds.js';
import { cpuAccelerator, sortDescCpu } from '../src/primitives/accelerator.js';
import { arenaOf, balanceCpu, homeDeal, runRounds, snakeDeal, type BalanceInput } from '../src/primitives/balance.js';
import { pairStep, type PairArena } from '../src/primitives/pairstep.js';
import { mulberry, testSeed } from './helpers.js';

function input(cost: number[], opts: Partial<BalanceInput> = {}): BalanceInput {
  return {
    cost: Float64Array.from(cost), tokens: Uint32Array.from(cost), home: new Int32Array(cost.length),
    groups: 2, target: 0, cap: Infinity, q: -1, deal: 'home', maxRounds: 64, ...opts,
  };
}

describe('deals (hand-checked)', () => {
  it('snake: rows of R, alternately left to right and right to left', () => {
    expect(Array.from(snakeDeal(7, 3))).toEqual([0, 1, 2, 2, 1, 0, 0]);
    expect(Array.from(snakeDeal(4, 1))).toEqual([0, 0, 0, 0]);
    expect(Array.from(snakeDeal(0, 5))).toEqual([]);
  });

  it('home: ranks keep their largest items up to the target, the pool is cut by room', () => {
    // Costs 5 4 3 2 1 (positions 0..4), sampled on ranks 0 0 0 1 1, target ceil(15 / 2) = 8.
    // Rank 0 keeps 5, pools 4 (9 > 8), keeps 3 (8); rank 1 keeps 2 and 1 (3). Ranks by kept load:
    // 1 (room 5), 0 (room 0); the pooled 4 has its midpoint at 2 < 5: rank 1. Loads 8 and 7.
    const inp = input([5, 4, 3, 2, 1], { home: Int32Array.from([0, 0, 0, 1, 1]), target: 8 });
    expect(Array.from(homeDeal(inp))).toEqual([0, 1, 0, 1, 1]);
    // Equal counts (q = 2, one group gets 3): rank 0 keeps 5 and 3 (count 2), rank 1 keeps 2, 1.
    // Slots: rank 1 (lighter) 2 - 2 + 1 (first n mod R) = 1, rank 0 0: the pooled 4 to rank 1.
    expect(Array.from(homeDeal({ ...inp, q: 2 }))).toEqual([0, 1, 0, 1, 1]);
    // A token cap of 7 keeps rank 0 from keeping 3 after 5 (tokens = costs here): 3 is pooled
    // too. Pool 4, 3 (P = 0, 4); rooms: rank 1: 8 - 3 = 5, rank 0: 8 - 5 = 3 (prefix 0, 5, 8).
    // Midpoints 2 (rank 1) and 5.5 (2 · 5 ≤ 11: rank 0). The cut does not look at tokens: rank 0
    // ends at 8 tokens, over the cap, and the caller rejects the grouping.
    expect(Array.from(homeDeal({ ...inp, cap: 7 }))).toEqual([0, 1, 0, 1, 1]);
  });

  it('home: a midpoint exactly on a room boundary belongs to the next rank, one below to this one', () => {
    // 6 6 6 on ranks 0 0 1, target 9: kept 6 and 6, rooms 3 and 3 (prefix 0, 3, 6). The pooled 6
    // has midpoint 3 = room prefix 3: the second rank in kept-load order, rank 1.
    expect(Array.from(homeDeal(input([6, 6, 6], { home: Int32Array.from([0, 0, 1]), target: 9 })))).toEqual([0, 1, 1]);
    // 7 6 5 on ranks 0 1 0, target 9: kept 7 and 6; ranks by load 1 (room 3), 0 (room 2). The
    // pooled 5 has midpoint 2.5 < 3: rank 1.
    expect(Array.from(homeDeal(input([7, 6, 5], { home: Int32Array.from([0, 1, 0]), target: 9 })))).toEqual([0, 1, 1]);
  });

  it('home: a pooled item whose midpoint passes every room goes to the last rank in the order', () => {
    // Target below the average (rooms sum to less than the pool): the excess lands on the
    // heaviest-kept rank, the last in kept-load order.
    const inp = input([6, 6, 6, 6], { home: Int32Array.from([0, 0, 1, 1]), target: 6 });
    // Each rank keeps one 6 (load 6 = target), pools the other; rooms 0 and 0: both pooled items
    // go to the last rank in (load, index) order, rank 1.
    expect(Array.from(homeDeal(inp))).toEqual([0, 1, 1, 1]);
  });
});

/** The round rule restated from scratch: rebuild every group's members, sort, pair, step, apply. */
function roundsFromScratch(inp: BalanceInput, start: Int32Array): { group: Int32Array; rounds: number; steps: number } {
  const { cost, tokens, groups: R, target } = inp;
  const group = Int32Array.from(start);
  let rounds = 0, steps = 0;
  for (; rounds < inp.maxRounds; rounds++) {
    const members = Array.from({ length: R }, () => [] as number[]);
    for (let k = cost.length - 1; k >= 0; k--) members[group[k]].push(k); // positions descending
    const mc: number[] = [], mt: number[] = [], mem: number[] = [];
    const off = new Int32Array(R), size = new Int32Array(R), load = new Float64Array(R), tok = new Float64Array(R);
    members.forEach((m, g) => {
      off[g] = mc.length; size[g] = m.length;
      for (const k of m) { mc.push(cost[k]); mt.push(tokens[k]); mem.push(k); load[g] += cost[k]; tok[g] += tokens[k]; }
    });
    const a: PairArena = { mc: Float64Array.from(mc), mt: Uint32Array.from(mt), off, size, load, tok, cap: inp.cap, q: inp.q, used: mc.length };
    const sorted = Array.from({ length: R }, (_, g) => g).sort((x, y) => load[x] - load[y] || x - y);
    let P = 0;
    while (P < R >> 1 && load[sorted[R - 1 - P]] > target) P++;
    if (P === 0) break;
    let applied = 0;
    for (let i = 0; i < P; i++) {
      const h = sorted[R - 1 - i], l = sorted[i];
      const out = Int32Array.from([-1, -1]);
      pairStep(a, h, l, load[h], out);
      if (out[0] < 0) continue;
      group[mem[off[h] + out[0]]] = l;
      if (out[1] >= 0) group[mem[off[l] + out[1]]] = h;
      applied++;
    }
    if (applied === 0) break;
    steps += applied;
  }
  return { group, rounds, steps };
}

function randomBalanceInput(rand: () => number, deal: 'home' | 'snake'): BalanceInput {
  const R = 1 + Math.floor(rand() * 40);
  const n = Math.floor(rand() * 30 * R);
  const tokens = Uint32Array.from({ length: n }, () => 1 + Math.floor(rand() * (rand() < 0.3 ? 3000 : 600))).sort().reverse();
  const cost = Float64Array.from(tokens, (t) => 3 + t + Math.floor((t * t) / 700));
  const home = Int32Array.from({ length: n }, () => Math.floor(rand() * R));
  const total = cost.reduce((s, c) => s + c, 0);
  const totalTok = tokens.reduce((s, c) => s + c, 0);
  const eq = rand() < 0.3 && n >= R;
  const cap = rand() < 0.3 ? Math.ceil((totalTok / R) * (1.05 + rand())) + 3000 : Infinity;
  return {
    cost, tokens, home, groups: R, target: Math.max(Math.ceil(total / R), n ? cost[0] : 0), cap, q: eq ? Math.floor(n / R) : -1, deal,
    maxRounds: rand() < 0.2 ? Math.floor(rand() * 3) : 64,
  };
}

describe('balance rounds (CPU reference)', () => {
  it('match the round rule restated from scratch, and never raise the max load', () => {
    const seed = testSeed('balance rounds');
    const rand = mulberry(seed);
    for (let trial = 0; trial < 150; trial++) {
      const inp = randomBalanceInput(rand, trial % 2 ? 'home' : 'snake');
      const start = inp.deal === 'snake' ? snakeDeal(inp.cost.length, inp.groups) : homeDeal(inp);
      const want = roundsFromScratch(inp, start);
      const got = balanceCpu(inp);
      const label = `seed ${seed} trial ${trial} n=${inp.cost.length} R=${inp.groups} ${inp.deal}`;
      expect(Array.from(got.group), label).toEqual(Array.from(want.group));
      expect([got.rounds, got.steps], label).toEqual([want.rounds, want.steps]);
      const loads = (g: Int32Array) => { const l = new Float64Array(inp.groups); g.forEach((x, k) => { l[x] += inp.cost[k]; }); return l; };
      expect(maxOf(loads(got.group)), label).toBeLessThanOrEqual(maxOf(loads(start)));
      // Swaps keep counts, and a move under equal counts only goes from q + 1 to q.
      if (inp.q >= 0) {
        const counts = new Int32Array(inp.groups);
        got.group.forEach((g) => counts[g]++);
        for (const c of counts) expect(c === inp.q || c === inp.q + 1, label).toBe(true);
      }
    }
  });

  it('keep a valid start within the token cap', () => {
    const rand = mulberry(testSeed('balance cap'));
    for (let trial = 0; trial < 60; trial++) {
      const inp = randomBalanceInput(rand, 'snake');
      const start = snakeDeal(inp.cost.length, inp.groups);
      const tok = new Float64Array(inp.groups);
      start.forEach((g, k) => { tok[g] += inp.tokens[k]; });
      const cap = Math.max(...tok); // the snake's own tokens are the tightest cap it meets
      const s = arenaOf({ ...inp, cap }, Int32Array.from(start));
      runRounds(s, inp.target, 64);
      for (let g = 0; g < inp.groups; g++) expect(s.tok[g]).toBeLessThanOrEqual(cap);
    }
  });
});

describe('the rounds algorithm (deal, rounds, polish)', () => {
  it('places every item once, honours caps and counts, and polish never ends above the rounds', async () => {
    const rand = mulberry(testSeed('rounds partition'));
    for (let trial = 0; trial < 40; trial++) {
      const b = randomBalanceInput(rand, 'home');
      const n = b.cost.length;
      if (n === 0) continue;
      // Back to item order: a random permutation of the positions.
      const perm = Array.from({ length: n }, (_, i) => i).sort(() => rand() - 0.5);
      const tokens = new Uint32Array(n), cost = new Float64Array(n), sampled = new Int32Array(n);
      perm.forEach((k, i) => { tokens[i] = b.tokens[k]; cost[i] = b.cost[k]; sampled[i] = b.home[k]; });
      const order = sortDescCpu(tokens);
      const inp: PartitionInput = { cost, tokens, order, groups: b.groups, cap: Number.isFinite(b.cap) ? b.cap : undefined, equalCount: b.q >= 0, padding: false };
      for (const deal of ['home', 'snake'] as const) {
        const out = await roundsPartition(inp, { deal, sampledRank: sampled, target: b.target }, cpuAccelerator);
        expect(out.group.every((g) => g >= 0 && g < b.groups)).toBe(true);
        const loads = groupLoads(inp, out.group);
        expect(maxOf(loads)).toBe(out.maxLoad);
        // The balance primitive alone, from the same view, is never lighter than the polished result.
        const view = byPosition(inp, sampled);
        const raw = await cpuAccelerator.balance({ ...view, groups: b.groups, target: b.target, cap: b.cap, q: b.q, deal, maxRounds: 64 });
        const rawLoads = new Float64Array(b.groups);
        raw.group.forEach((g, k) => { rawLoads[g] += view.cost[k]; });
        expect(out.maxLoad).toBeLessThanOrEqual(maxOf(rawLoads));
        if (out.valid) {
          const tok = new Float64Array(b.groups), cnt = new Int32Array(b.groups);
          out.group.forEach((g, i) => { tok[g] += tokens[i]; cnt[g]++; });
          for (let g = 0; g < b.groups; g++) {
            expect(tok[g]).toBeLessThanOrEqual(b.cap);
            if (b.q >= 0) expect(cnt[g] === b.q || cnt[g] === b.q + 1).toBe(true);
          }
        }
      }
    }
  });
});
