// Stage 6: the exchange a phase's layout implies. Every item whose phase rank differs from the
// rank that sampled it moves once; a trainer needs the per-pair counts to size its all-to-all,
// and the intra/inter-node split tells how much crosses the slower links.
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
  // Sparse (src, dst) accumulation keyed by src·R + dst, emitted in key order.
  const acc = new Map<number, { items: number; bytes: number }>();
  for (let i = 0; i < n; i++) {
    const s = sampledRank[i], d = phaseRank[i];
    if (s === d) continue;
    movedItems++;
    total += bytes[i];
    if (Math.floor(s / ranksPerNode) !== Math.floor(d / ranksPerNode)) inter += bytes[i];
    const k = s * R + d;
    const e = acc.get(k);
    if (e) { e.items++; e.bytes += bytes[i]; } else acc.set(k, { items: 1, bytes: bytes[i] });
  }
  const keys = [...acc.keys()].sort((a, b) => a - b);
  const pairs: [number, number, number, number][] = keys.map((k) => {
    const e = acc.get(k)!;
    return [Math.floor(k / R), k % R, e.items, e.bytes];
  });
  return { movedItems, bytes: total, interNodeBytes: inter, intraNodeBytes: total - inter, pairs };
}
