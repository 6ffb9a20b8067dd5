// Step time of one training step, given where every item of every phase runs and which bytes
// move between layouts. Pure: no planner, no presets beyond the GPU's numbers.
//
// step = Σ_phases max_r compute(r, phase)         every phase waits for its slowest rank
//      + Σ_exchanges all-to-all time               layouts change between phases (not overlapped)
//      + gradient sync (exposed part)              the same for every strategy
//
// Why a per-phase maximum: with sharded data parallelism (ZeRO-3 / FSDP) every layer starts with
// an all-gather of its parameters across all ranks, so ranks synchronise at every layer of every
// phase; a rank that is light in one phase cannot use its slack in another.
import { exchangeTime, type ExchangeScheme, type ExchangeTime, type Flows } from './alltoall.js';
import type { GpuPreset } from './presets.js';

export interface PhaseLayout {
  name: string;
  /** Forward+backward FLOPs of each item. */
  flops: Float64Array;
  /** Rank that computes each item. */
  rank: Int32Array;
  /** Padded batches: a rank's work is its item count × its largest item. */
  padding?: boolean;
}

export interface ExchangeSpec {
  name: string;
  flows: Flows;
  scheme: ExchangeScheme;
}

export interface StepInput {
  ranks: number;
  ranksPerNode: number;
  phases: PhaseLayout[];
  exchanges: ExchangeSpec[];
  /** Tokens the step trains on (the LLM's tokens), for tokens/s. */
  tokens: number;
  /** Exposed gradient-sync time, ms (see gradSyncMs). */
  gradSyncMs: number;
}

export interface PhaseResult {
  name: string;
  items: number;
  /** Slowest rank's compute, ms. */
  computeMaxMs: number;
  computeMeanMs: number;
  /** max / mean (1 = perfectly even; Infinity-free: 1 when the phase is empty). */
  maxOverMean: number;
  /** Share of the phase's rank-time spent waiting for the slowest rank: 1 − mean/max. */
  idleFraction: number;
  /**
   * No layout can beat max(mean, largest item) (padded phases: the mean): what remains above it
   * after balancing is an item too large to share, not a planner weakness.
   */
  lowerBoundMs: number;
}

export interface ExchangeResult extends ExchangeTime {
  name: string;
  scheme: ExchangeScheme;
}

export interface StepResult {
  stepMs: number;
  computeMs: number;
  exchangeMs: number;
  gradSyncMs: number;
  tokensPerSec: number;
  /** Model FLOPs of the step / (step time × ranks × dense peak). */
  mfu: number;
  /** Total forward+backward FLOPs of the step. */
  flops: number;
  phases: PhaseResult[];
  exchanges: ExchangeResult[];
  /** Per phase, per rank compute time in ms (for charts). */
  loads: Float64Array[];
}

/** Compute time per rank of one phase, ms. */
export function rankLoadsMs(p: PhaseLayout, ranks: number, gpu: GpuPreset): Float64Array {
  const flops = new Float64Array(ranks);
  const n = p.flops.length;
  if (p.padding) {
    const count = new Float64Array(ranks), longest = new Float64Array(ranks);
    for (let i = 0; i < n; i++) {
      const r = p.rank[i]!;
      count[r]!++;
      if (p.flops[i]! > longest[r]!) longest[r] = p.flops[i]!;
    }
    for (let r = 0; r < ranks; r++) flops[r] = count[r]! * longest[r]!;
  } else {
    for (let i = 0; i < n; i++) flops[p.rank[i]!]! += p.flops[i]!;
  }
  const perMs = (gpu.peakFlops * gpu.achievable) / 1e3;
  for (let r = 0; r < ranks; r++) flops[r]! /= perMs;
  return flops;
}

export function simulateStep(input: StepInput, gpu: GpuPreset): StepResult {
  const { ranks, ranksPerNode } = input;
  const phases: PhaseResult[] = [];
  const loads: Float64Array[] = [];
  let computeMs = 0, totalFlops = 0;
  for (const p of input.phases) {
    if (p.flops.length !== p.rank.length) throw new Error(`phase ${p.name}: flops and rank lengths differ`);
    const load = rankLoadsMs(p, ranks, gpu);
    let max = 0, sum = 0;
    for (let r = 0; r < ranks; r++) {
      sum += load[r]!;
      if (load[r]! > max) max = load[r]!;
    }
    let largest = 0;
    for (let i = 0; i < p.flops.length; i++) {
      totalFlops += p.flops[i]!;
      if (p.flops[i]! > largest) largest = p.flops[i]!;
    }
    const mean = sum / ranks;
    const largestMs = p.padding ? 0 : largest / ((gpu.peakFlops * gpu.achievable) / 1e3);
    computeMs += max;
    loads.push(load);
    phases.push({
      name: p.name, items: p.flops.length, computeMaxMs: max, computeMeanMs: mean,
      maxOverMean: max > 0 ? max / mean : 1, idleFraction: max > 0 ? 1 - mean / max : 0,
      lowerBoundMs: Math.max(mean, largestMs),
    });
  }
  const exchanges: ExchangeResult[] = [];
  let exchangeMs = 0;
  for (const x of input.exchanges) {
    const t = exchangeTime(x.flows, ranks, ranksPerNode, gpu, x.scheme);
    exchangeMs += t.ms;
    exchanges.push({ name: x.name, scheme: x.scheme, ...t });
  }
  const stepMs = computeMs + exchangeMs + input.gradSyncMs;
  return {
    stepMs, computeMs, exchangeMs, gradSyncMs: input.gradSyncMs,
    tokensPerSec: stepMs > 0 ? input.tokens / (stepMs / 1e3) : 0,
    mfu: stepMs > 0 ? totalFlops / ((stepMs / 1e3) * ranks * gpu.peakFlops) : 0,
    flops: totalFlops, phases, exchanges, loads,
  };
}

/**
 * Gradient synchronisation, independent of balancing: every step reduce-scatters bf16 gradients
 * and all-gathers bf16 parameters (ZeRO-style), i.e. the traffic of one all-reduce of 2·params
 * bytes, hierarchically: inside a node over NVLink, across nodes with each of the node's GPUs
 * carrying 1/ranksPerNode of it on its own NIC. Frameworks overlap it with backward compute;
 * `exposed` is the share that is not hidden (default 0.1 in the simulator: the last buckets).
 */
export function gradSyncMs(params: number, ranks: number, ranksPerNode: number, gpu: GpuPreset, exposed: number): number {
  if (ranks <= 1) return 0;
  const g = Math.min(ranksPerNode, ranks);
  const nodes = Math.ceil(ranks / ranksPerNode);
  const bytes = 2 * params;
  const intra = (2 * bytes * (g - 1)) / g / gpu.intraBw;
  const inter = nodes > 1 ? (2 * bytes * (nodes - 1)) / nodes / g / gpu.interBw : 0;
  return exposed * (intra + inter) * 1e3;
}
