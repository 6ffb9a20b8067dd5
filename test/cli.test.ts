// The CLI as users and training controllers call it: the output format is a public contract
// (pinned here byte for byte), bad input gives one line on stderr and a non-zero exit with
// nothing on stdout, and the launcher exits cleanly.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../src/cli.js';
import { ALGORITHMS } from '../src/types.js';
import { expectedItems, mulberry, randomCase, testSeed } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'postbalance-cli-'));
const file = (name: string, text: string) => { const p = join(dir, name); writeFileSync(p, text); return p; };

const CONFIG = {
  ranks: 2, ranksPerNode: 1,
  phases: [
    { name: 'vision', modalities: ['image'], unit: 'segment', cost: { perItem: 1, perToken: 1 } },
    { name: 'llm', modalities: ['text', 'image'], unit: 'example', scale: { image: 0.5 }, cost: { perToken: 1, perTokenSquared: 0.01 } },
  ],
  bytesPerToken: { text: 2, image: 10 },
};
const BATCH = [
  '{"id":"a","rank":0,"text":10,"image":[8,4]}',
  '{"id":"b","rank":0,"text":6}',
  '{"id":7,"rank":1,"text":3,"image":2}',
].join('\n') + '\n';

async function cli(argv: string[], stdin = '') {
  let out = '', err = '';
  const code = await run(argv, { stdout: (s) => { out += s; }, stderr: (s) => { err += s; }, readStdin: async () => stdin });
  return { code, out, err };
}

