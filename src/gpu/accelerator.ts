// The WebGPU implementation of the Accelerator contract (src/accel.ts): every method returns
// exactly what the CPU reference returns, so GPU and CPU plans are byte-identical.
//
// Host side of a call: inputs are uploaded as their typed arrays' bytes (Float64Array values are
// converted to (lo, hi) words on the GPU, and prefix sums come back as doubles), into buffers
// pooled across calls; a call encodes one compute pass, submits once and maps one read-back
// buffer (the cut walk repeats that only while some target is unfinished). Calls are serialised.

import type { Accelerator, CallProfile, CutResult, PairArena } from '../primitives/accelerator.js';
import { pairStepsCpu } from '../primitives/pairstep.js';
import { BufferPool, Call, fromWordPairs } from './buffers.js';
import { acquireDevice } from './device.js';
import {
  activeDigitShifts, CONVERT_F64_IN, CONVERT_F64_OUT, createKernels, CUT_ENTRY_BYTES, cutBindGroup, cutChunkTargets, encodeCutRounds,
  encodeCutsParallel, encodeF64ToU64, encodePairSteps, encodeScan, encodeSortDesc, Kernels, packPairSteps, PAIR_INFO_BYTES,
} from './kernels.js';

export { GpuUnavailableError } from './device.js';

/** The profile of one call (the Accelerator contract's CallProfile). */
export type GpuCallProfile = CallProfile;

/**
 * Where pairSteps runs: "gpu" (pair_steps.wgsl), "cpu" (pairStepsCpu on the host: the same
 * result), or "auto": see pairStepsMinItems.
 */
export type PairPath = 'auto' | 'gpu' | 'cpu';

/**
 * How cutCounts runs: "serial" walks each target's cuts in one thread (cuts.wgsl), "parallel"
 * computes next-cut pointers for every (target, position) and jumps them (cuts_parallel.wgsl),
 * "auto" picks parallel from parallelCutMinItems(software) items on (see there).
 */
export type CutPath = 'auto' | 'serial' | 'parallel';

export interface GpuAccelerator extends Accelerator {
  readonly backend: 'webgpu';
  /** Whether compute passes are timed with timestamp queries (see createGpuAccelerator). */
  readonly timestamps: boolean;
  /** How cutCounts chooses its path, and from how many items "auto" runs the parallel one. */
  readonly cutPath: CutPath;
  readonly parallelCutMinItems: number;
  /** How pairSteps chooses where to run, and from how many arena entries "auto" uses the GPU. */
  readonly pairPath: PairPath;
  readonly pairStepsMinItems: number;
  /**
   * Profile of the last call that ran kernels, or of the last pairSteps call, which says
   * pairPath "cpu" when it was answered on the host (null before the first).
   */
  readonly lastCall: GpuCallProfile | null;
}

function identity(n: number): Uint32Array {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  return out;
}

interface Context {
  k: Kernels;
  pool: BufferPool;
  /** Two timestamps (start and end of the compute pass), when timing. */
  query: GPUQuerySet | null;
  profile: GpuCallProfile | null;
  cutPath: CutPath;
  pairPath: PairPath;
  software: boolean;
}

/** A call in progress: its host-clock phases and the GPU time of its passes. */
class Run {
  readonly call: Call;
  readonly profile: GpuCallProfile = { hostMs: 0, waitMs: 0, readMs: 0, kernelMs: null, submits: 0, cutPath: null, pairPath: null };
  private mark = performance.now();

  constructor(private readonly ctx: Context) {
    this.call = new Call(ctx.pool);
    if (ctx.query) this.profile.kernelMs = 0;
  }

  private lap(phase: 'hostMs' | 'waitMs' | 'readMs'): void {
    const now = performance.now();
    this.profile[phase] += now - this.mark;
    this.mark = now;
  }

  /**
   * A compute pass, timed when timing. A call that spreads its work over several passes (and
   * submits) times them as one span: the first writes the start, the last the end.
   */
  beginPass(encoder: GPUCommandEncoder, span: { first: boolean; last: boolean } = { first: true, last: true }): GPUComputePassEncoder {
    const query = this.ctx.query;
    if (!query || (!span.first && !span.last)) return encoder.beginComputePass({});
    return encoder.beginComputePass({
      timestampWrites: {
        querySet: query,
        ...(span.first ? { beginningOfPassWriteIndex: 0 } : {}),
        ...(span.last ? { endOfPassWriteIndex: 1 } : {}),
      },
    });
  }

  /** Submits work that a later submitAndRead depends on (its params are flushed first). */
  submit(encoder: GPUCommandEncoder): void {
    this.call.flushUniforms();
    this.call.device.queue.submit([encoder.finish()]);
    this.profile.submits++;
  }

