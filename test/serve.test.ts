// The planner sidecar: the NDJSON protocol in-process (fast, every error path) and as a real
// child process (stdout carries only responses, EOF exits 0, plans equal the CLI's bytes).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cpuAccelerator } from '../src/primitives/accelerator.js';
import { batchFromExamples } from '../src/input.js';
import { formatCompactPlan, formatPlan, planBatch, planCompact } from '../src/plan/index.js';
import { readLines } from '../src/serve/lines.js';
import { expandCompact, recoverId } from '../src/serve/protocol.js';
import { serve } from '../src/serve/server.js';
import type { Config, Example, PlanOptions } from '../src/types.js';
import { generateWorkload, toJsonl } from '../src/workload.js';

const ROOT = join(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'postbalance.mjs');

const { config, examples } = generateWorkload({ ranks: 16, ranksPerNode: 4, examples: 256, seed: 7 });

/** A plan's JSON with its timings (the only fields allowed to differ between runs) blanked. */
function untimed(planJson: string): string {
  const p = JSON.parse(planJson);
  delete p.stats.planMs;
  delete p.stats.stages;
  return JSON.stringify(p);
}

async function libraryPlan(ex: readonly Example[], cfg: Config, options: PlanOptions = {}): Promise<string> {
  return formatPlan(await planBatch(batchFromExamples(ex, cfg), cfg, options, cpuAccelerator));
}

/** Run the in-process server over the given request lines; returns the parsed responses. */
async function exchange(lines: (string | object)[], maxRequestBytes?: number): Promise<any[]> {
  const text = lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n';
  const out: string[] = [];
  await serve([Buffer.from(text)], (s) => { out.push(s); }, { accel: cpuAccelerator, maxRequestBytes });
  // Exactly one newline-terminated JSON document per response.
  for (const s of out) expect(s.endsWith('\n') && s.indexOf('\n') === s.length - 1).toBe(true);
  return out.map((s) => JSON.parse(s));
}

/** The raw `"plan":{...}` bytes of a response line, to compare with the CLI byte for byte. */
function planBytes(responseLine: string): string {
  const start = responseLine.indexOf('"plan":') + '"plan":'.length;
  const end = responseLine.lastIndexOf(',"serveMs":');
  return responseLine.slice(start, end);
}

