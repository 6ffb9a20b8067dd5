// The documented limits on one batch or request (README "Limits"), each checked before the
// allocation it protects: past one, the CLI prints one line and exits 1, the sidecar answers one
// error and serves the next request. (Memory at the limits is measured in docs/BENCHMARKS.md.)
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, ftruncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../src/cli.js';
import { readCapped } from '../src/commands/args.js';
import { batchFromExamples, MAX_EXAMPLES, MAX_INPUT_BYTES, MAX_JSON_VALUES, MAX_SEGMENTS } from '../src/input.js';
import { MAX_PLAN_BYTES } from '../src/plan/format.js';
import { cpuAccelerator } from '../src/primitives/accelerator.js';
import { serve } from '../src/serve/server.js';
import type { Config } from '../src/types.js';

const BIN = join(import.meta.dirname, '..', 'bin', 'postbalance.mjs');
const CONFIG: Config = {
  ranks: 4, ranksPerNode: 2,
  phases: [
    { name: 'vision', modalities: ['image'], unit: 'segment', cost: { perToken: 1 } },
    { name: 'llm', modalities: ['text', 'image'], unit: 'example', cost: { perToken: 1 } },
  ],
};
const dir = mkdtempSync(join(tmpdir(), 'pb-limits-'));
const cfgFile = join(dir, 'config.json');
writeFileSync(cfgFile, JSON.stringify(CONFIG));

async function cli(argv: string[], stdin = '') {
  let out = '', err = '';
  const code = await run(argv, { stdout: (s) => { out += s; }, stderr: (s) => { err += s; }, readStdin: async () => stdin });
  return { code, out, err };
}

async function expectOneLine(argv: string[], stdin: string, message: RegExp) {
  const r = await cli(argv, stdin);
  expect(r.out).toBe('');
  expect(r.code).toBe(1);
  expect(r.err).toMatch(message);
  expect(r.err.split('\n')).toHaveLength(2);
}

async function sidecar(lines: (string | Buffer)[]) {
  const out: string[] = [];
  const chunks = lines.flatMap((l) => [typeof l === 'string' ? Buffer.from(l) : l, Buffer.from('\n')]);
  await serve(chunks, (s) => { out.push(s); }, { accel: cpuAccelerator });
  return out.map((s) => JSON.parse(s));
}

const PLAN = ['plan', '--batch', '-', '--config', cfgFile, '--backend', 'cpu'];
const ones = (k: number) => '1,'.repeat(k - 1) + '1';

describe('items per batch', () => {
  it(`more than ${MAX_SEGMENTS} segments: one line naming the example that passes the limit`, async () => {
    await expectOneLine(PLAN, `{"id":"a","rank":0,"image":[1,2]}\n{"id":"b","rank":1,"image":[${ones(MAX_SEGMENTS - 1)}]}\n`,
      new RegExp(`^postbalance: batch line 2: a batch holds at most ${MAX_SEGMENTS} segments \\(lengths\\), this example brings it to ${MAX_SEGMENTS + 1}; split it\\n$`));
  });

  it(`more than ${MAX_EXAMPLES} examples: the first 1,048,576 are taken, the next one is refused`, () => {
    const examples = Array.from({ length: MAX_EXAMPLES + 1 }, (_, i) => ({ id: i, rank: 0 }));
    expect(() => batchFromExamples(examples, CONFIG)).toThrow(`batch example ${MAX_EXAMPLES}: a batch holds at most ${MAX_EXAMPLES} examples; split it`);
  });

  it(`a line of ${MAX_JSON_VALUES} JSON values or more is refused before it is parsed`, async () => {
    await expectOneLine(PLAN, `{"id":"a","rank":0,"image":[${ones(MAX_JSON_VALUES)}]}\n`, /^postbalance: batch line 1: more than 16777216 JSON values on one line/);
    // Nesting counts as values too: 16M brackets would be 16M arrays.
    await expectOneLine(PLAN, `{"id":"a","rank":0,"image":${'['.repeat(MAX_JSON_VALUES)}${']'.repeat(MAX_JSON_VALUES)}}\n`, /^postbalance: batch line 1: more than 16777216 JSON values/);
  });

  it('demo refuses more examples than a batch holds', async () => {
    await expectOneLine(['demo', '--examples', String(MAX_EXAMPLES + 1)], '', /^postbalance: --examples: must be at most 1048576, got 1048577\n$/);
  });
});

