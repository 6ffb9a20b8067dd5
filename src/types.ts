// Public types: the input contract (config + batch), the output contract (plan), and the
// typed-array shapes that flow between the stages of the planner.

/** Cost model of one phase: cost(L) = perItem + perToken·L + perTokenSquared·L². Missing terms are 0. */
export interface CostModel {
  perItem?: number;
  perToken?: number;
  perTokenSquared?: number;
}

/**
 * Micro-batches of a phase (gradient accumulation, pipeline schedules): every rank runs its items
 * as the same number N of micro-batches. At least one field.
 */
export interface MicroBatchConfig {
  /** Exactly this many micro-batches on every rank. */
  count?: number;
  /**
   * Cap on Σ tokens of one micro-batch. Without `count`, N is the smallest count that lets every
   * rank fit (as first-fit decreasing packs it).
   */
  maxTokens?: number;
}

export interface PhaseConfig {
  name: string;
  /** Modalities whose segments this phase processes. */
  modalities: string[];
  /** "segment": every segment is an item; "example": every example with any of the modalities is one item. */
  unit: 'segment' | 'example';
  cost: CostModel;
  /** Per-modality length scale for `unit: "example"` (length = Σ ceil(len × scale)). Default 1. */
  scale?: Record<string, number>;
  /** Cap on the sum of item lengths (tokens) on one rank. */
  maxTokensPerRank?: number;
  /** A rank's cost is count × cost of its longest item (padded batches). */
  padding?: boolean;
  /** Every rank gets the same number of items (±1). */
  equalCount?: boolean;
  /** Split each rank's items into micro-batches (the plan gains `microBatch` per item). */
  microBatches?: MicroBatchConfig;
}

export interface Config {
  ranks: number;
  ranksPerNode: number;
  phases: PhaseConfig[];
  /** Bytes moved per token of each modality when an item changes rank. Missing modality = 0. */
  bytesPerToken?: Record<string, number>;
}

/** One line of the batch JSONL: `{"id":"ex17","rank":5,"text":812,"image":[576,576]}`. */
export interface Example {
  id: string | number;
  rank: number;
  [modality: string]: unknown;
}

export type Algorithm = 'none' | 'lpt' | 'kk' | 'padded' | 'rounds' | 'best';
export const ALGORITHMS: readonly Algorithm[] = ['none', 'lpt', 'kk', 'padded', 'rounds', 'best'];

/**
 * The batch after parsing: examples in input order. `segments[m]` holds, for modality m, a CSR
 * layout: the segments of example e are lengths[offsets[e] .. offsets[e+1]).
 */
export interface Batch {
  ids: string[];
  /** Sampled data-parallel rank of each example. */
  ranks: Int32Array;
  segments: Map<string, { offsets: Uint32Array; lengths: Uint32Array }>;
  /** JSONL line number of each example (when parsed from JSONL), for error messages. */
  lines?: Uint32Array;
}

/** The items of one phase, in a deterministic order (example order, then modality order, then k). */
export interface PhaseItems {
  phase: PhaseConfig;
  /** Item ids (see the README): built on first use. */
  readonly ids: string[];
  /** Index of the example each item belongs to. */
  example: Uint32Array;
  /** Segment phases: the item's modality (index into phase.modalities); empty for example phases. */
  modality: Uint32Array;
  /** Segment phases: k, the item's index in its example's array of that modality; empty for example phases. */
  segment: Uint32Array;
  /** Sampled rank of the item (its example's rank). */
  sampledRank: Int32Array;
  /** Item length L in tokens (after scaling for `unit: "example"`). */
  tokens: Uint32Array;
  /** Bytes moved if the item changes rank. */
  bytes: Float64Array;
}

/** Output contract, one rank of one phase. Extra fields may be added, never renamed. */
export interface RankPlan {
  items: string[];
  cost: number;
  tokens: number;
  /** With `--exchange full`: the sampled rank of each item, parallel to `items`. */
  from?: number[];
  /** Encoder phases: the rank holding each item's example in the routing-target phase, parallel to `items`. */
  routeRanks?: number[];
  /** Phases with `microBatches`: the micro-batch (0..N-1) of each item, parallel to `items`. */
  microBatch?: number[];
}

export interface ExchangeSummary {
  movedItems: number;
  bytes: number;
  interNodeBytes: number;
  intraNodeBytes: number;
  /** Sparse all-to-all counts: [srcRank, dstRank, items, bytes] for src ≠ dst, sorted by (src, dst). */
  pairs: [number, number, number, number][];
}

