// Regressions from review: exact reporting next to huge items, overflow, caps that greedy
// placement cannot meet, limits, library-side validation, padded + equal-count bound,
// prototype-named modalities.
import { describe, expect, it } from 'vitest';
import { plan } from '../src/index.js';
import type { Algorithm, Config, Example } from '../src/types.js';
import { checkPlan } from './helpers.js';

const ALL: Algorithm[] = ['none', 'lpt', 'kk', 'padded', 'best'];
const oneModality = (ranks: number, phase: Partial<Config['phases'][number]> = {}): Config => ({
  ranks, ranksPerNode: 1,
  phases: [{ name: 'p', modalities: ['image'], unit: 'segment', cost: { perItem: 40, perToken: 1, perTokenSquared: 0.00025 }, ...phase }],
});

describe('edge cases', () => {
  it('reported costs match a float64 recomputation even next to a 2^32−1-token item', async () => {
    const ex: Example[] = [{ id: 'big', rank: 0, image: [0xffffffff] }, { id: 's', rank: 1, image: [576, 1, 3] }];
    for (const algorithm of ALL) {
      const p = await plan(ex, oneModality(2), { algorithm });
      checkPlan(p, ex, oneModality(2), algorithm === 'none');
    }
    const lpt = await plan(ex, oneModality(2), { algorithm: 'lpt' });
    const small = lpt.phases[0].ranks.find((r) => !r.items.includes('big/image/0'))!;
    expect(small.cost).toBeCloseTo(698.944 + 41.00025 + 43.00225, 9);
  });

  it('tiny cost coefficients keep their precision', async () => {
    const cfg = oneModality(2, { cost: { perToken: 1e-12 } });
    const ex: Example[] = [{ id: 'a', rank: 0, image: [500] }, { id: 'b', rank: 1, image: [300] }];
    const p = await plan(ex, cfg, { algorithm: 'best' });
    expect(p.phases[0].ranks.map((r) => r.cost).sort()).toEqual([3e-10, 5e-10]);
    checkPlan(p, ex, cfg);
  });

  it('costs that overflow float64 are an input error, not nulls', async () => {
    const cfg = oneModality(2, { cost: { perTokenSquared: 1e300 } });
    await expect(plan([{ id: 'a', rank: 0, image: [0xffffffff, 1] }], cfg)).rejects.toThrow(/phase "p" cost: item costs overflow float64/);
  });

  it('a cap that greedy LPT cannot meet: best still finds a valid plan; lpt says to try best', async () => {
    const cfg: Config = { ranks: 2, ranksPerNode: 1, phases: [{ name: 'llm', modalities: ['text'], unit: 'example', cost: { perToken: 1 }, maxTokensPerRank: 6 }] };
    const ex: Example[] = [3, 3, 2, 2, 2].map((t, i) => ({ id: `x${i}`, rank: i < 2 ? 0 : 1, text: t }));
    const best = await plan(ex, cfg, { algorithm: 'best' });
    checkPlan(best, ex, cfg);
    expect(best.phases[0].maxCost).toBe(6);
    await expect(plan(ex, cfg, { algorithm: 'lpt' })).rejects.toThrow(/lpt found no placement within maxTokensPerRank 6 .*try --algorithm best/);
  });

  it('padded phases with equal counts state the q × largest bound', async () => {
    const cfg: Config = { ranks: 2, ranksPerNode: 1, phases: [{ name: 'llm', modalities: ['text'], unit: 'example', cost: { perToken: 1 }, padding: true, equalCount: true }] };
    const ex: Example[] = [100, 1, 1, 1, 1, 1].map((t, i) => ({ id: `x${i}`, rank: i % 2, text: t }));
    const p = await plan(ex, cfg, { algorithm: 'best' });
    expect(p.phases[0].lowerBound).toBe(300);
    expect(p.phases[0].maxCost).toBe(300);
  });

  it('padded + equal counts on the workload: best reaches the q × largest bound where chunks can', async () => {
    const { generateWorkload } = await import('../src/workload.js');
    const { config, examples } = generateWorkload({ ranks: 32, examples: 1024, seed: 2 });
    for (const ph of config.phases) { ph.padding = true; ph.equalCount = true; delete ph.maxTokensPerRank; }
    const best = await plan(examples, config, { algorithm: 'best' });
    const lpt = await plan(examples, config, { algorithm: 'lpt' });
    checkPlan(best, examples, config);
    best.phases.forEach((ph, i) => expect(ph.maxCost).toBeLessThanOrEqual(lpt.phases[i].maxCost));
    expect(best.phases[1].maxCost / best.phases[1].lowerBound).toBeLessThan(1.001); // audio
  });

  it('the library validates and normalises the config as the CLI does', async () => {
    const ex: Example[] = [{ id: 'a', rank: 0, text: 3 }];
    const cfg = { ranks: 1, phases: [{ name: 'p', modalities: ['text'], cost: { perToken: 1 } }] } as unknown as Config;
    const p = await plan(ex, cfg);
    expect(p.phases[0].ranks[0].items).toEqual(['a/text/0']); // unit defaults to "segment"
    const bad = { ranks: 1, phases: [{ name: 'p', modalities: ['text'], cost: { perToken: -1 } }] } as unknown as Config;
    await expect(plan(ex, bad)).rejects.toThrow(/config phase "p" cost\.perToken: must be a non-negative number/);
    await expect(plan(ex, cfg, { algorithm: 'bogus' as Algorithm })).rejects.toThrow(/algorithm: must be one of/);
    await expect(plan(ex, { ...cfg, ranks: 70000 })).rejects.toThrow(/config ranks: must be at most 65536/);
  });

  it('modalities named like Object.prototype members work', async () => {
    const cfg: Config = { ranks: 1, ranksPerNode: 1, phases: [{ name: 'p', modalities: ['constructor', 'text'], unit: 'example', cost: { perToken: 1 } }] };
    const p = await plan([{ id: 'a', rank: 0, text: 4 }], cfg);
    expect(p.phases[0].ranks[0].tokens).toBe(4);
  });
});