  /**
   * Submits `encoder` (whose pass has ended) after copying `byteLength` bytes of `source` into the
   * pooled read-back buffer (and the pass's timestamps after them), and returns a copy of those
   * bytes: one submit and one map per round trip.
   */
  async submitAndRead(encoder: GPUCommandEncoder, source: GPUBuffer, byteLength: number): Promise<ArrayBuffer> {
    const { pool, query } = this.ctx;
    const copyBytes = Math.ceil(Math.max(4, byteLength) / 4) * 4;
    const resultBytes = Math.ceil(copyBytes / 8) * 8;
    const totalBytes = resultBytes + (query ? 16 : 0);
    const readBuffer = pool.readback(totalBytes);
    encoder.copyBufferToBuffer(source, 0, readBuffer, 0, copyBytes);
    if (query) {
      const resolved = pool.queryResolve(16);
      encoder.resolveQuerySet(query, 0, 2, resolved, 0);
      encoder.copyBufferToBuffer(resolved, 0, readBuffer, resultBytes, 16);
    }
    this.call.flushUniforms();
    this.call.device.queue.submit([encoder.finish()]);
    this.profile.submits++;
    this.lap('hostMs');
    await readBuffer.mapAsync(GPUMapMode.READ, 0, totalBytes);
    this.lap('waitMs');
    try {
      const mapped = readBuffer.getMappedRange(0, totalBytes);
      if (query) {
        const [begin, end] = new BigUint64Array(mapped, resultBytes, 2);
        this.profile.kernelMs! += end > begin ? Number(end - begin) / 1e6 : 0;
      }
      return mapped.slice(0, byteLength);
    } finally {
      readBuffer.unmap();
    }
  }

  /** Ends the call: the remaining host time counts as read time; publishes the profile. */
  finish(): void {
    this.lap('readMs');
    this.ctx.profile = this.profile;
  }

  /** Back to host work (between round trips of the cut walk). */
  resumeHost(): void {
    this.lap('readMs');
  }
}

async function sortDescGpu(ctx: Context, keys: Uint32Array): Promise<Uint32Array> {
  const n = keys.length;
  const run = new Run(ctx);
  const shifts = n < 2 ? [] : activeDigitShifts(keys);
  if (shifts.length === 0) return identity(n); // all keys equal: a stable sort keeps index order
  const encoder = ctx.k.device.createCommandEncoder();
  const keysBuffer = run.call.upload('sort keys in', keys);
  const pass = run.beginPass(encoder);
  const source = encodeSortDesc(ctx.k, pass, run.call, keysBuffer, n, shifts);
  pass.end();
  const out = new Uint32Array(await run.submitAndRead(encoder, source, n * 4));
  run.finish();
  return out;
}

const ZERO_PAIR = new Float64Array(1);

async function prefixSumGpu(ctx: Context, values: Float64Array): Promise<Float64Array> {
  const n = values.length;
  if (n === 0) return new Float64Array(1);
  const count = n + 1; // a trailing zero makes the last exclusive sum the total
  const run = new Run(ctx);
  const encoder = ctx.k.device.createCommandEncoder();
  // The doubles go up as they are; the scan converts them on load and stores doubles.
  const data = run.call.upload('scan data', values, 8);
  ctx.k.device.queue.writeBuffer(data, n * 8, ZERO_PAIR.buffer, 0, 8);
  const pass = run.beginPass(encoder);
  encodeScan(ctx.k, pass, run.call, data, count, 'u64', CONVERT_F64_IN | CONVERT_F64_OUT);
  pass.end();
  const out = new Float64Array(await run.submitAndRead(encoder, data, count * 8));
  run.finish();
  return out;
}

/** Most walk dispatches encoded in one submit (the walk's rounds double up to this). */
const MAX_CUT_ROUNDS_PER_SUBMIT = 256;

/**
 * Repeats the resumable cut walk until every target is done: 4 rounds in the first submit,
 * doubling after each read back, so a walk needing R rounds costs O(log R) round trips and at
 * most about 2R dispatches (rounds after a target finishes return at once).
 */
