// Pair steps (pair_steps.wgsl): the best move or swap of many disjoint group pairs at once; the
// host side of the pairSteps primitive and where it runs.
import type { PairArena } from '../../primitives/pairstep.js';
import { pairStepsCpu } from '../../primitives/pairstep.js';
import { bindGroup, dispatch, putWordPair, type Call } from '../buffers.js';
import { Run, type Context } from '../context.js';
import { compileShader, createPipeline } from '../device.js';
import { encodeF64ToU64, type ScanKernels } from '../scan/scan.js';
import { shaderSource } from '../shaders.js';

export interface PairKernels extends ScanKernels {
  pairEvaluate: GPUComputePipeline;
  pairSelect: GPUComputePipeline;
}

export async function createPairKernels(device: GPUDevice): Promise<Omit<PairKernels, keyof ScanKernels>> {
  const m = await compileShader(device, 'pair_steps.wgsl', shaderSource('pair_steps.wgsl'));
  const [pairEvaluate, pairSelect] = await Promise.all(['evaluate', 'select_step'].map((e) => createPipeline(device, 'pair_steps.wgsl', m, e)));
  return { pairEvaluate, pairSelect };
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
  k: PairKernels, pass: GPUComputePassEncoder, call: Call, job: PairStepsJob, numPairs: number, used: number,
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
/**
 * From how many arena entries `auto` scores a balance round's pairs on the GPU. A round uploads
 * the arena (12 bytes an entry) and reads back 8 bytes a pair, and the host applies the steps
 * either way, so the kernel pays off only when the search outweighs the transfer.
 * - Software adapters: never. On llvmpipe (2 cores) the kernel took 6–12 ms at 100k entries and
 *   38–65 ms at 1M against 0.8–1.3 and 8.7–14.5 ms for pairStepsCpu (bench/kernels.ts).
 * - Hardware: from 262,144 entries. Not measured on a hardware GPU yet: an estimate from the H200's measured per-call cost of the sort and scan
 *   (about 4 ms of upload, latency and read-back at 1M items, under 0.5 ms of kernel) against
 *   the CPU reference's ~10 ms a round at 1M; rerun bench/kernels.ts there and adjust.
 */
export function pairStepsMinItems(software: boolean): number {
  return software ? Infinity : 262_144;
}

/**
 * The pair-step kernel (pair_steps.wgsl): one submit, one read back of 2 i32 per pair. The host
 * packs the pairs (packPairSteps); the costs go up as doubles and are converted in place. Only
 * the arena's `used` prefix is uploaded. An arena or pair table too large for one storage binding
 * (over 2^24 members on llvmpipe's 128 MiB) runs pairStepsCpu instead: the same result.
 */
export async function pairStepsGpu(ctx: Context<PairKernels>, arena: PairArena, pairs: Int32Array): Promise<Int32Array> {
  const onGpu = ctx.pairPath === 'gpu' || (ctx.pairPath === 'auto' && arena.used >= pairStepsMinItems(ctx.software));
  // Answered on the host (by choice, nothing to search, or too large for one binding): the
  // profile says so, so that no caller reads the previous call's kernel times as this one's.
  const onHost = (answer: () => Int32Array): Int32Array => {
    const t = performance.now();
    const out = answer();
    ctx.profile = { hostMs: performance.now() - t, waitMs: 0, readMs: 0, kernelMs: null, submits: 0, cutPath: null, pairPath: 'cpu' };
    return out;
  };
  if (!onGpu) return onHost(() => pairStepsCpu(arena, pairs));
  const P = pairs.length >> 1;
  const job = packPairSteps(arena, pairs);
  if (job.numChunks === 0) return onHost(() => new Int32Array(2 * P).fill(-1));
  const { k } = ctx;
  const used = arena.used;
  const limit = Math.min(k.device.limits.maxStorageBufferBindingSize, k.device.limits.maxBufferSize);
  if (used * 8 > limit || P * PAIR_INFO_BYTES > limit || job.numChunks * 16 > limit) return onHost(() => pairStepsCpu(arena, pairs));
  const run = new Run(ctx);
  run.profile.pairPath = 'gpu';
  const encoder = k.device.createCommandEncoder();
  const buffers = {
    mc: run.call.upload('pair mc', arena.mc.subarray(0, used)),
    mt: run.call.upload('pair mt', arena.mt.subarray(0, used)),
    info: run.call.upload('pair info', job.info),
    chunks: run.call.upload('pair chunks', job.chunks),
    best: run.call.storage('pair best', job.numChunks * 16),
    steps: run.call.storage('pair steps', P * 8),
  };
  const pass = run.beginPass(encoder);
  encodeF64ToU64(k, pass, run.call, buffers.mc, used);
  encodePairSteps(k, pass, run.call, job, P, used, buffers);
  pass.end();
  const out = new Int32Array(await run.submitAndRead(encoder, buffers.steps, P * 8));
  run.finish();
  return out;
}

