// Candidate-partition evaluation (cuts.wgsl: one thread per target walking its greedy cut,
// resumable; cuts_parallel.wgsl: next-cut pointers and pointer jumping): the host side of the
// cutCounts primitive and the choice between the two paths.
import type { CutResult } from '../../primitives/accelerator.js';
import { bindGroup, dispatch, fromWordPairs, type Call, type UniformSlot } from '../buffers.js';
import { Run, type Context } from '../context.js';
import { compileShader, createPipeline } from '../device.js';
import { encodeF64ToU64, type ScanKernels } from '../scan/scan.js';
import { shaderSource } from '../shaders.js';

export const CUT_WORKGROUP = 64;

export interface CutKernels extends ScanKernels {
  /** Loop iterations one cut-walk invocation may run per dispatch (see cuts.wgsl). */
  cutBudget: number;
  cutSum: GPUComputePipeline;
  cutPadded: GPUComputePipeline;
  nextSum: GPUComputePipeline;
  nextPadded: GPUComputePipeline;
  cutJump: GPUComputePipeline;
  cutCollect: GPUComputePipeline;
  /** Largest buffer (bytes) one chunk of the parallel cut path may bind (see cutChunkTargets). */
  cutChunkBytes: number;
}

/**
 * Mesa's llvmpipe/lavapipe silently end a shader loop nest after 65,535 iterations; stay well
 * below that there. Elsewhere a larger budget only bounds how long one dispatch runs.
 */
export function cutBudgetFor(software: boolean): number {
  return software ? 16384 : 262144;
}

/**
 * Cap on one ping-pong buffer of the parallel cut path (two are live): 128 MiB, llvmpipe's
 * maxStorageBufferBindingSize, and 8M threads per dispatch, enough to fill any current GPU.
 */
export const MAX_CUT_CHUNK_BYTES = 128 * 1024 * 1024;

/** Bytes per (target, position) entry of the parallel cut path: (next, count, maxLoad lo/hi). */
export const CUT_ENTRY_BYTES = 16;

