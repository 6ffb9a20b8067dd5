// The three strategies on the same sampled batch, planned with the real planner and timed with
// the step model:
// - none:         the sampled layout in every phase (what a trainer without balancing runs).
// - llm-only:     the LLM phase balanced (`best`), encoders as sampled; encoder outputs move to
//                 the example's LLM rank with a flat all-to-all (as LLM-only balancers do).
// - orchestrated: every phase balanced (`best`, locality-aware placement); raw encoder inputs
//                 move to the encoder layouts and encoder outputs to the LLM layout, node-wise.
import { InputError } from '../errors.js';
import { buildPhaseItems } from '../items.js';
import { planIndexed } from '../plan/index.js';
import type { Batch, Config, PhaseItems } from '../types.js';
import type { ExchangeScheme, Flows } from './alltoall.js';
import { flopsOf, modelParams, phaseModels, type GpuPreset, type ModelPreset, type PhaseModel } from './presets.js';
import { gradSyncMs, simulateStep, type ExchangeSpec, type PhaseLayout, type StepResult } from './step.js';

export type StrategyName = 'none' | 'llm-only' | 'orchestrated';
export const STRATEGIES: readonly StrategyName[] = ['none', 'llm-only', 'orchestrated'];

export interface SimulateOptions {
  model: ModelPreset;
  gpu: GpuPreset;
  /** Share of the gradient-sync collective not hidden behind backward compute (default 0.1). */
  syncExposed?: number;
  /** All-to-all schedule per strategy (defaults: llm-only flat, orchestrated node-wise). */
  schemes?: Partial<Record<StrategyName, ExchangeScheme>>;
}

export interface StrategyResult extends StepResult {
  name: StrategyName;
  /** Throughput relative to `none` on the same batch. */
  speedup: number;
  /** Partition algorithm used per phase (from the plan). */
  algorithms: string[];
}

export interface Simulation {
  ranks: number;
  ranksPerNode: number;
  examples: number;
  /** LLM tokens in the global batch (what tokens/s counts). */
  tokens: number;
  params: number;
  gradSyncMs: number;
  strategies: StrategyResult[];
  planMs: number;
}

interface PhaseData {
  items: PhaseItems;
  model: PhaseModel;
  flops: Float64Array;
  /** Rank per item in the sampled layout and in the balanced plan. */
  sampled: Int32Array;
  balanced: Int32Array;
}

/** Which preset component times each config phase: matched by name, with the unit it implies. */
function matchPhases(config: Config, model: ModelPreset): PhaseModel[] {
  const models = phaseModels(model);
  const names = models.map((m) => m.name).join(', ');
  return config.phases.map((p) => {
    const m = models.find((x) => x.name === p.name);
    if (!m) {
      throw new InputError(
        `config phase "${p.name}": model ${model.name} has no such component (phases: ${names}); ` +
        `\`postbalance config --model ${model.name}\` prints a matching config`);
    }
    const unit = m.kind === 'llm' ? 'example' : 'segment';
    if (p.unit !== unit) throw new InputError(`config phase "${p.name}": unit must be "${unit}" for model ${model.name}'s ${m.kind}, got "${p.unit}"`);
    return m;
  });
}

function textTokens(batch: Batch): Float64Array {
  const out = new Float64Array(batch.ids.length);
  const t = batch.segments.get('text');
  if (!t) return out;
  for (let e = 0; e < out.length; e++) for (let j = t.offsets[e]!; j < t.offsets[e + 1]!; j++) out[e]! += t.lengths[j]!;
  return out;
}

/** Flows of a list of (src, dst, bytes) triples, built in a fixed order. */
function flows(src: number[], dst: number[], bytes: number[]): Flows {
  return { src: Int32Array.from(src), dst: Int32Array.from(dst), bytes: Float64Array.from(bytes) };
}

