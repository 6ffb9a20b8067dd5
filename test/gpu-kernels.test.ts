// Each WebGPU kernel against its CPU reference (src/primitives/) on random inputs. These tests run
// for real on llvmpipe in CI: no adapter is a failure, never a skip.
// Reproduce a failure with POSTBALANCE_SEED=<seed printed below>.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cutCountsCpu, prefixSumCpu, sortDescCpu, type Accelerator, type PairArena } from '../src/primitives/accelerator.js';
import { createGpuAccelerator, parallelCutMinItems, type GpuAccelerator } from '../src/gpu/accelerator.js';
import { dispatchGrid, fromWordPairs, toWordPairs } from '../src/gpu/buffers.js';
import { acquireDevice, compileShader } from '../src/gpu/device.js';
import { cutJumpRounds } from '../src/gpu/cuts/cuts.js';
import { shaderSource } from '../src/gpu/shaders.js';
import { pairStepsCpu } from '../src/primitives/pairstep.js';
import { balanceCpu, type BalanceInput } from '../src/primitives/balance.js';

const seed = process.env.POSTBALANCE_SEED !== undefined
  ? Number(process.env.POSTBALANCE_SEED) >>> 0
  : (Date.now() ^ (process.pid << 16)) >>> 0;
console.log(`gpu-kernels: seed ${seed} (set POSTBALANCE_SEED=${seed} to reproduce)`);

/** mulberry32: a tiny deterministic PRNG, uniform u32 per call. */
function mulberry32(state: number): () => number {
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** A generator per test case, so that cases do not depend on each other's draws. */
function rngFor(label: string): () => number {
  let h = seed;
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x9e3779b1) >>> 0;
  return mulberry32(h);
}

/** Compares without building a diff of millions of elements; names the first mismatch. */
function expectSame(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) {
      expect.fail(`${what}: first difference at ${i}: got ${actual[i]}, expected ${expected[i]} (seed ${seed})`);
    }
  }
}

const SIZES = [0, 1, 2, 255, 256, 257, 1023, 1024, 1025, 4097, 100_003];

let gpu: Accelerator;

beforeAll(async () => {
  // Deliberately not caught: a machine without an adapter fails this whole file loudly.
  gpu = await createGpuAccelerator({ pairPath: 'gpu' }); // pair steps on the kernel even on llvmpipe
  console.log(`gpu-kernels: adapter ${gpu.adapter}`);
});

afterAll(() => gpu?.destroy());

describe('device', () => {
  it('is a WebGPU accelerator with a named adapter', () => {
    expect(gpu.backend).toBe('webgpu');
    expect(gpu.adapter.length).toBeGreaterThan(0);
  });

  it('reports a broken WGSL module as one line naming the file and position', async () => {
    const { device } = await acquireDevice();
    try {
      const broken = '@compute @workgroup_size(1)\nfn main() {\n  let x: u32 = notDefined;\n}\n';
      const error = await compileShader(device, 'broken.wgsl', broken).then(() => null, (e: Error) => e);
      expect(error).toBeInstanceOf(Error);
      expect(error!.message).toMatch(/^WGSL compile error in broken\.wgsl:3:\d+: .*notDefined/);
      expect(error!.message).not.toContain('\n');
    } finally {
      device.destroy();
    }
  });

  it('loads shaders from the package, or from an inlined copy first', () => {
    expect(shaderSource('scan.wgsl')).toContain('fn scan_u32');
    const before = globalThis.__POSTBALANCE_SHADERS__;
    globalThis.__POSTBALANCE_SHADERS__ = { 'scan.wgsl': '// inlined' };
    try {
      expect(shaderSource('scan.wgsl')).toBe('// inlined');
    } finally {
      globalThis.__POSTBALANCE_SHADERS__ = before; // as it was (a bundle's map, or none)
    }
  });

  it('times compute passes only where the adapter has timestamp-query, with the same results', async () => {
    const timed = await createGpuAccelerator({ timestamps: true });
    try {
      const keys = randomKeys(70_001, 'full32', rngFor('timed sort'));
      expectSame(await timed.sortDesc(keys), sortDescCpu(keys), 'timed sortDesc');
      const call = timed.lastCall!;
      expect(call.submits).toBe(1);
      if (timed.timestamps) expect(call.kernelMs).toBeGreaterThan(0);
      else expect(call.kernelMs).toBeNull();
      console.log(`gpu-kernels: timestamps ${timed.timestamps ? `yes (${call.kernelMs} ms)` : 'n/a'}`);
    } finally {
      timed.destroy();
    }
  });

  it('lays out more than 65,535 workgroups in two dimensions', () => {
    for (const count of [1, 65535, 65536, 200_000, 4_000_000]) {
      const [x, y] = dispatchGrid(count);
      expect(x).toBeLessThanOrEqual(65535);
      expect(y).toBeLessThanOrEqual(65535);
      expect(x * y).toBeGreaterThanOrEqual(count);
      expect(x * (y - 1)).toBeLessThan(count);
    }
  });

  it('converts 64-bit values to word pairs and back exactly', () => {
    const values = Float64Array.from([0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 50 + 12345, 2 ** 53 - 1]);
    expectSame(fromWordPairs(toWordPairs(values), values.length), values, 'round trip');
  });
});

