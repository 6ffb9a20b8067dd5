// What every kernel family's host code shares: the accelerator's context (pipelines, pooled
// buffers, the timestamp query set, path choices) and a call in progress (its profile).
import type { CallProfile } from '../primitives/accelerator.js';
import { Call, type BufferPool } from './buffers.js';

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

/** The accelerator's state, typed by the pipelines a family needs (K: its own kernels). */
export interface Context<K = unknown> {
  k: K;
  pool: BufferPool;
  /** Two timestamps (start and end of the compute pass), when timing. */
  query: GPUQuerySet | null;
  profile: CallProfile | null;
  cutPath: CutPath;
  pairPath: PairPath;
  software: boolean;
}

/** A call in progress: its host-clock phases and the GPU time of its passes. */
export class Run {
  readonly call: Call;
  readonly profile: CallProfile = { hostMs: 0, waitMs: 0, readMs: 0, kernelMs: null, submits: 0, cutPath: null, pairPath: null };
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