export interface PhasePlan {
  name: string;
  ranks: RankPlan[];
  lowerBound: number;
  maxCost: number;
  meanCost: number;
  exchange: ExchangeSummary;
  /** Algorithm that produced this phase's groups (for `best`: which candidate won). */
  algorithm: string;
  items: number;
  /** Name of the phase that encoder items are routed to (the last `unit: "example"` phase). */
  routeTo?: string;
  /** Phases with `microBatches`: N, the micro-batches every rank runs. */
  microBatches?: number;
  /** Per micro-batch k: the max and the mean over ranks of its cost (lock-step balance). */
  microBatchMaxCost?: number[];
  microBatchMeanCost?: number[];
}

export interface PlanStats {
  algorithm: Algorithm;
  backend: 'cpu' | 'webgpu';
  planMs: number;
  adapter?: string;
  /** Why this backend ran the plan ("backend cpu", "auto: llvmpipe … is a software adapter, …"). */
  backendReason?: string;
  /**
   * ms per stage of the data flow (items, sort, partition, placement, output: together planMs),
   * then the accelerator's share of them: scan, candidates (cut evaluation) and pairSteps
   * (balance rounds) inside partition, hostPartition = the rest of partition (LPT, KK, the
   * sequential refinement); on the GPU backend, the calls that ran kernels split into upload
   * (host work before the submit), gpu (submit until the results are mapped), readback, and
   * kernel (GPU timestamps, where supported).
   */
  stages?: Record<string, number>;
}

export interface Plan {
  ranks: number;
  phases: PhasePlan[];
  stats: PlanStats;
}

/**
 * The compact output form, one phase: the rank of every item as an integer array in the engine's
 * item order (README, docs/FORMAT.md) instead of item ids per rank. Extra fields may be added.
 */
export interface CompactPhasePlan {
  name: string;
  /** Number of items of the phase (the length of `rank`). */
  items: number;
  /** rank[i]: the rank that runs item i, for every item in item order. */
  rank: Int32Array;
  /** Per-rank cost and tokens, as the full form's ranks[r].cost and ranks[r].tokens. */
  cost: number[];
  tokens: number[];
  lowerBound: number;
  maxCost: number;
  meanCost: number;
  exchange: ExchangeSummary;
  algorithm: string;
  routeTo?: string;
  /** Phases with `microBatches`: microBatch[i], the micro-batch of item i on its rank (item order). */
  microBatch?: Uint8Array | Uint16Array | Uint32Array;
  /** Phases with `microBatches`: as the full form's phase fields of the same names. */
  microBatches?: number;
  microBatchMaxCost?: number[];
  microBatchMeanCost?: number[];
}

/** The compact output form (`plan --format compact`, the sidecar's `"format":"compact"`). */
export interface CompactPlan {
  format: 'compact';
  ranks: number;
  phases: CompactPhasePlan[];
  stats: PlanStats;
}

/** Output forms: `full` (item ids per rank, the default) or `compact` (rank per item). */
export type PlanFormat = 'full' | 'compact';
export const PLAN_FORMATS: readonly PlanFormat[] = ['full', 'compact'];

/**
 * One phase of a plan, item-indexed: what placement, the exchange, the simulator and every
 * output form read (no string ids inside the engine).
 */
export interface PhaseResult {
  items: PhaseItems;
  /** rank[i]: the rank that runs item i, in item order. */
  rank: Int32Array;
  /** Per-rank cost as reported (float64 sums of the unquantised item costs, item order). */
  loads: Float64Array;
  lowerBound: number;
  maxCost: number;
  meanCost: number;
  exchange: ExchangeSummary;
  algorithm: string;
  /** Phases with `microBatches`: the micro-batch (0..N-1) of every item, in item order. */
  microBatch?: Uint8Array | Uint16Array | Uint32Array;
  /** Phases with `microBatches`: N, the micro-batches every rank runs. */
  microBatches?: number;
  /** Phases with `microBatches`: cost of every (rank, micro-batch), row-major R × N (as `loads`). */
  microBatchLoads?: Float64Array;
}

/** A plan before formatting: per phase the rank of every item, and where encoder items route. */
export interface PlanResult {
  ranks: number;
  phases: PhaseResult[];
  /** Index of the phase encoder items are routed to (the last `unit: "example"` phase), or −1. */
  routeTo: number;
  /** The rank of every example in the routeTo phase (−1 where it has no item there); null without one. */
  rankOfExample: Int32Array | null;
  stats: PlanStats;
}

export interface PlanOptions {
  algorithm?: Algorithm;
  /** "compact" (default) or "full" (adds per-rank `from` lists). */
  exchange?: 'compact' | 'full';
  /** Placement of groups onto ranks: "locality" (default) or "naive" (group i → rank i). */
  placement?: 'locality' | 'naive';
}
