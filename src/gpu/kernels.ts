// Compiled pipelines for every kernel, created once per device, and the host code that
// encodes each kernel family into a compute pass (no submits here: callers batch them).

import { bindGroup, dispatch, Scratch, storageBuffer, uniformWords } from './buffers.js';
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
  sortHistogram: GPUComputePipeline;
  sortScatter: GPUComputePipeline;
  cutSum: GPUComputePipeline;
  cutPadded: GPUComputePipeline;
}

/**
 * Mesa's llvmpipe/lavapipe silently end a shader loop nest after 65,535 iterations; stay well
 * below that there. Elsewhere a larger budget only bounds how long one dispatch runs.
 */
export function cutBudgetFor(software: boolean): number {
  return software ? 16384 : 262144;
}

export async function createKernels(device: GPUDevice, software: boolean): Promise<Kernels> {
  const load = (file: string) => compileShader(device, file, shaderSource(file));
  const [scan, sort, cuts] = await Promise.all([load('scan.wgsl'), load('radix_sort.wgsl'), load('cuts.wgsl')]);
  const [reduceU32, scanU32, reduceU64, scanU64, sortHistogram, sortScatter, cutSum, cutPadded] = await Promise.all([
    createPipeline(device, 'scan.wgsl', scan, 'reduce_u32'),
    createPipeline(device, 'scan.wgsl', scan, 'scan_u32'),
    createPipeline(device, 'scan.wgsl', scan, 'reduce_u64'),
    createPipeline(device, 'scan.wgsl', scan, 'scan_u64'),
    createPipeline(device, 'radix_sort.wgsl', sort, 'histogram'),
    createPipeline(device, 'radix_sort.wgsl', sort, 'scatter'),
    createPipeline(device, 'cuts.wgsl', cuts, 'cut_sum'),
    createPipeline(device, 'cuts.wgsl', cuts, 'cut_padded'),
  ]);
  return { device, cutBudget: cutBudgetFor(software), reduceU32, scanU32, reduceU64, scanU64, sortHistogram, sortScatter, cutSum, cutPadded };
}

/**
 * In-place exclusive scan of `count` elements of `data` (u32, or u64 as (lo, hi) pairs):
 * reduce tiles, scan the tile sums recursively, then scan each tile with its offset.
 */
export function encodeScan(k: Kernels, pass: GPUComputePassEncoder, scratch: Scratch, data: GPUBuffer, count: number, width: 'u32' | 'u64'): void {
  if (count === 0) return;
  const [reduce, scan, dataBinding, sumsBinding] = width === 'u32' ? [k.reduceU32, k.scanU32, 1, 2] : [k.reduceU64, k.scanU64, 3, 4];
  const tiles = Math.ceil(count / SCAN_TILE);
  if (tiles === 1) {
    const params = uniformWords(scratch, [count, 0], 'scan params');
    const unused = storageBuffer(scratch, 16, 'scan sums (unused)');
    dispatch(pass, scan, bindGroup(k.device, scan, { 0: params, [dataBinding]: data, [sumsBinding]: unused }), 1);
    return;
  }
  const params = uniformWords(scratch, [count, 1], 'scan params');
  const sums = storageBuffer(scratch, tiles * (width === 'u32' ? 4 : 8), 'scan tile sums');
  const group = bindGroup(k.device, reduce, { 0: params, [dataBinding]: data, [sumsBinding]: sums });
  dispatch(pass, reduce, group, tiles);
  encodeScan(k, pass, scratch, sums, tiles, width);
  dispatch(pass, scan, bindGroup(k.device, scan, { 0: params, [dataBinding]: data, [sumsBinding]: sums }), tiles);
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
 */
export function encodeSortDesc(k: Kernels, pass: GPUComputePassEncoder, scratch: Scratch, keys: GPUBuffer, n: number, shifts: number[]): GPUBuffer {
  const tiles = Math.ceil(n / SORT_TILE);
  const hist = storageBuffer(scratch, 256 * tiles * 4, 'sort histogram');
  let keysIn = keys, keysOut = storageBuffer(scratch, n * 4, 'sort keys');
  let valsIn = storageBuffer(scratch, n * 4, 'sort values'), valsOut = storageBuffer(scratch, n * 4, 'sort values');
  shifts.forEach((shift, passIndex) => {
    const params = uniformWords(scratch, [n, shift, tiles, passIndex === 0 ? 1 : 0], 'sort params');
    dispatch(pass, k.sortHistogram, bindGroup(k.device, k.sortHistogram, { 0: params, 1: keysIn, 3: hist }), tiles);
    encodeScan(k, pass, scratch, hist, 256 * tiles, 'u32');
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
 * target, zero to start. Each of the `rounds` dispatches advances every unfinished target by up
 * to k.cutBudget loop iterations; the host repeats until every p == n.
 */
export function encodeCutRounds(k: Kernels, pass: GPUComputePassEncoder, scratch: Scratch, mode: 'sum' | 'padded', items: GPUBuffer, n: number, targets: GPUBuffer, numTargets: number, state: GPUBuffer, rounds: number): void {
  const params = uniformWords(scratch, [n, numTargets, k.cutBudget], 'cut params');
  const pipeline = mode === 'sum' ? k.cutSum : k.cutPadded;
  const group = bindGroup(k.device, pipeline, { 0: params, [mode === 'sum' ? 1 : 2]: items, 3: targets, 4: state });
  for (let r = 0; r < rounds; r++) dispatch(pass, pipeline, group, Math.ceil(numTargets / CUT_WORKGROUP));
}
