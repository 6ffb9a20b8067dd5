// The WebGPU implementation of the Accelerator contract (src/accel.ts): every method returns
// exactly what the CPU reference returns, so GPU and CPU plans are byte-identical.

import type { Accelerator, CutResult } from '../accel.js';
import { fromWordPairs, newScratch, releaseScratch, Scratch, storageBuffer, submitAndRead, toWordPairs, uploadWords } from './buffers.js';
import { acquireDevice } from './device.js';
import { activeDigitShifts, createKernels, encodeCutRounds, encodeScan, encodeSortDesc, Kernels } from './kernels.js';

export { GpuUnavailableError } from './device.js';

function identity(n: number): Uint32Array {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  return out;
}

/** Runs one GPU operation: encode into a single compute pass, submit once, read back once. */
async function runOnce(k: Kernels, encode: (pass: GPUComputePassEncoder, scratch: Scratch) => { source: GPUBuffer; words: number }): Promise<Uint32Array> {
  const scratch = newScratch(k.device);
  try {
    const encoder = k.device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    const { source, words } = encode(pass, scratch);
    pass.end();
    return await submitAndRead(scratch, encoder, source, words);
  } finally {
    releaseScratch(scratch);
  }
}

async function sortDescGpu(k: Kernels, keys: Uint32Array): Promise<Uint32Array> {
  const n = keys.length;
  const shifts = n < 2 ? [] : activeDigitShifts(keys);
  if (shifts.length === 0) return identity(n); // all keys equal: a stable sort keeps index order
  return runOnce(k, (pass, scratch) => {
    const keysBuffer = uploadWords(scratch, keys, 'sort keys');
    return { source: encodeSortDesc(k, pass, scratch, keysBuffer, n, shifts), words: n };
  });
}

async function prefixSumGpu(k: Kernels, values: Float64Array): Promise<Float64Array> {
  const count = values.length + 1; // a trailing zero makes the last exclusive sum the total
  const words = await runOnce(k, (pass, scratch) => {
    const data = uploadWords(scratch, toWordPairs(values, 1), 'prefix sums');
    encodeScan(k, pass, scratch, data, count, 'u64');
    return { source: data, words: 2 * count };
  });
  return fromWordPairs(words, count);
}

/** Most walk dispatches encoded in one submit (the walk's rounds double up to this). */
const MAX_CUT_ROUNDS_PER_SUBMIT = 256;

/**
 * Repeats the resumable cut walk until every target is done: 4 rounds in the first submit,
 * doubling after each read back, so a walk needing R rounds costs O(log R) round trips and at
 * most about 2R dispatches (rounds after a target finishes return at once).
 */
async function walkCuts(k: Kernels, mode: 'sum' | 'padded', itemWords: Uint32Array, n: number, targetWords: Uint32Array): Promise<Uint32Array> {
  const numTargets = targetWords.length / 2;
  const scratch = newScratch(k.device);
  try {
    const items = uploadWords(scratch, itemWords, mode);
    const targets = uploadWords(scratch, targetWords, 'targets');
    const state = storageBuffer(scratch, numTargets * 16, 'cut state'); // zeroed at creation
    for (let rounds = 4; ; rounds = Math.min(2 * rounds, MAX_CUT_ROUNDS_PER_SUBMIT)) {
      const encoder = k.device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      encodeCutRounds(k, pass, scratch, mode, items, n, targets, numTargets, state, rounds);
      pass.end();
      const words = await submitAndRead(scratch, encoder, state, 4 * numTargets);
      let finished = true;
      for (let t = 0; t < numTargets && finished; t++) finished = words[4 * t] >= n;
      if (finished) return words;
    }
  } finally {
    releaseScratch(scratch);
  }
}

function checkTargets(targets: Float64Array): void {
  for (let t = 0; t < targets.length; t++) {
    const T = targets[t];
    if (!(T >= 0) || !Number.isInteger(T)) throw new RangeError(`cutCounts: target ${t} is ${T}, expected a non-negative integer`);
  }
}

async function cutCountsGpu(k: Kernels, costs: Float64Array, prefix: Float64Array, targets: Float64Array, mode: 'sum' | 'padded'): Promise<CutResult> {
  const n = costs.length, numTargets = targets.length;
  if (mode !== 'sum' && mode !== 'padded') throw new RangeError(`cutCounts: unknown mode ${String(mode)}`);
  checkTargets(targets);
  if (n === 0 || numTargets === 0) return { groups: new Uint32Array(numTargets), maxLoad: new Float64Array(numTargets) };
  if (mode === 'sum' && prefix.length < n + 1) throw new RangeError(`cutCounts: prefix has ${prefix.length} entries, expected ${n + 1}`);
  const words = await walkCuts(k, mode, mode === 'sum' ? toWordPairs(prefix.subarray(0, n + 1)) : toWordPairs(costs), n, toWordPairs(targets));
  const groups = new Uint32Array(numTargets);
  for (let t = 0; t < numTargets; t++) groups[t] = words[4 * t + 1];
  return { groups, maxLoad: fromWordPairs(words, numTargets, 4, 2) };
}

/**
 * A WebGPU accelerator on the default adapter, else the OpenGL ES compatibility adapter.
 * Device and pipelines are created once here and reused by every call; call destroy() when done.
 * Throws GpuUnavailableError when no adapter or device can be had.
 */
export async function createGpuAccelerator(opts: { verbose?: boolean } = {}): Promise<Accelerator> {
  const { device, adapterName, software } = await acquireDevice(opts);
  let kernels: Kernels;
  try {
    kernels = await createKernels(device, software);
  } catch (err) {
    device.destroy();
    throw err;
  }
  return {
    backend: 'webgpu',
    adapter: adapterName,
    sortDesc: (keys) => sortDescGpu(kernels, keys),
    prefixSum: (values) => prefixSumGpu(kernels, values),
    cutCounts: (costs, prefix, targets, mode) => cutCountsGpu(kernels, costs, prefix, targets, mode),
    destroy: () => device.destroy(),
  };
}
