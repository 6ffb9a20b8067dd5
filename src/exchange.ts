// Stage 6: the exchange a phase's layout implies. Every item whose phase rank differs from the
// rank that sampled it moves once; a trainer needs the per-pair counts to size its all-to-all,
// and the intra/inter-node split tells how much crosses the slower links.
import { sortDescCpu } from './accel.js';
import type { ExchangeSummary } from './types.js';

export function exchangeMatrix(
  sampledRank: Int32Array,
  phaseRank: Int32Array,
  bytes: Float64Array,
  R: number,
  ranksPerNode: number,
): ExchangeSummary {
  const n = sampledRank.length;
  let movedItems = 0, total = 0, inter = 0;
  // Moved items keyed by src·R + dst (< 2^28 for R ≤ 16,384), radix-sorted (stable, so each
  // pair's bytes are summed in item order), emitted in key ascending order.
  const moved = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const s = sampledRank[i], d = phaseRank[i];
    if (s === d) continue;
    moved[movedItems++] = i;
    total += bytes[i];
    if (Math.floor(s / ranksPerNode) !== Math.floor(d / ranksPerNode)) inter += bytes[i];
  }
  const key = new Uint32Array(movedItems);
  for (let t = 0; t < movedItems; t++) { const i = moved[t]; key[t] = sampledRank[i] * R + phaseRank[i]; }
  const idx = sortDescCpu(key);
  const pairs: [number, number, number, number][] = [];
  for (let e = movedItems; e > 0; ) {
    const k = key[idx[e - 1]];
    let s = e;
    while (s > 0 && key[idx[s - 1]] === k) s--;
    let b = 0;
    for (let t = s; t < e; t++) b += bytes[moved[idx[t]]];
    pairs.push([Math.floor(k / R), k % R, e - s, b]);
    e = s;
  }
  return { movedItems, bytes: total, interNodeBytes: inter, intraNodeBytes: total - inter, pairs };
}
