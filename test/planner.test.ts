// The planner through its library API: hand-checked exact plans, invariants on random batches,
// algorithm ordering, determinism, and the quality targets on the built-in workload.
import { describe, expect, it } from 'vitest';
import { plan } from '../src/index.js';
import type { Algorithm, Config, Example } from '../src/types.js';
import { generateWorkload } from '../src/workload.js';
import { checkPlan, expectBestPromise, expectedItems, mulberry, randomCase, testSeed } from './helpers.js';

const textOnly = (ranks: number, ranksPerNode = 1): Config => ({
  ranks, ranksPerNode,
  phases: [{ name: 'llm', modalities: ['text'], unit: 'example', cost: { perToken: 1 } }],
  bytesPerToken: { text: 1 },
});
const strip = (p: { phases: unknown }) => JSON.stringify(p.phases);

describe('hand-checked plans', () => {
  const ex: Example[] = [
    { id: 'a', rank: 0, text: 5 }, { id: 'b', rank: 0, text: 4 },
    { id: 'c', rank: 0, text: 3 }, { id: 'd', rank: 1, text: 2 },
  ];

  it('none keeps the sampled layout', async () => {
    const p = await plan(ex, textOnly(2), { algorithm: 'none' });
    const ph = p.phases[0];
    expect(ph.ranks.map((r) => r.items)).toEqual([['a', 'b', 'c'], ['d']]);
    expect(ph.ranks.map((r) => r.cost)).toEqual([12, 2]);
    expect(ph.lowerBound).toBe(7);
    expect(ph.maxCost).toBe(12);
    expect(ph.meanCost).toBe(7);
    expect(ph.exchange).toMatchObject({ movedItems: 0, bytes: 0, interNodeBytes: 0, pairs: [] });
  });

  it('lpt: 5→g0, 4→g1, 3→g1, 2→g0; placement keeps the heavier overlap home', async () => {
    // Groups {a,d} and {b,c} (7 each). {b,c} overlaps rank 0 by 7 bytes, {a,d} by 5: {b,c} stays.
    const p = await plan(ex, textOnly(2), { algorithm: 'lpt' });
    const ph = p.phases[0];
    expect(ph.ranks.map((r) => r.items)).toEqual([['b', 'c'], ['a', 'd']]);
    expect(ph.ranks.map((r) => r.cost)).toEqual([7, 7]);
    expect(ph.exchange).toMatchObject({ movedItems: 1, bytes: 5, interNodeBytes: 5, pairs: [[0, 1, 1, 5]] });
    const sameNode = await plan(ex, textOnly(2, 2), { algorithm: 'lpt' });
    expect(sameNode.phases[0].exchange).toMatchObject({ bytes: 5, interNodeBytes: 0, intraNodeBytes: 5 });
  });

  it('lpt 17, kk 16, best 15 (optimal) on 8,7,6,5,4 over two ranks', async () => {
    const five = [8, 7, 6, 5, 4].map((t, i) => ({ id: `x${i}`, rank: 0, text: t }));
    const max = async (algorithm: Algorithm) => (await plan(five, textOnly(2), { algorithm })).phases[0].maxCost;
    expect(await max('lpt')).toBe(17);
    expect(await max('kk')).toBe(16);
    expect(await max('best')).toBe(15);
    const best = await plan(five, textOnly(2), { algorithm: 'best' });
    expect(best.phases[0].ranks.map((r) => r.items.length).sort()).toEqual([2, 3]);
  });

  it('padded: contiguous optimum 12 on 8,3,3,2,1 (loads count × longest)', async () => {
    const cfg = textOnly(2);
    cfg.phases[0].padding = true;
    const items = [8, 3, 3, 2, 1].map((t, i) => ({ id: `p${i}`, rank: i % 2, text: t }));
    const p = await plan(items, cfg, { algorithm: 'padded' });
    const costs = p.phases[0].ranks.map((r) => r.cost).sort((a, b) => a - b);
    expect(costs).toEqual([8, 12]);
    const groups = p.phases[0].ranks.map((r) => [...r.items].sort());
    expect(groups).toContainEqual(['p0']);
    expect(groups).toContainEqual(['p1', 'p2', 'p3', 'p4']);
    expect((await plan(items, cfg, { algorithm: 'best' })).phases[0].maxCost).toBeLessThanOrEqual(12);
  });

  it('segments, scaled example lengths and encoder → LLM routing', async () => {
    const cfg: Config = {
      ranks: 2, ranksPerNode: 2,
      phases: [
        { name: 'vision', modalities: ['image'], unit: 'segment', cost: { perToken: 1 } },
        { name: 'llm', modalities: ['text', 'image'], unit: 'example', scale: { image: 0.5 }, cost: { perToken: 1 } },
      ],
      bytesPerToken: { text: 1, image: 1 },
    };
    const batch: Example[] = [{ id: 'e1', rank: 0, image: [10, 2], text: 1 }, { id: 'e2', rank: 1, image: 4, text: 1 }];
    const p = await plan(batch, cfg, { algorithm: 'lpt', exchange: 'full' });
    const [vision, llm] = p.phases;
    expect(vision.ranks.map((r) => r.items)).toEqual([['e1/image/0'], ['e1/image/1', 'e2/image/0']]);
    expect(vision.ranks.map((r) => r.cost)).toEqual([10, 6]);
    expect(vision.lowerBound).toBe(10);
    expect(vision.exchange).toMatchObject({ movedItems: 1, bytes: 2, interNodeBytes: 0, pairs: [[0, 1, 1, 2]] });
    expect(vision.ranks[1].from).toEqual([0, 1]);
    // e1: ceil(10·0.5) + ceil(2·0.5) + 1 = 7 tokens; e2: ceil(4·0.5) + 1 = 3.
    expect(llm.ranks.map((r) => [r.items, r.tokens])).toEqual([[['e1'], 7], [['e2'], 3]]);
    expect(vision.routeTo).toBe('llm');
    expect(vision.ranks.map((r) => r.routeRanks)).toEqual([[0], [0, 1]]);
    expect(llm.ranks[0].routeRanks).toBeUndefined();
  });
});