type KeyKind = 'full32' | 'ties' | 'lengths';

function randomKeys(n: number, kind: KeyKind, rand: () => number): Uint32Array {
  const keys = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const r = rand();
    keys[i] = kind === 'full32' ? r : kind === 'ties' ? r % 7 : r % 5000;
  }
  return keys;
}

describe('radix sort (sortDesc) equals sortDescCpu', () => {
  for (const kind of ['full32', 'ties', 'lengths'] as const) {
    it(`${kind} keys, sizes ${SIZES.join(', ')}`, async () => {
      for (const n of SIZES) {
        const keys = randomKeys(n, kind, rngFor(`sort ${kind} ${n}`));
        expectSame(await gpu.sortDesc(keys), sortDescCpu(keys), `sortDesc ${kind} n=${n}`);
      }
    });
  }

  it('all-equal keys, keys differing only in the top byte, extreme values', async () => {
    const rand = rngFor('sort special');
    const cases: [string, Uint32Array][] = [
      ['equal', new Uint32Array(3000).fill(42)],
      ['top byte', Uint32Array.from({ length: 5000 }, () => (rand() & 0xff000000) >>> 0)],
      ['extremes', Uint32Array.from({ length: 5000 }, () => [0, 1, 0xffffffff, 0xfffffffe, 0x80000000][rand() % 5])],
    ];
    for (const [name, keys] of cases) expectSame(await gpu.sortDesc(keys), sortDescCpu(keys), `sortDesc ${name}`);
  });

  it('2,000,003 keys using all 32 bits', async () => {
    const keys = randomKeys(2_000_003, 'full32', rngFor('sort big'));
    expectSame(await gpu.sortDesc(keys), sortDescCpu(keys), 'sortDesc n=2000003');
  });
});

type ValueKind = 'small' | 'past2^32' | 'to2^50';

function randomValues(n: number, kind: ValueKind, rand: () => number): Float64Array {
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    // 'to2^50': values below 2^33, so 100,003 of them sum to about 2^49.6.
    values[i] = kind === 'small' ? rand() % 1000 : kind === 'past2^32' ? rand() : (rand() & 1) * 2 ** 32 + rand();
  }
  return values;
}

describe('prefix sum (u64 scan) equals prefixSumCpu', () => {
  for (const kind of ['small', 'past2^32', 'to2^50'] as const) {
    it(`${kind} values, sizes ${SIZES.join(', ')}`, async () => {
      for (const n of SIZES) {
        const values = randomValues(n, kind, rngFor(`scan ${kind} ${n}`));
        expectSame(await gpu.prefixSum(values), prefixSumCpu(values), `prefixSum ${kind} n=${n}`);
      }
    });
  }

  it('converts doubles to (lo, hi) words and back exactly on the GPU, at every exponent', async () => {
    // The accelerator uploads Float64Array bytes as they are; scan.wgsl decodes and re-encodes.
    for (let k = 0; k <= 53; k++) {
      for (const v of [2 ** k - 1, 2 ** k, 2 ** k + 1, 2 ** k + 2 ** Math.max(0, k - 20) + 3]) {
        if (v < 0 || v >= 2 ** 53) continue;
        const values = Float64Array.from([v, v < 2 ** 52 ? v : 0, 1]);
        if (values[0] + values[1] + 1 >= 2 ** 53) continue;
        expectSame(await gpu.prefixSum(values), prefixSumCpu(values), `prefixSum [${values.join(', ')}]`);
      }
    }
  });

  it('runs overlapping calls one after another (they share pooled buffers)', async () => {
    const rand = rngFor('scan overlap');
    const inputs = [5000, 70_000, 3, 300_000].map((n) => randomValues(n, 'past2^32', rand));
    const keys = randomKeys(50_000, 'full32', rand);
    const [a, b, sorted, c, d] = await Promise.all([
      gpu.prefixSum(inputs[0]), gpu.prefixSum(inputs[1]), gpu.sortDesc(keys), gpu.prefixSum(inputs[2]), gpu.prefixSum(inputs[3]),
    ]);
    expectSame(a, prefixSumCpu(inputs[0]), 'overlap 0');
    expectSame(b, prefixSumCpu(inputs[1]), 'overlap 1');
    expectSame(sorted, sortDescCpu(keys), 'overlap sort');
    expectSame(c, prefixSumCpu(inputs[2]), 'overlap 2');
    expectSame(d, prefixSumCpu(inputs[3]), 'overlap 3');
  });

  it('2,000,003 values summing past 2^50 (and below 2^53)', async () => {
    const rand = rngFor('scan big');
    const values = Float64Array.from({ length: 2_000_003 }, () => rand() >>> 1);
    const expected = prefixSumCpu(values);
    expect(expected[values.length]).toBeGreaterThan(2 ** 50);
    expect(expected[values.length]).toBeLessThan(2 ** 53);
    expectSame(await gpu.prefixSum(values), expected, 'prefixSum n=2000003');
  });
});