describe('serve protocol (in-process)', () => {
  it('config, then a batch: the plan is the library plan, byte for byte apart from timings', async () => {
    const out: string[] = [];
    const text = JSON.stringify({ id: 1, config }) + '\n' + JSON.stringify({ id: 2, batch: examples }) + '\n';
    await serve([text], (s) => { out.push(s); }, { accel: cpuAccelerator });
    expect(out).toHaveLength(2);
    const ack = JSON.parse(out[0]);
    expect(ack).toMatchObject({ id: 1, ok: true, ranks: 16, phases: ['vision', 'audio', 'llm'], backend: 'cpu' });
    const resp = JSON.parse(out[1]);
    expect(resp.id).toBe(2);
    expect(typeof resp.serveMs).toBe('number');
    expect(untimed(planBytes(out[1]))).toBe(untimed(await libraryPlan(examples, config)));
  });

  it('the compact form (columns and CSR) gives the same plan as the example list', async () => {
    const mods = ['text', 'image', 'audio'];
    const columns = {
      ids: examples.map((e) => e.id),
      ranks: examples.map((e) => e.rank),
      lengths: Object.fromEntries(mods.map((m) => [m, examples.map((e) => (e[m] ?? null))])),
    };
    // CSR for the images: counts per example and the flat lengths.
    const images = examples.map((e) => (e.image as number[] | undefined) ?? []);
    const csr = {
      ...columns,
      lengths: { ...columns.lengths, image: { counts: images.map((a) => a.length), values: images.flat() } },
    };
    const r = await exchange([{ id: 1, config }, { id: 2, batch: examples }, { id: 3, compact: columns }, { id: 4, compact: csr }]);
    expect(r.map((x) => x.error)).toEqual([undefined, undefined, undefined, undefined]);
    const ref = untimed(JSON.stringify(r[1].plan));
    expect(untimed(JSON.stringify(r[2].plan))).toBe(ref);
    expect(untimed(JSON.stringify(r[3].plan))).toBe(ref);
  });

  it('compact ids default to the example index', () => {
    const ex = expandCompact({ ranks: [1, 0], lengths: { text: [5, null], image: [[3, 4], 9] } }, config);
    expect(ex).toEqual([{ id: 0, rank: 1, text: 5, image: [3, 4] }, { id: 1, rank: 0, image: 9 }]);
  });

  it('per-request options: algorithm and exchange as the CLI flags', async () => {
    const r = await exchange([{ id: 'cfg', config }, { id: 'a', batch: examples, algorithm: 'none', exchange: 'full' }]);
    expect(r[1].id).toBe('a');
    expect(r[1].plan.stats.algorithm).toBe('none');
    expect(r[1].plan.phases[0].ranks[0].from).toBeDefined();
    expect(untimed(JSON.stringify(r[1].plan))).toBe(untimed(await libraryPlan(examples, config, { algorithm: 'none', exchange: 'full' })));
  });

  it('"format":"compact" answers with the compact plan, byte for byte the library\'s; serve --format sets the default', async () => {
    const ref = formatCompactPlan(await planCompact(batchFromExamples(examples, config), config, { algorithm: 'lpt' }, cpuAccelerator));
    const lines = [{ id: 1, config }, { id: 2, batch: examples, algorithm: 'lpt', format: 'compact' }, { id: 3, batch: examples, algorithm: 'lpt', format: 'full' },
      { id: 4, batch: examples, format: 'ids' }];
    const text = lines.map((l) => JSON.stringify(l)).join('\n') + '\n';
    for (const dflt of [undefined, 'compact'] as const) {
      const out: string[] = [];
      await serve([text], (s) => { out.push(s); }, { accel: cpuAccelerator, format: dflt });
      expect(untimed(planBytes(out[1]))).toBe(untimed(ref));
      expect(JSON.parse(out[2]).plan.phases[0].ranks).toHaveLength(16);
      expect(JSON.parse(out[3]).error).toBe('request "format": must be "full" or "compact", got "ids"');
      const plain: string[] = [];
      await serve([JSON.stringify({ id: 1, config }) + '\n' + JSON.stringify({ id: 2, batch: examples, algorithm: 'lpt' }) + '\n'], (s) => { plain.push(s); }, { accel: cpuAccelerator, format: dflt });
      expect(JSON.parse(plain[1]).plan.format).toBe(dflt);
    }
  });

  it('micro-batches: the plan carries them as the library plan does; a cap an item exceeds is an error and the server keeps serving', async () => {
    const mb = structuredClone(config);
    mb.phases[2].microBatches = { maxTokens: 16384 };
    const tight = structuredClone(config);
    tight.phases[2].microBatches = { maxTokens: 10 };
    const out: string[] = [];
    const text = [{ id: 1, config: mb }, { id: 2, batch: examples }, { id: 3, config: tight, batch: examples }, { id: 4, batch: examples }].map((l) => JSON.stringify(l)).join('\n') + '\n';
    await serve([text], (s) => { out.push(s); }, { accel: cpuAccelerator });
    expect(out).toHaveLength(4);
    const plan = JSON.parse(out[1]).plan;
    expect(plan.phases[2].microBatches).toBeGreaterThanOrEqual(1);
    expect(plan.phases[2].ranks[0].microBatch).toHaveLength(plan.phases[2].ranks[0].items.length);
    expect(untimed(planBytes(out[1]))).toBe(untimed(await libraryPlan(examples, mb)));
    expect(JSON.parse(out[2])).toEqual({ id: 3, error: expect.stringMatching(/^batch example "[^"]+": item "[^"]+" has \d+ tokens, over phase "llm" microBatches\.maxTokens 10$/) });
    // The failed request's config was not installed: the next batch is planned with the first one.
    expect(untimed(planBytes(out[3]))).toBe(untimed(planBytes(out[1])));
  });

  it('bad requests get one-line errors under their id (or null) and the server keeps serving', async () => {
    const bad = examples.slice(0, 4).map((e) => ({ ...e }));
    bad[2].text = -3;
    const r = await exchange([
      { id: 1, batch: examples },                  // no config yet
      'this is not json',                          // unparseable: id null
      '{"id":41,"batch":[{"id":"a"',               // truncated: the id is recovered
      '[1,2,3]',                                   // not an object
      { batch: examples },                         // no id
      { id: { n: 1 }, config },                    // id of the wrong type
      { id: 5, config, shout: true },              // unknown field
      { id: 6, config: { ranks: 0, phases: [] } }, // bad config
      { id: 7, config },
      { id: 8, batch: bad },                       // bad example, named by index and field
      { id: 9, batch: examples, algorithm: 'magic' },
      { id: 10, batch: examples.slice(0, 2), compact: { ranks: [] } },
      { id: 11, compact: { ranks: [0], lengths: { smell: [1] } } },
      '',                                          // blank lines are not requests
      { id: 12, batch: examples },                 // still serving, config still set
    ]);
    expect(r.map((x) => x.id)).toEqual([1, null, 41, null, null, null, 5, 6, 7, 8, 9, 10, 11, 12]);
    const errors = r.map((x) => x.error ?? '');
    expect(errors[0]).toMatch(/no config yet/);
    expect(errors[1]).toMatch(/malformed JSON/);
    expect(errors[2]).toMatch(/malformed JSON/);
    expect(errors[3]).toMatch(/must be a JSON object/);
    expect(errors[4]).toMatch(/no "id"/);
    expect(errors[5]).toMatch(/"id".*number or a string/);
    expect(errors[6]).toMatch(/unknown field "shout"/);
    expect(errors[7]).toMatch(/config ranks/);
    expect(r[8].ok).toBe(true);
    expect(errors[9]).toBe('batch example 2, field "text": length must be a non-negative integer, got -3');
    expect(errors[10]).toMatch(/algorithm/);
    expect(errors[11]).toMatch(/both "batch" and "compact"/);
    expect(errors[12]).toMatch(/compact.lengths.smell: unknown modality/);
    for (const e of errors) expect(e).not.toContain('\n');
    expect(r[13].plan.phases).toHaveLength(3);
  });

  it('an oversized request is refused without being parsed, and the next one is served', async () => {
    const big = JSON.stringify({ id: 2, batch: examples });
    const r = await exchange([{ id: 1, config }, big, { id: 3, batch: examples.slice(0, 64) }], 4096);
    expect(r[1].id).toBe(2);
    expect(r[1].error).toMatch(new RegExp(`${Buffer.byteLength(big)} bytes is over the limit of 4096 bytes`));
    expect(r[2].id).toBe(3);
    expect(r[2].plan).toBeDefined();
  });

  it('line splitting survives arbitrary chunk boundaries, multi-byte characters and a missing final newline', async () => {
    const text = '{"id":"é✓","x":1}\n\n{"id":2}\r\n{"id":3}';
    const bytes = Buffer.from(text);
    for (const size of [1, 2, 3, 5, 64]) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
      const got: string[] = [];
      for await (const l of readLines(chunks, 1024)) got.push(l.kind === 'line' ? l.text : `<${l.bytes}>`);
      expect(got).toEqual(['{"id":"é✓","x":1}', '', '{"id":2}\r', '{"id":3}']);
    }
    const over: string[] = [];
    for await (const l of readLines([Buffer.from('{"id":9,"pad":"' + 'x'.repeat(100) + '"}\nok\n')], 50)) {
      over.push(l.kind === 'line' ? l.text : `<${l.bytes} ${recoverId(l.head)}>`);
    }
    expect(over).toEqual(['<117 9>', 'ok']);
  });
});

