// The WebGPU implementation of the Accelerator contract (src/primitives/accelerator.ts): every method returns
// exactly what the CPU reference returns, so GPU and CPU plans are byte-identical.
//
// Host side of a call: inputs are uploaded as their typed arrays' bytes (Float64Array values are
// converted to (lo, hi) words on the GPU, and prefix sums come back as doubles), into buffers
// pooled across calls; a call encodes one compute pass, submits once and maps one read-back
// buffer (the cut walk repeats that only while some target is unfinished). Calls are serialised.

import type { Accelerator, CallProfile } from '../primitives/accelerator.js';
import { balanceGpu } from './balance/balance.js';
import { BufferPool } from './buffers.js';
import type { Context, CutPath, PairPath } from './context.js';
import { cutCountsGpu, parallelCutMinItems } from './cuts/cuts.js';
import { acquireDevice } from './device.js';
import { createKernels, type Kernels } from './kernels.js';
import { pairStepsGpu, pairStepsMinItems } from './pairs/pairs.js';
import { prefixSumGpu } from './scan/scan.js';
import { sortDescGpu } from './sort/sort.js';

export type { CutPath, PairPath } from './context.js';
export { parallelCutMinItems } from './cuts/cuts.js';
export { pairStepsMinItems } from './pairs/pairs.js';
export { GpuUnavailableError, SoftwareAdapterError } from './device.js';

/** The profile of one call (the Accelerator contract's CallProfile). */
export type GpuCallProfile = CallProfile;

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

/**
 * Runs one call inside validation and out-of-memory error scopes: a command the device refused
 * (a binding too small, a buffer it could not allocate) fails the call with one line instead of
 * printing a warning and returning whatever the buffers held.
 */
async function checked<T>(device: GPUDevice, fn: () => Promise<T>): Promise<T> {
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  let out: T | undefined, failure: unknown = null;
  try {
    out = await fn();
  } catch (e) {
    failure = e;
  }
  const validation = await device.popErrorScope();
  const memory = await device.popErrorScope();
  const gpuError = validation ?? memory;
  if (gpuError) throw new Error(`postbalance gpu: the device refused a command: ${gpuError.message.split('\n')[0]}`);
  if (failure !== null) throw failure;
  return out as T;
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
export async function createGpuAccelerator(opts: { verbose?: boolean; timestamps?: boolean; cutPath?: CutPath; pairPath?: PairPath; cutChunkBytes?: number; allowSoftware?: boolean; reason?: string } = {}): Promise<GpuAccelerator> {
  const { device, adapterName, software, timestamps } = await acquireDevice(opts);
  const reason = opts.reason ?? `WebGPU adapter ${adapterName}`;
  let ctx: Context<Kernels>;
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
    const result = tail.then(() => checked(device, fn));
    tail = result.catch(() => undefined);
    return result;
  };
  return {
    backend: 'webgpu',
    adapter: adapterName,
    reason,
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
    balance: (inp) => serial(() => balanceGpu(ctx, inp)),
    destroy: () => {
      ctx.pool.destroy();
      ctx.query?.destroy();
      device.destroy();
    },
  };
}
