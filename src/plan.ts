// Stage 7: the plan. Runs items → cost → partition → placement → exchange for every phase,
// checks that every item lands exactly once, and builds the output contract.
import { cpuAccelerator, type Accelerator } from './accel.js';
import { quantiseCosts } from './cost.js';
import { InputError } from './errors.js';
import { exchangeMatrix } from './exchange.js';
import type { GpuCallProfile } from './gpu/accelerator.js'; // a type only: the GPU module loads on demand
import { buildPhaseItems } from './items.js';
import { groupLoads, lowerBound, partition, type PartitionInput } from './partition/index.js';
import { kkInBackground, type KkJob } from './partition/kk-background.js';
import { placeGroups, placeNaive } from './placement.js';
import { ALGORITHMS, type Batch, type Config, type PhaseItems, type PhasePlan, type Plan, type PlanOptions, type RankPlan } from './types.js';

/** The phase encoder items are routed to: the last phase whose unit is the whole example. */
export function routeTarget(config: Config): number {
  for (let p = config.phases.length - 1; p >= 0; p--) if (config.phases[p].unit === 'example') return p;
  return -1;
}

function exampleLabel(batch: Batch, e: number): string {
  const line = batch.lines?.[e];
  return line ? `batch line ${line}` : `batch example ${JSON.stringify(batch.ids[e])}`;
}

/** Bad inputs that only show once items exist: empty phases, impossible caps and counts. */
function checkPhase(items: PhaseItems, batch: Batch, R: number): void {
  const { phase } = items;
  const n = items.tokens.length;
  if (n === 0) throw new InputError(`phase "${phase.name}": no items in the batch (no example has ${phase.modalities.join(' or ')})`);
  if (phase.equalCount && n < R) throw new InputError(`phase "${phase.name}" equalCount: ${n} items cannot give each of ${R} ranks an equal count (need at least ${R} items)`);
  const cap = phase.maxTokensPerRank;
  if (cap !== undefined) {
    let total = 0;
    for (let i = 0; i < n; i++) {
      if (items.tokens[i] > cap) {
        throw new InputError(`${exampleLabel(batch, items.example[i])}: item "${items.ids[i]}" has ${items.tokens[i]} tokens, over phase "${phase.name}" maxTokensPerRank ${cap}`);
      }
      total += items.tokens[i];
    }
    if (total > cap * R) throw new InputError(`phase "${phase.name}" maxTokensPerRank: ${total} tokens cannot fit ${R} ranks × ${cap} (infeasible cap)`);
  }
}

/**
 * The accelerator with every call timed into `t` (the breakdown in stats.stages): wall time per
 * primitive, and for calls that ran kernels, the GPU accelerator's own split of them.
 */
function timedAccelerator(accel: Accelerator, t: Record<string, number>): Accelerator {
  const profiled = accel as Accelerator & { lastCall?: GpuCallProfile | null };
  const time = async <R>(key: string, run: () => Promise<R>): Promise<R> => {
    const before = profiled.lastCall;
    const start = performance.now();
    const out = await run();
    t[key] += performance.now() - start;
    // A new profile means this call ran kernels (calls answered on the host leave none, or
    // say so).
    const p = profiled.lastCall;
    if (accel.backend === 'webgpu' && p && p !== before && p.pairPath !== 'cpu') {
      t.upload += p.hostMs; t.gpu += p.waitMs; t.readback += p.readMs;
      if (p.kernelMs !== null && t.kernel !== undefined) t.kernel += p.kernelMs;
    }
    return out;
  };
  return {
    backend: accel.backend,
    adapter: accel.adapter,
    sortDesc: (keys) => time('sort', () => accel.sortDesc(keys)),
    prefixSum: (values) => time('scan', () => accel.prefixSum(values)),
    cutCounts: (costs, prefix, targets, mode) => time('candidates', () => accel.cutCounts(costs, prefix, targets, mode)),
    pairSteps: (arena, pairs) => time('pairSteps', () => accel.pairSteps(arena, pairs)),
    destroy: () => accel.destroy(),
  };
}

