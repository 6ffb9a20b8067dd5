// Stage 2: the items of each phase. An encoder phase (`unit: "segment"`) sees every image / clip
// as its own sequence; a backbone phase (`unit: "example"`) sees each example as one sequence
// whose length is the sum of its scaled segments.
import { inputError } from './errors.js';
import type { Batch, Config, PhaseConfig, PhaseItems } from './types.js';

const MAX_U32 = 0xffffffff;

interface Seg {
  m: string;
  offsets: Uint32Array;
  lengths: Uint32Array;
  scale: number;
  bpt: number;
}

interface Filled {
  ex: Uint32Array;
  /** Segment phases: which of the phase's modalities, and k within the example's array. */
  modality: Uint32Array;
  segment: Uint32Array;
  tokens: Uint32Array;
  bytes: Float64Array;
}

function filled(count: number, segments: boolean): Filled {
  return {
    ex: new Uint32Array(count), modality: new Uint32Array(segments ? count : 0), segment: new Uint32Array(segments ? count : 0),
    tokens: new Uint32Array(count), bytes: new Float64Array(count),
  };
}

export function phaseItems(batch: Batch, config: Config, phase: PhaseConfig): PhaseItems {
  const bpt = config.bytesPerToken ?? {};
  const segs: Seg[] = phase.modalities.map((m) => {
    const { offsets, lengths } = batch.segments.get(m)!;
    return { m, offsets, lengths, scale: (phase.scale && Object.hasOwn(phase.scale, m) ? phase.scale[m] : 1), bpt: Object.hasOwn(bpt, m) ? bpt[m] : 0 };
  });
  const f = phase.unit === 'segment' ? segmentItems(batch, segs) : exampleItems(batch, phase, segs);
  checkBytes(f.bytes, phase, segs);
  const count = f.ex.length;
  const sampledRank = new Int32Array(count);
  sampledRanks(batch.ranks, f.ex, sampledRank);
  // Ids are strings, costly at a million items and needed only by the full output form: built
  // on first use.
  let ids: string[] | null = null;
  const { ex, modality, segment } = f;
  return {
    phase, example: ex, modality, segment, sampledRank, tokens: f.tokens, bytes: f.bytes,
    get ids(): string[] {
      if (ids === null) ids = phase.unit === 'segment' ? segmentIds(batch.ids, phase.modalities, ex, modality, segment) : exampleIds(batch.ids, ex);
      return ids;
    },
  };
}

/** "<exampleId>/<modality>/<k>" of every segment item. */
function segmentIds(exampleIds: string[], modalities: string[], ex: Uint32Array, modality: Uint32Array, segment: Uint32Array): string[] {
  const out = new Array<string>(ex.length);
  for (let i = 0; i < ex.length; i++) out[i] = exampleIds[ex[i]] + '/' + modalities[modality[i]] + '/' + segment[i];
  return out;
}

function exampleIds(exampleIds: string[], ex: Uint32Array): string[] {
  const out = new Array<string>(ex.length);
  for (let i = 0; i < ex.length; i++) out[i] = exampleIds[ex[i]];
  return out;
}

/** The phase's bytes must be finite numbers (they are summed into the exchange, printed as JSON). */
function checkBytes(bytes: Float64Array, phase: PhaseConfig, segs: Seg[]): void {
  let total = 0;
  for (let i = 0; i < bytes.length; i++) total += bytes[i];
  if (Number.isFinite(total)) return;
  const big = segs.reduce((a, b) => (b.bpt > a.bpt ? b : a));
  throw inputError(`config bytesPerToken.${big.m}`, `${big.bpt} bytes per token makes phase "${phase.name}" move more bytes than a float64 can count`);
}

function sampledRanks(ranks: Int32Array, ex: Uint32Array, out: Int32Array): void {
  for (let i = 0; i < ex.length; i++) out[i] = ranks[ex[i]];
}

/** Every segment of the phase's modalities is an item, id "<exampleId>/<modality>/<k>". */
function segmentItems(batch: Batch, segs: Seg[]): Filled {
  const n = batch.ids.length;
  let count = 0;
  for (const s of segs) count += s.offsets[n] - s.offsets[0];
  const f = filled(count, true);
  const nm = segs.length;
  let o = 0;
  for (let e = 0; e < n; e++) {
    for (let t = 0; t < nm; t++) {
      const s = segs[t];
      const from = s.offsets[e], to = s.offsets[e + 1];
      if (from === to) continue;
      o = fillSegments(f, o, t, e, s.lengths, from, to, s.bpt);
    }
  }
  return f;
}

function fillSegments(f: Filled, o: number, m: number, e: number, lengths: Uint32Array, from: number, to: number, bpt: number): number {
  const { ex, modality, segment, tokens, bytes } = f;
  for (let j = from; j < to; j++, o++) {
    ex[o] = e;
    modality[o] = m;
    segment[o] = j - from;
    tokens[o] = lengths[j];
    bytes[o] = lengths[j] * bpt;
  }
  return o;
}

/**
 * Every example with any of the phase's modalities is one item: length Σ ceil(len × scale),
 * bytes Σ that × bytesPerToken, summed modality by modality, then segment by segment.
 */
function exampleItems(batch: Batch, phase: PhaseConfig, segs: Seg[]): Filled {
  const n = batch.ids.length;
  const len = new Float64Array(n), b = new Float64Array(n);
  const present = new Uint8Array(n);
  for (const s of segs) addModality(s.offsets, s.lengths, s.scale, s.bpt, len, b, present);
  let count = 0;
  for (let e = 0; e < n; e++) count += present[e];
  const f = filled(count, false);
  const bad = fillExamples(f, len, b, present);
  if (bad >= 0) {
    const where = batch.lines?.[bad] ? `batch line ${batch.lines[bad]}` : `batch example ${JSON.stringify(batch.ids[bad])}`;
    throw inputError(where, `phase "${phase.name}" length ${len[bad]} (Σ scaled segments) exceeds 2^32-1 tokens`);
  }
  return f;
}

function addModality(offsets: Uint32Array, lengths: Uint32Array, scale: number, bpt: number, len: Float64Array, b: Float64Array, present: Uint8Array): void {
  const n = len.length;
  for (let e = 0; e < n; e++) {
    const from = offsets[e], to = offsets[e + 1];
    if (from === to) continue;
    present[e] = 1;
    let l0 = len[e], b0 = b[e];
    for (let j = from; j < to; j++) {
      // ceil(len × scale) exactly as a float64 recomputation would do it.
      const l = Math.ceil(lengths[j] * scale);
      l0 += l;
      b0 += l * bpt;
    }
    len[e] = l0;
    b[e] = b0;
  }
}

/** Fills the example items; returns the first example over 2^32-1 tokens (then stops), or -1. */
function fillExamples(f: Filled, len: Float64Array, b: Float64Array, present: Uint8Array): number {
  const n = len.length;
  let o = 0;
  for (let e = 0; e < n; e++) {
    if (!present[e]) continue;
    if (len[e] > MAX_U32) return e;
    f.ex[o] = e;
    f.tokens[o] = len[e];
    f.bytes[o] = b[e];
    o++;
  }
  return -1;
}

export function buildPhaseItems(batch: Batch, config: Config): PhaseItems[] {
  return config.phases.map((p) => phaseItems(batch, config, p));
}
