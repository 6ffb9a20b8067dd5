// Property-style fuzzing of the two input parsers a user reaches: the CLI's (config + JSONL
// batch) and the sidecar's request decoder. Valid batches and configs are mutated at random, in
// their structure (a value replaced by a hostile one, a key removed or added) and in their text
// (characters and tokens inserted, replaced, deleted). Every run must end in a plan that passes
// the independent checker (every item exactly once, costs recomputed from the input) or in one
// line on stderr / one error response: exit 1, nothing on stdout, no stack trace, no "internal
// error", never a crash. fast-check shrinks a failure to a minimal input.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { run } from '../src/cli.js';
import { stripBom, validateConfig } from '../src/input.js';
import { cpuAccelerator } from '../src/primitives/accelerator.js';
import { expandCompact } from '../src/serve/protocol.js';
import { Session } from '../src/serve/server.js';
import { ALGORITHMS, type Config, type Example, type Plan } from '../src/types.js';
import { checkPlan, mulberry, randomCase, testSeed } from './helpers.js';

const BIN = join(import.meta.dirname, '..', 'bin', 'postbalance.mjs');
const dir = mkdtempSync(join(tmpdir(), 'pb-fuzz-'));

const deep = (n: number): unknown => (n === 0 ? [] : [deep(n - 1)]);
/** Stands for an array nested 12,000 deep, spliced into the text after serialisation. */
const DEEP = '@@deep@@';
const DEEP_TEXT = '['.repeat(12_000) + ']'.repeat(12_000);
/** Values a careless or hostile producer might put anywhere. */
const HOSTILE: unknown[] = [DEEP, 
  -1, 0, 1, 3, 2.5, -0, 2 ** 32, 2 ** 32 - 1, 2 ** 53 + 2, 1e21, 1e-7, 1e308, 65536, 65537,
  '', 'x', '12', '__proto__', 'a/b', 'id', 'rank', 'image', null, true, false,
  [], [1, -1], [[1]], [2.5], ['__proto__'], {}, { image: 1 }, { perToken: 1e308 }, deep(60),
];
/** Text put into the JSON: tokens that break it, or make it valid in unusual ways. */
const TOKENS = [
  '-1', '1e400', '1e-7', '1.0', '-0', 'null', 'true', '"__proto__"', '"a/b"', '9007199254740993', '12345678901234567890',
  '1.5', '[', ']', '{', '}', ',', ':', '"', '\\', '\\u0000', '\ufeff', '\u200b', '\u0000', '\n', '\r\n', ' ', '0',
  '4294967296', '""', '{"id":1}', '[[[[[[[[[[[[]]]]]]]]]]]]', 'NaN', '-', 'e', '"id":', '"rank":0,', '"\ud800"', '😀',
];
const KEYS = ['id', 'rank', 'text', 'image', 'audio', 'video', '__proto__', 'constructor', 'a/b', 'ranks', 'phases', 'cost', 'scale', 'modalities', 'padding', 'equalCount', 'maxTokensPerRank', 'unit', 'ids', 'lengths', 'counts', 'values', 'batch', 'compact', 'config', 'algorithm', 'format'];

type Mutation =
  | { kind: 'set'; at: number; value: unknown }
  | { kind: 'delete'; at: number }
  | { kind: 'add'; at: number; key: string; value: unknown }
  | { kind: 'text'; op: 'insert' | 'replace' | 'delete'; at: number; len: number; token: string };

const hostile = fc.constantFrom(...HOSTILE);
const structural = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), at: fc.double({ min: 0, max: 1, noNaN: true }), value: hostile }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.double({ min: 0, max: 1, noNaN: true }) }),
  fc.record({ kind: fc.constant('add' as const), at: fc.double({ min: 0, max: 1, noNaN: true }), key: fc.constantFrom(...KEYS), value: hostile }),
);
const textual = fc.record({
  kind: fc.constant('text' as const), op: fc.constantFrom('insert' as const, 'replace' as const, 'delete' as const),
  at: fc.double({ min: 0, max: 1, noNaN: true }), len: fc.integer({ min: 1, max: 12 }), token: fc.constantFrom(...TOKENS),
});
/** Mostly structural (the input stays JSON and reaches validation), some textual. */
const mutations = fc.array(fc.oneof({ arbitrary: structural, weight: 3 }, { arbitrary: textual, weight: 1 }), { minLength: 0, maxLength: 3 });
/** Half the inputs untouched on one side, so that many runs reach a plan. */
const someMutations = fc.oneof(fc.constant([] as Mutation[]), mutations);
const RUNS = Number(process.env.POSTBALANCE_FUZZ_RUNS ?? 250);

/** Every container and value inside `root`, as [parent, key] pairs (parent null: the root). */
function places(root: unknown): [Record<string, unknown> | unknown[], string | number][] {
  const out: [Record<string, unknown> | unknown[], string | number][] = [];
  const walk = (v: unknown, depth: number) => {
    if (depth > 8 || typeof v !== 'object' || v === null) return;
    const keys = Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v);
    for (const k of keys) {
      out.push([v as Record<string, unknown>, k]);
      walk((v as Record<string | number, unknown>)[k], depth + 1);
    }
  };
  walk(root, 0);
  return out;
}

