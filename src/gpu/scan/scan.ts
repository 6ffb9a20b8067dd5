// Prefix sums (scan.wgsl): exclusive scans over u32 and over 64-bit values as (lo, hi) words,
// reduce-then-scan, and the host side of the prefixSum primitive.
import { bindGroup, dispatch, type Call } from '../buffers.js';
import { Run, type Context } from '../context.js';
import { compileShader, createPipeline } from '../device.js';
import { shaderSource } from '../shaders.js';

/** Elements per workgroup tile, as fixed in scan.wgsl's header. */
export const SCAN_TILE = 1024;

export interface ScanKernels {
  device: GPUDevice;
  reduceU32: GPUComputePipeline;
  scanU32: GPUComputePipeline;
  reduceU64: GPUComputePipeline;
  scanU64: GPUComputePipeline;
  f64ToU64: GPUComputePipeline;
}

export async function createScanKernels(device: GPUDevice): Promise<ScanKernels> {
  const m = await compileShader(device, 'scan.wgsl', shaderSource('scan.wgsl'));
  const [reduceU32, scanU32, reduceU64, scanU64, f64ToU64] = await Promise.all(
    ['reduce_u32', 'scan_u32', 'reduce_u64', 'scan_u64', 'f64_to_u64'].map((e) => createPipeline(device, 'scan.wgsl', m, e)));
  return { device, reduceU32, scanU32, reduceU64, scanU64, f64ToU64 };
}

/** Scan input/output formats for the top level of a u64 scan (see scan.wgsl's header). */
export const CONVERT_F64_IN = 1;
export const CONVERT_F64_OUT = 2;

/**
 * In-place exclusive scan of `count` elements of `data` (u32, or u64 as (lo, hi) pairs):
 * reduce tiles, scan the tile sums recursively, then scan each tile with its offset.
 * `convert` (u64 only) makes the top level read and/or write doubles instead of word pairs.
 */
export function encodeScan(k: ScanKernels, pass: GPUComputePassEncoder, call: Call, data: GPUBuffer, count: number, width: 'u32' | 'u64', convert = 0, level = 0): void {
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

/**
 * Sizes the pooled tile-sum buffers for scans of up to `count` elements now. A call that records
 * dispatches once and replays them must do this first: a later, larger scan would otherwise
 * replace a buffer that an earlier recorded bind group still holds.
 */
export function reserveScan(call: Call, count: number, width: 'u32' | 'u64'): void {
  for (let level = 0, c = count; c > 1; level++) {
    const tiles = Math.ceil(c / SCAN_TILE);
    call.storage(`${width} scan sums ${level}`, tiles * (width === 'u32' ? 4 : 8));
    c = tiles;
  }
}

/** In-place conversion of `count` doubles in `data` to (lo, hi) word pairs (see f64ToU64). */
export function encodeF64ToU64(k: ScanKernels, pass: GPUComputePassEncoder, call: Call, data: GPUBuffer, count: number): void {
  if (count === 0) return;
  const params = call.uniform([count, 0, 0]);
  // Bound with an explicit size: a pooled buffer may be larger than the binding limit.
  const range = { buffer: data, offset: 0, size: count * 8 };
  dispatch(pass, k.f64ToU64, bindGroup(k.device, k.f64ToU64, { 0: params, 3: range }), Math.ceil(count / SCAN_TILE));
}

const ZERO_PAIR = new Float64Array(1);

export async function prefixSumGpu(ctx: Context<ScanKernels>, values: Float64Array): Promise<Float64Array> {
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

