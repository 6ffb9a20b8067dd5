// Where a plan's time went (stats.stages): a stopwatch over the stages of the data flow, and the
// accelerator with every primitive call timed, split further by the accelerator's own profile of
// the calls that ran kernels (CallProfile, part of the Accelerator contract).
import type { Accelerator } from '../primitives/accelerator.js';

/** Stages of the data flow, in order; together they make planMs. */
export const STAGES = ['items', 'sort', 'partition', 'placement', 'output'] as const;
export type Stage = (typeof STAGES)[number];

export interface Stopwatch {
  /** Charges the time since the previous lap (or the start) to `stage`. */
  lap(stage: Stage): void;
  readonly stages: Record<Stage, number>;
  /** ms since the stopwatch started. */
  elapsed(): number;
}

export function stopwatch(): Stopwatch {
  const t0 = performance.now();
  let t = t0;
  const stages = Object.fromEntries(STAGES.map((s) => [s, 0])) as Record<Stage, number>;
  return {
    stages,
    lap(stage) { const now = performance.now(); stages[stage] += now - t; t = now; },
    elapsed: () => performance.now() - t0,
  };
}

/** Accelerator time per primitive (sort, scan, candidates, pairSteps) and, on the GPU, its split. */
export type AcceleratorTimes = Record<string, number>;

/**
 * The accelerator with every call timed into the returned record: wall time per primitive, and
 * for calls that ran kernels (a new lastCall profile that did not run on the host), the
 * accelerator's split of them into upload, gpu, readback and kernel.
 */
export function timedAccelerator(accel: Accelerator): { accel: Accelerator; times: AcceleratorTimes } {
  const times: AcceleratorTimes = { sort: 0, scan: 0, candidates: 0, pairSteps: 0, balance: 0 };
  const profiled = accel.lastCall !== undefined;
  if (profiled) {
    Object.assign(times, { upload: 0, gpu: 0, readback: 0 });
    if (accel.timestamps) times.kernel = 0;
  }
  const time = async <R>(key: string, run: () => Promise<R>): Promise<R> => {
    const before = accel.lastCall;
    const start = performance.now();
    const out = await run();
    times[key] += performance.now() - start;
    const p = accel.lastCall;
    if (profiled && p && p !== before && p.pairPath !== 'cpu') {
      times.upload += p.hostMs; times.gpu += p.waitMs; times.readback += p.readMs;
      if (p.kernelMs !== null && times.kernel !== undefined) times.kernel += p.kernelMs;
    }
    return out;
  };
  return {
    times,
    accel: {
      backend: accel.backend,
      adapter: accel.adapter,
      sortDesc: (keys) => time('sort', () => accel.sortDesc(keys)),
      ...(accel.sortDescKeyed ? { sortDescKeyed: (keys: Uint32Array) => time('sort', () => accel.sortDescKeyed!(keys)) } : {}),
      prefixSum: (values) => time('scan', () => accel.prefixSum(values)),
      cutCounts: (costs, prefix, targets, mode) => time('candidates', () => accel.cutCounts(costs, prefix, targets, mode)),
      pairSteps: (arena, pairs) => time('pairSteps', () => accel.pairSteps(arena, pairs)),
      balance: (inp) => time('balance', () => accel.balance(inp)),
      destroy: () => accel.destroy(),
    },
  };
}

/**
 * stats.stages: the data-flow stages, then the accelerator's share of them (scan, candidates,
 * pairSteps, hostPartition = the rest of partition, balance = the deal and balance rounds), then
 * the GPU split, rounded to µs.
 */
export function stageBreakdown(stages: Record<Stage, number>, accel: AcceleratorTimes): Record<string, number> {
  const { sort: _sortCalls, scan, candidates, pairSteps, balance, ...gpu } = accel;
  const hostPartition = Math.max(0, stages.partition - scan - candidates - pairSteps - balance);
  const all: Record<string, number> = { ...stages, scan, candidates, pairSteps, hostPartition, balance, ...gpu };
  for (const k of Object.keys(all)) all[k] = round3(all[k]);
  return all;
}

export const round3 = (x: number) => Math.round(x * 1000) / 1000;