/** Targets from 0 to past the total, with the interesting region (around total/groups) dense. */
function randomTargets(costs: Float64Array, total: number, count: number, rand: () => number): Float64Array {
  const maxCost = costs.reduce((m, c) => Math.max(m, c), 0);
  const targets = new Float64Array(count);
  for (let t = 0; t < count; t++) {
    const r = rand() / 2 ** 32;
    const pick = t % 4;
    targets[t] = pick === 0 ? Math.floor(r * maxCost * 2)
      : pick === 1 ? Math.floor(total / (1 + (rand() % 512)))
      : pick === 2 ? Math.floor(r * total * 1.1)
      : [0, 1, maxCost, total, 2 ** 53 - 1, 2 ** 60, 2 ** 70][rand() % 7];
  }
  return targets;
}

describe('candidate cuts (cutCounts) equal cutCountsCpu', () => {
  for (const mode of ['sum', 'padded'] as const) {
    for (const kind of ['small', 'past2^32', 'to2^50'] as const) {
      it(`mode ${mode}, ${kind} costs, sizes ${SIZES.join(', ')}`, async () => {
        for (const n of SIZES) {
          const rand = rngFor(`cuts ${mode} ${kind} ${n}`);
          const costs = randomValues(n, kind, rand);
          // Padded mode walks items longest first; a few zero costs exercise the "rest" rule.
          if (mode === 'padded') { costs.sort().reverse(); for (let i = Math.floor(n * 0.9); i < n; i++) costs[i] = 0; }
          const prefix = prefixSumCpu(costs);
          const targets = randomTargets(costs, prefix[n], 96, rand);
          const got = await gpu.cutCounts(costs, prefix, targets, mode);
          const want = cutCountsCpu(costs, prefix, targets, mode);
          expectSame(got.groups, want.groups, `cutCounts ${mode} ${kind} n=${n} groups`);
          expectSame(got.maxLoad, want.maxLoad, `cutCounts ${mode} ${kind} n=${n} maxLoad`);
        }
      });
    }
  }

  it('4,200,000 targets (more than 65,535 workgroups) on a few items', async () => {
    const rand = rngFor('cuts many targets');
    const costs = Float64Array.from([7, 5, 5, 3, 2 ** 40, 1]);
    const prefix = prefixSumCpu(costs);
    const targets = Float64Array.from({ length: 4_200_000 }, () => rand() % 40);
    for (const mode of ['sum', 'padded'] as const) {
      const got = await gpu.cutCounts(costs, prefix, targets, mode);
      const want = cutCountsCpu(costs, prefix, targets, mode);
      expectSame(got.groups, want.groups, `many targets ${mode} groups`);
      expectSame(got.maxLoad, want.maxLoad, `many targets ${mode} maxLoad`);
    }
  });

  it('rejects targets that are not non-negative integers', async () => {
    const costs = Float64Array.from([1, 2]);
    await expect(gpu.cutCounts(costs, prefixSumCpu(costs), Float64Array.from([1.5]), 'sum')).rejects.toThrow(RangeError);
    await expect(gpu.cutCounts(costs, prefixSumCpu(costs), Float64Array.from([-1]), 'sum')).rejects.toThrow(RangeError);
  });
});

/** Costs for a cut test: padded mode walks items longest first, with some zero costs at the end. */
function cutCosts(n: number, kind: ValueKind, mode: 'sum' | 'padded', rand: () => number): Float64Array {
  const costs = randomValues(n, kind, rand);
  if (mode === 'padded') { costs.sort().reverse(); for (let i = Math.floor(n * 0.9); i < n; i++) costs[i] = 0; }
  return costs;
}

async function expectCutsLikeCpu(acc: GpuAccelerator, costs: Float64Array, targets: Float64Array, mode: 'sum' | 'padded', what: string, path: 'serial' | 'parallel'): Promise<void> {
  const prefix = prefixSumCpu(costs);
  const got = await acc.cutCounts(costs, prefix, targets, mode);
  if (costs.length > 0 && targets.length > 0) expect(acc.lastCall?.cutPath, `${what}: path`).toBe(path);
  const want = cutCountsCpu(costs, prefix, targets, mode);
  expectSame(got.groups, want.groups, `${what} groups`);
  expectSame(got.maxLoad, want.maxLoad, `${what} maxLoad`);
}

