// Small helpers over WebGPU buffers, dispatch grids and 64-bit values as (lo, hi) u32 words, and
// the per-accelerator buffer pool that lets calls reuse device memory instead of creating (and
// zero-filling) fresh buffers every time.

/** Most workgroups per dispatch dimension WebGPU guarantees. */
export const MAX_WORKGROUPS_PER_DIMENSION = 65535;

/** A 2-D grid covering `count` workgroups; kernels recover the index as y * num_workgroups.x + x. */
export function dispatchGrid(count: number): [number, number] {
  if (count <= MAX_WORKGROUPS_PER_DIMENSION) return [count, 1];
  const y = Math.ceil(count / MAX_WORKGROUPS_PER_DIMENSION);
  return [Math.ceil(count / y), y];
}

const STORAGE_USAGE = () => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
const READBACK_USAGE = () => GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST;

/** Bytes between uniform slots (WebGPU's minUniformBufferOffsetAlignment is at most 256). */
export const UNIFORM_SLOT_BYTES = 256;
/** Uniform slots one call may use (a 32-bit sort of 2^30 keys needs well under 64). */
export const UNIFORM_SLOTS = 256;

/**
 * Buffers kept across calls, one per role, grown (never shrunk) on demand: a role's buffer is
 * reused as long as it is large enough. Contents are NOT zeroed on reuse; kernels either write
 * everything they later read, or the caller clears/uploads explicitly. Calls must not overlap
 * (the accelerator serialises them), since two calls would share the same role buffers.
 */
export class BufferPool {
  private readonly buffers = new Map<string, GPUBuffer>();
  /** One uniform buffer holding every dispatch's params of a call, in 256-byte slots. */
  readonly uniforms: GPUBuffer;
  private readonly maxBufferSize: number;

