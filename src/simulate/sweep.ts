// The scaling sweep (generated batches, a fixed number of examples per rank) and what
// `postbalance simulate` prints and draws of it (tables and charts from report.ts).
import { batchFromExamples } from '../input.js';
import { generateWorkload } from '../workload.js';
import { configFromModel, type GpuPreset, type ModelPreset } from './presets.js';
import { simulateBatch, type SimulateOptions, type Simulation, type StrategyResult } from './strategies.js';
import { fmtRate, loadSvg, scalingSvg, table, type Series } from '../report.js';

export interface SweepOptions extends SimulateOptions {
  ranks: number[];
  examplesPerRank: number;
  ranksPerNode: number;
  seed: number;
}

/** Modalities the built-in workload uses (video frames arrive as images). */
const WORKLOAD_MODALITIES = ['image', 'audio'];

export async function runSweep(opts: SweepOptions): Promise<Simulation[]> {
  const out: Simulation[] = [];
  for (const R of opts.ranks) {
    const G = Math.min(opts.ranksPerNode, R);
    const { examples } = generateWorkload({ ranks: R, ranksPerNode: G, examples: R * opts.examplesPerRank, seed: opts.seed });
    const config = configFromModel(opts.model, R, G, WORKLOAD_MODALITIES);
    out.push(await simulateBatch(batchFromExamples(examples, config), config, opts));
  }
  return out;
}

const r3 = (x: number) => Math.round(x * 1000) / 1000;
const r4 = (x: number) => Math.round(x * 1e4) / 1e4;

/** The JSON form of one simulation (`--json`): stable names, rounded for reading, no per-rank arrays. */
export function simulationJson(sim: Simulation, model: ModelPreset, gpu: GpuPreset): object {
  return {
    model: model.name, gpu: gpu.name, ranks: sim.ranks, ranksPerNode: sim.ranksPerNode, examples: sim.examples,
    tokens: sim.tokens, params: sim.params, gradSyncMs: r3(sim.gradSyncMs),
    strategies: sim.strategies.map((s) => strategyJson(s)),
  };
}

function strategyJson(s: StrategyResult): object {
  return {
    name: s.name, stepMs: r3(s.stepMs), tokensPerSec: Math.round(s.tokensPerSec), mfu: r4(s.mfu), speedup: r4(s.speedup),
    computeMs: r3(s.computeMs), exchangeMs: r3(s.exchangeMs), gradSyncMs: r3(s.gradSyncMs), flops: s.flops,
    phases: s.phases.map((p, i) => ({
      name: p.name, items: p.items, algorithm: s.algorithms[i], computeMaxMs: r3(p.computeMaxMs), computeMeanMs: r3(p.computeMeanMs),
      lowerBoundMs: r3(p.lowerBoundMs), maxOverMean: r4(p.maxOverMean), idleFraction: r4(p.idleFraction),
    })),
    exchanges: s.exchanges.map((x) => ({
      name: x.name, scheme: x.used, ms: r3(x.ms), flatMs: r3(x.flatMs), nodewiseMs: r3(x.nodewiseMs),
      movedItems: x.movedItems, bytes: x.bytes, interNodeBytes: x.interNodeBytes, intraNodeBytes: x.intraNodeBytes,
    })),
  };
}


/** One row per strategy: step, tokens/s, MFU, speedup, per-phase max/mean, exchange. */
function strategyRows(sim: Simulation, withRanks: boolean): string[][] {
  return sim.strategies.map((s) => [
    withRanks ? String(sim.ranks) : '', s.name,
    s.stepMs.toFixed(1), fmtRate(s.tokensPerSec), (100 * s.mfu).toFixed(1) + '%', s.speedup.toFixed(2) + 'x',
    s.phases.map((p) => p.maxOverMean.toFixed(2)).join(' / '),
    s.phases.map((p) => (100 * p.idleFraction).toFixed(0) + '%').join(' / '),
    s.exchangeMs.toFixed(2),
  ]);
}

function header(sim: Simulation): string[] {
  const names = sim.strategies[0]!.phases.map((p) => p.name).join('/');
  return ['ranks', 'strategy', 'step ms', 'tokens/s', 'MFU', 'speedup', `max/mean ${names}`, 'idle', 'exchange ms'];
}

export function formatSimulation(sim: Simulation, model: ModelPreset, gpu: GpuPreset): string {
  const head = `${model.name} on ${sim.ranks} × ${gpu.name} (${sim.ranksPerNode} per node): ${sim.examples} examples, ` +
    `${sim.tokens} LLM tokens, gradient sync ${sim.gradSyncMs.toFixed(1)} ms exposed\n`;
  const rows = [header(sim), ...strategyRows(sim, true)];
  return head + table(rows, 2);
}

export function formatSweep(sims: Simulation[], model: ModelPreset, gpu: GpuPreset, examplesPerRank: number): string {
  const head = `${model.name} on ${gpu.name}, ${examplesPerRank} examples per rank, built-in multimodal mix\n`;
  const rows = [header(sims[0]!)];
  for (const s of sims) rows.push(...strategyRows(s, true));
  return head + table(rows, 2);
}

/** The two sweep charts: scaling per strategy, and per-rank load per phase at `loadRanks`. */
export function sweepSvgs(sims: Simulation[], model: ModelPreset, gpu: GpuPreset, examplesPerRank: number, loadRanks?: number): { scaling: string; load: string } {
  const xs = sims.map((s) => s.ranks);
  const names = sims[0]!.strategies.map((s) => s.name);
  const pick = (k: (s: StrategyResult, sim: Simulation) => number): Series[] =>
    names.map((n, i) => ({ name: n, points: sims.map((s) => [s.ranks, k(s.strategies[i]!, s)] as [number, number]) }));
  const title = `${model.name} on ${gpu.name}: simulated step, ${examplesPerRank} examples per rank`;
  const scaling = scalingSvg(title, xs, pick((s, sim) => s.tokensPerSec / sim.ranks), pick((s) => 100 * s.mfu));
  // The load chart wants one readable point: the requested one, else the largest with ≤ 256 ranks.
  const target = loadRanks ?? Math.max(...xs.filter((x) => x <= 256), Math.min(...xs));
  const sim = sims.find((s) => s.ranks === target) ?? sims[0]!;
  const none = sim.strategies.find((s) => s.name === 'none')!, orch = sim.strategies.find((s) => s.name === 'orchestrated')!;
  const load = loadSvg(
    `${model.name}, ${sim.ranks} ranks: per-rank compute before and after balancing`,
    none.phases.map((p, i) => ({ title: `${p.name}: compute per rank (ms)`, before: none.loads[i]!, after: orch.loads[i]! })),
  );
  return { scaling, load };
}