async function walkCuts(ctx: Context, run: Run, mode: 'sum' | 'padded', itemValues: Float64Array, n: number, targetValues: Float64Array): Promise<Uint32Array> {
  const { k } = ctx;
  const numTargets = targetValues.length;
  const items = run.call.upload(`cut ${mode} items`, itemValues);
  const targets = run.call.upload('cut targets', targetValues);
  const state = run.call.storage('cut state', numTargets * 16);
  const cut = cutBindGroup(k, run.call, mode, items, n, targets, numTargets, state);
  for (let rounds = 4, first = true; ; rounds = Math.min(2 * rounds, MAX_CUT_ROUNDS_PER_SUBMIT), first = false) {
    const encoder = k.device.createCommandEncoder();
    if (first) encoder.clearBuffer(state, 0, numTargets * 16);
    const pass = run.beginPass(encoder);
    if (first) {
      encodeF64ToU64(k, pass, run.call, items, itemValues.length);
      encodeF64ToU64(k, pass, run.call, targets, numTargets);
    }
    encodeCutRounds(pass, cut, numTargets, rounds);
    pass.end();
    const words = new Uint32Array(await run.submitAndRead(encoder, state, 16 * numTargets));
    let finished = true;
    for (let t = 0; t < numTargets && finished; t++) finished = words[4 * t] >= n;
    if (finished) return words;
    run.resumeHost();
  }
}

/**
 * Smallest n for which "auto" takes the parallel path. The serial walk costs O(groups * log) per
 * target, in one thread each; the parallel path O(n * log n) per target, spread over all threads.
 * - Software adapters (llvmpipe, 2 cores, measured with 64 targets): the serial walk wins at every
 *   size, so never. Parallel vs serial: n=1 0.9 vs 0.5 ms; 4097 57 vs 2.8 ms (sum), 51 vs 1.1 ms
 *   (padded); 100,003 2.1 s vs 14 ms; 1M 23.8 s vs 91 ms (sum), 15.1 s vs 10 ms (padded); even with
 *   every item its own group (target 0) 100,003: 2.2 s vs 63 ms. llvmpipe has only the cores'
 *   SIMD lanes, so the parallel path's log n times more work is never hidden.
 * - Real GPUs, measured on an NVIDIA H200 (Dawn/Vulkan), 64 targets, kernel-only, serial vs
 *   parallel: sum mode 1,000: 598 vs 44 µs; 4,096: 2.36 ms vs 81 µs; 16,384: 9.0 ms vs 213 µs;
 *   100,000: 25.9 vs 1.19 ms; 1M: 56.0 vs 14.0 ms. Padded mode (floor(T / cost) jumps, cheap for
 *   the serial walk) 4,096: 817 vs 79 µs; 100,000: 6.26 vs 1.16 ms; but 1M: 6.44 vs 13.4 ms.
 *   So parallel from 1,000 items in sum mode, and in padded mode between 1,000 and 300,000 items.
 */
export function parallelCutMinItems(software: boolean): number {
  return software ? PARALLEL_CUT_MIN_ITEMS_SOFTWARE : PARALLEL_CUT_MIN_ITEMS_HARDWARE;
}
const PARALLEL_CUT_MIN_ITEMS_SOFTWARE = Infinity;
const PARALLEL_CUT_MIN_ITEMS_HARDWARE = 1000;
/** Above this many items the serial padded walk beats the parallel path on the H200 (see above). */
const PARALLEL_PADDED_MAX_ITEMS_HARDWARE = 300_000;

/**
 * The parallel path: targets in chunks whose (target, position) entries fit one ping-pong buffer
 * (k.cutChunkBytes), all in one pass where the params slots allow (else several submits, timed as
 * one span), one read back of the per-target (end, groups, maxLoad) words. Null when not even one
 * target's n + 1 entries fit a buffer (the caller walks serially then).
 */
async function parallelCuts(ctx: Context, run: Run, mode: 'sum' | 'padded', itemValues: Float64Array, n: number, targetValues: Float64Array): Promise<Uint32Array | null> {
  const { k } = ctx;
  const numTargets = targetValues.length;
  const chunk = cutChunkTargets(k, n, numTargets);
  if (chunk === 0) return null;
  const items = run.call.upload(`cut ${mode} items`, itemValues);
  const targets = run.call.upload('cut targets', targetValues);
  const results = run.call.storage('cut state', numTargets * 16);
  const chunkBytes = chunk * (n + 1) * CUT_ENTRY_BYTES;
  // Bound with explicit sizes: pooled buffers may be larger than the binding limit.
  const a = { buffer: run.call.storage('cut jump a', chunkBytes), offset: 0, size: chunkBytes };
  const b = { buffer: run.call.storage('cut jump b', chunkBytes), offset: 0, size: chunkBytes };
  let encoder = k.device.createCommandEncoder();
  // One params slot per chunk; the two conversions take one each (both counts are > 0).
  const chunksLeft = (first: number) => Math.ceil((numTargets - first) / chunk);
  let pass = run.beginPass(encoder, { first: true, last: chunksLeft(0) <= run.call.slotsLeft - 2 });
  encodeF64ToU64(k, pass, run.call, items, itemValues.length);
  encodeF64ToU64(k, pass, run.call, targets, numTargets);
  for (let first = 0; first < numTargets; first += chunk) {
    if (run.call.slotsLeft === 0) {
      pass.end();
      run.submit(encoder);
      run.call.recycle();
      encoder = k.device.createCommandEncoder();
      pass = run.beginPass(encoder, { first: false, last: chunksLeft(first) <= run.call.slotsLeft });
    }
    encodeCutsParallel(k, pass, run.call, mode, items, n, targets, first, Math.min(chunk, numTargets - first), a, b, results);
  }
  pass.end();
  const words = new Uint32Array(await run.submitAndRead(encoder, results, 16 * numTargets));
  for (let t = 0; t < numTargets; t++) {
    if (words[4 * t] !== n) throw new Error(`postbalance gpu: parallel cuts did not reach the end for target ${t} (${words[4 * t]} of ${n})`);
  }
  return words;
}