describe('plan output contract', () => {
  const cfg = file('config.json', JSON.stringify(CONFIG));
  const batch = file('batch.jsonl', BATCH);

  it('is pinned byte for byte (phases) with the documented stats fields', async () => {
    const { code, out, err } = await cli(['plan', '--batch', batch, '--config', cfg, '--algorithm', 'lpt', '--backend', 'cpu']);
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(out.endsWith('\n')).toBe(true);
    const plan = JSON.parse(out);
    expect(Object.keys(plan)).toEqual(['ranks', 'phases', 'stats']);
    expect(plan.stats).toMatchObject({ algorithm: 'lpt', backend: 'cpu', adapter: 'cpu' });
    expect(typeof plan.stats.planMs).toBe('number');
    // The data-flow stages, then the accelerator's share of partition (CPU backend: no GPU split).
    expect(Object.keys(plan.stats.stages)).toEqual(['items', 'sort', 'partition', 'placement', 'output', 'scan', 'candidates', 'pairSteps', 'hostPartition', 'balance']);
    // vision items: a/image/0 (8 → cost 9), a/image/1 (4 → 5), 7/image/0 (2 → 3).
    // llm items: a = 10 + 4 + 2 = 16 tokens (256·0.01 = 2.56 → 18.56), b = 6 (6.36), 7 = 3 + 1 = 4 (4.16).
    expect(JSON.stringify(plan.phases)).toBe(JSON.stringify([
      {
        name: 'vision',
        ranks: [
          { items: ['a/image/0'], cost: 9, tokens: 8, routeRanks: [0] },
          { items: ['a/image/1', '7/image/0'], cost: 8, tokens: 6, routeRanks: [0, 1] },
        ],
        lowerBound: 9, maxCost: 9, meanCost: 8.5,
        exchange: { movedItems: 1, bytes: 40, interNodeBytes: 40, intraNodeBytes: 0, pairs: [[0, 1, 1, 40]] },
        algorithm: 'lpt', items: 3, routeTo: 'llm',
      },
      {
        name: 'llm',
        ranks: [
          { items: ['a'], cost: 18.56, tokens: 16 },
          { items: ['b', '7'], cost: 10.52, tokens: 10 },
        ],
        lowerBound: 18.56, maxCost: 18.56, meanCost: 14.54,
        exchange: { movedItems: 1, bytes: 12, interNodeBytes: 12, intraNodeBytes: 0, pairs: [[0, 1, 1, 12]] },
        algorithm: 'lpt', items: 3,
      },
    ]));
  });

  it('--format compact is pinned byte for byte: per phase the rank of every item in item order', async () => {
    const { code, out, err } = await cli(['plan', '--batch', batch, '--config', cfg, '--algorithm', 'lpt', '--backend', 'cpu', '--format', 'compact']);
    expect(err).toBe('');
    expect(code).toBe(0);
    const plan = JSON.parse(out);
    expect(Object.keys(plan)).toEqual(['format', 'ranks', 'phases', 'stats']);
    expect(plan.format).toBe('compact');
    expect(plan.stats).toMatchObject({ algorithm: 'lpt', backend: 'cpu', adapter: 'cpu' });
    // Item order: examples in batch order, then (encoders) modality, then k: vision items are
    // a/image/0, a/image/1, 7/image/0; llm items a, b, 7. The same plan as the full form above.
    expect(JSON.stringify(plan.phases)).toBe(JSON.stringify([
      {
        name: 'vision', items: 3, rank: [0, 1, 1], cost: [9, 8], tokens: [8, 6],
        lowerBound: 9, maxCost: 9, meanCost: 8.5,
        exchange: { movedItems: 1, bytes: 40, interNodeBytes: 40, intraNodeBytes: 0, pairs: [[0, 1, 1, 40]] },
        algorithm: 'lpt', routeTo: 'llm',
      },
      {
        name: 'llm', items: 3, rank: [0, 1, 1], cost: [18.56, 10.52], tokens: [16, 10],
        lowerBound: 18.56, maxCost: 18.56, meanCost: 14.54,
        exchange: { movedItems: 1, bytes: 12, interNodeBytes: 12, intraNodeBytes: 0, pairs: [[0, 1, 1, 12]] },
        algorithm: 'lpt',
      },
    ]));
    expect((await cli(['plan', '--batch', batch, '--config', cfg, '--format', 'tiny'])).err).toMatch(/--format: must be one of full, compact, got "tiny"/);
  });

  it('the compact form says what the full form says, on random batches and every algorithm', async () => {
    const rand = mulberry(testSeed('compact form'));
    for (let t = 0; t < 12; t++) {
      const { examples, config } = randomCase(rand);
      // Every other batch with micro-batches: the compact form carries them per item too.
      if (t % 2) for (const ph of config.phases) ph.microBatches = { count: 1 + (t % 5) };
      const b = file(`compact-${t}.jsonl`, examples.map((e) => JSON.stringify(e)).join('\n') + '\n');
      const c = file(`compact-${t}.json`, JSON.stringify(config));
      const algorithm = ALGORITHMS[t % ALGORITHMS.length];
      const full = JSON.parse((await cli(['plan', '--batch', b, '--config', c, '--backend', 'cpu', '--algorithm', algorithm])).out);
      const compact = JSON.parse((await cli(['plan', '--batch', b, '--config', c, '--backend', 'cpu', '--algorithm', algorithm, '--format', 'compact'])).out);
      // The documented item order, recomputed from the contract (helpers.expectedItems walks
      // examples in order, then modalities, then k), with each item's rank in the full form.
      expectedItems(examples, config).forEach((items, p) => {
        const rankOf = new Map<string, number>(), mbOf = new Map<string, number>();
        full.phases[p].ranks.forEach((r: { items: string[]; microBatch?: number[] }, k: number) => {
          r.items.forEach((id, j) => { rankOf.set(id, k); if (r.microBatch) mbOf.set(id, r.microBatch[j]); });
        });
        const ph = compact.phases[p];
        expect(ph.items).toBe(items.size);
        expect(ph.rank).toEqual([...items.keys()].map((id) => rankOf.get(id)));
        if (t % 2) expect(ph.microBatch).toEqual([...items.keys()].map((id) => mbOf.get(id)));
        else expect(ph.microBatch).toBeUndefined();
        delete ph.microBatch;
        expect(ph.cost).toEqual(full.phases[p].ranks.map((r: { cost: number }) => r.cost));
        expect(ph.tokens).toEqual(full.phases[p].ranks.map((r: { tokens: number }) => r.tokens));
        const { ranks: _r, ...fullRest } = full.phases[p];
        const { rank: _k, cost: _c, tokens: _t, ...compactRest } = ph;
        expect(compactRest).toEqual(fullRest);
      });
    }
  });

  it('with micro-batches: each rank entry gains microBatch, the phase N and per-step costs (pinned)', async () => {
    const mbConfig = structuredClone(CONFIG) as typeof CONFIG & { phases: Record<string, unknown>[] };
    mbConfig.phases[0].microBatches = { count: 2 };
    mbConfig.phases[1].microBatches = { maxTokens: 16 };
    const { code, out, err } = await cli(['plan', '--batch', batch, '--config', file('config-mb.json', JSON.stringify(mbConfig)), '--algorithm', 'lpt', '--backend', 'cpu']);
    expect(err).toBe('');
    expect(code).toBe(0);
    // Placement as above. vision, count 2: rank 0 runs a/image/0 (9) and an empty micro-batch;
    // rank 1 runs a/image/1 (5) then 7/image/0 (3). llm, maxTokens 16: rank 0's 16 tokens and
    // rank 1's 6 + 4 each fit one micro-batch, so N = 1.
    expect(JSON.stringify(JSON.parse(out).phases)).toBe(JSON.stringify([
      {
        name: 'vision',
        ranks: [
          { items: ['a/image/0'], cost: 9, tokens: 8, routeRanks: [0], microBatch: [0] },
          { items: ['a/image/1', '7/image/0'], cost: 8, tokens: 6, routeRanks: [0, 1], microBatch: [0, 1] },
        ],
        lowerBound: 9, maxCost: 9, meanCost: 8.5,
        exchange: { movedItems: 1, bytes: 40, interNodeBytes: 40, intraNodeBytes: 0, pairs: [[0, 1, 1, 40]] },
        algorithm: 'lpt', items: 3, routeTo: 'llm',
        microBatches: 2, microBatchMaxCost: [9, 3], microBatchMeanCost: [7, 1.5],
      },
      {
        name: 'llm',
        ranks: [
          { items: ['a'], cost: 18.56, tokens: 16, microBatch: [0] },
          { items: ['b', '7'], cost: 10.52, tokens: 10, microBatch: [0, 0] },
        ],
        lowerBound: 18.56, maxCost: 18.56, meanCost: 14.54,
        exchange: { movedItems: 1, bytes: 12, interNodeBytes: 12, intraNodeBytes: 0, pairs: [[0, 1, 1, 12]] },
        algorithm: 'lpt', items: 3,
        microBatches: 1, microBatchMaxCost: [18.56], microBatchMeanCost: [14.54],
      },
    ]));
    // The compact form: the micro-batch of every item in item order, beside its rank.
    const compact = await cli(['plan', '--batch', batch, '--config', join(dir, 'config-mb.json'), '--algorithm', 'lpt', '--backend', 'cpu', '--format', 'compact']);
    expect(JSON.stringify(JSON.parse(compact.out).phases.map((ph: Record<string, unknown>) => [ph.rank, ph.microBatch, ph.microBatches, ph.microBatchMaxCost, ph.microBatchMeanCost])))
      .toBe(JSON.stringify([[[0, 1, 1], [0, 0, 1], 2, [9, 3], [7, 1.5]], [[0, 1, 1], [0, 0, 0], 1, [18.56], [14.54]]]));
  });

  it('--exchange full adds per-rank `from` lists; --out writes the same document', async () => {
    const outFile = join(dir, 'plan.json');
    const a = await cli(['plan', '--batch', batch, '--config', cfg, '--exchange', 'full', '--backend', 'cpu']);
    const b = await cli(['plan', '--batch', batch, '--config', cfg, '--exchange', 'full', '--backend', 'cpu', '--out', outFile]);
    expect(b.out).toBe('');
    const fromA = JSON.parse(a.out).phases[0].ranks.map((r: { from: number[] }) => r.from);
    expect(fromA.flat().sort()).toEqual([0, 0, 1]);
    const { readFileSync } = await import('node:fs');
    expect(JSON.parse(readFileSync(outFile, 'utf8')).phases).toEqual(JSON.parse(a.out).phases);
  });

  it('reads the batch from stdin with --batch -', async () => {
    const viaFile = await cli(['plan', '--batch', batch, '--config', cfg, '--backend', 'cpu']);
    const viaStdin = await cli(['plan', '--batch', '-', '--config', cfg, '--backend', 'cpu'], BATCH);
    expect(JSON.parse(viaStdin.out).phases).toEqual(JSON.parse(viaFile.out).phases);
  });
});

