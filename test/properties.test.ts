// Property-based checks (fast-check shrinks a failing batch to a minimal one): on arbitrary
// small batches every algorithm places every item exactly once with honest costs, and `best`
// keeps its promise against `lpt` and `kk` (never worse than both, or within the quality bar
// where it takes the rounds result).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { plan } from '../src/index.js';
import type { Config, Example } from '../src/types.js';
import { checkPlan, expectBestPromise } from './helpers.js';

const config = (ranks: number, padding: boolean): Config => ({
  ranks, ranksPerNode: 2,
  phases: [
    { name: 'enc', modalities: ['image'], unit: 'segment', cost: { perItem: 3, perToken: 1 } },
    { name: 'llm', modalities: ['text', 'image'], unit: 'example', scale: { image: 0.3 }, cost: { perToken: 1, perTokenSquared: 0.01 }, padding },
  ],
  bytesPerToken: { text: 1, image: 7 },
});

const batchArb = fc.integer({ min: 1, max: 6 }).chain((ranks) =>
  fc.record({
    ranks: fc.constant(ranks),
    padding: fc.boolean(),
    examples: fc.array(
      fc.record({ rank: fc.integer({ min: 0, max: ranks - 1 }), text: fc.integer({ min: 0, max: 300 }), image: fc.array(fc.integer({ min: 0, max: 200 }), { maxLength: 3 }) }),
      { minLength: 1, maxLength: 40 },
    ),
  }),
);

describe('properties', () => {
  it("best keeps its promise against lpt and kk, every item once, costs recomputed", async () => {
    await fc.assert(
      fc.asyncProperty(batchArb, async ({ ranks, padding, examples }) => {
        const ex: Example[] = examples.map((e, i) => ({ id: i, ...e }));
        ex[0].image = [...(ex[0].image as number[]), 5]; // the encoder phase always has an item
        const cfg = config(ranks, padding);
        const max: Record<string, number[]> = {};
        for (const algorithm of ['lpt', 'kk', 'rounds'] as const) max[algorithm] = checkPlan(await plan(ex, cfg, { algorithm }), ex, cfg);
        const best = await plan(ex, cfg, { algorithm: 'best' });
        checkPlan(best, ex, cfg);
        expectBestPromise(best, max.lpt, max.kk, ex, cfg);
      }),
      { numRuns: 150 },
    );
  });
});