function checkTargets(targets: Float64Array): void {
  for (let t = 0; t < targets.length; t++) {
    const T = targets[t];
    if (!(T >= 0) || !Number.isInteger(T)) throw new RangeError(`cutCounts: target ${t} is ${T}, expected a non-negative integer`);
  }
}

async function cutCountsGpu(ctx: Context, costs: Float64Array, prefix: Float64Array, targets: Float64Array, mode: 'sum' | 'padded'): Promise<CutResult> {
  const n = costs.length, numTargets = targets.length;
  if (mode !== 'sum' && mode !== 'padded') throw new RangeError(`cutCounts: unknown mode ${String(mode)}`);
  checkTargets(targets);
  if (n === 0 || numTargets === 0) return { groups: new Uint32Array(numTargets), maxLoad: new Float64Array(numTargets) };
  if (mode === 'sum' && prefix.length < n + 1) throw new RangeError(`cutCounts: prefix has ${prefix.length} entries, expected ${n + 1}`);
  const run = new Run(ctx);
  const itemValues = mode === 'sum' ? prefix.subarray(0, n + 1) : costs;
  const parallel = ctx.cutPath === 'parallel' || (ctx.cutPath === 'auto' && n >= parallelCutMinItems(ctx.software)
    && (mode === 'sum' || n <= PARALLEL_PADDED_MAX_ITEMS_HARDWARE));
  let words = parallel ? await parallelCuts(ctx, run, mode, itemValues, n, targets) : null;
  run.profile.cutPath = words ? 'parallel' : 'serial';
  words ??= await walkCuts(ctx, run, mode, itemValues, n, targets);
  const groups = new Uint32Array(numTargets);
  for (let t = 0; t < numTargets; t++) groups[t] = words[4 * t + 1];
  const result = { groups, maxLoad: fromWordPairs(words, numTargets, 4, 2) };
  run.finish();
  return result;
}

/**
 * From how many arena entries `auto` scores a balance round's pairs on the GPU. A round uploads
 * the arena (12 bytes an entry) and reads back 8 bytes a pair, and the host applies the steps
 * either way, so the kernel pays off only when the search outweighs the transfer.
 * - Software adapters: never. On llvmpipe (2 cores) the kernel took 6–12 ms at 100k entries and
 *   38–65 ms at 1M against 0.8–1.3 and 8.7–14.5 ms for pairStepsCpu (bench/kernels.ts).
 * - Hardware: from 262,144 entries. Not measured on a hardware GPU yet (no device was lent when
 *   this landed): an estimate from the H200's measured per-call cost of the sort and scan
 *   (about 4 ms of upload, latency and read-back at 1M items, under 0.5 ms of kernel) against
 *   the CPU reference's ~10 ms a round at 1M; rerun bench/kernels.ts there and adjust.
 */
export function pairStepsMinItems(software: boolean): number {
  return software ? Infinity : 262_144;
}

/**
 * The pair-step kernel (pair_steps.wgsl): one submit, one read back of 2 i32 per pair. The host
 * packs the pairs (packPairSteps); the costs go up as doubles and are converted in place. Only
 * the arena's `used` prefix is uploaded. An arena or pair table too large for one storage binding
 * (over 2^24 members on llvmpipe's 128 MiB) runs pairStepsCpu instead: the same result.
 */