export async function simulateBatch(batch: Batch, config: Config, opts: SimulateOptions): Promise<Simulation> {
  const { model, gpu } = opts;
  const R = config.ranks, G = config.ranksPerNode;
  const phaseModelsAll = matchPhases(config, model);
  // A phase with no items (say, a batch without audio) costs nothing: drop it rather than fail.
  const itemsAll = buildPhaseItems(batch, config);
  const keep = itemsAll.map((it) => it.tokens.length > 0);
  const llmIndex = phaseModelsAll.findIndex((m) => m.kind === 'llm');
  if (llmIndex < 0) throw new InputError(`config: no "${model.llm.phase}" phase (the LLM backbone); \`postbalance config --model ${model.name}\` prints one`);
  if (!keep[llmIndex]) throw new InputError(`batch: no example has any of the LLM phase's modalities`);
  const cfg: Config = { ...config, phases: config.phases.filter((_, p) => keep[p]) };
  const items = itemsAll.filter((_, p) => keep[p]);
  const pmodels = phaseModelsAll.filter((_, p) => keep[p]);
  const llm = pmodels.findIndex((m) => m.kind === 'llm');

  const t0 = performance.now();
  const planNone = await planIndexed(batch, cfg, { algorithm: 'none' });
  const planBest = await planIndexed(batch, cfg, { algorithm: 'best', placement: 'locality' });
  const planMs = performance.now() - t0;

  const phases: PhaseData[] = items.map((it, p) => {
    const m = pmodels[p]!;
    const flops = new Float64Array(it.tokens.length);
    for (let i = 0; i < flops.length; i++) flops[i] = flopsOf(m.flops, it.tokens[i]!);
    return { items: it, model: m, flops, sampled: planNone.phases[p]!.rank, balanced: planBest.phases[p]!.rank };
  });

  let tokens = 0;
  for (let i = 0; i < phases[llm]!.items.tokens.length; i++) tokens += phases[llm]!.items.tokens[i]!;
  const text = textTokens(batch);
  const params = modelParams(model);
  const sync = gradSyncMs(params, R, G, gpu, opts.syncExposed ?? 0.1);

  const strategies: StrategyResult[] = [];
  for (const name of STRATEGIES) {
    const balanced = (p: number) => name === 'orchestrated' || (name === 'llm-only' && p === llm);
    const rankOf = (p: number) => (balanced(p) ? phases[p]!.balanced : phases[p]!.sampled);
    const scheme: ExchangeScheme = opts.schemes?.[name] ?? (name === 'orchestrated' ? 'nodewise' : 'flat');
    const layouts: PhaseLayout[] = phases.map((d, p) => ({
      name: d.items.phase.name, flops: d.flops, rank: rankOf(p), padding: d.items.phase.padding ?? false,
    }));
    // Where each example sits in the LLM phase (sampled rank if it has no LLM item).
    const llmRankOfExample = Int32Array.from(batch.ranks);
    { const it = phases[llm]!.items, rk = rankOf(llm); for (let i = 0; i < rk.length; i++) llmRankOfExample[it.example[i]!] = rk[i]!; }
    const inS: number[] = [], inD: number[] = [], inB: number[] = [];
    const fwS: number[] = [], fwD: number[] = [], fwB: number[] = [];
    phases.forEach((d, p) => {
      if (p === llm) return;
      const rk = rankOf(p), it = d.items;
      for (let i = 0; i < rk.length; i++) {
        const L = it.tokens[i]!;
        inS.push(it.sampledRank[i]!); inD.push(rk[i]!); inB.push(L * d.model.inputBytesPerToken);
        fwS.push(rk[i]!); fwD.push(llmRankOfExample[it.example[i]!]!); fwB.push(L * d.model.outputBytesPerToken);
      }
    });
    const bwd = flows(fwD, fwS, fwB); // gradients of the encoder outputs go back the same way
    // Text tokens travel with the encoder outputs: the LLM needs both at the same moment.
    for (let e = 0; e < text.length; e++) {
      if (text[e]! > 0) { fwS.push(batch.ranks[e]!); fwD.push(llmRankOfExample[e]!); fwB.push(text[e]! * model.textBytesPerToken); }
    }
    const exchanges: ExchangeSpec[] = [
      { name: 'inputs→encoders', flows: flows(inS, inD, inB), scheme },
      { name: 'encoders→llm', flows: flows(fwS, fwD, fwB), scheme },
      { name: 'llm→encoders (grad)', flows: bwd, scheme },
    ];
    const step = simulateStep({ ranks: R, ranksPerNode: G, phases: layouts, exchanges, tokens, gradSyncMs: sync }, gpu);
    const plan = name === 'none' ? planNone : planBest;
    strategies.push({
      name, ...step, speedup: 1,
      algorithms: phases.map((_, p) => (balanced(p) ? plan.phases[p]!.algorithm : 'none')),
    });
  }
  const base = strategies[0]!.tokensPerSec;
  for (const s of strategies) s.speedup = base > 0 ? s.tokensPerSec / base : 1;
  return { ranks: R, ranksPerNode: G, examples: batch.ids.length, tokens, params, gradSyncMs: sync, strategies, planMs };
}
