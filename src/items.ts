// Stage 2: the items of each phase. An encoder phase (`unit: "segment"`) sees every image / clip
// as its own sequence; a backbone phase (`unit: "example"`) sees each example as one sequence
// whose length is the sum of its scaled segments.
import { inputError } from './errors.js';
import type { Batch, Config, PhaseConfig, PhaseItems } from './types.js';

const MAX_U32 = 0xffffffff;

export function phaseItems(batch: Batch, config: Config, phase: PhaseConfig): PhaseItems {
  const bpt = config.bytesPerToken ?? {};
  const ids: string[] = [];
  const example: number[] = [];
  const tokens: number[] = [];
  const bytes: number[] = [];
  const segs = phase.modalities.map((m) => ({ m, ...batch.segments.get(m)!, scale: phase.scale?.[m] ?? 1, bpt: bpt[m] ?? 0 }));
  const n = batch.ids.length;
  for (let e = 0; e < n; e++) {
    if (phase.unit === 'segment') {
      for (const s of segs) {
        for (let j = s.offsets[e], k = 0; j < s.offsets[e + 1]; j++, k++) {
          ids.push(`${batch.ids[e]}/${s.m}/${k}`);
          example.push(e);
          tokens.push(s.lengths[j]);
          bytes.push(s.lengths[j] * s.bpt);
        }
      }
    } else {
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
      ids.push(batch.ids[e]);
      example.push(e);
      tokens.push(len);
      bytes.push(b);
    }
  }
  const ex = Uint32Array.from(example);
  const sampledRank = new Int32Array(ex.length);
  for (let i = 0; i < ex.length; i++) sampledRank[i] = batch.ranks[ex[i]];
  return { phase, ids, example: ex, sampledRank, tokens: Uint32Array.from(tokens), bytes: Float64Array.from(bytes) };
}

export function buildPhaseItems(batch: Batch, config: Config): PhaseItems[] {
  return config.phases.map((p) => phaseItems(batch, config, p));
}