describe('parallel candidate cuts (next-cut pointers + pointer jumping) equal cutCountsCpu', () => {
  let par: GpuAccelerator;
  beforeAll(async () => { par = await createGpuAccelerator({ cutPath: 'parallel' }); });
  afterAll(() => par?.destroy());

  it('rounds: ceil(log2(n + 1))', () => {
    expect([0, 1, 2, 3, 4, 7, 8, 255, 256, 1_000_000].map(cutJumpRounds)).toEqual([0, 1, 2, 2, 3, 3, 4, 8, 9, 20]);
  });

  const PARALLEL_SIZES = [0, 1, 2, 255, 256, 257, 4097, 100_003];
  for (const mode of ['sum', 'padded'] as const) {
    for (const kind of ['small', 'past2^32', 'to2^50'] as const) {
      it(`mode ${mode}, ${kind} costs, sizes ${PARALLEL_SIZES.join(', ')}`, async () => {
        for (const n of PARALLEL_SIZES) {
          const rand = rngFor(`parallel cuts ${mode} ${kind} ${n}`);
          const costs = cutCosts(n, kind, mode, rand);
          // randomTargets includes 0, 1, the largest cost, the total, 2^53 - 1, 2^60 and 2^70.
          const targets = randomTargets(costs, prefixSumCpu(costs)[n], n > 10_000 ? 24 : 96, rand);
          await expectCutsLikeCpu(par, costs, targets, mode, `parallel ${mode} ${kind} n=${n}`, 'parallel');
        }
      });
    }
  }

  it('1,000,003 items summing past 2^50, 10 targets in two chunks of 125,001-workgroup dispatches', async () => {
    for (const mode of ['sum', 'padded'] as const) {
      const rand = rngFor(`parallel cuts big ${mode}`);
      const costs = cutCosts(1_000_003, 'to2^50', mode, rand);
      const total = prefixSumCpu(costs)[costs.length];
      if (mode === 'sum') expect(total).toBeGreaterThan(2 ** 50);
      // Mostly around total / ranks (the planner's range), plus 0 (one group per item) and huge.
      const targets = Float64Array.from([0, 2 ** 70, ...[64, 256, 1024, 4096, 16384, 3, 100_000, 999_999].map((r) => Math.floor(total / r))]);
      await expectCutsLikeCpu(par, costs, targets, mode, `parallel ${mode} n=1000003`, 'parallel');
    }
  });

  it('2,100,000 targets on a few items (two chunks of 130,000-workgroup dispatches)', async () => {
    const rand = rngFor('parallel cuts many targets');
    const costs = Float64Array.from([7, 5, 5, 3, 2 ** 40, 1]);
    const targets = Float64Array.from({ length: 2_100_000 }, () => rand() % 40);
    for (const mode of ['sum', 'padded'] as const) await expectCutsLikeCpu(par, costs, targets, mode, `parallel many targets ${mode}`, 'parallel');
  });

  it('one target per chunk: 254 chunks fill one pass, 255 and 600 spill into more submits', async () => {
    const n = 257;
    const small = await createGpuAccelerator({ cutPath: 'parallel', cutChunkBytes: 16 * (n + 1), timestamps: true });
    try {
      for (const count of [254, 255, 600]) {
        for (const mode of ['sum', 'padded'] as const) {
          const rand = rngFor(`parallel cuts chunks ${count} ${mode}`);
          const costs = cutCosts(n, 'past2^32', mode, rand);
          const targets = randomTargets(costs, prefixSumCpu(costs)[n], count, rand);
          await expectCutsLikeCpu(small, costs, targets, mode, `parallel ${count} one-target chunks ${mode}`, 'parallel');
          expect(small.lastCall!.submits).toBe(count <= 254 ? 1 : Math.ceil((count - 254) / 256) + 1);
          if (small.timestamps) expect(small.lastCall!.kernelMs).toBeGreaterThan(0);
        }
      }
    } finally {
      small.destroy();
    }
  });

  it('"auto" takes the parallel path from parallelCutMinItems items on, the serial walk below', async () => {
    const auto = gpu as GpuAccelerator;
    expect(auto.cutPath).toBe('auto');
    expect(auto.parallelCutMinItems).toBe(parallelCutMinItems(/llvmpipe|lavapipe|softpipe|swiftshader/i.test(auto.adapter)));
    for (const n of [5, 4097, 100_003]) {
      const costs = cutCosts(n, 'small', 'sum', rngFor(`auto ${n}`));
      await expectCutsLikeCpu(auto, costs, Float64Array.from([4, 9, 5000]), 'sum', `auto n=${n}`, n >= auto.parallelCutMinItems ? 'parallel' : 'serial');
    }
    const serial = await createGpuAccelerator({ cutPath: 'serial' });
    try {
      const costs = cutCosts(100_003, 'past2^32', 'sum', rngFor('serial forced'));
      await expectCutsLikeCpu(serial, costs, Float64Array.from([0, 2 ** 33, 2 ** 40]), 'sum', 'forced serial n=100003', 'serial');
    } finally {
      serial.destroy();
    }
  });
});

/** A member of a test arena's group. */
interface Member { cost: number; tok: number }

/**
 * An arena from each group's members, built as the planner does: each block sorted by (cost,
 * index) ascending, exact loads and token sums. Blocks lie in a random group order with random
 * gaps between them (`slack`) and past the last one; gaps and the tail hold garbage that would
 * change the steps if a kernel read it.
 */