function containers(root: unknown): (Record<string, unknown> | unknown[])[] {
  const out: (Record<string, unknown> | unknown[])[] = [];
  const walk = (v: unknown, depth: number) => {
    if (depth > 8 || typeof v !== 'object' || v === null) return;
    out.push(v as Record<string, unknown>);
    for (const x of Object.values(v)) walk(x, depth + 1);
  };
  walk(root, 0);
  return out;
}

/** Applies the structural mutations to a copy of `value`. */
function mutateValue(value: unknown, muts: Mutation[]): unknown {
  const root = structuredClone(value);
  for (const m of muts) {
    if (m.kind === 'text') continue;
    if (m.kind === 'add') {
      const cs = containers(root);
      if (cs.length === 0) continue;
      const c = cs[Math.floor(m.at * cs.length) % cs.length];
      if (Array.isArray(c)) c.push(structuredClone(m.value));
      else Object.defineProperty(c, m.key, { value: structuredClone(m.value), enumerable: true, writable: true, configurable: true });
      continue;
    }
    const ps = places(root);
    if (ps.length === 0) continue;
    const [parent, key] = ps[Math.floor(m.at * ps.length) % ps.length];
    if (m.kind === 'delete') {
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key as string];
    } else {
      (parent as Record<string | number, unknown>)[key] = structuredClone(m.value);
    }
  }
  return root;
}

/** Applies the textual mutations to `text` (after splicing in the deep arrays). */
function mutateText(text: string, muts: Mutation[]): string {
  text = text.replaceAll(`"${DEEP}"`, DEEP_TEXT);
  for (const m of muts) {
    if (m.kind !== 'text') continue;
    const at = Math.floor(m.at * (text.length + 1));
    if (m.op === 'insert') text = text.slice(0, at) + m.token + text.slice(at);
    else if (m.op === 'replace') text = text.slice(0, at) + m.token + text.slice(at + m.len);
    else text = text.slice(0, at) + text.slice(at + m.len);
  }
  return text;
}

/** The one-line failure contract of the CLI. */
function expectCliRefusal(r: { code: number; out: string; err: string }, what: string) {
  expect(r.code, what).toBe(1);
  expect(r.out, what).toBe('');
  expect(r.err, what).toMatch(/^postbalance: [^\n]+\n$/);
  expect(r.err, what).not.toMatch(/internal error|\n\s+at |RangeError|TypeError/);
}

/** The batch as the user meant it, to check a plan against: the lines JSON.parse accepts. */
function examplesOf(jsonl: string): Example[] {
  return stripBom(jsonl).split('\n').map((l) => l.trim()).filter((l) => l !== '').map((l) => JSON.parse(l) as Example);
}

const seed = testSeed('fuzz');
const small = (s: number) => {
  const { examples, config } = randomCase(mulberry(s));
  // Keep plans small and quick: a few examples per rank at most.
  return { examples: examples.slice(0, 3 * config.ranks + 2), config };
};

describe('fuzz: the CLI input parser (in-process through run())', () => {
  let runs = 0, plans = 0;
  it('every mutated batch and config ends in a checked plan or one line, exit 1', async () => {
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: 0, max: 2 ** 31 - 1 }), someMutations, someMutations, fc.constantFrom(...ALGORITHMS), fc.boolean(),
      async (s, batchMuts, configMuts, algorithm, full) => {
        const { examples, config } = small(s);
        const batchValue = mutateValue(examples, batchMuts);
        const batchText = mutateText(Array.isArray(batchValue) ? batchValue.map((e) => JSON.stringify(e) ?? 'null').join('\n') + '\n' : JSON.stringify(batchValue), batchMuts);
        const configText = mutateText(JSON.stringify(mutateValue(config, configMuts)) ?? 'null', configMuts);
        const cfgFile = join(dir, `cfg-${runs++}.json`);
        writeFileSync(cfgFile, configText);
        let out = '', err = '';
        const argv = ['plan', '--batch', '-', '--config', cfgFile, '--backend', 'cpu', '--algorithm', algorithm, ...(full ? ['--exchange', 'full'] : [])];
        const code = await run(argv, { stdout: (x) => { out += x; }, stderr: (x) => { err += x; }, readStdin: async () => batchText });
        const what = `config ${configText.slice(0, 300)}\nbatch ${batchText.slice(0, 300)}`;
        if (code !== 0) return expectCliRefusal({ code, out, err }, what);
        expect(err, what).toBe('');
        plans++;
        const cfg = validateConfig(JSON.parse(stripBom(configText)));
        checkPlan(JSON.parse(out) as Plan, examplesOf(batchText), cfg, algorithm === 'none');
      },
    ), { seed, numRuns: RUNS });
    console.log(`[fuzz cli] ${runs} runs, ${plans} plans checked`);
    expect(plans).toBeGreaterThan(RUNS / 10); // many inputs stay valid: plans are checked, not only errors
  });
});