describe('invariants on random batches', () => {
  const seed = testSeed('planner invariants');
  const variants = [{}, { padding: true }, { equalCount: true }, { cap: true }];
  for (const v of variants) {
    it(`every item once, costs recomputed, best keeps its promise, deterministic ${JSON.stringify(v)}`, async () => {
      const rand = mulberry(seed ^ JSON.stringify(v).length);
      for (let trial = 0; trial < 25; trial++) {
        const { examples, config } = randomCase(rand, v);
        const max: Record<string, number[]> = {};
        const plans: Record<string, Awaited<ReturnType<typeof plan>>> = {};
        for (const algorithm of ['none', 'lpt', 'kk', 'padded', 'rounds', 'best'] as Algorithm[]) {
          let p;
          try {
            p = await plan(examples, config, { algorithm });
          } catch (e) {
            // kk/padded/rounds may refuse a constraint they cannot meet; they must say so clearly.
            expect(algorithm === 'kk' || algorithm === 'padded' || algorithm === 'rounds', `${algorithm}: ${(e as Error).message}`).toBe(true);
            expect((e as Error).name, (e as Error).stack).toBe('InputError');
            continue;
          }
          max[algorithm] = checkPlan(p, examples, config, algorithm === 'none');
          plans[algorithm] = p;
          if (algorithm === 'none') {
            for (const ph of p.phases) expect(ph.exchange.movedItems).toBe(0);
          }
        }
        expectBestPromise(plans.best, max.lpt, max.kk, examples, config);
        for (let ph = 0; ph < config.phases.length; ph++) {
          if (config.phases[ph].padding && max.padded) expect(max.best[ph]).toBeLessThanOrEqual(max.padded[ph]);
        }
        const again = await plan(examples, config, { algorithm: 'best' });
        const once = await plan(examples, config, { algorithm: 'best' });
        expect(strip(again)).toBe(strip(once));
      }
    });
  }
});