export async function createCutKernels(device: GPUDevice, software: boolean): Promise<Omit<CutKernels, keyof ScanKernels>> {
  const walk = await compileShader(device, 'cuts.wgsl', shaderSource('cuts.wgsl'));
  const par = await compileShader(device, 'cuts_parallel.wgsl', shaderSource('cuts_parallel.wgsl'));
  const [cutSum, cutPadded, nextSum, nextPadded, cutJump, cutCollect] = await Promise.all([
    createPipeline(device, 'cuts.wgsl', walk, 'cut_sum'),
    createPipeline(device, 'cuts.wgsl', walk, 'cut_padded'),
    createPipeline(device, 'cuts_parallel.wgsl', par, 'next_sum'),
    createPipeline(device, 'cuts_parallel.wgsl', par, 'next_padded'),
    createPipeline(device, 'cuts_parallel.wgsl', par, 'jump'),
    createPipeline(device, 'cuts_parallel.wgsl', par, 'collect'),
  ]);
  const cutChunkBytes = Math.min(MAX_CUT_CHUNK_BYTES, device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
  return { cutBudget: cutBudgetFor(software), cutSum, cutPadded, nextSum, nextPadded, cutJump, cutCollect, cutChunkBytes };
}

/**
 * Greedy cuts for each target, resumable: `items` is the prefix sums (n + 1 pairs) in mode "sum"
 * or the costs (n pairs) in mode "padded"; `state` holds (p, groups, maxLoad.lo, maxLoad.hi) per
 * target, zero to start. Each dispatch of encodeCutRounds advances every unfinished target by up
 * to k.cutBudget loop iterations; the host repeats until every p == n.
 */
export function cutBindGroup(k: CutKernels, call: Call, mode: 'sum' | 'padded', items: GPUBuffer, n: number, targets: GPUBuffer, numTargets: number, state: GPUBuffer): { pipeline: GPUComputePipeline; group: GPUBindGroup } {
  const params = call.uniform([n, numTargets, k.cutBudget]);
  const pipeline = mode === 'sum' ? k.cutSum : k.cutPadded;
  return { pipeline, group: bindGroup(k.device, pipeline, { 0: params, [mode === 'sum' ? 1 : 2]: items, 3: targets, 4: state }) };
}

export function encodeCutRounds(pass: GPUComputePassEncoder, cut: { pipeline: GPUComputePipeline; group: GPUBindGroup }, numTargets: number, rounds: number): void {
  for (let r = 0; r < rounds; r++) dispatch(pass, cut.pipeline, cut.group, Math.ceil(numTargets / CUT_WORKGROUP));
}

/**
 * Targets per chunk of the parallel cut path for n items: as many as keep chunkTargets * (n + 1)
 * entries within k.cutChunkBytes (0 when not even one target fits: use the serial walk).
 */
export function cutChunkTargets(k: Pick<CutKernels, 'cutChunkBytes'>, n: number, numTargets: number): number {
  return Math.min(numTargets, Math.floor(k.cutChunkBytes / (CUT_ENTRY_BYTES * (n + 1))));
}

/** Pointer-jumping rounds that take every position of n items to the sink: ceil(log2(n + 1)). */
export function cutJumpRounds(n: number): number {
  let rounds = 0;
  while (2 ** rounds < n + 1) rounds++;
  return rounds;
}

/**
 * The parallel cut path (cuts_parallel.wgsl) for targets [firstTarget, firstTarget + chunkTargets):
 * next-cut entries for every (target, position) into `a`, ceil(log2(n + 1)) pointer-jumping rounds
 * ping-ponging between `a` and `b`, then each target's (end, groups, maxLoad) into `results`
 * (the serial walk's state layout). `items`: prefix sums (n + 1 pairs, "sum") or costs (n pairs,
 * "padded"); `a` and `b` (whole buffers or { buffer, offset, size } ranges) hold chunkTargets * (n + 1) * CUT_ENTRY_BYTES bytes. Uses one uniform slot.
 */
export function encodeCutsParallel(
  k: CutKernels, pass: GPUComputePassEncoder, call: Call, mode: 'sum' | 'padded', items: GPUBuffer, n: number,
  targets: GPUBuffer, firstTarget: number, chunkTargets: number, a: GPUBuffer | UniformSlot, b: GPUBuffer | UniformSlot, results: GPUBuffer,
): void {
  const params = call.uniform([n, chunkTargets, firstTarget]);
  const entries = chunkTargets * (n + 1);
  const workgroups = Math.ceil(entries / CUT_WORKGROUP);
  const next = mode === 'sum' ? k.nextSum : k.nextPadded;
  dispatch(pass, next, bindGroup(k.device, next, { 0: params, [mode === 'sum' ? 1 : 2]: items, 3: targets, 5: a }), workgroups);
  const aToB = bindGroup(k.device, k.cutJump, { 0: params, 4: a, 5: b });
  const bToA = bindGroup(k.device, k.cutJump, { 0: params, 4: b, 5: a });
  const rounds = cutJumpRounds(n);
  for (let r = 0; r < rounds; r++) dispatch(pass, k.cutJump, r % 2 === 0 ? aToB : bToA, workgroups);
  const last = rounds % 2 === 0 ? a : b;
  dispatch(pass, k.cutCollect, bindGroup(k.device, k.cutCollect, { 0: params, 4: last, 6: results }), Math.ceil(chunkTargets / CUT_WORKGROUP));
}

/** Most walk dispatches encoded in one submit (the walk's rounds double up to this). */
const MAX_CUT_ROUNDS_PER_SUBMIT = 256;

/**
 * Repeats the resumable cut walk until every target is done: 4 rounds in the first submit,
 * doubling after each read back, so a walk needing R rounds costs O(log R) round trips and at
 * most about 2R dispatches (rounds after a target finishes return at once).
 */
async function walkCuts(ctx: Context<CutKernels>, run: Run, mode: 'sum' | 'padded', itemValues: Float64Array, n: number, targetValues: Float64Array): Promise<Uint32Array> {
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
async function parallelCuts(ctx: Context<CutKernels>, run: Run, mode: 'sum' | 'padded', itemValues: Float64Array, n: number, targetValues: Float64Array): Promise<Uint32Array | null> {
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

export async function cutCountsGpu(ctx: Context<CutKernels>, costs: Float64Array, prefix: Float64Array, targets: Float64Array, mode: 'sum' | 'padded'): Promise<CutResult> {
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