export async function planBatch(batch: Batch, config: Config, options: PlanOptions = {}, accelIn: Accelerator = cpuAccelerator): Promise<Plan> {
  const t0 = performance.now();
  const accelTimes: Record<string, number> = { sort: 0, scan: 0, candidates: 0, pairSteps: 0 };
  if (accelIn.backend === 'webgpu') {
    Object.assign(accelTimes, { upload: 0, gpu: 0, readback: 0 });
    if ((accelIn as { timestamps?: boolean }).timestamps) accelTimes.kernel = 0;
  }
  const accel = timedAccelerator(accelIn, accelTimes);
  const algorithm = options.algorithm ?? 'best';
  if (!ALGORITHMS.includes(algorithm)) throw new InputError(`algorithm: must be one of ${ALGORITHMS.join(', ')}, got ${JSON.stringify(algorithm)}`);
  const R = config.ranks;
  const stages: Record<string, number> = { items: 0, sort: 0, partition: 0, placement: 0, output: 0 };
  let t = performance.now();
  const lap = (stage: string) => { const now = performance.now(); stages[stage] += now - t; t = now; };

  const allItems = buildPhaseItems(batch, config);
  for (const items of allItems) checkPhase(items, batch, R);
  lap('items');

  // Every phase's costs and order first, so that KK for the large ones can start off the main
  // thread as each is sorted (it is needed only later in `best`, after LPT and its refinement).
  const prepared = [];
  const kkJobs: (KkJob | null)[] = [];
  const phaseRanks: Int32Array[] = [];
  const partial: Omit<PhasePlan, 'ranks'>[] = [];
  const loadsPerPhase: Float64Array[] = [];
  try {
    for (const items of allItems) {
      const { phase } = items;
      const costs = quantiseCosts(items);
      // Costs are non-decreasing in length, so sorting by length descending (ties by index)
      // is sorting by cost descending: one u32 key, the GPU's radix sort.
      const order = await accel.sortDesc(items.tokens);
      const inp: PartitionInput = {
        cost: costs.cost, tokens: items.tokens, order, groups: R,
        cap: phase.maxTokensPerRank, equalCount: phase.equalCount ?? false, padding: phase.padding ?? false,
      };
      prepared.push({ items, costs, inp });
      lap('sort');
      kkJobs.push(algorithm === 'best' ? kkInBackground(inp) : null);
      lap('partition'); // handing KK to the worker is partition work
    }
    for (const [p, { items, costs, inp }] of prepared.entries()) {
      const { phase } = items;
      // The report uses the unquantised costs (see cost.ts); decisions use the integers.
      const reportInp: PartitionInput = { ...inp, cost: costs.float };
      const { group, algorithm: used } = await partition(inp, algorithm, items.sampledRank, costs.total, accel, phase.name, kkJobs[p]);
      kkJobs[p]?.cancel();
      lap('partition');
      // The sampled layout's groups are its ranks; `naive` ignores where the data is.
      const rankOfGroup = algorithm === 'none' || options.placement === 'naive'
        ? placeNaive(R)
        : placeGroups(group, items.sampledRank, items.bytes, R, config.ranksPerNode);
      const rank = mapGroups(group, rankOfGroup);
      const exchange = exchangeMatrix(items.sampledRank, rank, items.bytes, R, config.ranksPerNode);
      lap('placement');
      const loads = groupLoads(reportInp, rank);
      let max = 0;
      for (let r = 0; r < R; r++) if (tidy(loads[r]) > max) max = tidy(loads[r]);
      phaseRanks.push(rank);
      loadsPerPhase.push(loads);
      partial.push({
        name: phase.name,
        lowerBound: tidy(lowerBound(reportInp, costs.floatTotal)),
        maxCost: max,
        meanCost: tidy(costs.floatTotal / R),
        exchange,
        algorithm: used,
        items: group.length,
      });
    }
  } finally {
    for (const job of kkJobs) job?.cancel(); // not started yet, not needed any more (or an error)
  }

  // Encoder items are routed to the rank that holds their example in the target phase.
  const target = routeTarget(config);
  let rankOfExample: Int32Array | null = null;
  if (target >= 0) {
    rankOfExample = new Int32Array(batch.ids.length).fill(-1);
    const ex = allItems[target].example, rk = phaseRanks[target];
    for (let i = 0; i < ex.length; i++) rankOfExample[ex[i]] = rk[i];
  }

  const phases: PhasePlan[] = allItems.map((items, p) => {
    const ranks = rankEntries(items, phaseRanks[p], loadsPerPhase[p], R, {
      from: options.exchange === 'full',
      route: rankOfExample && items.phase.unit === 'segment' ? rankOfExample : null,
    });
    const { name, ...rest } = partial[p];
    const out: PhasePlan = { name, ranks, ...rest };
    if (rankOfExample && items.phase.unit === 'segment') out.routeTo = config.phases[target].name;
    return out;
  });
  lap('output');
  const plan: Plan = {
    ranks: R,
    phases,
    stats: { algorithm, backend: accel.backend, planMs: round3(performance.now() - t0), adapter: accel.adapter, stages: roundAll(stagesWithBreakdown(stages, accelTimes)) },
  };
  return plan;
}

