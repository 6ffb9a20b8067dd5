// Hardware and model presets for the step simulator, and the FLOPs / bytes models derived from
// them. Every number here is an assumption a reader can check: docs/EVALUATION.md lists sources.
// Presets are plain data so a user can override any field (CLI flags or a JSON object).
import { InputError } from '../errors.js';
import type { Config, PhaseConfig } from '../types.js';

/** One GPU and its links, as seen by one data-parallel rank. Bandwidths are per GPU, per direction. */
export interface GpuPreset {
  name: string;
  /** Dense BF16 tensor-core peak, FLOP/s (no sparsity): the MFU denominator. */
  peakFlops: number;
  /** Fraction of peak the training kernels sustain on a rank's work (matmuls + attention). */
  achievable: number;
  /** Achievable all-to-all bandwidth over NVLink/NVSwitch inside a node, bytes/s per GPU per direction. */
  intraBw: number;
  /** Achievable bandwidth of the GPU's own NIC across nodes, bytes/s per direction (rail-optimised fabric). */
  interBw: number;
  /** Fixed start-up cost of one collective (kernel launch, handshake), seconds. */
  launchLatency: number;
  /** Per-peer message overhead inside a node, seconds (grouped send/recv to many peers is not free). */
  intraPeerLatency: number;
  /** Per-peer message overhead across nodes, seconds. */
  interPeerLatency: number;
  /** HBM capacity, GB (informational: the simulator does not model memory). */
  memoryGB: number;
}

const GB = 1e9;

const H100: GpuPreset = {
  name: 'h100',
  peakFlops: 989.4e12,
  achievable: 0.5,
  intraBw: 360 * GB,
  interBw: 40 * GB,
  launchLatency: 20e-6,
  intraPeerLatency: 1e-6,
  interPeerLatency: 3e-6,
  memoryGB: 80,
};

export const GPU_PRESETS: Readonly<Record<string, GpuPreset>> = {
  h100: H100,
  // Same tensor cores, NVLink generation and (in typical builds) the same 400 Gb/s NIC as the H100:
  // the H200's difference is memory (141 GB HBM3e, 4.8 TB/s), which this compute-bound model does
  // not see. Kept as its own preset so that a user's measured numbers can be dropped in.
  h200: { ...H100, name: 'h200', memoryGB: 141 },
};

/** A transformer stack. Parameters and FLOPs follow from these shapes (biases and norms ignored). */
export interface TransformerPreset {
  name: string;
  hidden: number;
  layers: number;
  heads: number;
  /** Key/value heads (grouped-query attention); equal to `heads` for plain multi-head attention. */
  kvHeads: number;
  ffn: number;
  /** SwiGLU-style MLP (three matrices) instead of two. */
  gatedMlp: boolean;
  /** Causal attention (the LLM): a flash-attention kernel skips the masked half of the L² work. */
  causal: boolean;
  /** Output vocabulary (LLM head); 0 for encoders. The input embedding is a lookup: no FLOPs. */
  vocab: number;
}

/** An encoder and the modalities it serves, with its projector into the LLM. */
export interface EncoderPreset extends TransformerPreset {
  /** Phase name in the planner config. */
  phase: string;
  modalities: string[];
  /** Encoder tokens merged into one LLM token by the projector (2×2 pixel merge = 4). */
  merge: number;
  /** Bytes of raw input per encoder token (an image patch, a pair of mel frames), moved before encoding. */
  inputBytesPerToken: number;
}

export interface ModelPreset {
  name: string;
  encoders: EncoderPreset[];
  llm: TransformerPreset & { phase: string };
  /** Bytes per text token moved with an example (token id + label, int32 each). */
  textBytesPerToken: number;
}

/** ViT-H/14 class (≈0.63B): 336 px images give 576 patch tokens of 14×14×3 bf16 values. */
export const VISION_ENCODER: EncoderPreset = {
  name: 'vit-0.6b', phase: 'vision', modalities: ['image', 'video'],
  hidden: 1280, layers: 32, heads: 16, kvHeads: 16, ffn: 5120, gatedMlp: false, causal: false, vocab: 0,
  merge: 4, inputBytesPerToken: 14 * 14 * 3 * 2,
};

/** Whisper-large encoder class (≈0.63B): 1,500 tokens per 30 s clip, each two 128-bin mel frames in bf16. */
export const AUDIO_ENCODER: EncoderPreset = {
  name: 'audio-0.6b', phase: 'audio', modalities: ['audio'],
  hidden: 1280, layers: 32, heads: 20, kvHeads: 20, ffn: 5120, gatedMlp: false, causal: false, vocab: 0,
  merge: 2, inputBytesPerToken: 2 * 128 * 2,
};

