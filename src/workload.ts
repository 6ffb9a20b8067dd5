// The built-in workload: a realistic multimodal mix, seeded. Each rank samples the same number
// of examples (as a data loader does), but what those examples hold differs wildly: that is the
// imbalance post-balancing removes.
import { logNormal, mulberry32, randInt } from './rng.js';
import type { Config, Example } from './types.js';

export interface WorkloadOptions {
  ranks: number;
  ranksPerNode?: number;
  /** Examples in the global batch (split evenly over ranks by sampling order). */
  examples: number;
  seed?: number;
}

/** The example kinds and their share of the mix. */
export const MIX = [
  { kind: 'caption', share: 0.3 },      // one image, short caption
  { kind: 'interleaved', share: 0.1 },  // web document: several images, long text
  { kind: 'asr', share: 0.15 },         // speech clip, short transcript
  { kind: 'spokenQA', share: 0.1 },     // speech question, long spoken-style answer
  { kind: 'text', share: 0.25 },        // text only
  { kind: 'video', share: 0.1 },        // video frames as images, short text
] as const;

const clamp = (x: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, Math.round(x)));

/** The demo's three-phase config: vision encoder, audio encoder, LLM backbone. */
export function demoConfig(ranks: number, ranksPerNode = 8): Config {
  return {
    ranks,
    ranksPerNode: Math.min(ranksPerNode, ranks),
    phases: [
      { name: 'vision', modalities: ['image'], unit: 'segment', cost: { perItem: 40, perToken: 1.0, perTokenSquared: 0.00025 }, maxTokensPerRank: 262144 },
      { name: 'audio', modalities: ['audio'], unit: 'segment', cost: { perItem: 10, perToken: 0.6, perTokenSquared: 0.0004 } },
      { name: 'llm', modalities: ['text', 'image', 'audio'], unit: 'example', scale: { image: 0.25, audio: 0.5 }, cost: { perToken: 1.0, perTokenSquared: 0.0000407 } },
    ],
    bytesPerToken: { text: 4, image: 1176, audio: 256 },
  };
}

function sampleExample(rand: () => number, id: string, rank: number): Example {
  let u = rand();
  let kind: string = MIX[MIX.length - 1].kind;
  for (const m of MIX) { if (u < m.share) { kind = m.kind; break; } u -= m.share; }
  // Image tokens: dynamic resolution tiles of 576 (336px / 14px patches, 24 × 24).
  const image = () => 576 * randInt(rand, 1, 4);
  const ex: Example = { id, rank };
  switch (kind) {
    case 'caption':
      ex.image = [image()];
      ex.text = clamp(logNormal(rand, 40, 0.5), 5, 300);
      break;
    case 'interleaved': {
      const k = randInt(rand, 2, 8);
      ex.image = Array.from({ length: k }, image);
      ex.text = clamp(logNormal(rand, 1500, 0.6), 200, 8000);
      break;
    }
    case 'asr':
      ex.audio = [clamp(logNormal(rand, 800, 0.5), 100, 3000)]; // frames (25 Hz → up to 2 min)
      ex.text = clamp(logNormal(rand, 60, 0.5), 5, 400);
      break;
    case 'spokenQA':
      ex.audio = [clamp(logNormal(rand, 600, 0.4), 100, 3000)];
      ex.text = clamp(logNormal(rand, 1200, 0.6), 100, 8000);
      break;
    case 'text':
      ex.text = clamp(logNormal(rand, 900, 0.9), 20, 16000);
      break;
    default: { // video: 8–32 frames of 256 tokens
      const k = randInt(rand, 8, 32);
      ex.image = Array.from({ length: k }, () => 256);
      ex.text = clamp(logNormal(rand, 150, 0.5), 20, 1000);
    }
  }
  return ex;
}

export function generateWorkload(opts: WorkloadOptions): { config: Config; examples: Example[] } {
  const { ranks, examples: m } = opts;
  const rand = mulberry32(opts.seed ?? 1);
  const examples: Example[] = [];
  for (let e = 0; e < m; e++) examples.push(sampleExample(rand, `ex${e}`, Math.floor((e * ranks) / m)));
  return { config: demoConfig(ranks, opts.ranksPerNode), examples };
}

/** JSONL text of a batch (one example per line), as the CLI reads it. */
export function toJsonl(examples: readonly Example[]): string {
  return examples.map((e) => JSON.stringify(e)).join('\n') + '\n';
}
