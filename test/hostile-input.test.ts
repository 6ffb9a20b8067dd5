// Careless and hostile inputs that used to be mishandled: each now works or gets the project's
// one-line error, in the CLI (in-process through run()) and in the sidecar.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cpuAccelerator } from '../src/primitives/accelerator.js';
import { run } from '../src/cli.js';
import { parseBatch, parseConfig } from '../src/input.js';
import { buildPhaseItems } from '../src/items.js';
import { serve } from '../src/serve/server.js';

const dir = mkdtempSync(join(tmpdir(), 'pb-hostile-'));
let fileNo = 0;
const file = (text: string) => { const p = join(dir, `f${fileNo++}`); writeFileSync(p, text); return p; };

async function cli(argv: string[], stdin = '') {
  let out = '', err = '';
  const code = await run(argv, { stdout: (s) => { out += s; }, stderr: (s) => { err += s; }, readStdin: async () => stdin });
  return { code, out, err };
}

/** Plans `batch` (JSONL text) with `config` (JSON text); on failure checks the one-line contract. */
async function plan(config: string, batch: string) {
  const r = await cli(['plan', '--batch', '-', '--config', file(config), '--backend', 'cpu'], batch);
  if (r.code !== 0) {
    expect(r.out).toBe('');
    expect(r.code).toBe(1);
    expect(r.err.split('\n')).toHaveLength(2); // one line and its newline
    expect(r.err).not.toMatch(/internal error|\n\s+at /);
  }
  return r;
}

async function sidecar(lines: (string | object)[]) {
  const out: string[] = [];
  const text = lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n';
  await serve([Buffer.from(text)], (s) => { out.push(s); }, { accel: cpuAccelerator });
  expect(out).toHaveLength(lines.filter((l) => l !== '').length);
  return out.map((s) => JSON.parse(s));
}

const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
const CONFIG = {
  ranks: 2, ranksPerNode: 1,
  phases: [
    { name: 'vision', modalities: ['image'], unit: 'segment', cost: { perToken: 1 } },
    { name: 'llm', modalities: ['text', 'image'], unit: 'example', cost: { perToken: 1 } },
  ],
  bytesPerToken: { text: 2, image: 10 },
};
const BATCH = '{"id":"a","rank":0,"text":10,"image":[8,4]}\n{"id":"b","rank":1,"text":6}\n';

describe('modality names', () => {
  const proto = {
    ranks: 2, ranksPerNode: 1,
    phases: [{ name: 'llm', modalities: ['__proto__', 'text'], unit: 'example', scale: { __proto__: 0.5 }, cost: { perToken: 1 } }],
    bytesPerToken: { __proto__: 3, text: 1 },
  };
  // JSON.stringify writes "__proto__" as an own key only when it is one: build the text by hand.
  const protoText = JSON.stringify(proto).replace('"scale":{}', '"scale":{"__proto__":0.5}').replace('"bytesPerToken":{"text":1}', '"bytesPerToken":{"__proto__":3,"text":1}');

  it('a modality named "__proto__" keeps its scale and bytesPerToken (CLI and sidecar)', async () => {
    expect(protoText).toContain('"scale":{"__proto__":0.5}');
    const r = await plan(protoText, '{"id":"a","rank":0,"__proto__":[7,5],"text":1}\n{"id":"b","rank":0,"text":2}\n');
    expect(r.err).toBe('');
    const llm = JSON.parse(r.out).phases[0];
    // a: ceil(7/2) + ceil(5/2) + 1 = 8 tokens, moved bytes 7·3 (4 + 3 scaled tokens) + 1; b: 2 tokens.
    expect(llm.ranks.map((x: { tokens: number }) => x.tokens).sort()).toEqual([2, 8]);
    // The items themselves: tokens scaled by 0.5, bytes at 3 per "__proto__" token.
    const items = buildPhaseItems(parseBatch('{"id":"a","rank":0,"__proto__":[7,5],"text":1}\n{"id":"b","rank":0,"text":2}', parseConfig(protoText)), parseConfig(protoText))[0];
    expect([...items.tokens]).toEqual([8, 2]);
    expect([...items.bytes]).toEqual([22, 2]);
    const s = await sidecar([
      `{"id":1,"config":${protoText}}`,
      '{"id":2,"batch":[{"id":"a","rank":0,"__proto__":[7,5],"text":1},{"id":"b","rank":0,"text":2}]}',
      '{"id":3,"compact":{"ids":["a","b"],"ranks":[0,0],"lengths":{"__proto__":[[7,5],null],"text":[1,2]}}}',
      '{"id":4,"compact":{"ids":["a","b"],"ranks":[0,0],"lengths":{"__proto__":{"counts":[2,0],"values":[7,5]},"text":[1,2]}}}',
    ]);
    for (const resp of s.slice(1)) expect(JSON.stringify(resp.plan.phases), JSON.stringify(resp)).toBe(JSON.stringify(JSON.parse(r.out).phases));
  });

  it('a modality name with "/" is refused (two segments could share an item id)', async () => {
    const c = structuredClone(CONFIG);
    c.phases[0].modalities = ['image/hi'];
    c.phases[1].modalities = ['text', 'image/hi'];
    (c as { bytesPerToken: object }).bytesPerToken = { text: 2, 'image/hi': 10 };
    const r = await plan(JSON.stringify(c), '{"id":"a","rank":0,"image/hi":[3]}\n');
    expect(r.err).toBe('postbalance: config phase "vision" modalities: "image/hi" contains "/", which separates the parts of an item id ("<exampleId>/<modality>/<k>")\n');
  });
});

