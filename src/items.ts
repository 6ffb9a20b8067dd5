// Stage 2: the items of each phase. An encoder phase (`unit: "segment"`) sees every image / clip
// as its own sequence; a backbone phase (`unit: "example"`) sees each example as one sequence
// whose length is the sum of its scaled segments.
import { inputError } from './errors.js';
import type { Batch, Config, PhaseConfig, PhaseItems } from './types.js';

const MAX_U32 = 0xffffffff;

export function phaseItems(batch: Batch, config: Config, phase: PhaseConfig): PhaseItems {
  const bpt = config.bytesPerToken ?? {};
  const segs = phase.modalities.map((m) => ({ m, ...batch.segments.get(m)!, scale: phase.scale?.[m] ?? 1, bpt: bpt[m] ?? 0 }));
  const n = batch.ids.length;
  // Count first, then fill typed arrays (no growing arrays of numbers).
  let count = 0;
  if (phase.unit === 'segment') {
    for (const s of segs) count += s.offsets[n] - s.offsets[0];
  } else {
    for (let e = 0; e < n; e++) {
      for (const s of segs) if (s.offsets[e + 1] > s.offsets[e]) { count++; break; }
    }
  }
  const ids = new Array<string>(count);
  const ex = new Uint32Array(count);
  const tokens = new Uint32Array(count);
  const bytes = new Float64Array(count);
  let o = 0;
  if (phase.unit === 'segment') {
    const nm = segs.length;
    for (let e = 0; e < n; e++) {
      for (let t = 0; t < nm; t++) {
        const s = segs[t];
        const from = s.offsets[e], to = s.offsets[e + 1];
        if (from === to) continue;
        const prefix = batch.ids[e] + '/' + s.m + '/';
        for (let j = from; j < to; j++, o++) {
          ids[o] = prefix + (j - from);
          ex[o] = e;
          tokens[o] = s.lengths[j];
          bytes[o] = s.lengths[j] * s.bpt;
        }
      }
    }
  } else {
    for (let e = 0; e < n; e++) {
      let present = false, len = 0, b = 0;
      for (const s of segs) {
        for (let j = s.offsets[e]; j < s.offsets[e + 1]; j++) {
          // ceil(len × scale) exactly as a float64 recomputation would do it.
          const l = Math.ceil(s.lengths[j] * s.scale);
          present = true;
          len += l;
          b += l * s.bpt;
        }
      }
      if (!present) continue;
      if (len > MAX_U32) throw inputError(`batch example ${JSON.stringify(batch.ids[e])}`, `phase "${phase.name}" length ${len} exceeds 2^32-1 tokens`);
      ids[o] = batch.ids[e];
      ex[o] = e;
      tokens[o] = len;
      bytes[o] = b;
      o++;
    }
  }
  const sampledRank = new Int32Array(count);
  for (let i = 0; i < count; i++) sampledRank[i] = batch.ranks[ex[i]];
  return { phase, ids, example: ex, sampledRank, tokens, bytes };
}

export function buildPhaseItems(batch: Batch, config: Config): PhaseItems[] {
  return config.phases.map((p) => phaseItems(batch, config, p));
}