describe('input bytes', () => {
  it(`a batch file over ${MAX_INPUT_BYTES} bytes is refused before it is read`, async () => {
    const big = join(dir, 'sparse.jsonl');
    const fd = openSync(big, 'w');
    ftruncateSync(fd, MAX_INPUT_BYTES + 1); // sparse: costs no disk
    closeSync(fd);
    await expectOneLine(['plan', '--batch', big, '--config', cfgFile], '', /^postbalance: --batch ".*sparse\.jsonl": 268435457 bytes is over the limit of 268435456 bytes \(256 MiB\) for one input; split the batch\n$/);
  });

  it('stdin is read up to the limit, then refused', async () => {
    const mb = Buffer.alloc(1 << 20, 0x20);
    async function* endless() { for (;;) yield mb; }
    await expect(readCapped(endless(), 'stdin')).rejects.toThrow(/^stdin: more than 268435456 bytes is over the limit/);
    async function* some() { for (let i = 0; i < 3; i++) yield mb; }
    expect((await readCapped(some(), 'stdin')).length).toBe(3 << 20);
  });

  it('serve --max-request-bytes stays within JavaScript\'s longest string', async () => {
    await expectOneLine(['serve', '--max-request-bytes', String(2 ** 29)], '', /^postbalance: --max-request-bytes: must be at most 536870888/);
  });
});

describe('plan size', () => {
  it(`a plan over ${MAX_PLAN_BYTES} bytes of JSON is refused before it is written (long ids × many segments)`, async () => {
    const id = 'x'.repeat(100_000);
    const line = `{"id":"${id}","rank":0,"image":[${ones(3000)}]}\n{"id":"short","rank":1,"text":3}\n`;
    await expectOneLine(PLAN, line, /^postbalance: plan: about \d+ MB of JSON, over the limit of 268435456 bytes \(256 MiB\) for one plan; use shorter ids or split the batch\n$/);
  });
});

describe('the sidecar past each limit answers one error and serves the next request', () => {
  it('too many JSON values (never kept in memory), compact columns, CSR values, a plan too large', async () => {
    const values = Buffer.alloc(MAX_JSON_VALUES + 2, ',');
    values[0] = 0x31; values[values.length - 1] = 0x31; // "1,,,…,1" is still refused unparsed
    const r = await sidecar([
      JSON.stringify({ id: 1, config: CONFIG }),
      Buffer.concat([Buffer.from('{"id":2,"compact":{"ranks":[0],"lengths":{"image":{"counts":[1],"values":['), values, Buffer.from(']}}}}')]),
      `{"id":3,"compact":{"ranks":[${Array(MAX_EXAMPLES + 1).fill(0).join(',')}]}}`,
      `{"id":4,"compact":{"ranks":[0],"lengths":{"image":{"counts":[${MAX_SEGMENTS + 1}],"values":[${ones(MAX_SEGMENTS + 1)}]}}}}`,
      `{"id":5,"batch":[{"id":"${'y'.repeat(100_000)}","rank":0,"image":[${ones(3000)}]}]}`,
      '{"id":6,"batch":[{"id":"a","rank":0,"image":[3]}]}',
    ]);
    expect(r.map((x) => x.id)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(r[1].error).toBe('request: more than 16777216 JSON values (a request holds at most 1048576 examples and 4194304 segments); split it');
    expect(r[2].error).toBe('compact.ranks: has 1048577 examples; a request holds at most 1048576');
    expect(r[3].error).toBe('compact.lengths: has 4194305 segments; a request holds at most 4194304');
    expect(r[4].error).toMatch(/^plan: about \d+ MB of JSON, over the limit/);
    expect(r[5].plan.phases[0].items).toBe(1);
  });

  it('as a process: a request far past the limits (the issue\'s 120M-segment kind) is refused and the one behind it answered', async () => {
    const child = spawn(process.execPath, [BIN, 'serve', '--backend', 'cpu'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '', err = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => { out += s; });
    child.stderr.setEncoding('utf8').on('data', (s: string) => { err += s; });
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
    child.stdin.write(JSON.stringify({ id: 1, config: CONFIG }) + '\n');
    child.stdin.write('{"id":2,"compact":{"ranks":[0],"lengths":{"image":{"counts":[20971521],"values":[');
    const chunk = Buffer.from('1,'.repeat(1 << 20));
    for (let i = 0; i < 20; i++) if (!child.stdin.write(chunk)) await new Promise((resolve) => child.stdin.once('drain', resolve));
    child.stdin.end('1]}}}}\n{"id":3,"batch":[{"id":"a","rank":0,"image":[3]}]}\n');
    expect(await closed, err).toBe(0);
    const r = out.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(r.map((x) => x.id)).toEqual([1, 2, 3]);
    expect(r[1].error).toMatch(/^request: more than 16777216 JSON values/);
    expect(r[2].plan.phases[0].items).toBe(1);
  });
});