/** LLM backbones, Qwen2-family shapes; the 84B one is the 72B shape made deeper (the paper's is not public). */
export const LLM_PRESETS: Readonly<Record<string, TransformerPreset>> = {
  'llm-7b': { name: 'llm-7b', hidden: 3584, layers: 28, heads: 28, kvHeads: 4, ffn: 18944, gatedMlp: true, causal: true, vocab: 152064 },
  'llm-32b': { name: 'llm-32b', hidden: 5120, layers: 64, heads: 40, kvHeads: 8, ffn: 27648, gatedMlp: true, causal: true, vocab: 152064 },
  'llm-72b': { name: 'llm-72b', hidden: 8192, layers: 80, heads: 64, kvHeads: 8, ffn: 29568, gatedMlp: true, causal: true, vocab: 152064 },
  'llm-84b': { name: 'llm-84b', hidden: 8192, layers: 91, heads: 64, kvHeads: 8, ffn: 29568, gatedMlp: true, causal: true, vocab: 152064 },
};

function mllm(name: string, llm: string): ModelPreset {
  return {
    name,
    encoders: [VISION_ENCODER, AUDIO_ENCODER],
    llm: { ...LLM_PRESETS[llm]!, phase: 'llm' },
    textBytesPerToken: 8,
  };
}

export const MODEL_PRESETS: Readonly<Record<string, ModelPreset>> = {
  'mllm-7b': mllm('mllm-7b', 'llm-7b'),
  'mllm-32b': mllm('mllm-32b', 'llm-32b'),
  'mllm-72b': mllm('mllm-72b', 'llm-72b'),
  'mllm-84b': mllm('mllm-84b', 'llm-84b'),
};

export function getGpu(name: string): GpuPreset {
  const g = GPU_PRESETS[name.toLowerCase()];
  if (!g) throw new InputError(`--gpu: unknown GPU preset "${name}" (known: ${Object.keys(GPU_PRESETS).join(', ')})`);
  return { ...g };
}

export function getModel(name: string): ModelPreset {
  const m = MODEL_PRESETS[name.toLowerCase()];
  if (!m) throw new InputError(`--model: unknown model preset "${name}" (known: ${Object.keys(MODEL_PRESETS).join(', ')})`);
  return structuredClone(m);
}

/** Weights of the transformer blocks that every token passes through (no embedding lookup). */
export function blockParams(t: TransformerPreset): number {
  const headDim = t.hidden / t.heads;
  const attn = 2 * t.hidden * t.hidden + 2 * t.hidden * t.kvHeads * headDim;
  const mlp = (t.gatedMlp ? 3 : 2) * t.hidden * t.ffn;
  return t.layers * (attn + mlp);
}

/** All parameters, for reporting and gradient sync (an LLM's input embedding and untied head both count). */
export function totalParams(t: TransformerPreset): number {
  return blockParams(t) + 2 * t.vocab * t.hidden;
}

/** Projector MLP from an encoder's merged tokens into the LLM: (encHidden·merge → llm) then (llm → llm). */
export function projectorParams(e: EncoderPreset, llmHidden: number): number {
  return e.hidden * e.merge * llmHidden + llmHidden * llmHidden;
}

export function modelParams(m: ModelPreset): number {
  let p = totalParams(m.llm);
  for (const e of m.encoders) p += totalParams(e) + projectorParams(e, m.llm.hidden);
  return p;
}

/**
 * Forward+backward FLOPs of one sequence of L tokens: flops(L) = linear·L + quadratic·L².
 * linear = 6 × (weights each token multiplies: blocks, LM head, projector per encoder token);
 * quadratic = attention scores and weighted sums, 4·hidden FLOPs per (query, key) pair and layer
 * forward, ×3 for forward+backward, halved for causal attention (masked blocks are skipped).
 */
export interface FlopsModel { linear: number; quadratic: number }

export function llmFlopsModel(t: TransformerPreset): FlopsModel {
  return {
    linear: 6 * (blockParams(t) + t.vocab * t.hidden),
    quadratic: 12 * t.layers * t.hidden * (t.causal ? 0.5 : 1),
  };
}

export function encoderFlopsModel(e: EncoderPreset, llmHidden: number): FlopsModel {
  return {
    // The projector runs on the encoder's rank: its output, in the LLM's hidden size, is what moves.
    linear: 6 * (blockParams(e) + projectorParams(e, llmHidden) / e.merge),
    quadratic: 12 * e.layers * e.hidden * (e.causal ? 0.5 : 1),
  };
}

export function flopsOf(f: FlopsModel, tokens: number): number {
  return f.linear * tokens + f.quadratic * tokens * tokens;
}

