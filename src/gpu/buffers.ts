// Small helpers over WebGPU buffers, dispatch grids and 64-bit values as (lo, hi) u32 words.

/** Most workgroups per dispatch dimension WebGPU guarantees. */
export const MAX_WORKGROUPS_PER_DIMENSION = 65535;

/** A 2-D grid covering `count` workgroups; kernels recover the index as y * num_workgroups.x + x. */
export function dispatchGrid(count: number): [number, number] {
  if (count <= MAX_WORKGROUPS_PER_DIMENSION) return [count, 1];
  const y = Math.ceil(count / MAX_WORKGROUPS_PER_DIMENSION);
  return [Math.ceil(count / y), y];
}

/** Buffers created for one operation, destroyed together once its results are read back. */
export interface Scratch {
  device: GPUDevice;
  buffers: GPUBuffer[];
}

export function newScratch(device: GPUDevice): Scratch {
  return { device, buffers: [] };
}

export function releaseScratch(scratch: Scratch): void {
  for (const buffer of scratch.buffers) buffer.destroy();
  scratch.buffers.length = 0;
}

const STORAGE_USAGE = () => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** Uninitialised storage buffer of at least `byteLength` bytes (never empty: bindings need >= 4). */
export function storageBuffer(scratch: Scratch, byteLength: number, label: string): GPUBuffer {
  const size = Math.max(16, Math.ceil(byteLength / 16) * 16);
  const buffer = scratch.device.createBuffer({ label, size, usage: STORAGE_USAGE() });
  scratch.buffers.push(buffer);
  return buffer;
}

/** Storage buffer holding a copy of `words`. */
export function uploadWords(scratch: Scratch, words: Uint32Array, label: string): GPUBuffer {
  const buffer = storageBuffer(scratch, words.byteLength, label);
  if (words.length > 0) scratch.device.queue.writeBuffer(buffer, 0, words.buffer, words.byteOffset, words.byteLength);
  return buffer;
}

/** Uniform buffer holding the given u32 fields (padded to 16 bytes). */
export function uniformWords(scratch: Scratch, fields: number[], label: string): GPUBuffer {
  const size = Math.max(16, Math.ceil((fields.length * 4) / 16) * 16);
  const buffer = scratch.device.createBuffer({ label, size, usage: GPUBufferUsage.UNIFORM, mappedAtCreation: true });
  new Uint32Array(buffer.getMappedRange()).set(fields);
  buffer.unmap();
  scratch.buffers.push(buffer);
  return buffer;
}

export function bindGroup(device: GPUDevice, pipeline: GPUComputePipeline, buffers: Record<number, GPUBuffer>): GPUBindGroup {
  return device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: Object.entries(buffers).map(([binding, buffer]) => ({ binding: Number(binding), resource: { buffer } })),
  });
}

export function dispatch(pass: GPUComputePassEncoder, pipeline: GPUComputePipeline, group: GPUBindGroup, workgroups: number): void {
  if (workgroups === 0) return;
  const [x, y] = dispatchGrid(workgroups);
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, group);
  pass.dispatchWorkgroups(x, y);
}

/**
 * Submits `encoder` after copying `wordCount` u32 words of `source` into a mappable buffer, and
 * returns them: one submit and one read back per operation.
 */
export async function submitAndRead(scratch: Scratch, encoder: GPUCommandEncoder, source: GPUBuffer, wordCount: number): Promise<Uint32Array> {
  const byteLength = Math.max(4, wordCount * 4);
  const readBuffer = scratch.device.createBuffer({ label: 'readback', size: Math.ceil(byteLength / 4) * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  scratch.buffers.push(readBuffer);
  encoder.copyBufferToBuffer(source, 0, readBuffer, 0, readBuffer.size);
  scratch.device.queue.submit([encoder.finish()]);
  await readBuffer.mapAsync(GPUMapMode.READ);
  const words = new Uint32Array(readBuffer.getMappedRange().slice(0, wordCount * 4));
  readBuffer.unmap();
  return words;
}

const TWO_32 = 4294967296;
const MAX_U64 = 18446744073709551615; // rounds to 2^64 as a double

/**
 * Non-negative integers (exact below 2^53, or any integer up to 2^64) as (lo, hi) word pairs;
 * values >= 2^64 saturate to 2^64 - 1. `extraZeros` zero pairs are appended.
 */
export function toWordPairs(values: Float64Array, extraZeros = 0): Uint32Array {
  const words = new Uint32Array((values.length + extraZeros) * 2);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v >= MAX_U64) { words[2 * i] = 0xffffffff; words[2 * i + 1] = 0xffffffff; continue; }
    const hi = Math.floor(v / TWO_32);
    words[2 * i] = v - hi * TWO_32;
    words[2 * i + 1] = hi;
  }
  return words;
}

/** Inverse of toWordPairs for values below 2^53. */
export function fromWordPairs(words: Uint32Array, count: number, stride = 2, offset = 0): Float64Array {
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) out[i] = words[stride * i + offset + 1] * TWO_32 + words[stride * i + offset];
  return out;
}