function buildArena(groups: Member[][], cap: number, q: number, rand: () => number, slack = true): PairArena {
  const R = groups.length;
  const order = Array.from({ length: R }, (_, g) => g);
  for (let i = R - 1; i > 0; i--) { const j = rand() % (i + 1); [order[i], order[j]] = [order[j], order[i]]; }
  const gap = () => (slack ? rand() % 3 : 0);
  const total = groups.reduce((s, m) => s + m.length, 0) + (slack ? 2 * (R + 1) : 0);
  const mc = new Float64Array(total + 5), mt = new Uint32Array(total + 5);
  for (let i = 0; i < mc.length; i++) { mc[i] = 2 ** 52 + rand(); mt[i] = rand(); }
  const off = new Int32Array(R), size = new Int32Array(R), load = new Float64Array(R), tok = new Float64Array(R);
  let at = gap();
  for (const g of order) {
    const sorted = groups[g].map((m, i) => ({ ...m, i })).sort((a, b) => a.cost - b.cost || a.i - b.i);
    off[g] = at; size[g] = sorted.length;
    for (const m of sorted) { mc[at] = m.cost; mt[at] = m.tok; load[g] += m.cost; tok[g] += m.tok; at++; }
    at += gap();
  }
  return { mc, mt, off, size, load, tok, cap, q, used: at };
}

/** Disjoint pairs over a random subset of the groups, the heavier (or equal) group first. */
function randomPairs(arena: PairArena, rand: () => number, count = arena.size.length >> 1): Int32Array {
  const R = arena.size.length;
  const order = Array.from({ length: R }, (_, g) => g);
  for (let i = R - 1; i > 0; i--) { const j = rand() % (i + 1); [order[i], order[j]] = [order[j], order[i]]; }
  const pairs = new Int32Array(2 * Math.min(count, R >> 1));
  for (let i = 0; i < pairs.length; i += 2) {
    const [a, b] = [order[i], order[i + 1]];
    const aFirst = arena.load[a] > arena.load[b] || (arena.load[a] === arena.load[b] && rand() % 2 === 0);
    [pairs[i], pairs[i + 1]] = aFirst ? [a, b] : [b, a];
  }
  return pairs;
}

type PairCostKind = 'runs' | 'small' | 'past2^32' | 'near2^52';

/**
 * Random groups: sizes with many 0s and 1s (or q / q + 1 under equal counts), costs per kind
 * ("runs": few distinct values; "past2^32": up to 2^34, so loads and doubled costs cross word
 * boundaries; "near2^52": most groups hold one cost within 2^40 of 2^52, loads near 2^53), and
 * some groups copied from the previous one (equal loads) or copied with one cost + 1 (g = 1).
 */
function randomGroups(R: number, maxSize: number, kind: PairCostKind, fullTokens: boolean, q: number, rand: () => number): Member[][] {
  const tokOf = () => (fullTokens ? rand() : rand() % 8 === 0 ? 0 : rand() % 4000);
  const small = (): number => {
    switch (kind) {
      case 'runs': return (rand() % 6) * 7 + (rand() % 4 === 0 ? 1 : 0);
      case 'small': return rand() % 1000;
      case 'past2^32': return rand() % 4 === 0 ? 2 ** 32 - 2 + (rand() % 5) : (rand() % 4) * 2 ** 32 + rand();
      case 'near2^52': return rand() % 2 ** 20;
    }
  };
  const groups: Member[][] = [];
  for (let g = 0; g < R; g++) {
    const prev = groups[g - 1];
    const copy = rand() % 10;
    if (prev && copy === 0) { groups.push(prev.map((m) => ({ ...m }))); continue; }
    if (prev && prev.length > 0 && copy === 1) {
      const next = prev.map((m) => ({ ...m }));
      next[rand() % next.length].cost += 1;
      groups.push(next);
      continue;
    }
    const r = rand() % 10;
    const n = q >= 0 && r < 8 ? q + (rand() % 2) : r === 0 ? 0 : r === 1 ? 1 : 2 + (rand() % Math.max(1, maxSize - 1));
    const members: Member[] = [];
    let last = small();
    for (let i = 0; i < n; i++) {
      // Equal runs: repeat the last cost a third of the time.
      const cost = rand() % 3 === 0 ? last : small();
      members.push({ cost, tok: tokOf() });
      last = cost;
    }
    if (kind === 'near2^52' && n > 0 && rand() % 4 !== 0) members[rand() % n].cost = 2 ** 52 - 2 ** 40 + (rand() % 2 ** 9) * 2 ** 32 + rand();
    groups.push(members);
  }
  return groups;
}

/** A cap: none, loose, or around the token sums so that the checks bind (sometimes fractional). */
function randomCap(groups: Member[][], mode: 'none' | 'loose' | 'tight', rand: () => number): number {
  if (mode === 'none') return Infinity;
  const sums = groups.map((m) => m.reduce((s, x) => s + x.tok, 0)).sort((a, b) => a - b);
  const max = sums[sums.length - 1] ?? 0;
  if (mode === 'loose') return 2 * max + 2 ** 32;
  const around = sums[Math.floor(sums.length * (0.5 + (rand() % 50) / 100))] ?? 0;
  return Math.floor(around * (1 + (rand() % 20) / 100)) + (rand() % 4 === 0 ? 0.5 : 0);
}

