// KK off the main thread: the worker's grouping is kk()'s, byte for byte, whichever way a job
// ends (run by the worker, taken back while queued, cancelled), and a plan that uses it is the
// plan of the synchronous path.
import { describe, expect, it } from 'vitest';
import { cpuAccelerator, sortDescCpu } from '../src/primitives/accelerator.js';
import { partition } from '../src/partition/index.js';
import type { PartitionInput } from '../src/partition/common.js';
import { kk } from '../src/partition/kk.js';
import { KK_BACKGROUND_MIN_ITEMS, kkInBackground } from '../src/partition/kk-background.js';
import { mulberry, testSeed } from './helpers.js';

function randomInput(rand: () => number, n: number, groups: number, equalCount = false): PartitionInput {
  const tokens = Uint32Array.from({ length: n }, () => 1 + Math.floor(Math.exp(rand() * 9)));
  const cost = Float64Array.from(tokens, (t) => 3 + t + Math.floor((t * t) / 700));
  return { cost, tokens, order: sortDescCpu(tokens), groups, equalCount, padding: false };
}

describe('kkInBackground', () => {
  it('leaves small phases to the caller', () => {
    const rand = mulberry(1);
    expect(kkInBackground(randomInput(rand, KK_BACKGROUND_MIN_ITEMS - 1, 64))).toBeNull();
  });

  // `npm test` compiles dist/ (with the worker) before vitest runs, so a worker is expected here.
  it('returns exactly kk() from the worker, from a job taken back while queued, for free and equal counts', async () => {
    const rand = mulberry(testSeed('kk background'));
    const a = randomInput(rand, KK_BACKGROUND_MIN_ITEMS + 1234, 512);
    const b = randomInput(rand, KK_BACKGROUND_MIN_ITEMS + 77, 1000, true);
    const c = randomInput(rand, KK_BACKGROUND_MIN_ITEMS, 3);
    const ja = kkInBackground(a), jb = kkInBackground(b), jc = kkInBackground(c);
    expect(ja, 'no worker: run `npm test`, which builds dist/ first').not.toBeNull();
    // c is asked for first: a is on the worker and b queued, so c is taken back and run here.
    expect(Array.from(await jc!.group())).toEqual(Array.from(kk(c)));
    expect(Array.from(await ja!.group())).toEqual(Array.from(kk(a)));
    expect(Array.from(await jb!.group())).toEqual(Array.from(kk(b)));
  });

  it('hands out a new array on every call (callers refine it in place), even after cancel', async () => {
    const rand = mulberry(testSeed('kk background copies'));
    const a = randomInput(rand, KK_BACKGROUND_MIN_ITEMS + 10, 64);
    const b = randomInput(rand, KK_BACKGROUND_MIN_ITEMS + 20, 32);
    const want = Array.from(kk(a));
    const ja = kkInBackground(a)!, jb = kkInBackground(b)!;
    const first = await ja.group();
    first.fill(0); // what refine does to it, in effect
    expect(Array.from(await ja.group())).toEqual(want);
    jb.cancel();
    expect(Array.from(await jb.group())).toEqual(Array.from(kk(b))); // computed here if not by the worker
  });

  it('skips a cancelled job and still serves the next one', async () => {
    const rand = mulberry(testSeed('kk background cancel'));
    const a = randomInput(rand, KK_BACKGROUND_MIN_ITEMS, 64);
    const b = randomInput(rand, KK_BACKGROUND_MIN_ITEMS, 128);
    const c = randomInput(rand, KK_BACKGROUND_MIN_ITEMS, 256);
    const ja = kkInBackground(a)!, jb = kkInBackground(b)!, jc = kkInBackground(c)!;
    jb.cancel();
    expect(Array.from(await ja.group())).toEqual(Array.from(kk(a)));
    expect(Array.from(await jc.group())).toEqual(Array.from(kk(c)));
  });

  it('gives best the same grouping as running KK in line', async () => {
    const rand = mulberry(testSeed('kk background best'));
    // Fewer than 8 items a rank: best runs its sequential candidates (not the rounds result).
    const R = 6400;
    const inp = randomInput(rand, KK_BACKGROUND_MIN_ITEMS + 1000, R);
    // Lengths without a heavy tail, so that the bound is the mean load, not the largest item.
    inp.tokens = inp.tokens.map((t) => 1 + (t % 150));
    inp.cost = Float64Array.from(inp.tokens, (t) => 3 + t);
    inp.order = sortDescCpu(inp.tokens);
    // Costs in multiples of 1,000: loads are too, so the bound ⌈total / R⌉ is out of reach
    // (made sure it is not itself a multiple) and best goes on to KK.
    inp.cost = inp.cost.map((c) => 1000 * c);
    if (Math.ceil(inp.cost.reduce((s, c) => s + c, 0) / R) % 1000 === 0) inp.cost[0] += 1000;
    const sampled = Int32Array.from({ length: inp.order.length }, () => Math.floor(rand() * R));
    const total = inp.cost.reduce((s, c) => s + c, 0);
    const inLine = await partition(inp, 'best', sampled, total, cpuAccelerator, 'p', null);
    const job = kkInBackground(inp);
    expect(job).not.toBeNull();
    let asked = false;
    const watched = { group: () => { asked = true; return job!.group(); }, cancel: () => job!.cancel() };
    const background = await partition(inp, 'best', sampled, total, cpuAccelerator, 'p', watched);
    expect(asked).toBe(true); // LPT + refinement stays above the bound here, so best needs KK
    expect(background.algorithm).toBe(inLine.algorithm);
    expect(Array.from(background.group)).toEqual(Array.from(inLine.group));
  });

  it('best gives the same plan when LPT misses a token cap and KK is both the start and a candidate', async () => {
    // Pairs of groups whose items fit the cap exactly as {a, 600 − a} and {c, d, 600 − c − d}:
    // LPT and its repairs miss the cap, so best starts from (a refined copy of) KK and asks for
    // KK again as a candidate: each request must see KK's own grouping, as in line.
    const rand = mulberry(testSeed('kk background cap'));
    const R = 20000, tokens: number[] = [];
    for (let g = 0; g < R / 2; g++) {
      const a = 280 + Math.floor(rand() * 40), c = 185 + Math.floor(rand() * 30), d = 185 + Math.floor(rand() * 30);
      tokens.push(a, 600 - a, c, d, 600 - c - d);
    }
    const tok = Uint32Array.from(tokens);
    const inp: PartitionInput = { cost: Float64Array.from(tok), tokens: tok, order: sortDescCpu(tok), groups: R, cap: 690, equalCount: false, padding: false };
    expect(inp.order.length).toBeGreaterThanOrEqual(KK_BACKGROUND_MIN_ITEMS);
    const sampled = new Int32Array(inp.order.length); // all sampled on rank 0
    const total = tokens.reduce((s, t) => s + t, 0);
    const inLine = await partition(inp, 'best', sampled, total, cpuAccelerator, 'llm', null);
    expect(inLine.algorithm).toMatch(/^kk/);
    const job = kkInBackground(inp);
    expect(job).not.toBeNull();
    const background = await partition(inp, 'best', sampled, total, cpuAccelerator, 'llm', job);
    expect(background.algorithm).toBe(inLine.algorithm);
    expect(Array.from(background.group)).toEqual(Array.from(inLine.group));
  });
});
