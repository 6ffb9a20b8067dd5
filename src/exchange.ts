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
  // Moved items grouped into (src, dst) pairs, emitted by src then dst ascending; each pair's
  // bytes are summed in item order. Each loop is a small function (optimised on its first
  // calls, not by stack replacement).
  const moved = new Uint32Array(sampledRank.length);
  const sums = { moved: 0, total: 0, inter: 0 };
  movedItems(sampledRank, phaseRank, bytes, ranksPerNode, moved, sums);
  // Moved items by (src asc, dst asc, index asc): two stable counting passes (dst, then src).
  const byDst = countingPass(phaseRank, moved, sums.moved, R);
  const bySrc = countingPass(sampledRank, byDst, sums.moved, R);
  const pairs = pairsOf(sampledRank, phaseRank, bytes, bySrc, sums.moved);
  return { movedItems: sums.moved, bytes: sums.total, interNodeBytes: sums.inter, intraNodeBytes: sums.total - sums.inter, pairs };
}

function movedItems(
  sampledRank: Int32Array, phaseRank: Int32Array, bytes: Float64Array, ranksPerNode: number, moved: Uint32Array,
  sums: { moved: number; total: number; inter: number },
): void {
  let m = 0, total = 0, inter = 0;
  for (let i = 0; i < sampledRank.length; i++) {
    const s = sampledRank[i], d = phaseRank[i];
    if (s === d) continue;
    moved[m++] = i;
    total += bytes[i];
    if (Math.floor(s / ranksPerNode) !== Math.floor(d / ranksPerNode)) inter += bytes[i];
  }
  sums.moved = m; sums.total = total; sums.inter = inter;
}

function pairsOf(sampledRank: Int32Array, phaseRank: Int32Array, bytes: Float64Array, bySrc: Uint32Array, m: number): [number, number, number, number][] {
  const pairs: [number, number, number, number][] = [];
  for (let a = 0; a < m; ) {
    const i0 = bySrc[a];
    const s = sampledRank[i0], d = phaseRank[i0];
    let b = a, w = 0;
    while (b < m && sampledRank[bySrc[b]] === s && phaseRank[bySrc[b]] === d) { w += bytes[bySrc[b]]; b++; }
    pairs.push([s, d, b - a, w]);
    a = b;
  }
  return pairs;
}

/** The items within[0..m), stably reordered by key[item] ∈ [0, buckets) ascending. */
function countingPass(key: Int32Array, within: Uint32Array, m: number, buckets: number): Uint32Array {
  const start = new Uint32Array(buckets + 1);
  for (let j = 0; j < m; j++) start[key[within[j]] + 1]++;
  for (let b = 0; b < buckets; b++) start[b + 1] += start[b];
  const out = new Uint32Array(m);
  for (let j = 0; j < m; j++) { const i = within[j]; out[start[key[i]]++] = i; }
  return out;
}