describe('fuzz: the sidecar request decoder (in-process Session)', () => {
  it('every mutated request gets one response: a checked plan, or one error line under its id', async () => {
    let plans = 0;
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: 0, max: 2 ** 31 - 1 }), mutations, fc.boolean(), fc.constantFrom(...ALGORITHMS), fc.boolean(),
      async (s, muts, compact, algorithm, withConfig) => {
        const { examples, config } = small(s);
        const session = new Session({ accel: cpuAccelerator });
        const ack = JSON.parse((await session.handle({ kind: 'line', text: JSON.stringify({ id: 0, config }) }))!);
        expect(ack.ok).toBe(true);
        const mods = ['text', 'image', 'audio'];
        const body = compact
          ? { compact: { ids: examples.map((e) => e.id), ranks: examples.map((e) => e.rank), lengths: Object.fromEntries(mods.map((m) => [m, examples.map((e) => e[m] ?? null)])) } }
          : { batch: examples };
        const request = { id: 7, ...(withConfig ? { config } : {}), ...body, algorithm };
        const text = mutateText(JSON.stringify(mutateValue(request, muts)) ?? 'null', muts);
        const resp = await session.handle({ kind: 'line', text });
        const line = text.length > 400 ? text.slice(0, 400) + '…' : text; // for messages
        if (text.trim() === '') return expect(resp).toBeNull();
        expect(resp, line).not.toBeNull();
        expect(resp!.includes('\n'), line).toBe(false);
        const r = JSON.parse(resp!);
        if ('error' in r) {
          expect(typeof r.error, line).toBe('string');
          expect(r.error, line).not.toMatch(/internal error|RangeError|TypeError/);
          return;
        }
        if ('ok' in r) return; // the mutation dropped the batch: a config-only request
        plans++;
        const req = JSON.parse(stripBom(text));
        const cfg = req.config !== undefined ? validateConfig(req.config) : config;
        const ex = req.compact !== undefined ? expandCompact(req.compact, cfg) : req.batch;
        checkPlan(r.plan as Plan, ex, cfg, (req.algorithm ?? 'best') === 'none');
      },
    ), { seed: seed ^ 0x5eed, numRuns: RUNS });
    console.log(`[fuzz serve] ${plans} plans checked`);
    expect(plans).toBeGreaterThan(RUNS / 10);
  });
});

describe('fuzz: real processes', () => {
  const cases = fc.sample(fc.tuple(fc.integer({ min: 0, max: 2 ** 31 - 1 }), mutations, mutations), { seed, numRuns: 6 });

  it('the launched CLI: exit 0 with a plan, or exit 1 with one line; never a crash', () => {
    cases.forEach(([s, batchMuts, configMuts], i) => {
      const { examples, config } = small(s);
      const batchValue = mutateValue(examples, batchMuts);
      const batch = join(dir, `proc-${i}.jsonl`), cfg = join(dir, `proc-${i}.json`);
      writeFileSync(batch, mutateText(Array.isArray(batchValue) ? batchValue.map((e) => JSON.stringify(e) ?? 'null').join('\n') + '\n' : JSON.stringify(batchValue), batchMuts));
      writeFileSync(cfg, mutateText(JSON.stringify(mutateValue(config, configMuts)) ?? 'null', configMuts));
      const r = spawnSync(process.execPath, [BIN, 'plan', '--batch', batch, '--config', cfg, '--backend', 'cpu'], { encoding: 'utf8' });
      if (r.status === 0) expect(JSON.parse(r.stdout).phases.length).toBeGreaterThan(0);
      else expectCliRefusal({ code: r.status ?? -1, out: r.stdout, err: r.stderr }, `case ${i}`);
    });
  });

  it('the launched sidecar answers every mutated request once, in order', async () => {
    const { config, examples } = small(seed);
    const lines = [JSON.stringify({ id: 0, config })];
    fc.sample(mutations, { seed, numRuns: 60 }).forEach((muts, i) => {
      lines.push(mutateText(JSON.stringify(mutateValue({ id: i + 1, batch: examples }, muts)) ?? 'null', muts).replace(/\r?\n/g, ' '));
    });
    const child = spawn(process.execPath, [BIN, 'serve', '--backend', 'cpu'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '', err = '';
    child.stdout.setEncoding('utf8').on('data', (x: string) => { out += x; });
    child.stderr.setEncoding('utf8').on('data', (x: string) => { err += x; });
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
    child.stdin.end(lines.join('\n') + '\n');
    expect(await closed, err).toBe(0);
    expect(err).toBe('');
    const resp = out.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(resp).toHaveLength(lines.filter((l) => l.trim() !== '').length);
    for (const r of resp) if (r.error) expect(r.error).not.toMatch(/internal error/);
  });
});
