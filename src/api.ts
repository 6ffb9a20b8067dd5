// The library API: `plan()` for one batch, `createPlanner()` for a training job that plans every
// step (the accelerator, and on the GPU backend its device and pipelines, are created once and
// reused until close()).
import { cpuAccelerator, type Accelerator } from './primitives/accelerator.js';
import { getAccelerator, type Backend } from './backend.js';
import { batchFromExamples, validateConfig } from './input.js';
import { planBatch, planCompact as planCompactBatch } from './plan/index.js';
import type { Batch, CompactPlan, Config, Example, Plan, PlanOptions } from './types.js';

export interface AcceleratorOptions {
  /**
   * `cpu` (the exact reference), `gpu` (WebGPU; an error when no adapter can be had) or `auto`
   * (a GPU adapter if there is one, else the CPU with one warning). Plans are identical.
   */
  backend?: Backend;
  /** Let the GPU runtime's own warnings through (they are silenced by default). */
  verbose?: boolean;
  /** Where `auto` says it fell back to the CPU. Default: one line on stderr. */
  warn?: (line: string) => void;
}

export interface PlannerOptions extends AcceleratorOptions {
  /** Options used by every plan() call that does not set them (algorithm, exchange, placement). */
  defaults?: PlanOptions;
}

/** A reusable planner; see createPlanner. */
export interface Planner {
  /** The accelerator in use: "cpu" or "webgpu". */
  readonly backend: Accelerator['backend'];
  /** The adapter's name ("cpu" on the CPU path, e.g. "llvmpipe" or a GPU's name). */
  readonly adapter: string;
  /** Plans one batch; the same plan `postbalance plan` prints for it. */
  plan(batch: readonly Example[] | Batch, config: Config, options?: PlanOptions): Promise<Plan>;
  /** The same plan in the compact form (`postbalance plan --format compact`). */
  planCompact(batch: readonly Example[] | Batch, config: Config, options?: PlanOptions): Promise<CompactPlan>;
  /** Releases the GPU device (if any). Idempotent; plan() afterwards is an error. */
  close(): void;
}

const stderrLine = (line: string) => { process.stderr.write(line + '\n'); };

function toBatch(batch: readonly Example[] | Batch, config: Config): Batch {
  return Array.isArray(batch) ? batchFromExamples(batch, config) : (batch as Batch);
}

/**
 * A planner that keeps its accelerator for many plan() calls: on the GPU backend, device set-up
 * and shader compilation are paid once. Default backend `auto`, as the CLI's. Call close() when
 * done (a live GPU device keeps Node running).
 *
 *   const planner = await createPlanner({ backend: 'auto' });
 *   try { for (const step of steps) use(await planner.plan(step.examples, config)); }
 *   finally { planner.close(); }
 */
export async function createPlanner(options: PlannerOptions = {}): Promise<Planner> {
  const accel = await getAccelerator(options.backend ?? 'auto', { verbose: options.verbose, warn: options.warn ?? stderrLine });
  let closed = false;
  return {
    backend: accel.backend,
    adapter: accel.adapter,
    async plan(batch, config, planOptions = {}) {
      if (closed) throw new Error('postbalance: plan() on a closed planner');
      const cfg = validateConfig(config);
      return planBatch(toBatch(batch, cfg), cfg, { ...options.defaults, ...planOptions }, accel);
    },
    async planCompact(batch, config, planOptions = {}) {
      if (closed) throw new Error('postbalance: planCompact() on a closed planner');
      const cfg = validateConfig(config);
      return planCompactBatch(toBatch(batch, cfg), cfg, { ...options.defaults, ...planOptions }, accel);
    },
    close() {
      if (closed) return;
      closed = true;
      accel.destroy();
    },
  };
}

/**
 * Plan a global batch: examples as the CLI's JSONL objects (or an already parsed Batch).
 * Deterministic: every rank calling this with the same input gets the same plan. Runs on the CPU
 * unless `options.backend` (or an accelerator) says otherwise; a GPU set up here is released
 * before it returns, so a job planning every step should use createPlanner instead.
 */
export async function plan(
  batch: readonly Example[] | Batch,
  config: Config,
  options: PlanOptions & AcceleratorOptions = {},
  accel?: Accelerator,
): Promise<Plan> {
  // Validated and normalised (defaults filled in) exactly as the CLI does it.
  const cfg = validateConfig(config);
  const b = toBatch(batch, cfg);
  const { backend, verbose, warn, ...planOptions } = options;
  if (accel) return planBatch(b, cfg, planOptions, accel);
  if (backend === undefined || backend === 'cpu') return planBatch(b, cfg, planOptions, cpuAccelerator);
  const own = await getAccelerator(backend, { verbose, warn: warn ?? stderrLine });
  try {
    return await planBatch(b, cfg, planOptions, own);
  } finally {
    own.destroy();
  }
}

/**
 * plan() in the compact form: per phase the rank of every item in the engine's item order
 * (README, docs/FORMAT.md), as an Int32Array. formatCompactPlan writes it as the CLI does.
 */
export async function planCompact(
  batch: readonly Example[] | Batch,
  config: Config,
  options: PlanOptions & AcceleratorOptions = {},
): Promise<CompactPlan> {
  const cfg = validateConfig(config);
  const b = toBatch(batch, cfg);
  const { backend, verbose, warn, ...planOptions } = options;
  if (backend === undefined || backend === 'cpu') return planCompactBatch(b, cfg, planOptions, cpuAccelerator);
  const own = await getAccelerator(backend, { verbose, warn: warn ?? stderrLine });
  try {
    return await planCompactBatch(b, cfg, planOptions, own);
  } finally {
    own.destroy();
  }
}