describe('pair steps (pairSteps) equal pairStepsCpu', () => {
  const kinds: PairCostKind[] = ['runs', 'small', 'past2^32', 'near2^52'];
  const caps = ['none', 'loose', 'tight'] as const;

  it(`random arenas: ${kinds.join(', ')} costs; no / loose / tight caps; free and equal counts`, async () => {
    const seen = { move: 0, swap: 0, none: 0, capBinds: 0, quotaBinds: 0, pairs: 0 };
    for (const kind of kinds) {
      for (const capMode of caps) {
        for (const equal of [false, true]) {
          for (let rep = 0; rep < 3; rep++) {
            const label = `pairs ${kind} ${capMode} ${equal} ${rep}`;
            const rand = rngFor(label);
            const R = 2 + (rand() % 300);
            const q = equal ? rand() % 5 : -1;
            const groups = randomGroups(R, [3, 12, 80][rep], kind, rep === 2, q, rand);
            const arena = buildArena(groups, randomCap(groups, capMode, rand), q, rand);
            const pairs = randomPairs(arena, rand);
            const want = pairStepsCpu(arena, pairs);
            expectSame(await gpu.pairSteps(arena, pairs), want, label);
            for (let i = 0; i < want.length; i += 2) seen[want[i] < 0 ? 'none' : want[i + 1] < 0 ? 'move' : 'swap']++;
            seen.pairs += want.length / 2;
            // How often the cap and the count rule decide a step (to know the cases test them).
            const free = pairStepsCpu({ ...arena, cap: Infinity, q: -1 }, pairs);
            const noCap = pairStepsCpu({ ...arena, cap: Infinity }, pairs);
            for (let i = 0; i < want.length; i++) {
              if (noCap[i] !== want[i]) { seen.capBinds++; break; }
            }
            for (let i = 0; i < want.length; i++) {
              if (free[i] !== noCap[i]) { seen.quotaBinds++; break; }
            }
          }
        }
      }
    }
    console.log(`gpu-kernels: pair steps over ${seen.pairs} pairs: ${seen.move} moves, ${seen.swap} swaps, ${seen.none} none; cap decided ${seen.capBinds}, counts ${seen.quotaBinds} cases`);
    expect(seen.move).toBeGreaterThan(0);
    expect(seen.swap).toBeGreaterThan(0);
    expect(seen.none).toBeGreaterThan(0);
    expect(seen.capBinds).toBeGreaterThan(0);
    expect(seen.quotaBinds).toBeGreaterThan(0);
  });

  it('caps at the edges: 0, negative, fractional, 2^53 and NaN', async () => {
    const rand = rngFor('pairs cap edges');
    const groups = randomGroups(200, 20, 'small', false, -1, rand);
    for (const cap of [0, -1, -0.5, 1.5, 3999.5, 2 ** 53, 2 ** 60, NaN]) {
      const arena = buildArena(groups, cap, -1, rand);
      const pairs = randomPairs(arena, rand);
      expectSame(await gpu.pairSteps(arena, pairs), pairStepsCpu(arena, pairs), `pairs cap ${cap}`);
    }
  });

  it('zero pairs, pairs without a possible step (g < 2, empty h), contiguous blocks', async () => {
    const rand = rngFor('pairs trivial');
    const groups = randomGroups(50, 10, 'runs', false, -1, rand);
    const arena = buildArena(groups, Infinity, -1, rand, false);
    expect(await gpu.pairSteps(arena, new Int32Array(0))).toEqual(new Int32Array(0));
    const equalLoads = Int32Array.from([0, 0, 1, 1, 2, 2]);
    expectSame(await gpu.pairSteps(arena, equalLoads), new Int32Array(6).fill(-1), 'pairs g = 0');
    const empty = buildArena([[], [{ cost: 5, tok: 1 }], [], []], Infinity, -1, rand);
    const pairs = Int32Array.from([0, 2, 1, 3, 3, 0]);
    expectSame(await gpu.pairSteps(empty, pairs), pairStepsCpu(empty, pairs), 'pairs with empty groups');
    const all = randomPairs(arena, rand);
    expectSame(await gpu.pairSteps(arena, all), pairStepsCpu(arena, all), 'pairs contiguous blocks');
  });

  it('one pair with a 1,000,000-member h block (random, and with the only steps near its end)', async () => {
    const rand = rngFor('pairs 1M');
    const n = 1_000_000;
    // Random: costs with runs, l a tenth of h.
    const h: Member[] = Array.from({ length: n }, () => ({ cost: rand() % 5_000_000, tok: rand() % 100 }));
    const l: Member[] = Array.from({ length: n / 10 }, () => ({ cost: rand() % 5_000_000, tok: rand() % 100 }));
    const random = buildArena([h, l], Infinity, -1, rand);
    const pair = Int32Array.from([0, 1]);
    expectSame(await gpu.pairSteps(random, pair), pairStepsCpu(random, pair), 'pairs 1M random');
    // Crafted: h costs are multiples of 100 (with runs), l's are 50 off them, so no difference is
    // below g = 11 except for h's last members, which are 3 off; two of them tie (the first wins).
    const h2: Member[] = Array.from({ length: n }, (_, i) => ({ cost: 100 * (1 + Math.floor(i / 3)), tok: 0 }));
    h2[n - 500] = { cost: 100 * n + 3, tok: 0 };
    h2[n - 2] = { cost: 100 * n + 203, tok: 0 };
    h2[n - 1] = { cost: 100 * n + 403, tok: 0 };
    const l2: Member[] = Array.from({ length: 1000 }, (_, i) => ({ cost: 100 * (n + i) + 50, tok: 0 }));
    l2.push({ cost: 100 * n, tok: 0 }, { cost: 100 * n + 200, tok: 0 });
    const crafted = buildArena([h2, l2], Infinity, -1, rand);
    // Loads as the planner would have them, then g = 11 by construction.
    crafted.load[1] = crafted.load[0] - 11;
    const want = pairStepsCpu(crafted, pair);
    expect(want[0]).toBeGreaterThan(n - 600);
    expectSame(await gpu.pairSteps(crafted, pair), want, 'pairs 1M crafted');
  });

  it('70,000 pairs (more than 65,535 workgroups)', async () => {
    const rand = rngFor('pairs many');
    const groups = randomGroups(140_000, 4, 'small', false, -1, rand);
    const arena = buildArena(groups, Infinity, -1, rand);
    const pairs = randomPairs(arena, rand);
    expectSame(await gpu.pairSteps(arena, pairs), pairStepsCpu(arena, pairs), 'pairs 70,000');
    expect((gpu as GpuAccelerator).lastCall!.submits).toBe(1);
  });

  it("mirrors the CPU's rounding of c_x - g/2 above 2^52 (arenas whose loads are not their sums)", async () => {
    // h = {m + u}, l = {m, m + 1}, g = 2u - 1: the ideal partner m + 1/2 rounds to m when m is
    // even (the CPU then never looks at m + 1, which ties with m) and to m + 1 when m is odd.
    const rand = rngFor('pairs rounding');
    const groups: Member[][] = [];
    const loads: number[] = [];
    for (let i = 0; i < 200; i++) {
      const m = 2 ** 52 + 2 * (rand() % 2 ** 20) + (i % 2), u = 2 + (rand() % 1000);
      groups.push([{ cost: m + u, tok: 0 }], [{ cost: m, tok: 0 }, { cost: m + 1, tok: 0 }]);
      loads.push(2 ** 52 + 2 ** 51, 2 ** 52 + 2 ** 51 - (2 * u - 1));
    }
    const arena = buildArena(groups, Infinity, -1, rand);
    arena.load.set(loads);
    const pairs = Int32Array.from({ length: groups.length }, (_, i) => i);
    const want = pairStepsCpu(arena, pairs);
    expectSame(await gpu.pairSteps(arena, pairs), want, 'pairs rounding');
    expect(new Set(Array.from({ length: 200 }, (_, i) => want[2 * i + 1]))).toEqual(new Set([0, 1]));
  });

  it('runs on the kernel when forced, and auto keeps software adapters on the host (same result)', async () => {
    const rand = rngFor('pairs routing');
    const groups = Array.from({ length: 6 }, (_, g) => Array.from({ length: 3 + g }, () => ({ cost: 1 + Math.floor(rand() * 100), tok: 1 })));
    const arena = buildArena(groups, Infinity, -1, rand);
    const byLoad = Array.from({ length: 6 }, (_, g) => g).sort((a, b) => arena.load[a] - arena.load[b] || a - b);
    const pairs = Int32Array.from([byLoad[5], byLoad[0], byLoad[4], byLoad[1], byLoad[3], byLoad[2]]);
    const want = pairStepsCpu(arena, pairs);
    expectSame(await gpu.pairSteps(arena, pairs), want, 'pairs forced');
    expect((gpu as GpuAccelerator).lastCall?.pairPath).toBe('gpu');
    const auto = await createGpuAccelerator();
    try {
      expect(auto.pairPath).toBe('auto');
      expectSame(await auto.pairSteps(arena, pairs), want, 'pairs auto');
      expect(auto.lastCall?.pairPath).toBe(arena.used >= auto.pairStepsMinItems ? 'gpu' : 'cpu');
      if (gpu.adapter.toLowerCase().includes('llvmpipe')) expect(auto.pairStepsMinItems).toBe(Infinity);
    } finally {
      auto.destroy();
    }
  });

  it('rejects pairs and blocks outside the arena', async () => {
    const arena = buildArena([[{ cost: 5, tok: 1 }], [{ cost: 1, tok: 1 }]], Infinity, -1, rngFor('pairs bad'));
    await expect(gpu.pairSteps(arena, Int32Array.from([0, 2]))).rejects.toThrow(RangeError);
    await expect(gpu.pairSteps({ ...arena, used: arena.off[0] }, Int32Array.from([0, 1]))).rejects.toThrow(RangeError);
  });
});