/** The model's shape for one planner phase: how each item's FLOPs and moved bytes follow from its length. */
export interface PhaseModel {
  name: string;
  kind: 'encoder' | 'llm';
  flops: FlopsModel;
  /** Encoder phases: raw input bytes per token moved sampled rank → encoder rank. */
  inputBytesPerToken: number;
  /** Encoder phases: bytes per encoder token of the projected output (bf16 in the LLM's hidden size). */
  outputBytesPerToken: number;
}

export function phaseModels(m: ModelPreset): PhaseModel[] {
  const out: PhaseModel[] = m.encoders.map((e) => ({
    name: e.phase, kind: 'encoder' as const,
    flops: encoderFlopsModel(e, m.llm.hidden),
    inputBytesPerToken: e.inputBytesPerToken,
    outputBytesPerToken: (2 * m.llm.hidden) / e.merge,
  }));
  out.push({ name: m.llm.phase, kind: 'llm', flops: llmFlopsModel(m.llm), inputBytesPerToken: 0, outputBytesPerToken: 0 });
  return out;
}

/** Scale every encoder's depth (sensitivity: "encoders twice as large" = factor 2). */
export function scaleEncoders(m: ModelPreset, factor: number): ModelPreset {
  if (!(factor > 0)) throw new InputError(`--encoder-scale: must be a positive number, got ${factor}`);
  return { ...m, encoders: m.encoders.map((e) => ({ ...e, layers: Math.max(1, Math.round(e.layers * factor)) })) };
}

/** Cost units of a derived planner config: 1 cost unit = 1 GFLOP (forward + backward). */
export const FLOPS_PER_COST_UNIT = 1e9;

/**
 * A planner config (the plan command's --config contract) whose cost model is the preset's FLOPs in GFLOP, so the plan
 * balances exactly what the simulator times. Encoder phases take segments; the LLM phase takes
 * whole examples with each encoder modality scaled by 1/merge.
 */
export function configFromModel(m: ModelPreset, ranks: number, ranksPerNode: number, modalities?: string[]): Config {
  checkRanks(ranks, ranksPerNode);
  // Only declare the modalities a batch actually uses when asked to (unknown keys are an error,
  // but unused declared modalities are harmless: the default is the preset's full set).
  const keep = (mod: string) => !modalities || modalities.includes(mod);
  const phases: PhaseConfig[] = [];
  const scale: Record<string, number> = {};
  const bytesPerToken: Record<string, number> = { text: m.textBytesPerToken };
  for (const e of m.encoders) {
    const mods = e.modalities.filter(keep);
    if (mods.length === 0) continue;
    const f = encoderFlopsModel(e, m.llm.hidden);
    phases.push({ name: e.phase, modalities: mods, unit: 'segment', cost: costOf(f) });
    for (const mod of mods) {
      scale[mod] = 1 / e.merge;
      bytesPerToken[mod] = e.inputBytesPerToken;
    }
  }
  const f = llmFlopsModel(m.llm);
  phases.push({
    name: m.llm.phase, modalities: ['text', ...Object.keys(scale)], unit: 'example', scale, cost: costOf(f),
  });
  return { ranks, ranksPerNode, phases, bytesPerToken };
}

function costOf(f: FlopsModel): { perToken: number; perTokenSquared: number } {
  return { perToken: f.linear / FLOPS_PER_COST_UNIT, perTokenSquared: f.quadratic / FLOPS_PER_COST_UNIT };
}

export function checkRanks(ranks: number, ranksPerNode: number): void {
  if (!Number.isInteger(ranks) || ranks < 1) throw new InputError(`--ranks: must be a positive integer, got ${ranks}`);
  if (!Number.isInteger(ranksPerNode) || ranksPerNode < 1) {
    throw new InputError(`--ranks-per-node: must be a positive integer, got ${ranksPerNode}`);
  }
}

/** Override GPU fields from `key=value` pairs (e.g. "interBw=20e9"); unknown keys and bad numbers are errors. */
export function overrideGpu(g: GpuPreset, overrides: Record<string, number>): GpuPreset {
  const out = { ...g };
  for (const [k, v] of Object.entries(overrides)) {
    if (k === 'name' || !(k in g)) {
      const keys = Object.keys(g).filter((x) => x !== 'name');
      throw new InputError(`--set: unknown GPU field "${k}" (fields: ${keys.join(', ')})`);
    }
    if (!Number.isFinite(v) || v <= 0) throw new InputError(`--set ${k}: must be a positive number, got ${v}`);
    if (k === 'achievable' && v > 1) throw new InputError(`--set achievable: must be in (0, 1], got ${v}`);
    (out as unknown as Record<string, number>)[k] = v;
  }
  return out;
}
