// The public library API: `import { plan, createPlanner } from 'postbalance'`. Everything a
// program needs to plan batches and read plans; the CLI's commands are not part of it.
export * from './types.js';
export { InputError } from './errors.js';
export { createPlanner, plan, planCompact, type AcceleratorOptions, type Planner, type PlannerOptions } from './api.js';
export { BACKENDS, type Backend } from './backend.js';
export { parseConfig, validateConfig, parseBatch, batchFromExamples, modalitiesOf, MAX_RANKS } from './input.js';
export { planBatch, planIndexed, formatPlan, formatCompactPlan, toCompactPlan, toPlanDocument, routeTarget } from './plan/index.js';
export { cpuAccelerator, type Accelerator, type CutResult } from './primitives/accelerator.js';
// Cost models fitted from measured phase times (`postbalance fit`).
export { parseSamples, fitPhase, fitConfig, type PhaseSamples, type PhaseFit } from './fit.js';
// The demo's synthetic workload, for trying the planner without a data loader.
export { generateWorkload, demoConfig, toJsonl, type WorkloadOptions } from './workload.js';