/** A balance input: n items in cost order over R groups, with a cap and counts as asked. */
function balanceCase(rand: () => number, n: number, R: number, opts: { deal: 'home' | 'snake'; cap?: 'none' | 'loose' | 'tight' | 'negative'; equal?: boolean; maxRounds?: number; spread?: number }): BalanceInput {
  const spread = opts.spread ?? 2000;
  const tokens = Uint32Array.from({ length: n }, () => 1 + (rand() % spread)).sort().reverse();
  // Costs past 2^32 on some cases (perTokenSquared-like terms), always integers < 2^40.
  const big = rand() % 3 === 0;
  const cost = Float64Array.from(tokens, (t) => 7 + t * (big ? 65_537 : 1) + Math.floor((t * t) / 1000));
  const home = Int32Array.from({ length: n }, () => rand() % R);
  const total = cost.reduce((s, c) => s + c, 0), totalTok = tokens.reduce((s, t) => s + t, 0);
  const cap = { none: Infinity, loose: Math.ceil(totalTok / R) * 2 + spread, tight: Math.ceil(totalTok / R) + spread, negative: -1 }[opts.cap ?? 'none'];
  return {
    cost, tokens, home, groups: R, target: Math.max(Math.ceil(total / R), n ? cost[0] : 0), cap,
    q: opts.equal && n >= R ? Math.floor(n / R) : -1, deal: opts.deal, maxRounds: opts.maxRounds ?? 64,
  };
}

