// A soak of the sidecar as a training job uses it: one `postbalance serve` process, thousands of
// requests pipelined into it (valid batches as examples and as columns, config changes, a few
// batches of megabytes, and every kind of bad request, including lines over the size limit).
// Every request is answered exactly once, in order, with the right kind of answer, and the
// process's memory is flat: the floor of its resident size over the last third of the requests
// is within 20 MiB of the floor over the second third (the same mix each third; a server that
// kept every plan response it wrote, for one, grows it by about 30 MiB and fails here).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import type { Config, Example } from '../src/types.js';
import { generateWorkload } from '../src/workload.js';
import { checkPlan } from './helpers.js';

const BIN = join(import.meta.dirname, '..', 'bin', 'postbalance.mjs');
const MAX_REQUEST_BYTES = 8 << 20;
const REQUESTS = 2400;

type Kind = 'ok' | 'plan' | 'error';
interface Sent { line: string; id: number | null; kind: Kind; check?: { examples: Example[]; config: Config } }

const configs = [generateWorkload({ ranks: 16, examples: 1, seed: 1 }).config, generateWorkload({ ranks: 32, ranksPerNode: 4, examples: 1, seed: 1 }).config];
for (const c of configs) delete c.phases[0].maxTokensPerRank; // the large batches exceed the demo's cap on 16 ranks
const big = generateWorkload({ ranks: 32, ranksPerNode: 4, examples: 24_000, seed: 99 }).examples; // ~2 MB as a request

function columns(examples: Example[]) {
  const mods = ['text', 'image', 'audio'];
  return { ids: examples.map((e) => e.id), ranks: examples.map((e) => e.rank), lengths: Object.fromEntries(mods.map((m) => [m, examples.map((e) => e[m] ?? null)])) };
}

/** The i-th request of the soak and what must come back. The same mix repeats every 200. */
function request(i: number, config: { current: Config; index: number }): Sent {
  const id = i + 1;
  const slot = i % 200;
  if (slot === 0) {
    config.index ^= 1;
    config.current = configs[config.index];
    return { line: JSON.stringify({ id, config: config.current }), id, kind: 'ok' };
  }
  const R = config.current.ranks;
  const { examples } = generateWorkload({ ranks: R, examples: 8 * R + (i % 61), seed: i });
  switch (slot % 20) {
    case 3: return { line: `{"id":${id},"batch":[{"id":"a","rank":0,"text":`, id, kind: 'error' }; // truncated
    case 5: return { line: JSON.stringify({ id, batch: [{ ...examples[0], rank: R }] }), id, kind: 'error' }; // rank out of range
    case 7: return { line: JSON.stringify({ id, batch: examples, shout: true }), id, kind: 'error' }; // unknown field
    case 9: return { line: `{"id":${id},"batch":[{"id":9223372036854775807,"rank":0,"text":5}]}`, id, kind: 'error' }; // id past 2^53
    case 11: return { line: JSON.stringify({ id, batch: [] }), id, kind: 'error' }; // empty batch
    case 13: return { line: `{"id":${id},"batch":${'['.repeat(5000)}${']'.repeat(5000)}}`, id, kind: 'error' }; // deep
    case 15: return { line: 'not json at all', id: null, kind: 'error' };
    case 17: return { line: '\ufeff' + JSON.stringify({ id, compact: columns(examples) }), id, kind: 'plan', check: { examples, config: config.current } };
    default: break;
  }
  if (slot === 150) return { line: JSON.stringify({ id, batch: big.map((e) => ({ ...e, rank: e.rank % R })), algorithm: 'lpt' }), id, kind: 'plan' };
  if (slot === 100) return { line: JSON.stringify({ id, batch: big, pad: 'x'.repeat(MAX_REQUEST_BYTES) }), id, kind: 'error' }; // over the byte limit
  const asColumns = i % 2 === 1;
  const line = JSON.stringify(asColumns ? { id, compact: columns(examples) } : { id, batch: examples });
  return { line, id, kind: 'plan', check: slot % 25 === 1 ? { examples, config: config.current } : undefined };
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

it(`the sidecar answers ${REQUESTS} mixed requests once each, in order, with flat memory`, async () => {
  const t0 = performance.now();
  const child = spawn(process.execPath, [BIN, 'serve', '--backend', 'cpu', '--max-request-bytes', String(MAX_REQUEST_BYTES)], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
  const closed = new Promise<number | null>((resolve) => child.on('close', resolve));

  const sent: Sent[] = [];
  let answered = 0, pending = '', failure: Error | null = null;
  const rss: number[] = []; // resident size after every 100 answers
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    pending += chunk;
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      try {
        const want = sent[answered];
        expect(want, `response ${answered} has no request`).toBeDefined();
        const r = JSON.parse(line);
        expect(r.id, `response ${answered}`).toBe(want.id);
        const kind: Kind = 'error' in r ? 'error' : 'ok' in r ? 'ok' : 'plan';
        expect(kind, `request ${want.id}: ${line.slice(0, 200)}`).toBe(want.kind);
        if (kind === 'error') expect(r.error).not.toMatch(/internal error/);
        if (want.check) checkPlan(r.plan, want.check.examples, want.check.config);
      } catch (e) {
        failure ??= e as Error;
      }
      answered++;
      if (answered % 100 === 0) rss.push(rssBytes(child.pid!));
    }
  });

  const config = { current: configs[1], index: 1 };
  for (let i = 0; i < REQUESTS && !failure; i++) {
    const s = request(i, config);
    sent.push({ ...s, line: '' }); // keep only what the check needs
    const ok = child.stdin.write(s.line + '\n' + (i % 97 === 0 ? '\n' : '')); // and a blank line now and then: no answer
    if (!ok) await new Promise((resolve) => child.stdin.once('drain', resolve));
  }
  // Memory is sampled while the server is still alive, after its last answer.
  while (answered < REQUESTS && !failure && child.exitCode === null) await new Promise((resolve) => setTimeout(resolve, 20));
  child.stdin.end();
  expect(await closed, stderr).toBe(0);
  if (failure) throw failure;
  expect(answered).toBe(REQUESTS);
  expect(stderr).toBe('');
  // The floor of the resident size (its least sample: garbage not yet collected only adds peaks)
  // in the second third against the last: a leak raises the floor with every request.
  const third = rss.length / 3;
  const floor = (from: number, to: number) => Math.min(...rss.slice(from, to));
  const mid = floor(third, 2 * third), end = floor(2 * third, rss.length);
  const mib = (b: number) => (b / 2 ** 20).toFixed(0);
  console.log(`[soak] ${REQUESTS} requests in ${((performance.now() - t0) / 1000).toFixed(1)} s; serve RSS floor ${mib(mid)} MiB in the second third, ${mib(end)} MiB in the last (peak ${mib(Math.max(...rss))} MiB)`);
  expect(end - mid, 'resident memory grew between the second and the last third').toBeLessThan(20 * 2 ** 20);
}, 240_000);
