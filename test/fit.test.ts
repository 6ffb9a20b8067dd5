// `postbalance fit`: cost models fitted to measured phase times by non-negative least squares.
// Hand-checked least squares, known coefficients recovered from noisy synthetic samples, the
// fitted config accepted by `plan`, and one-line errors for bad or degenerate samples.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../src/cli.js';
import { fitPhase, leastSquares, nnls, singularValues } from '../src/fit.js';
import type { Config, CostModel } from '../src/types.js';
import { mulberry, testSeed } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'postbalance-fit-'));
const file = (name: string, text: string) => { const p = join(dir, name); writeFileSync(p, text); return p; };

async function cli(argv: string[], stdin = '') {
  let out = '', err = '';
  const code = await run(argv, { stdout: (s) => { out += s; }, stderr: (s) => { err += s; }, readStdin: async () => stdin });
  return { code, out, err };
}

const col = (...v: number[]) => Float64Array.from(v);

describe('least squares', () => {
  it('solves a square system exactly and a tall one as the normal equations would', () => {
    // x = (1, 2): 1·1 + 1·2 = 3, 1·1 − 1·2 = −1.
    const sq = leastSquares([col(1, 1), col(1, -1)], col(3, -1))!;
    expect(Array.from(sq.coef).map((x) => Number(x.toFixed(12)))).toEqual([1, 2]);
    expect(sq.ss).toBeCloseTo(0, 20);
    // y = a·t on t = 1, 2, 3 with y = 1, 2, 2: a = Σty/Σt² = 11/14, residual Σy² − (Σty)²/Σt² = 9 − 121/14.
    const tall = leastSquares([col(1, 2, 3)], col(1, 2, 2))!;
    expect(tall.coef[0]).toBeCloseTo(11 / 14, 14);
    expect(tall.ss).toBeCloseTo(9 - 121 / 14, 12);
    expect(leastSquares([col(1, 2), col(2, 4)], col(1, 1))).toBeNull(); // dependent columns
  });

  it('NNLS clamps a coefficient that unconstrained least squares makes negative', () => {
    // Identity design, y = (1, −1, 2): the unconstrained solution is y itself; the best
    // non-negative one is (1, 0, 2) with residual 1.
    const r = nnls([col(1, 0, 0), col(0, 1, 0), col(0, 0, 1)], col(1, -1, 2));
    expect(Array.from(r.coef)).toEqual([1, 0, 2]);
    expect(r.ss).toBeCloseTo(1, 12);
    // Every y below zero: the empty support, coefficients 0.
    expect(Array.from(nnls([col(1, 1), col(1, 2)], col(-1, -3)).coef)).toEqual([0, 0]);
  });

  it('singular values of orthogonal and of dependent columns', () => {
    expect(singularValues([col(3, 0), col(0, 4)]).map((x) => Number(x.toFixed(12)))).toEqual([4, 3]);
    const sv = singularValues([col(1, 1, 0), col(2, 2, 0)]);
    expect(sv[1]).toBeLessThan(1e-12);
  });
});

/** Synthetic samples of one phase: items of lengths around a per-step scale, ms with ±noise. */
function synthetic(rand: () => number, cost: Required<CostModel>, phase: string, samples: number, noise: number): string[] {
  const lines: string[] = [];
  for (let i = 0; i < samples; i++) {
    const n = 1 + Math.floor(rand() * 32);
    const scale = Math.exp(rand() * Math.log(8192));
    const lengths = Array.from({ length: n }, () => Math.max(1, Math.round(scale * (0.5 + rand()))));
    const ms = lengths.reduce((s, L) => s + cost.perItem + cost.perToken * L + cost.perTokenSquared * L * L, 0) * (1 + (rand() - 0.5) * 2 * noise);
    lines.push(JSON.stringify({ phase, lengths, ms, rank: i % 8, step: Math.floor(i / 8) }));
  }
  return lines;
}

const CONFIG: Config & Record<string, unknown> = {
  ranks: 8, ranksPerNode: 4,
  phases: [
    { name: 'vision', modalities: ['image'], unit: 'segment', cost: { perItem: 1, perToken: 1 }, microBatches: { count: 2 } },
    { name: 'audio', modalities: ['audio'], unit: 'segment', cost: { perToken: 0.5 } },
    { name: 'llm', modalities: ['text', 'image', 'audio'], unit: 'example', scale: { image: 0.25 }, cost: { perToken: 1 } },
  ],
  bytesPerToken: { text: 4, image: 1176 },
};

/** Four samples of the vision phase that fit on their own. */
const FOUR_GOOD = [[1], [2, 3], [10], [1, 50, 7]].map((lengths, i) => JSON.stringify({ phase: 'vision', lengths, ms: 1 + i })).join('\n');