describe('bad input: one line naming the field and line, non-zero exit, nothing on stdout', () => {
  const cfg = file('good.json', JSON.stringify(CONFIG));
  const withConfig = (patch: (c: typeof CONFIG & Record<string, unknown>) => void) => {
    const c = structuredClone(CONFIG) as typeof CONFIG & Record<string, unknown>;
    patch(c);
    return file(`cfg-${Math.abs(JSON.stringify(c).length)}-${Math.random().toString(36).slice(2)}.json`, JSON.stringify(c));
  };
  const cases: [string, string, string, RegExp][] = [
    ['negative length', '{"id":"a","rank":0,"text":-3}', cfg, /batch line 1, field "text": length must be a non-negative integer, got -3/],
    ['fractional length', '{"id":"a","rank":0,"text":3}\n{"id":"b","rank":1,"image":[2.5]}', cfg, /batch line 2, field "image"\[0\]: length must be a non-negative integer, got 2\.5/],
    ['non-numeric length', '{"id":"a","rank":0,"text":"12"}', cfg, /batch line 1, field "text": length must be a non-negative integer/],
    ['rank out of range', '{"id":"a","rank":2,"text":3}', cfg, /batch line 1, field "rank": must be an integer in \[0, 2\), got 2/],
    ['duplicate id', '{"id":"a","rank":0,"text":3,"image":1}\n{"id":"a","rank":1,"text":3}', cfg, /batch line 2, field "id": duplicate id "a" \(first at batch line 1\)/],
    ['unknown modality', '{"id":"a","rank":0,"text":3,"video":[4]}', cfg, /batch line 1, field "video": unknown modality/],
    ['malformed JSON', '{"id":"a","rank":0,"text":3,"image":1}\n{"id":"b", rank:1}', cfg, /batch line 2: malformed JSON/],
    ['item over the cap', '{"id":"a","rank":0,"text":3,"image":[50]}', withConfig((c) => { (c.phases[0] as Record<string, unknown>).maxTokensPerRank = 40; }), /batch line 1: item "a\/image\/0" has 50 tokens, over phase "vision" maxTokensPerRank 40/],
    ['infeasible cap', '{"id":"a","rank":0,"image":[30,30,30]}', withConfig((c) => { (c.phases[0] as Record<string, unknown>).maxTokensPerRank = 40; }), /phase "vision" maxTokensPerRank: 90 tokens cannot fit 2 ranks × 40 \(infeasible cap\)/],
    ['equalCount with more ranks than items', '{"id":"a","rank":0,"text":3,"image":1}', withConfig((c) => { (c.phases[1] as Record<string, unknown>).equalCount = true; }), /phase "llm" equalCount: 1 items cannot give each of 2 ranks an equal count/],
    ['item over the micro-batch cap', '{"id":"a","rank":0,"text":3}\n{"id":"b","rank":1,"text":30}', withConfig((c) => { (c.phases[1] as Record<string, unknown>).microBatches = { maxTokens: 20 }; }), /batch line 2: item "b" has 30 tokens, over phase "llm" microBatches\.maxTokens 20/],
    ['micro-batch count and cap that cannot fit', '{"id":"a","rank":0,"text":12}\n{"id":"b","rank":0,"text":12}\n{"id":"c","rank":1,"text":12}', withConfig((c) => { (c.phases[1] as Record<string, unknown>).microBatches = { count: 1, maxTokens: 20 }; }), /phase "llm" microBatches: rank \d runs 2 items of 24 tokens, which cannot fit count 1 micro-batches of maxTokens 20 \(they need 2\)/],
    ['config: micro-batch count', '{"id":"a","rank":0,"text":3}', withConfig((c) => { (c.phases[1] as Record<string, unknown>).microBatches = { count: -2 }; }), /config phase "llm" microBatches\.count: must be a positive integer, got -2/],
    ['config: malformed JSON', '{"id":"a","rank":0,"text":3,"image":1}', file('bad.json', '{"ranks": 2,'), /config: malformed JSON/],
    ['config: bad cost term', '{"id":"a","rank":0,"text":3,"image":1}', withConfig((c) => { (c.phases[1].cost as Record<string, unknown>).perToken = -1; }), /config phase "llm" cost\.perToken: must be a non-negative number, got -1/],
    ['config: ranks', '{"id":"a","rank":0,"text":3,"image":1}', withConfig((c) => { (c as Record<string, unknown>).ranks = 0; }), /config ranks: must be a positive integer, got 0/],
  ];
  for (const [name, batchText, config, message] of cases) {
    it(name, async () => {
      const b = file(`batch-${name.replace(/\W/g, '_')}.jsonl`, batchText + '\n');
      const { code, out, err } = await cli(['plan', '--batch', b, '--config', config, '--backend', 'cpu']);
      expect(out).toBe('');
      expect(code).toBe(1);
      expect(err).toMatch(message);
      expect(err.trimEnd().split('\n')).toHaveLength(1);
      expect(err).not.toMatch(/\n\s+at /);
    });
  }

  it('unknown flags and algorithms are named', async () => {
    expect((await cli(['plan', '--batch', 'x', '--config', 'y', '--algorithm', 'magic'])).err).toMatch(/--algorithm: must be one of none, lpt, kk, padded, rounds, best/);
    expect((await cli(['plan', '--bogus'])).err).toMatch(/arguments: .*bogus/);
    expect((await cli(['frobnicate'])).code).toBe(2);
    const missing = await cli(['plan', '--batch', join(dir, 'nope.jsonl'), '--config', cfg]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/--batch ".*nope\.jsonl": cannot read \(ENOENT\)/);
    const b = file('ok.jsonl', '{"id":"a","rank":0,"text":3,"image":1}\n');
    const unwritable = await cli(['plan', '--batch', b, '--config', cfg, '--backend', 'cpu', '--out', join(dir, 'no', 'such', 'dir.json')]);
    expect(unwritable.code).toBe(1);
    expect(unwritable.err).toMatch(/--out ".*dir\.json": cannot write \(ENOENT\)/);
  });
});

describe('the installed command', () => {
  const bin = join(__dirname, '..', 'bin', 'postbalance.mjs');
  const built = existsSync(join(__dirname, '..', 'dist', 'cli.js'));

  it('is built (npm test and npm ci build dist/ first)', () => {
    expect(built, 'dist/ is missing: run `npm run build` before vitest').toBe(true);
  });

  it('demo runs the main job and exits 0', () => {
    const r = spawnSync(process.execPath, [bin, 'demo', '--ranks', '16', '--examples', '256', '--svg', join(dir, 'demo.svg')], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/phase vision/);
    expect(r.stdout).toMatch(/best \(/);
    expect(r.stdout).toMatch(/after/);
    expect(existsSync(join(dir, 'demo.svg'))).toBe(true);
  });

  it('bad input through the launcher: exit 1, one line, no stack trace', () => {
    const b = file('neg.jsonl', '{"id":"a","rank":0,"text":-1}\n');
    const c = file('c2.json', JSON.stringify(CONFIG));
    const r = spawnSync(process.execPath, [bin, 'plan', '--batch', b, '--config', c, '--backend', 'cpu'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toEqual(['postbalance: batch line 1, field "text": length must be a non-negative integer, got -1']);
  });
});