/** The data-flow stages, then the accelerator's share of them (see PlanStats.stages). */
function stagesWithBreakdown(stages: Record<string, number>, accel: Record<string, number>): Record<string, number> {
  const { sort: _sortCalls, scan, candidates, pairSteps, ...gpu } = accel;
  const hostPartition = Math.max(0, stages.partition - scan - candidates - pairSteps);
  return { ...stages, scan, candidates, pairSteps, hostPartition, ...gpu };
}

/** rank[i] = rankOfGroup[group[i]] (its own small function: optimised early, not by OSR of planBatch). */
function mapGroups(group: Int32Array, rankOfGroup: Int32Array): Int32Array {
  const rank = new Int32Array(group.length);
  for (let i = 0; i < group.length; i++) rank[i] = rankOfGroup[group[i]];
  return rank;
}

/** Per-rank lists in item order; checks that every item is placed exactly once. */
function rankEntries(
  items: PhaseItems, rank: Int32Array, loads: Float64Array, R: number,
  extra: { from: boolean; route: Int32Array | null },
): RankPlan[] {
  // start[r]: where rank r's items begin in `byRank` (items bucketed by rank, item order kept).
  const start = new Uint32Array(R + 1);
  const tokens = new Float64Array(R);
  countByRank(items, rank, R, start, tokens);
  const byRank = bucketByRank(rank, start, R);
  const out: RankPlan[] = new Array(R);
  for (let r = 0; r < R; r++) {
    const a = start[r], b = start[r + 1];
    const e: RankPlan = { items: pick(items.ids, byRank, a, b), cost: tidy(loads[r]), tokens: tokens[r] };
    if (extra.from) e.from = pickRank(items.sampledRank, byRank, a, b);
    if (extra.route) e.routeRanks = pickRoute(extra.route, items.example, byRank, a, b);
    out[r] = e;
  }
  return out;
}

/**
 * start[r + 1] = rank r's item count, then prefix sums; tokens[r] = its Σ tokens. Its own
 * function (not a loop inside rankEntries) so the per-rank loop after it does not deoptimise the
 * code compiled on stack replacement in this one.
 */
function countByRank(items: PhaseItems, rank: Int32Array, R: number, start: Uint32Array, tokens: Float64Array): void {
  const n = rank.length;
  for (let i = 0; i < n; i++) {
    const r = rank[i];
    if (!(r >= 0 && r < R)) throw new Error(`phase "${items.phase.name}": item ${items.ids[i]} was not placed`);
    start[r + 1]++;
    tokens[r] += items.tokens[i];
  }
  for (let r = 0; r < R; r++) start[r + 1] += start[r];
}

/** Item indices grouped by rank (stable): rank r's items are byRank[start[r] .. start[r+1]). */
function bucketByRank(rank: Int32Array, start: Uint32Array, R: number): Uint32Array {
  const n = rank.length;
  const fill = start.slice(0, R);
  const byRank = new Uint32Array(n);
  for (let i = 0; i < n; i++) byRank[fill[rank[i]]++] = i;
  return byRank;
}

function pick(ids: string[], byRank: Uint32Array, a: number, b: number): string[] {
  const o = new Array<string>(b - a);
  for (let t = a; t < b; t++) o[t - a] = ids[byRank[t]];
  return o;
}

function pickRank(src: Int32Array, byRank: Uint32Array, a: number, b: number): number[] {
  const o = new Array<number>(b - a);
  for (let t = a; t < b; t++) o[t - a] = src[byRank[t]];
  return o;
}

function pickRoute(route: Int32Array, example: Uint32Array, byRank: Uint32Array, a: number, b: number): number[] {
  const o = new Array<number>(b - a);
  for (let t = a; t < b; t++) o[t - a] = route[example[byRank[t]]];
  return o;
}

/**
 * Reported costs: float64 sums of the item costs, shown to 12 significant digits (far inside
 * the 1e-6 contract, and free of summation noise like ...00046).
 */
const tidy = (x: number) => Number(x.toPrecision(12));
const round3 = (x: number) => Math.round(x * 1000) / 1000;
function roundAll(r: Record<string, number>): Record<string, number> {
  const o: Record<string, number> = {};
  for (const [k, v] of Object.entries(r)) o[k] = round3(v);
  return o;
}

/** The CLI's output: one JSON document. Sidecar responses embed the same object. */
export function formatPlan(plan: Plan): string {
  return JSON.stringify(plan);
}
