// Public library API: `import { plan } from 'postbalance'`.
import { cpuAccelerator, type Accelerator } from './primitives/accelerator.js';
import { batchFromExamples, validateConfig } from './input.js';
import { planBatch } from './plan/index.js';
import type { Batch, Config, Example, Plan, PlanOptions } from './types.js';

export * from './types.js';
export { InputError } from './errors.js';
export { parseConfig, validateConfig, parseBatch, batchFromExamples, modalitiesOf } from './input.js';
export { planBatch, planIndexed, formatPlan, toPlanDocument, routeTarget } from './plan/index.js';
export { generateWorkload, demoConfig, toJsonl } from './workload.js';
export { cpuAccelerator, type Accelerator, type CutResult } from './primitives/accelerator.js';

/**
 * Plan a global batch: examples as the CLI's JSONL objects (or an already parsed Batch).
 * Deterministic: every rank calling this with the same input gets the same plan.
 */
export async function plan(batch: readonly Example[] | Batch, config: Config, options: PlanOptions = {}, accel: Accelerator = cpuAccelerator): Promise<Plan> {
  // Validated and normalised (defaults filled in) exactly as the CLI does it.
  const cfg = validateConfig(config);
  const b = Array.isArray(batch) ? batchFromExamples(batch, cfg) : (batch as Batch);
  return planBatch(b, cfg, options, accel);
}
