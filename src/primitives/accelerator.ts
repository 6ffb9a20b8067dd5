// The data-parallel primitives the planner needs, behind one interface so that the GPU path
// accelerates stages without forking them. Every implementation must return exactly what the
// CPU reference below returns (same permutation, same integers): that is what makes a GPU plan
// byte-identical to a CPU plan.

import { balanceCpu, type BalanceInput, type BalanceResult } from './balance.js';
import { cutCountsCpu, type CutResult } from './cuts.js';
import { pairStepsCpu, type PairArena } from './pairstep.js';
import { prefixSumCpu } from './scan.js';
import { sortDescCpu, sortDescWithKeys } from './sort.js';

export type { PairArena } from './pairstep.js';
export type { BalanceInput, BalanceResult } from './balance.js';
export type { CutResult } from './cuts.js';
export { balanceCpu, cutCountsCpu, pairStepsCpu, prefixSumCpu, sortDescCpu, sortDescWithKeys };


/** Where the time of an accelerator call went (host clock, plus GPU timestamps where supported). */
export interface CallProfile {
  /** Host work before the submit(s): checks, uploads (writeBuffer copies), encoding. */
  hostMs: number;
  /** From submit until the read-back buffer was mapped: GPU work, transfers, completion latency. */
  waitMs: number;
  /** Copying the mapped results out and turning them into the returned arrays. */
  readMs: number;
  /** GPU time of the compute passes (timestamp queries), or null where not supported. */
  kernelMs: number | null;
  submits: number;
  /** For cutCounts: which path ran; null for the other calls. */
  cutPath: 'serial' | 'parallel' | null;
  /** For pairSteps: where it ran ("cpu": answered on the host); null for the other calls. */
  pairPath: 'gpu' | 'cpu' | null;
}

export interface Accelerator {
  readonly backend: 'cpu' | 'webgpu';
  /** Human-readable adapter name (e.g. "llvmpipe", "NVIDIA H100"); "cpu" for the CPU path. */
  readonly adapter: string;
  /**
   * Permutation that orders items by key descending, ties by index ascending (a stable sort).
   */
  sortDesc(keys: Uint32Array): Promise<Uint32Array>;
  /**
   * Optional: sortDesc's permutation and the keys in that order, where the implementation has
   * both at hand (the CPU's radix sort moves them together), so callers need not gather them.
   */
  sortDescKeyed?(keys: Uint32Array): Promise<{ order: Uint32Array; sorted: Uint32Array }>;
  /**
   * Exclusive prefix sum with a trailing total: out[0] = 0, out[i] = Σ values[0..i), length n+1.
   * Values are non-negative integers and every partial sum is < 2^53 (exact in float64; the GPU
   * carries them as two u32 words).
   */
  prefixSum(values: Float64Array): Promise<Float64Array>;
  /**
   * Greedy contiguous cut of items in the given order, for each target T:
   * - mode "sum": a group starting at p takes the longest run p..q-1 with Σ cost ≤ T (at least one item);
   *   `prefix` is prefixSum(costs in that order).
   * - mode "padded": a group starting at p (its longest item, costs sorted descending) takes
   *   max(1, min(n-p, floor(T / cost[p]))) items; its load is count × cost[p].
   * Targets are non-negative integers.
   */
  cutCounts(costs: Float64Array, prefix: Float64Array, targets: Float64Array, mode: 'sum' | 'padded'): Promise<CutResult>;
  /**
   * The best move or swap for each disjoint (heavier, lighter) group pair of a balance round:
   * exactly pairStepsCpu (src/partition/pairstep.ts): 2 entries a pair, [position in h's block,
   * position in l's block or −1 for a move], [−1, −1] for none.
   */
  pairSteps(arena: PairArena, pairs: Int32Array): Promise<Int32Array>;
  /**
   * Data-parallel balancing of items in cost order: a deal, then balance rounds; exactly
   * balanceCpu (src/primitives/balance.ts): the group of every position.
   */
  balance(inp: BalanceInput): Promise<BalanceResult>;
  /** Release device resources (no-op on the CPU). */
  destroy(): void;
  /**
   * Profile of the last call that ran kernels (a new object per such call; a call answered on
   * the host leaves one saying so, or none). Absent on the CPU accelerator.
   */
  readonly lastCall?: CallProfile | null;
  /** Whether kernel times are measured with timestamp queries (CallProfile.kernelMs). */
  readonly timestamps?: boolean;
  /** Why this accelerator runs the plan (stats.backendReason), where a backend choice made it. */
  readonly reason?: string;
}

export const cpuAccelerator: Accelerator = {
  backend: 'cpu',
  adapter: 'cpu',
  sortDesc: async (keys) => sortDescCpu(keys),
  sortDescKeyed: async (keys) => sortDescWithKeys(keys),
  prefixSum: async (values) => prefixSumCpu(values),
  cutCounts: async (costs, prefix, targets, mode) => cutCountsCpu(costs, prefix, targets, mode),
  pairSteps: async (arena, pairs) => pairStepsCpu(arena, pairs),
  balance: async (inp) => balanceCpu(inp),
  destroy: () => {},
};