describe('best on large phases (the data-parallel result where it is within the bar)', () => {
  it('best ≤ max(bound + max(0.1%, smallest item), min(lpt, kk)); rounds and best place every item once, honour caps and counts', async () => {
    const rand = mulberry(testSeed('best large'));
    for (let trial = 0; trial < 3; trial++) {
      const ranks = [16, 64, 100][trial];
      // ~22,000 images: the vision phase is large enough for best's rounds.
      const { config, examples } = generateWorkload({ ranks, examples: 8000, seed: 1 + Math.floor(rand() * 1000) });
      const vision = config.phases[0];
      delete vision.maxTokensPerRank; // sized for ~32 examples a rank, not hundreds
      // Equal counts on it in one trial, a token cap a little above the mean in another.
      if (trial === 1) vision.equalCount = true;
      if (trial === 2) {
        const images = [...expectedItems(examples, config)[0].values()];
        vision.maxTokensPerRank = Math.ceil((images.reduce((s, x) => s + x.tokens, 0) / ranks) * 1.01) + Math.max(...images.map((x) => x.tokens));
      }
      const max: Record<string, number[]> = {};
      const plans: Record<string, Awaited<ReturnType<typeof plan>>> = {};
      for (const algorithm of ['lpt', 'kk', 'rounds', 'best'] as Algorithm[]) {
        plans[algorithm] = await plan(examples, config, { algorithm });
        max[algorithm] = checkPlan(plans[algorithm], examples, config);
      }
      const items = expectedItems(examples, config);
      plans.best.phases.forEach((ph, i) => {
        const smallest = Math.min(...[...items[i].values()].map((x) => x.cost));
        const bar = ph.lowerBound + Math.max(0.001 * ph.lowerBound, smallest);
        const label = `trial ${trial} phase ${ph.name} (${ph.algorithm})`;
        expect(max.best[i], label).toBeLessThanOrEqual(Math.max(bar, Math.min(max.lpt[i], max.kk[i])) * (1 + 1e-9));
        if (/rounds/.test(ph.algorithm)) expect(max.best[i], label).toBeLessThanOrEqual(bar * (1 + 1e-9));
      });
      expect(plans.best.phases.some((ph) => /rounds/.test(ph.algorithm)), `trial ${trial}: some phase takes the rounds result`).toBe(true);
    }
  });
});

describe('quality on the built-in workload', () => {
  const { config, examples } = generateWorkload({ ranks: 64, examples: 64 * 24, seed: 7 });

  it('best is within 0.1% of the bound (or one smallest item) wherever a phase has ≥ 8 items per rank', async () => {
    const p = await plan(examples, config, { algorithm: 'best' });
    checkPlan(p, examples, config);
    const none = await plan(examples, config, { algorithm: 'none' });
    p.phases.forEach((ph, i) => {
      expect(none.phases[i].maxCost / none.phases[i].meanCost).toBeGreaterThan(1.3); // the problem is real
      if (ph.items < 8 * config.ranks) return;
      const smallest = Math.min(...[...expectedItems(examples, config)[i].values()].map((x) => x.cost));
      const slack = Math.max(0.001 * ph.lowerBound, smallest);
      expect(ph.maxCost - ph.lowerBound).toBeLessThanOrEqual(slack + 1e-9);
    });
  });

  it('equalCount: within 1% of the count-aware bound and never worse than count-capped LPT', async () => {
    const cfg: Config = structuredClone(config);
    cfg.phases[2].equalCount = true;
    const best = await plan(examples, cfg, { algorithm: 'best' });
    const lpt = await plan(examples, cfg, { algorithm: 'lpt' });
    checkPlan(best, examples, cfg);
    const llm = best.phases[2];
    expect(llm.maxCost).toBeLessThanOrEqual(lpt.phases[2].maxCost);
    expect(llm.maxCost / llm.lowerBound).toBeLessThan(1.01);
  });
});
