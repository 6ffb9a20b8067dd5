// A step that draws no item of some phase (no audio this time, common with small batches or
// curriculum mixes) is planned, not refused: that phase is R empty ranks, bound 0, no exchange,
// for every algorithm and backend, in the library, the CLI and the sidecar. Only a batch with no
// example at all is an error.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpuAccelerator, type Accelerator } from '../src/primitives/accelerator.js';
import { getAccelerator } from '../src/backend.js';
import { run } from '../src/cli.js';
import { plan } from '../src/index.js';
import { serve } from '../src/serve/server.js';
import { ALGORITHMS, type Config, type Example, type PhasePlan } from '../src/types.js';
import { generateWorkload, toJsonl } from '../src/workload.js';
import { checkPlan } from './helpers.js';

const R = 12;
const { config, examples: all } = generateWorkload({ ranks: R, ranksPerNode: 4, examples: 200, seed: 3 });
/** `grep -v audio`: the examples without audio. */
const noAudio = all.filter((e) => e.audio === undefined);

/** The documented shape of a phase with no items. */
function emptyPhase(name: string, ranks: number, extra: Partial<PhasePlan> = {}, rankExtra: object = {}): PhasePlan {
  return {
    name,
    ranks: Array.from({ length: ranks }, () => ({ items: [], cost: 0, tokens: 0, ...rankExtra })),
    lowerBound: 0, maxCost: 0, meanCost: 0,
    exchange: { movedItems: 0, bytes: 0, interNodeBytes: 0, intraNodeBytes: 0, pairs: [] },
    algorithm: 'empty', items: 0,
    ...extra,
  } as PhasePlan;
}

let gpu: Accelerator;
beforeAll(async () => { gpu = await getAccelerator('gpu'); });
afterAll(() => gpu?.destroy());

describe('a phase with no items', () => {
  it('is R empty ranks for every algorithm, on the CPU and the GPU, and the other phases are planned as usual', async () => {
    expect(noAudio.length).toBeGreaterThan(100);
    for (const algorithm of ALGORITHMS) {
      const cpu = await plan(noAudio, config, { algorithm }, cpuAccelerator);
      checkPlan(cpu, noAudio, config, algorithm === 'none');
      expect(cpu.phases[1], algorithm).toEqual(emptyPhase('audio', R, { routeTo: 'llm' }, { routeRanks: [] }));
      expect(cpu.phases[0].items).toBeGreaterThan(0);
      const g = await plan(noAudio, config, { algorithm }, gpu);
      expect(JSON.stringify(g.phases), `${algorithm} on ${gpu.adapter}`).toBe(JSON.stringify(cpu.phases));
    }
  });

  it('with --exchange full every rank has an empty `from` list too; equal counts and caps do not refuse it', async () => {
    const cfg = structuredClone(config);
    cfg.phases[1].equalCount = true;
    cfg.phases[1].maxTokensPerRank = 1;
    const p = await plan(noAudio, cfg, { exchange: 'full' });
    expect(p.phases[1]).toEqual(emptyPhase('audio', R, { routeTo: 'llm' }, { from: [], routeRanks: [] }));
  });

  it('routes encoder items to -1 when the routeTo phase is empty, and an empty encoder phase still names its routeTo', async () => {
    const cfg: Config = {
      ranks: 3, ranksPerNode: 1,
      phases: [
        { name: 'vision', modalities: ['image'], unit: 'segment', cost: { perToken: 1 } },
        { name: 'llm', modalities: ['text'], unit: 'example', cost: { perToken: 1 } },
      ],
    };
    const imagesOnly: Example[] = [{ id: 'a', rank: 0, image: [5, 3] }, { id: 'b', rank: 2, image: 4 }];
    const p1 = await plan(imagesOnly, cfg, { algorithm: 'lpt' });
    checkPlan(p1, imagesOnly, cfg);
    expect(p1.phases[0].ranks.flatMap((r) => r.routeRanks)).toEqual([-1, -1, -1]);
    expect(p1.phases[0].routeTo).toBe('llm');
    expect(p1.phases[1]).toEqual(emptyPhase('llm', 3));

    const textOnly: Example[] = [{ id: 'a', rank: 0, text: 5 }, { id: 'b', rank: 2, text: 4 }];
    const p2 = await plan(textOnly, cfg, { algorithm: 'lpt' });
    checkPlan(p2, textOnly, cfg);
    expect(p2.phases[0]).toEqual(emptyPhase('vision', 3, { routeTo: 'llm' }, { routeRanks: [] }));
    expect(p2.phases[1].items).toBe(2);
  });

  it('every phase may be empty (examples with no segments), but a batch with no example is an error', async () => {
    const bare: Example[] = [{ id: 'a', rank: 0 }, { id: 'b', rank: 5 }];
    const p = await plan(bare, config);
    expect(p.phases.map((ph) => ph.algorithm)).toEqual(['empty', 'empty', 'empty']);
    checkPlan(p, bare, config);
    await expect(plan([], config)).rejects.toThrow(/^batch is empty \(no examples\)$/);
  });
});

describe('through the CLI and the sidecar', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pb-empty-'));
  const cfgFile = join(dir, 'config.json');
  writeFileSync(cfgFile, JSON.stringify(config));
  const cli = async (argv: string[], stdin = '') => {
    let out = '', err = '';
    const code = await run(argv, { stdout: (s) => { out += s; }, stderr: (s) => { err += s; }, readStdin: async () => stdin });
    return { code, out, err };
  };

  it('`grep -v audio batch.jsonl | postbalance plan --batch -` plans the audio phase as empty ranks', async () => {
    for (const backend of ['cpu', 'gpu']) {
      const r = await cli(['plan', '--batch', '-', '--config', cfgFile, '--backend', backend], toJsonl(noAudio));
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      const p = JSON.parse(r.out);
      expect(p.phases[1]).toEqual(emptyPhase('audio', R, { routeTo: 'llm' }, { routeRanks: [] }));
      expect(JSON.stringify(p.phases)).toBe(JSON.stringify((await plan(noAudio, config)).phases));
    }
  });

  it('an empty batch file is one line, exit 1, nothing on stdout', async () => {
    for (const text of ['', '\n\n  \n']) {
      const r = await cli(['plan', '--batch', '-', '--config', cfgFile, '--backend', 'cpu'], text);
      expect(r).toEqual({ code: 1, out: '', err: 'postbalance: batch is empty (no examples)\n' });
    }
  });

  it('the sidecar answers a batch with an empty phase, and refuses an empty batch under its id', async () => {
    const out: string[] = [];
    const lines = [{ id: 1, config }, { id: 2, batch: noAudio }, { id: 3, batch: [] }, { id: 4, compact: { ranks: [0, 1], lengths: { text: [3, 4] } } }];
    await serve([lines.map((l) => JSON.stringify(l)).join('\n') + '\n'], (s) => { out.push(s); }, { accel: cpuAccelerator });
    const r = out.map((s) => JSON.parse(s));
    expect(r[1].plan.phases[1]).toEqual(emptyPhase('audio', R, { routeTo: 'llm' }, { routeRanks: [] }));
    expect(r[2]).toEqual({ id: 3, error: 'batch is empty (no examples)' });
    expect(r[3].plan.phases.map((ph: PhasePlan) => ph.algorithm)).toEqual(['empty', 'empty', expect.stringMatching(/./)]);
    expect(r[3].plan.phases[2].items).toBe(2);
  });
});
