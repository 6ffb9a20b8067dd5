// Stable LSD radix sort (radix_sort.wgsl): u32 keys, descending, ties by index; the host side of
// the sortDesc primitive.
import { bindGroup, dispatch, type Call } from '../buffers.js';
import { Run, type Context } from '../context.js';
import { compileShader, createPipeline } from '../device.js';
import { encodeScan, type ScanKernels } from '../scan/scan.js';
import { shaderSource } from '../shaders.js';

/** Elements per workgroup tile, as fixed in radix_sort.wgsl's header. */
export const SORT_TILE = 1024;

export interface SortKernels extends ScanKernels {
  sortHistogram: GPUComputePipeline;
  sortScatter: GPUComputePipeline;
}

export async function createSortKernels(device: GPUDevice): Promise<Omit<SortKernels, keyof ScanKernels>> {
  const m = await compileShader(device, 'radix_sort.wgsl', shaderSource('radix_sort.wgsl'));
  const [sortHistogram, sortScatter] = await Promise.all(['histogram', 'scatter'].map((e) => createPipeline(device, 'radix_sort.wgsl', m, e)));
  return { sortHistogram, sortScatter };
}

function identity(n: number): Uint32Array {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  return out;
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
export function encodeSortDesc(k: SortKernels, pass: GPUComputePassEncoder, call: Call, keys: GPUBuffer, n: number, shifts: number[]): GPUBuffer {
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

export async function sortDescGpu(ctx: Context<SortKernels>, keys: Uint32Array): Promise<Uint32Array> {
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