describe('numbers past what float64 carries', () => {
  it('bytesPerToken 1e308 is one line naming the field, not "bytes": null', async () => {
    const c = { ...CONFIG, bytesPerToken: { text: 2, image: 1e308 } };
    const r = await plan(JSON.stringify(c), BATCH);
    expect(r.err).toBe('postbalance: config bytesPerToken.image: 1e+308 bytes per token makes phase "vision" move more bytes than a float64 can count\n');
    const s = await sidecar([{ id: 1, config: c }, { id: 2, batch: [{ id: 'a', rank: 0, image: [8] }] }]);
    expect(s[1].error).toMatch(/^config bytesPerToken\.image: 1e\+308 bytes per token/);
  });

  it('a large but finite bytesPerToken still plans, with numbers in the output', async () => {
    const r = await plan(JSON.stringify({ ...CONFIG, bytesPerToken: { text: 2, image: 1e290 } }), BATCH);
    expect(r.code).toBe(0);
    expect(r.out).not.toContain('null');
  });

  it('demo, config and simulate refuse more than 65,536 ranks', async () => {
    for (const argv of [['demo', '--ranks', '65537'], ['config', '--model', 'mllm-84b', '--ranks', '65537'], ['simulate', '--sweep', '8,65537']]) {
      const r = await cli(argv);
      expect(r.code, argv.join(' ')).toBe(1);
      expect(r.out).toBe('');
      expect(r.err).toMatch(/^postbalance: .*ranks.*must be at most 65536, got 65537\n$/);
    }
  });
});

describe('text encodings and shapes', () => {
  it('a UTF-8 byte-order mark before the config, the batch or a request is not part of the JSON', async () => {
    const r = await plan('\ufeff' + JSON.stringify(CONFIG), '\ufeff' + BATCH);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const s = await sidecar(['\ufeff' + JSON.stringify({ id: 1, config: CONFIG }), { id: 2, batch: [{ id: 'a', rank: 0, image: [8] }] }]);
    expect(s[0].ok).toBe(true);
    expect(s[1].plan).toBeDefined();
  });

  it('an invisible character in malformed JSON is spelled out in the message', async () => {
    const r = await plan('{"ranks":\u200b2}', BATCH);
    expect(r.err).toMatch(/^postbalance: config: malformed JSON \(.*\\u200b.*\)\n$/);
    expect(r.err).not.toContain('\u200b');
  });

  it('JSON nested 10,000 deep is a one-line error wherever it appears', async () => {
    const d = deep(10_000);
    expect((await plan(`{"ranks":${d},"phases":[]}`, BATCH)).err).toMatch(/^postbalance: config ranks: must be a positive integer, got \[\[\[/);
    expect((await plan(JSON.stringify(CONFIG), `{"id":"a","rank":0,"text":${d}}\n`)).err).toMatch(/^postbalance: batch line 1, field "text"\[0\]: length must be a non-negative integer, got \[\[\[/);
    expect((await plan(JSON.stringify(CONFIG), `{"id":${d},"rank":0}\n`)).err).toMatch(/^postbalance: batch line 1, field "id": must be/);
    expect((await plan(JSON.stringify(CONFIG), `${d}\n`)).err).toMatch(/^postbalance: batch line 1: must be a JSON object, got \[\[\[/);
    const s = await sidecar([
      `{"id":${d},"config":{}}`,
      `{"id":1,"config":${JSON.stringify(CONFIG)},"algorithm":${d}}`,
      `{"id":2,"config":{"ranks":${d}}}`,
      { id: 3, config: CONFIG },
      `{"id":4,"batch":[{"id":"a","rank":0,"image":${d}}]}`,
      `{"id":5,"compact":{"ranks":[0],"lengths":{"image":{"counts":[${d}],"values":[]}}}}`,
      `{"id":6,"batch":${d}}`,
      { id: 7, batch: [{ id: 'a', rank: 0, image: [3] }] },
    ]);
    expect(s.map((x) => x.id)).toEqual([null, 1, 2, 3, 4, 5, 6, 7]);
    for (const x of s.filter((x) => x.error)) expect(x.error).not.toMatch(/internal error/);
    expect(s.map((x) => (x.error ? 'error' : x.ok ? 'ok' : 'plan'))).toEqual(['error', 'error', 'error', 'ok', 'error', 'error', 'error', 'plan']);
  });
});

describe('the sidecar installs a config only with a request that succeeds', () => {
  it('a failed request carrying a config leaves the previous config in place', async () => {
    const three = { ...CONFIG, ranks: 3 };
    const ok = [{ id: 'a', rank: 1, image: [3] }];
    const s = await sidecar([
      { id: 1, config: CONFIG },
      { id: 2, config: three, batch: [{ id: 'a', rank: 0, text: -1 }] }, // bad batch: config not installed
      { id: 3, batch: ok },
      { id: 4, config: three, compact: { ranks: [0], lengths: { smell: [1] } } },
      { id: 5, batch: ok },
      { id: 6, config: three, batch: ok }, // succeeds: installed
      { id: 7, batch: [{ id: 'a', rank: 2, image: [3] }] },
    ]);
    expect(s[1].error).toMatch(/batch example 0, field "text"/);
    expect(s[2].plan.ranks).toBe(2);
    expect(s[3].error).toMatch(/smell/);
    expect(s[4].plan.ranks).toBe(2);
    expect(s[5].plan.ranks).toBe(3);
    expect(s[6].plan.ranks).toBe(3);
  });
});
