// Compiled pipelines for every kernel, created once per device, and the host code that
// encodes each kernel family into a compute pass (no submits here: callers batch them).

import type { PairArena } from '../primitives/pairstep.js';
import { bindGroup, Call, dispatch, putWordPair, type UniformSlot } from './buffers.js';
import { compileShader, createPipeline } from './device.js';
import { shaderSource } from './shaders.js';

/** Elements per workgroup tile, as fixed in the shaders' headers. */
export const SCAN_TILE = 1024;
export const SORT_TILE = 1024;
export const CUT_WORKGROUP = 64;

export interface Kernels {
  device: GPUDevice;
  /** Loop iterations one cut-walk invocation may run per dispatch (see cuts.wgsl). */
  cutBudget: number;
  reduceU32: GPUComputePipeline;
  scanU32: GPUComputePipeline;
  reduceU64: GPUComputePipeline;
  scanU64: GPUComputePipeline;
  f64ToU64: GPUComputePipeline;
  sortHistogram: GPUComputePipeline;
  sortScatter: GPUComputePipeline;
  cutSum: GPUComputePipeline;
  cutPadded: GPUComputePipeline;
  nextSum: GPUComputePipeline;
  nextPadded: GPUComputePipeline;
  cutJump: GPUComputePipeline;
  cutCollect: GPUComputePipeline;
  pairEvaluate: GPUComputePipeline;
  pairSelect: GPUComputePipeline;
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

export async function createKernels(device: GPUDevice, software: boolean): Promise<Kernels> {
  const load = (file: string) => compileShader(device, file, shaderSource(file));
  const [scan, sort, cuts, par, pair] = await Promise.all([load('scan.wgsl'), load('radix_sort.wgsl'), load('cuts.wgsl'), load('cuts_parallel.wgsl'), load('pair_steps.wgsl')]);
  const [reduceU32, scanU32, reduceU64, scanU64, f64ToU64, sortHistogram, sortScatter, cutSum, cutPadded, nextSum, nextPadded, cutJump, cutCollect, pairEvaluate, pairSelect] = await Promise.all([
    createPipeline(device, 'scan.wgsl', scan, 'reduce_u32'),
    createPipeline(device, 'scan.wgsl', scan, 'scan_u32'),
    createPipeline(device, 'scan.wgsl', scan, 'reduce_u64'),
    createPipeline(device, 'scan.wgsl', scan, 'scan_u64'),
    createPipeline(device, 'scan.wgsl', scan, 'f64_to_u64'),
    createPipeline(device, 'radix_sort.wgsl', sort, 'histogram'),
    createPipeline(device, 'radix_sort.wgsl', sort, 'scatter'),
    createPipeline(device, 'cuts.wgsl', cuts, 'cut_sum'),
    createPipeline(device, 'cuts.wgsl', cuts, 'cut_padded'),
    createPipeline(device, 'cuts_parallel.wgsl', par, 'next_sum'),
    createPipeline(device, 'cuts_parallel.wgsl', par, 'next_padded'),
    createPipeline(device, 'cuts_parallel.wgsl', par, 'jump'),
    createPipeline(device, 'cuts_parallel.wgsl', par, 'collect'),
    createPipeline(device, 'pair_steps.wgsl', pair, 'evaluate'),
    createPipeline(device, 'pair_steps.wgsl', pair, 'select_step'),
  ]);
  const cutChunkBytes = Math.min(MAX_CUT_CHUNK_BYTES, device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
  return {
    device, cutBudget: cutBudgetFor(software), reduceU32, scanU32, reduceU64, scanU64, f64ToU64, sortHistogram, sortScatter,
    cutSum, cutPadded, nextSum, nextPadded, cutJump, cutCollect, pairEvaluate, pairSelect, cutChunkBytes,
  };
}

/** Scan input/output formats for the top level of a u64 scan (see scan.wgsl's header). */
export const CONVERT_F64_IN = 1;
export const CONVERT_F64_OUT = 2;

/**
 * In-place exclusive scan of `count` elements of `data` (u32, or u64 as (lo, hi) pairs):
 * reduce tiles, scan the tile sums recursively, then scan each tile with its offset.
 * `convert` (u64 only) makes the top level read and/or write doubles instead of word pairs.
 */
export function encodeScan(k: Kernels, pass: GPUComputePassEncoder, call: Call, data: GPUBuffer, count: number, width: 'u32' | 'u64', convert = 0, level = 0): void {
  if (count === 0) return;
  const [reduce, scan, dataBinding, sumsBinding] = width === 'u32' ? [k.reduceU32, k.scanU32, 1, 2] : [k.reduceU64, k.scanU64, 3, 4];
  const tiles = Math.ceil(count / SCAN_TILE);
  const sums = call.storage(`${width} scan sums ${level}`, tiles * (width === 'u32' ? 4 : 8));
  if (tiles === 1) {
    const params = call.uniform([count, 0, convert]);
    dispatch(pass, scan, bindGroup(k.device, scan, { 0: params, [dataBinding]: data, [sumsBinding]: sums }), 1);
    return;
  }
  const params = call.uniform([count, 1, convert]);
  const group = bindGroup(k.device, reduce, { 0: params, [dataBinding]: data, [sumsBinding]: sums });
  dispatch(pass, reduce, group, tiles);
  encodeScan(k, pass, call, sums, tiles, width, 0, level + 1);
  dispatch(pass, scan, bindGroup(k.device, scan, { 0: params, [dataBinding]: data, [sumsBinding]: sums }), tiles);
}

/** In-place conversion of `count` doubles in `data` to (lo, hi) word pairs (see f64ToU64). */
export function encodeF64ToU64(k: Kernels, pass: GPUComputePassEncoder, call: Call, data: GPUBuffer, count: number): void {
  if (count === 0) return;
  const params = call.uniform([count, 0, 0]);
  // Bound with an explicit size: a pooled buffer may be larger than the binding limit.
  const range = { buffer: data, offset: 0, size: count * 8 };
  dispatch(pass, k.f64ToU64, bindGroup(k.device, k.f64ToU64, { 0: params, 3: range }), Math.ceil(count / SCAN_TILE));
}

/** 8-bit digit shifts where the inverted keys differ (a constant digit leaves the order as is). */
export function activeDigitShifts(keys: Uint32Array): number[] {
  let or = 0, and = 0xffffffff;
  for (let i = 0; i < keys.length; i++) { const k = ~keys[i]; or |= k; and &= k; }
  const shifts: number[] = [];
  for (let shift = 0; shift < 32; shift += 8) if ((((or ^ and) >>> shift) & 0xff) !== 0) shifts.push(shift);
  return shifts;
}

/**
 * Stable LSD radix sort passes over `keys` (n of them); returns the buffer that ends up holding
 * the payload: item indices ordered by key descending, index ascending. Needs shifts.length >= 1.
 * The passes ping-pong between `keys` and pooled buffers: `keys` is overwritten from the second pass on.
 */
export function encodeSortDesc(k: Kernels, pass: GPUComputePassEncoder, call: Call, keys: GPUBuffer, n: number, shifts: number[]): GPUBuffer {
  const tiles = Math.ceil(n / SORT_TILE);
  const hist = call.storage('sort histogram', 256 * tiles * 4);
  let keysIn = keys, keysOut = call.storage('sort keys out', n * 4);
  let valsIn = call.storage('sort values a', n * 4), valsOut = call.storage('sort values b', n * 4);
  shifts.forEach((shift, passIndex) => {
    const params = call.uniform([n, shift, tiles, passIndex === 0 ? 1 : 0]);
    dispatch(pass, k.sortHistogram, bindGroup(k.device, k.sortHistogram, { 0: params, 1: keysIn, 3: hist }), tiles);
    encodeScan(k, pass, call, hist, 256 * tiles, 'u32');
    const group = bindGroup(k.device, k.sortScatter, { 0: params, 1: keysIn, 2: valsIn, 3: hist, 4: keysOut, 5: valsOut });
    dispatch(pass, k.sortScatter, group, tiles);
    [keysIn, keysOut] = [keysOut, keysIn];
    [valsIn, valsOut] = [valsOut, valsIn];
  });
  return valsIn;
}

/**
 * Greedy cuts for each target, resumable: `items` is the prefix sums (n + 1 pairs) in mode "sum"
 * or the costs (n pairs) in mode "padded"; `state` holds (p, groups, maxLoad.lo, maxLoad.hi) per
 * target, zero to start. Each dispatch of encodeCutRounds advances every unfinished target by up
 * to k.cutBudget loop iterations; the host repeats until every p == n.
 */
export function cutBindGroup(k: Kernels, call: Call, mode: 'sum' | 'padded', items: GPUBuffer, n: number, targets: GPUBuffer, numTargets: number, state: GPUBuffer): { pipeline: GPUComputePipeline; group: GPUBindGroup } {
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
export function cutChunkTargets(k: Pick<Kernels, 'cutChunkBytes'>, n: number, numTargets: number): number {
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
  k: Kernels, pass: GPUComputePassEncoder, call: Call, mode: 'sum' | 'padded', items: GPUBuffer, n: number,
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

/** Positions of h's block per workgroup of pair_steps.wgsl's evaluate pass (WG 64 x ITEMS 16). */
export const PAIR_CHUNK = 1024;
export const PAIR_WORKGROUP = 64;
/** Bytes per pair of the packed pair table (pair_steps.wgsl's PairInfo: 16 u32). */
export const PAIR_INFO_BYTES = 64;

const TWO_53 = 9007199254740992;

/** What pair_steps.wgsl reads besides the arena's members: see packPairSteps. */
export interface PairStepsJob {
  /** PairInfo per pair: (off h, size h, off l, size l), L_h, L_l, t_h, t_l as word pairs, (first chunk, chunks, moves allowed, 0). */
  info: Uint32Array;
  /** (pair, first position in h) per chunk of PAIR_CHUNK positions, pairs in order. */
  chunks: Uint32Array;
  numChunks: number;
  /** Whether the token cap can bind, and its floor as (lo, hi) words. */
  hasCap: boolean;
  capLo: number;
  capHi: number;
}

/**
 * Host half of the pair-step kernel: checks the pairs against the arena and packs, per pair, what
 * the shader needs (blocks, loads and token sums as exact word pairs, whether moves are allowed
 * under equal counts) and the chunks of h's block it evaluates. A pair gets no chunks, hence the
 * step [-1, -1], exactly where pairStep finds none before looking at members: g = L_h - L_l < 2,
 * an empty h, or a negative cap (no candidate can meet it: t_l + t_h <= 2 cap < 0 for a swap).
 * A cap of 2^53 or more never binds (token sums stay below 2^53 - 2^32, so t_l + t_x < 2^53);
 * a fractional cap binds like its floor (the sides are integers); NaN, like Infinity, never binds
 * (every comparison with it is false on the CPU too).
 */
export function packPairSteps(a: PairArena, pairs: Int32Array): PairStepsJob {
  const P = pairs.length >> 1;
  const { off, size, load, tok, q, cap, used } = a;
  const R = Math.min(off.length, size.length, load.length, tok.length);
  if (!(used >= 0 && used <= a.mc.length && used <= a.mt.length && Number.isInteger(used))) {
    throw new RangeError(`pairSteps: arena.used is ${used}, expected an integer in [0, ${Math.min(a.mc.length, a.mt.length)}]`);
  }
  const noStep = cap < 0;
  const hasCap = cap < TWO_53;
  const capFloor = hasCap && !noStep ? Math.floor(cap) : 0;
  const info = new Uint32Array((PAIR_INFO_BYTES / 4) * P);
  let numChunks = 0;
  for (let i = 0; i < P; i++) {
    const h = pairs[2 * i], l = pairs[2 * i + 1];
    if (!(h >= 0 && h < R && l >= 0 && l < R)) throw new RangeError(`pairSteps: pair ${i} is (${h}, ${l}), expected groups in [0, ${R})`);
    const ho = off[h], hn = size[h], lo = off[l], ln = size[l];
    if (!(ho >= 0 && hn >= 0 && ho + hn <= used && lo >= 0 && ln >= 0 && lo + ln <= used)) {
      throw new RangeError(`pairSteps: pair ${i}: a block lies outside the arena's used prefix [0, ${used}) (h ${h}: [${ho}, ${ho + hn}), l ${l}: [${lo}, ${lo + ln}))`);
    }
    const Lh = load[h], Ll = load[l];
    const count = noStep || Lh - Ll < 2 || hn === 0 ? 0 : Math.ceil(hn / PAIR_CHUNK);
    const at = 16 * i;
    info[at] = ho; info[at + 1] = hn; info[at + 2] = lo; info[at + 3] = ln;
    putWordPair(info, at + 4, Lh); putWordPair(info, at + 6, Ll);
    putWordPair(info, at + 8, tok[h]); putWordPair(info, at + 10, tok[l]);
    info[at + 12] = numChunks; info[at + 13] = count;
    info[at + 14] = q < 0 || (hn === q + 1 && ln === q) ? 1 : 0;
    numChunks += count;
  }
  const chunks = new Uint32Array(2 * numChunks);
  for (let i = 0, c = 0; i < P; i++) {
    const count = info[16 * i + 13];
    for (let j = 0; j < count; j++, c++) { chunks[2 * c] = i; chunks[2 * c + 1] = j * PAIR_CHUNK; }
  }
  const capWords = new Uint32Array(2);
  putWordPair(capWords, 0, capFloor);
  return { info, chunks, numChunks, hasCap: hasCap && !noStep, capLo: capWords[0], capHi: capWords[1] };
}

/**
 * The pair-step kernel (pair_steps.wgsl): evaluate every chunk of `job`, then select each pair's
 * step into `steps` (numPairs (i32, i32) entries). `mc` holds the arena's `used` costs as word
 * pairs (converted already), `mt` its tokens; `info`, `chunks` the uploaded job; `best` has
 * room for numChunks 16-byte records. Needs job.numChunks >= 1; uses one uniform slot.
 */
export function encodePairSteps(
  k: Kernels, pass: GPUComputePassEncoder, call: Call, job: PairStepsJob, numPairs: number, used: number,
  buffers: { mc: GPUBuffer; mt: GPUBuffer; info: GPUBuffer; chunks: GPUBuffer; best: GPUBuffer; steps: GPUBuffer },
): void {
  const params = call.uniform([job.numChunks, numPairs, job.hasCap ? 1 : 0, job.capLo, job.capHi]);
  // Bound with explicit sizes: pooled buffers may be larger than the binding limit.
  const range = (buffer: GPUBuffer, size: number) => ({ buffer, offset: 0, size });
  const info = range(buffers.info, numPairs * PAIR_INFO_BYTES);
  const best = range(buffers.best, job.numChunks * 16);
  dispatch(pass, k.pairEvaluate, bindGroup(k.device, k.pairEvaluate, {
    0: params, 1: range(buffers.mc, used * 8), 2: range(buffers.mt, used * 4), 3: info, 4: range(buffers.chunks, job.numChunks * 8), 5: best,
  }), job.numChunks);
  dispatch(pass, k.pairSelect, bindGroup(k.device, k.pairSelect, { 0: params, 3: info, 5: best, 6: range(buffers.steps, numPairs * 8) }),
    Math.ceil(numPairs / PAIR_WORKGROUP));
}