async function pairStepsGpu(ctx: Context, arena: PairArena, pairs: Int32Array): Promise<Int32Array> {
  const onGpu = ctx.pairPath === 'gpu' || (ctx.pairPath === 'auto' && arena.used >= pairStepsMinItems(ctx.software));
  // Answered on the host (by choice, nothing to search, or too large for one binding): the
  // profile says so, so that no caller reads the previous call's kernel times as this one's.
  const onHost = (answer: () => Int32Array): Int32Array => {
    const t = performance.now();
    const out = answer();
    ctx.profile = { hostMs: performance.now() - t, waitMs: 0, readMs: 0, kernelMs: null, submits: 0, cutPath: null, pairPath: 'cpu' };
    return out;
  };
  if (!onGpu) return onHost(() => pairStepsCpu(arena, pairs));
  const P = pairs.length >> 1;
  const job = packPairSteps(arena, pairs);
  if (job.numChunks === 0) return onHost(() => new Int32Array(2 * P).fill(-1));
  const { k } = ctx;
  const used = arena.used;
  const limit = Math.min(k.device.limits.maxStorageBufferBindingSize, k.device.limits.maxBufferSize);
  if (used * 8 > limit || P * PAIR_INFO_BYTES > limit || job.numChunks * 16 > limit) return onHost(() => pairStepsCpu(arena, pairs));
  const run = new Run(ctx);
  run.profile.pairPath = 'gpu';
  const encoder = k.device.createCommandEncoder();
  const buffers = {
    mc: run.call.upload('pair mc', arena.mc.subarray(0, used)),
    mt: run.call.upload('pair mt', arena.mt.subarray(0, used)),
    info: run.call.upload('pair info', job.info),
    chunks: run.call.upload('pair chunks', job.chunks),
    best: run.call.storage('pair best', job.numChunks * 16),
    steps: run.call.storage('pair steps', P * 8),
  };
  const pass = run.beginPass(encoder);
  encodeF64ToU64(k, pass, run.call, buffers.mc, used);
  encodePairSteps(k, pass, run.call, job, P, used, buffers);
  pass.end();
  const out = new Int32Array(await run.submitAndRead(encoder, buffers.steps, P * 8));
  run.finish();
  return out;
}

/**
 * A WebGPU accelerator on the default adapter, else the OpenGL ES compatibility adapter.
 * Device, pipelines and buffers are created once here and reused by every call (buffers grow
 * to the largest call so far); call destroy() when done. With `timestamps`, compute passes are
 * timed with timestamp queries where the adapter has them (lastCall.kernelMs); the results are
 * the same either way. `cutPath` forces cutCounts' serial or parallel path (default "auto");
 * `pairPath` forces pairSteps onto the GPU or the host (default "auto", see pairStepsMinItems);
 * `cutChunkBytes` lowers the parallel path's per-chunk buffer cap (tests use it to force many chunks). Throws GpuUnavailableError when no adapter or device can be had.
 */
export async function createGpuAccelerator(opts: { verbose?: boolean; timestamps?: boolean; cutPath?: CutPath; pairPath?: PairPath; cutChunkBytes?: number } = {}): Promise<GpuAccelerator> {
  const { device, adapterName, software, timestamps } = await acquireDevice(opts);
  let ctx: Context;
  try {
    const k = await createKernels(device, software);
    if (opts.cutChunkBytes !== undefined) k.cutChunkBytes = Math.min(k.cutChunkBytes, opts.cutChunkBytes);
    const query = timestamps ? device.createQuerySet({ type: 'timestamp', count: 2 }) : null;
    ctx = { k, pool: new BufferPool(device), query, profile: null, cutPath: opts.cutPath ?? 'auto', pairPath: opts.pairPath ?? 'auto', software };
  } catch (err) {
    device.destroy();
    throw err;
  }
  // Calls share the pooled buffers, so they run one after another.
  let tail: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const result = tail.then(fn);
    tail = result.catch(() => undefined);
    return result;
  };
  return {
    backend: 'webgpu',
    adapter: adapterName,
    timestamps: ctx.query !== null,
    cutPath: ctx.cutPath,
    parallelCutMinItems: parallelCutMinItems(software),
    pairPath: ctx.pairPath,
    pairStepsMinItems: pairStepsMinItems(software),
    get lastCall() { return ctx.profile; },
    sortDesc: (keys) => serial(() => sortDescGpu(ctx, keys)),
    prefixSum: (values) => serial(() => prefixSumGpu(ctx, values)),
    cutCounts: (costs, prefix, targets, mode) => serial(() => cutCountsGpu(ctx, costs, prefix, targets, mode)),
    pairSteps: (arena, pairs) => serial(() => pairStepsGpu(ctx, arena, pairs)),
    destroy: () => {
      ctx.pool.destroy();
      ctx.query?.destroy();
      device.destroy();
    },
  };
}