async function expectBalanceLikeCpu(inp: BalanceInput, what: string): Promise<void> {
  const want = balanceCpu(inp);
  const got = await gpu.balance(inp);
  expectSame(got.group, want.group, `${what} groups`);
  expect([got.rounds, got.steps], `${what} rounds, steps (seed ${seed})`).toEqual([want.rounds, want.steps]);
}

describe('balance (deal and rounds on the device) equals balanceCpu', () => {
  it('both deals, sizes 0, 1 and off the workgroup multiples, 1 to 3,000 groups, caps and equal counts', async () => {
    const rand = rngFor('balance random');
    const sizes = [0, 1, 2, 63, 64, 65, 1023, 1025, 4097, 20_011];
    let cases = 0;
    for (const n of sizes) {
      for (const R of [1, 2, 3, 7, 64, 129, 1025, 3000]) {
        if (R > 4 * Math.max(n, 1) && R > 7) continue;
        const deal = (cases & 1) === 0 ? 'home' : 'snake';
        const cap = (['none', 'loose', 'tight', 'none', 'negative'] as const)[cases % 5];
        const inp = balanceCase(rand, n, R, { deal, cap, equal: cases % 3 === 0, maxRounds: cases % 7 === 0 ? cases % 3 : 64, spread: cases % 4 === 0 ? 5 : 2000 });
        await expectBalanceLikeCpu(inp, `n=${n} R=${R} ${deal} cap ${cap} q ${inp.q} maxRounds ${inp.maxRounds}`);
        cases++;
      }
    }
    expect(cases).toBeGreaterThan(50);
  });

  it('65,536 groups (the largest group sort and room scan)', async () => {
    const rand = rngFor('balance many groups');
    await expectBalanceLikeCpu(balanceCase(rand, 70_001, 65_536, { deal: 'home', maxRounds: 2 }), 'R=65536 home');
  });

  it('a bucket longer than one keep dispatch, and a block longer than one pair-step chunk', async () => {
    const rand = rngFor('balance long buckets');
    // Every item sampled on rank 0: one bucket of 40,000 (past llvmpipe's keep budget of 16,384).
    const inp = balanceCase(rand, 40_000, 3, { deal: 'home' });
    inp.home.fill(0);
    await expectBalanceLikeCpu(inp, 'one long bucket');
    await expectBalanceLikeCpu(balanceCase(rand, 9_000, 2, { deal: 'snake', cap: 'loose' }), '4,500-item blocks');
  });

  it('4,194,305 items (more than 65,535 workgroups per dispatch)', async () => {
    // A per-position kernel past the 2-D dispatch limit: every kernel of balance.wgsl computes
    // its thread's index with the same function (a deal or a round here would add llvmpipe's
    // minutes of radix sorting 4M keys).
    const rand = rngFor('balance huge');
    await expectBalanceLikeCpu(balanceCase(rand, 65_535 * 64 + 65, 256, { deal: 'snake', maxRounds: 0, spread: 300 }), '4.2M items');
  });

  it('rejects inputs outside its contract', async () => {
    const inp = balanceCase(rngFor('balance bad'), 10, 3, { deal: 'home' });
    await expect(gpu.balance({ ...inp, groups: 0 })).rejects.toThrow(RangeError);
    await expect(gpu.balance({ ...inp, home: Int32Array.from(inp.home, () => 5) })).rejects.toThrow(RangeError);
    await expect(gpu.balance({ ...inp, tokens: inp.tokens.subarray(1) })).rejects.toThrow(RangeError);
    await expect(gpu.balance({ ...inp, cap: NaN })).rejects.toThrow(RangeError);
  });
});