describe('postbalance fit', () => {
  it('recovers known coefficients from noisy samples within 5%, keeps unsampled phases, and plan accepts the result', async () => {
    const rand = mulberry(testSeed('fit'));
    const vision = { perItem: 40, perToken: 1, perTokenSquared: 0.00025 };
    const llm = { perItem: 5, perToken: 0.02, perTokenSquared: 4e-6 };
    // Interleaved, as a trainer writes them: a line per rank and phase and step.
    const v = synthetic(rand, vision, 'vision', 300, 0.03), l = synthetic(rand, llm, 'llm', 300, 0.03);
    const samples = file('samples.jsonl', v.flatMap((line, i) => [line, l[i]]).join('\n') + '\n');
    const config = file('config.json', JSON.stringify(CONFIG));
    const r = await cli(['fit', '--samples', samples, '--config', config]);
    expect(r.code).toBe(0);
    const fitted = JSON.parse(r.out);
    for (const [p, truth] of [[0, vision], [2, llm]] as const) {
      for (const k of ['perItem', 'perToken', 'perTokenSquared'] as const) {
        expect(Math.abs(fitted.phases[p].cost[k] / truth[k] - 1), `${fitted.phases[p].name} ${k}`).toBeLessThan(0.05);
      }
    }
    // Everything else as written: the unsampled phase's cost, micro-batches, bytes, defaults not added.
    expect({ ...fitted, phases: fitted.phases.map((ph: Record<string, unknown>, i: number) => (i === 1 ? ph : { ...ph, cost: CONFIG.phases[i].cost })) }).toEqual(CONFIG);
    // One line per phase on stderr: the fit, R² and the residual; the unsampled phase says so.
    const lines = r.err.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^postbalance fit: phase "vision": 300 samples: perItem [\d.]+, perToken [\d.]+, perTokenSquared [\d.e-]+; R² 0\.9\d+, residual [\d.]+ ms RMS$/);
    expect(lines[1]).toBe('postbalance fit: phase "audio": no samples, cost kept');
    // The printed config is one plan takes.
    const batch = file('batch.jsonl', '{"id":"a","rank":0,"text":300,"image":[576,1152]}\n{"id":"b","rank":5,"text":40,"audio":[900]}\n');
    const plan = await cli(['plan', '--batch', batch, '--config', file('fitted.json', r.out), '--backend', 'cpu']);
    expect(plan.err).toBe('');
    expect(plan.code).toBe(0);
    const vcost = fitted.phases[0].cost;
    const item = (L: number) => vcost.perItem + vcost.perToken * L + vcost.perTokenSquared * L * L;
    expect(JSON.parse(plan.out).phases[0].meanCost).toBeCloseTo((item(576) + item(1152)) / 8, 6);
  });

  it('a padded phase is fitted on count × its longest item, as the planner counts a padded rank', async () => {
    const rand = mulberry(testSeed('fit padded'));
    const truth = { perItem: 20, perToken: 2, perTokenSquared: 0.001 };
    const lines: string[] = [];
    for (let i = 0; i < 200; i++) {
      const n = 1 + Math.floor(rand() * 16), top = 1 + Math.floor(Math.exp(rand() * Math.log(4096)));
      const lengths = Array.from({ length: n }, (_, j) => (j === 0 ? top : 1 + Math.floor(rand() * top)));
      const ms = n * (truth.perItem + truth.perToken * top + truth.perTokenSquared * top * top) * (1 + (rand() - 0.5) * 0.04);
      lines.push(JSON.stringify({ phase: 'llm', lengths, ms }));
    }
    const padded = structuredClone(CONFIG);
    padded.phases[2].padding = true;
    const r = await cli(['fit', '--samples', file('padded.jsonl', lines.join('\n')), '--config', file('padded.json', JSON.stringify(padded))]);
    expect(r.code).toBe(0);
    const cost = JSON.parse(r.out).phases[2].cost;
    for (const k of ['perItem', 'perToken', 'perTokenSquared'] as const) expect(Math.abs(cost[k] / truth[k] - 1), k).toBeLessThan(0.05);
  });

  it('fitPhase reports R² and the residual in ms; a coefficient the data do not need is 0', () => {
    // ms = 2·Σ L exactly: perItem and perTokenSquared 0, R² 1, residual 0.
    const s = { count: [1, 2, 3, 4], sumL: [10, 30, 20, 50], sumL2: [100, 500, 200, 1300], ms: [20, 60, 40, 100] };
    const f = fitPhase('x', s);
    expect(f.cost.perToken).toBeCloseTo(2, 9);
    expect(f.cost.perItem).toBeCloseTo(0, 9);
    expect(f.cost.perTokenSquared).toBeCloseTo(0, 9);
    expect(f.r2).toBeCloseTo(1, 9);
    expect(f.rmsMs).toBeCloseTo(0, 6);
  });

  const cfg = file('c.json', JSON.stringify(CONFIG));
  const cases: [string, string, RegExp][] = [
    ['malformed line', '{"phase":"vision","lengths":[1],"ms":1}\n{"phase":"vision",', /^postbalance: samples line 2: malformed JSON/],
    ['not an object', '[1,2]', /^postbalance: samples line 1: must be a JSON object like/],
    ['unknown field', '{"phase":"vision","lengths":[1],"ms":1,"gpu":0}', /^postbalance: samples line 1, field "gpu": unknown field \(allowed: phase, lengths, ms, rank, step\)$/],
    ['unknown phase', '{"phase":"video","lengths":[1],"ms":1}', /^postbalance: samples line 1, field "phase": "video" is not a phase of the config \(vision, audio, llm\)$/],
    ['bad length', '{"phase":"vision","lengths":[1,-2],"ms":1}', /^postbalance: samples line 1, field "lengths"\[1\]: must be an integer length in \[0, 2\^32-1\], got -2$/],
    ['lengths not an array', '{"phase":"vision","lengths":5,"ms":1}', /^postbalance: samples line 1, field "lengths": must be an array of item lengths, got 5$/],
    ['missing ms', '{"phase":"vision","lengths":[1]}', /^postbalance: samples line 1, field "ms": must be a non-negative number of milliseconds, got undefined$/],
    ['negative ms', '\n{"phase":"vision","lengths":[1],"ms":-4}', /^postbalance: samples line 2, field "ms": must be a non-negative number of milliseconds, got -4$/],
    // Past these the fit's arithmetic overflowed: after 4 good lines, 1e308 and 1e200 gave "R² NaN,
    // residual Infinity" and exit 0; 1e-300 a "cannot tell apart" error that named no line.
    ...([['1e308', '1e\\+308'], ['1e200', '1e\\+200'], ['1e-300', '1e-300']] as const).map(([ms, shown]): [string, string, RegExp] => [
      `ms ${ms}`, `${FOUR_GOOD}\n{"phase":"vision","lengths":[4294967295,2],"ms":${ms}}`,
      new RegExp(`^postbalance: samples line 5, field "ms": must be 0 or between 1e-9 and 1e12 milliseconds \\(a picosecond to 31 years\\), got ${shown}$`),
    ]),
    ['bad rank', '{"phase":"vision","lengths":[1],"ms":1,"rank":1.5}', /^postbalance: samples line 1, field "rank": must be a non-negative integer, got 1\.5$/],
    ['no samples', '\n\n', /^postbalance: samples: no sample lines/],
    ['too few distinct samples', '{"phase":"vision","lengths":[576],"ms":1}\n{"phase":"vision","lengths":[576],"ms":1.1}\n{"phase":"vision","lengths":[576,576],"ms":2}', /^postbalance: phase "vision": 2 distinct samples \(item count, Σ length, Σ length²\) in 3 lines; at least 3 are needed to fit perItem, perToken and perTokenSquared$/],
    ['every item one length', [1, 2, 3, 4, 5].map((n) => JSON.stringify({ phase: 'vision', lengths: Array(n).fill(576), ms: n * 9.5 })).join('\n'), /^postbalance: phase "vision": the samples cannot tell perItem, perToken and perTokenSquared apart \(condition number .*: e\.g\. every item of one length\); sample steps with items of varied lengths and counts$/],
    ['only empty steps', '{"phase":"vision","lengths":[],"ms":1}\n{"phase":"vision","lengths":[0],"ms":2}\n{"phase":"vision","lengths":[0,0],"ms":3}', /^postbalance: phase "vision": every sample ran no item or only items of length 0/],
  ];
  for (const [name, text, message] of cases) {
    it(`bad samples: ${name} (one line, exit 1, nothing on stdout)`, async () => {
      const r = await cli(['fit', '--samples', file(`bad-${name.replace(/\W/g, '_')}.jsonl`, text), '--config', cfg]);
      expect(r.out).toBe('');
      expect(r.code).toBe(1);
      expect(r.err.trimEnd()).toMatch(message);
      expect(r.err.trimEnd().split('\n')).toHaveLength(1);
    });
  }

  it('flags: both inputs required, not both stdin; a bad config is the config\'s error', async () => {
    expect((await cli(['fit', '--config', cfg])).err).toBe('postbalance: --samples FILE (or - for stdin) is required\n');
    expect((await cli(['fit', '--samples', '-', '--config', '-'])).err).toBe('postbalance: --samples and --config cannot both be stdin\n');
    const viaStdin = await cli(['fit', '--samples', '-', '--config', cfg], synthetic(mulberry(1), { perItem: 1, perToken: 1, perTokenSquared: 0.001 }, 'audio', 20, 0).join('\n'));
    expect(viaStdin.code).toBe(0);
    expect(JSON.parse(viaStdin.out).phases[1].cost.perTokenSquared).toBeCloseTo(0.001, 9);
    expect((await cli(['fit', '--samples', '-', '--config', file('bad-config.json', '{"ranks":0}')])).err).toMatch(/^postbalance: config ranks: must be a positive integer, got 0\n$/);
  });
});