  constructor(readonly device: GPUDevice) {
    this.uniforms = device.createBuffer({ label: 'params', size: UNIFORM_SLOT_BYTES * UNIFORM_SLOTS, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    this.maxBufferSize = device.limits.maxBufferSize;
  }

  private get(role: string, byteLength: number, usage: number): GPUBuffer {
    const needed = Math.max(16, Math.ceil(byteLength / 16) * 16);
    const current = this.buffers.get(role);
    if (current && current.size >= needed) return current;
    current?.destroy();
    // 25% headroom so that slowly growing sizes do not reallocate every call.
    const size = Math.max(needed, Math.min(this.maxBufferSize, Math.ceil((needed * 1.25) / 256) * 256));
    const buffer = this.device.createBuffer({ label: role, size, usage });
    this.buffers.set(role, buffer);
    return buffer;
  }

  /** Storage buffer of at least `byteLength` bytes for `role` (never empty: bindings need >= 4). */
  storage(role: string, byteLength: number): GPUBuffer {
    return this.get(role, byteLength, STORAGE_USAGE());
  }

  /** Mappable buffer for reading results back. */
  readback(byteLength: number): GPUBuffer {
    return this.get('readback', byteLength, READBACK_USAGE());
  }

  /** Buffer that timestamp queries resolve into. */
  queryResolve(byteLength: number): GPUBuffer {
    return this.get('query resolve', byteLength, GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC);
  }

  destroy(): void {
    for (const buffer of this.buffers.values()) buffer.destroy();
    this.buffers.clear();
    this.uniforms.destroy();
  }
}

/** A uniform binding: a 256-byte slot of the pool's params buffer. */
export interface UniformSlot { buffer: GPUBuffer; offset: number; size: number }

/**
 * What one accelerator call encodes: pooled buffers, the params of each dispatch (written to the
 * uniform buffer with one writeBuffer just before the submit), and uploads.
 */
export class Call {
  private readonly params = new Uint32Array((UNIFORM_SLOT_BYTES / 4) * UNIFORM_SLOTS);
  private slots = 0;
  private paramsWritten = 0;

  constructor(readonly pool: BufferPool) {}

  get device(): GPUDevice {
    return this.pool.device;
  }

  /** Params for one or more dispatches (at most 64 u32 fields). */
  uniform(fields: number[]): UniformSlot {
    if (this.slots >= UNIFORM_SLOTS) throw new Error(`postbalance gpu: more than ${UNIFORM_SLOTS} parameter blocks in one call`);
    const slot = this.slots++;
    this.params.set(fields, slot * (UNIFORM_SLOT_BYTES / 4));
    return { buffer: this.pool.uniforms, offset: slot * UNIFORM_SLOT_BYTES, size: Math.max(16, Math.ceil((fields.length * 4) / 16) * 16) };
  }

  /** Uniform slots this call can still hand out before recycle(). */
  get slotsLeft(): number {
    return UNIFORM_SLOTS - this.slots;
  }

  /**
   * Makes every slot available again. Only after flushUniforms() and the submit of the work that
   * reads them: later writeBuffer calls are ordered after that submit on the queue.
   */
  recycle(): void {
    if (this.paramsWritten !== this.slots) throw new Error('postbalance gpu: recycling parameter blocks that were never written');
    this.slots = 0;
    this.paramsWritten = 0;
  }

  /** Writes the params added since the last flush (call before each submit). */
  flushUniforms(): void {
    if (this.slots === this.paramsWritten) return;
    const from = this.paramsWritten * UNIFORM_SLOT_BYTES, to = this.slots * UNIFORM_SLOT_BYTES;
    this.device.queue.writeBuffer(this.pool.uniforms, from, this.params.buffer, from, to - from);
    this.paramsWritten = this.slots;
  }

  storage(role: string, byteLength: number): GPUBuffer {
    return this.pool.storage(role, byteLength);
  }

  /** Pooled storage buffer for `role` holding a copy of `data`'s bytes. */
  upload(role: string, data: ArrayBufferView, extraBytes = 0): GPUBuffer {
    const buffer = this.pool.storage(role, data.byteLength + extraBytes);
    if (data.byteLength > 0) this.device.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, data.byteLength);
    return buffer;
  }
}

export function bindGroup(device: GPUDevice, pipeline: GPUComputePipeline, buffers: Record<number, GPUBuffer | UniformSlot>): GPUBindGroup {
  return device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: Object.entries(buffers).map(([binding, b]) => ({
      binding: Number(binding),
      resource: 'offset' in b ? { buffer: b.buffer, offset: b.offset, size: b.size } : { buffer: b },
    })),
  });
}

export function dispatch(pass: GPUComputePassEncoder, pipeline: GPUComputePipeline, group: GPUBindGroup, workgroups: number): void {
  if (workgroups === 0) return;
  const [x, y] = dispatchGrid(workgroups);
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, group);
  pass.dispatchWorkgroups(x, y);
}

const TWO_32 = 4294967296;
const MAX_U64 = 18446744073709551615; // rounds to 2^64 as a double

/**
 * Non-negative integers (exact below 2^53, or any integer up to 2^64) as (lo, hi) word pairs;
 * values >= 2^64 saturate to 2^64 - 1. `extraZeros` zero pairs are appended.
 * (The accelerator converts on the GPU instead, see f64ToU64 in scan.wgsl; this is the host
 * reference for the same mapping.)
 */
export function toWordPairs(values: Float64Array, extraZeros = 0): Uint32Array {
  const words = new Uint32Array((values.length + extraZeros) * 2);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v >= MAX_U64) { words[2 * i] = 0xffffffff; words[2 * i + 1] = 0xffffffff; continue; }
    putWordPair(words, 2 * i, v);
  }
  return words;
}

/** A non-negative integer below 2^64 (exact below 2^53) as (lo, hi) words at words[at], words[at + 1]. */
export function putWordPair(words: Uint32Array, at: number, v: number): void {
  const hi = Math.floor(v / TWO_32);
  words[at] = v - hi * TWO_32;
  words[at + 1] = hi;
}

/** Inverse of toWordPairs for values below 2^53. */
export function fromWordPairs(words: Uint32Array, count: number, stride = 2, offset = 0): Float64Array {
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) out[i] = words[stride * i + offset + 1] * TWO_32 + words[stride * i + offset];
  return out;
}
