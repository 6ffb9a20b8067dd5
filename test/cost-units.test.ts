// The plan does not depend on the unit of the cost model: costs × 1e-12 … × 1e12 (powers of
// ten, which float64 cannot scale exactly, and others) give the same item → rank assignment and
// the same max/bound as costs × 1, on the demo workload and on random batches.
import { describe, expect, it } from 'vitest';
import { plan } from '../src/index.js';
import type { Algorithm, Config, Example, Plan } from '../src/types.js';
import { generateWorkload } from '../src/workload.js';
import { checkPlan, mulberry, randomCase, testSeed } from './helpers.js';

const SCALES = [1e-12, 1e-9, 1e-7, 1e-4, 0.1, 0.7, 3, 1e2, 1e5, 1e9, 1e12];

function scaled(config: Config, s: number): Config {
  const c = structuredClone(config);
  for (const ph of c.phases) for (const k of ['perItem', 'perToken', 'perTokenSquared'] as const) if (ph.cost[k] !== undefined) ph.cost[k]! *= s;
  return c;
}

const assignment = (p: Plan) => JSON.stringify(p.phases.map((ph) => [ph.algorithm, ph.ranks.map((r) => r.items)]));
const ratios = (p: Plan) => p.phases.map((ph) => ph.maxCost / ph.lowerBound);

async function expectUnitFree(examples: Example[], config: Config, algorithm: Algorithm, label: string) {
  const ref = await plan(examples, config, { algorithm });
  for (const s of SCALES) {
    const c = scaled(config, s);
    const p = await plan(examples, c, { algorithm });
    expect(assignment(p), `${label}, ${algorithm}, costs × ${s}`).toBe(assignment(ref));
    ratios(p).forEach((r, i) => expect(Math.abs(r - ratios(ref)[i]), `${label}, ${algorithm}, costs × ${s}, phase ${i}`).toBeLessThan(1e-9));
    if (s === SCALES[0] || s === SCALES[SCALES.length - 1]) checkPlan(p, examples, c, algorithm === 'none');
  }
}

describe('cost units', () => {
  it('the demo workload gets the same plan whatever the unit of its costs', async () => {
    const { config, examples } = generateWorkload({ ranks: 32, examples: 1024, seed: 1 });
    await expectUnitFree(examples, config, 'best', 'demo 1024 × 32');
  });

  it('random batches (plain, padded, equal counts, capped) get the same plan in every unit', async () => {
    const rand = mulberry(testSeed('cost units'));
    const variants = [{}, { padding: true }, { equalCount: true }, { cap: true }];
    for (let t = 0; t < 8; t++) {
      const { examples, config } = randomCase(rand, variants[t % 4]);
      for (const algorithm of ['best', 'lpt', 'kk', 'padded'] as Algorithm[]) {
        let ok = true;
        try { await plan(examples, config, { algorithm }); } catch { ok = false; } // e.g. lpt under a cap it cannot meet
        if (ok) await expectUnitFree(examples, config, algorithm, `random batch ${t}`);
      }
    }
  });
});
