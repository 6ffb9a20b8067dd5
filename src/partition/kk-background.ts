// Karmarkar–Karp off the main thread. `best` needs KK's grouping of a large phase only after
// LPT and its refinement (to score it, and to refine it as a candidate), and KK is the largest
// sequential cost of a large plan (about 40% at 1M items). Started on a worker thread as soon as
// the phases' items are sorted, it runs while the main thread does LPT, refinement and the
// locality candidate. The worker runs the same kk() on the same input, so the grouping is the
// same; when the worker cannot be had (running from the TypeScript sources without a build, a
// bundle without the worker file) or fails, kk() runs on the main thread instead.

import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { PartitionInput } from './common.js';
import { kk } from './kk.js';

/** Phases with fewer items run KK on the main thread (the hand-off costs more than it saves). */
export const KK_BACKGROUND_MIN_ITEMS = 50_000;

/** KK's grouping of one phase, computing or computed off the main thread. */
export interface KkJob {
  /**
   * The grouping kk(inp) returns: a new array on every call (callers refine it in place), even
   * after cancel() (then computed here if the worker has not done it).
   */
  group(): Promise<Int32Array>;
  /** Not needed after all: drop it if it has not started. */
  cancel(): void;
}

interface Pending {
  id: number;
  inp: PartitionInput;
  /** Settles the job once: with the worker's grouping, or kk() run here, or its error. */
  settle: (run: () => Int32Array) => void;
  result: Promise<Int32Array>;
  settled: boolean;
  cancelled: boolean;
}

let worker: Worker | null | undefined; // undefined: not tried yet; null: not available
let running: Pending | null = null;
const queue: Pending[] = [];
let nextId = 0;

/**
 * The compiled worker: beside this module (kk-worker.js from tsc, kk-worker.mjs beside an
 * esbuild bundle), or in dist/ when this module runs from src/ (only if that build is newer
 * than the kk.ts beside this module, so a stale build never answers for the sources).
 */
function workerFile(): string | null {
  const here = fileURLToPath(import.meta.url);
  for (const name of ['kk-worker.js', 'kk-worker.mjs']) {
    const sibling = join(dirname(here), name);
    if (existsSync(sibling)) return sibling;
  }
  if (!here.endsWith('.ts')) return null;
  for (let dir = dirname(here); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) {
      const built = join(dir, 'dist', 'partition');
      const fresh = existsSync(join(built, 'kk-worker.js')) && existsSync(join(built, 'kk.js'))
        && statSync(join(built, 'kk.js')).mtimeMs >= statSync(join(dirname(here), 'kk.ts')).mtimeMs;
      return fresh ? join(built, 'kk-worker.js') : null;
    }
    if (dirname(dir) === dir) return null;
  }
}

function startWorker(): Worker | null {
  if (worker !== undefined) return worker;
  const file = workerFile();
  if (!file) return (worker = null);
  try {
    const w = new Worker(file);
    w.unref(); // idle, it never keeps the process alive (ref'd while a job runs)
    w.on('message', (m: { id: number; group: Int32Array }) => {
      const done = running;
      running = null;
      if (done && done.id === m.id) done.settle(() => m.group);
      sendNext();
    });
    const fail = () => {
      if (worker !== w) return;
      worker = null;
      // Whatever was in flight or queued runs here instead (or rejects with kk's own error).
      const left = running ? [running, ...queue] : [...queue];
      running = null;
      queue.length = 0;
      for (const p of left) if (!p.cancelled) p.settle(() => kk(p.inp));
    };
    w.on('error', fail);
    w.on('messageerror', fail);
    w.on('exit', fail);
    return (worker = w);
  } catch {
    return (worker = null);
  }
}

function sendNext(): void {
  const w = worker;
  if (!w) return;
  while (queue.length > 0 && queue[0].cancelled) queue.shift();
  const p = queue.shift();
  if (!p) { w.unref(); return; }
  running = p;
  w.ref();
  const { cost, order, groups, equalCount } = p.inp;
  w.postMessage({ id: p.id, cost, order, groups, equalCount }); // copies: the caller keeps its arrays
}

/**
 * Starts kk(inp) on the worker thread; null when the phase is small, no worker can be had, or
 * POSTBALANCE_KK_WORKER=0 (the caller then runs kk itself: the same plan, one thread; for
 * benchmarks and for hosts that want no threads). Jobs run one at a time, in start order.
 */
export function kkInBackground(inp: PartitionInput): KkJob | null {
  if (inp.order.length < KK_BACKGROUND_MIN_ITEMS || process.env.POSTBALANCE_KK_WORKER === '0' || !startWorker()) return null;
  let resolve!: (g: Int32Array) => void, reject!: (e: unknown) => void;
  const result = new Promise<Int32Array>((res, rej) => { resolve = res; reject = rej; });
  const p: Pending = {
    id: nextId++, inp, result, settled: false, cancelled: false,
    settle: (run) => {
      if (p.settled) return;
      p.settled = true;
      try { resolve(run()); } catch (e) { reject(e); }
    },
  };
  queue.push(p);
  if (!running) sendNext();
  return {
    group: () => {
      // Not on the worker (still queued behind an earlier phase's KK, which the main thread
      // does not need yet, or cancelled): taken back and run here.
      if (!p.settled && running !== p) {
        const at = queue.indexOf(p);
        if (at >= 0) queue.splice(at, 1);
        p.settle(() => kk(p.inp));
      }
      return p.result.then((g) => g.slice());
    },
    cancel: () => { p.cancelled = true; },
  };
}

/**
 * The same interface for KK run on this thread, once, when first asked for: a phase whose
 * `best` needs KK twice (as its start under a token cap, then as a candidate) computes it once.
 */
export function kkInLine(inp: PartitionInput): KkJob {
  let group: Int32Array | undefined;
  return {
    group: async () => (group ??= kk(inp)).slice(),
    cancel: () => {},
  };
}