describe('serve as a process', () => {
  it('answers every line on stdout, nothing else; plans equal `postbalance plan` byte for byte; EOF exits 0', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pb-serve-'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    writeFileSync(join(dir, 'batch.jsonl'), toJsonl(examples));
    const cli = spawnSync(process.execPath, [BIN, 'plan', '--batch', join(dir, 'batch.jsonl'), '--config', join(dir, 'config.json'), '--backend', 'cpu'], { encoding: 'utf8' });
    expect(cli.status, cli.stderr).toBe(0);

    const child = spawn(process.execPath, [BIN, 'serve', '--backend', 'cpu', '--max-request-bytes', String(32 * 1024)], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s; });
    child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const requests = [
      JSON.stringify({ id: 1, config }),
      JSON.stringify({ id: 2, batch: examples }),
      '{"id":3, oops',
      JSON.stringify({ id: 4, batch: [...examples, ...examples.map((e) => ({ ...e, id: `${e.id}b` }))].concat(examples.map((e) => ({ ...e, id: `${e.id}c` }))) }),
      JSON.stringify({ id: 5, batch: [{ id: 'x', rank: 99, text: 3 }] }),
      JSON.stringify({ id: 6, batch: examples }),
    ];
    expect(Buffer.byteLength(requests[3])).toBeGreaterThan(32 * 1024); // the oversized one
    child.stdin.end(requests.join('\n') + '\n');
    const code = await exited;
    expect(code, stderr).toBe(0);
    expect(stderr).toBe('');
    const lines = stdout.split('\n');
    expect(lines.pop()).toBe('');
    const resp = lines.map((l) => JSON.parse(l));
    expect(resp.map((r) => r.id)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(resp.map((r) => ('error' in r ? 'error' : 'plan' in r ? 'plan' : 'ok'))).toEqual(['ok', 'plan', 'error', 'error', 'error', 'plan']);
    expect(resp[3].error).toMatch(/over the limit/);
    expect(resp[4].error).toMatch(/batch example 0, field "rank"/);
    const cliPlan = cli.stdout.trimEnd();
    expect(untimed(planBytes(lines[1]))).toBe(untimed(cliPlan));
    expect(untimed(planBytes(lines[5]))).toBe(untimed(cliPlan));
  });

  it('exits 0 at once on an empty stdin, and a bad flag is a one-line error', () => {
    const empty = spawnSync(process.execPath, [BIN, 'serve', '--backend', 'cpu'], { input: '', encoding: 'utf8' });
    expect(empty.status).toBe(0);
    expect(empty.stdout).toBe('');
    const bad = spawnSync(process.execPath, [BIN, 'serve', '--backend', 'tpu'], { input: '', encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/--backend/);
  });
});
