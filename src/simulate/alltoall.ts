// Time of one all-to-all exchange between two layouts, flat or node-wise (two-level).
//
// Model (per rank r, bytes counted per direction; a link's time is max(out, in) / bandwidth):
// - flat: every rank sends straight to every destination. NVLink and the NIC work concurrently,
//   so a rank finishes after max(intra time, inter time), each = bytes/bandwidth + peers × per-peer
//   overhead. The collective ends when the slowest rank does, plus one launch latency.
// - nodewise: stage 1 inside each node moves every byte to the local GPU whose index matches its
//   final destination's (and delivers same-node traffic); stage 2 sends rail to rail across nodes,
//   one message per destination node instead of one per destination rank. The stages run one
//   after the other. Inter-node bytes are the same; what drops is the per-peer overhead
//   (R−1 peers → nodes−1) and the skew of a rank's NIC load.
import type { GpuPreset } from './presets.js';

/** `auto`: whichever of the two is faster for this exchange (a trainer can time both once). */
export type ExchangeScheme = 'flat' | 'nodewise' | 'auto';
export const EXCHANGE_SCHEMES: readonly ExchangeScheme[] = ['flat', 'nodewise', 'auto'];

/** Per-item flows of one exchange: item i moves bytes[i] from src[i] to dst[i] (src = dst: stays). */
export interface Flows {
  src: Int32Array;
  dst: Int32Array;
  bytes: Float64Array;
}

export interface ExchangeTime {
  /** Time under the requested scheme. */
  ms: number;
  /** The schedule that `ms` is for (`auto` resolves to one of the two). */
  used: 'flat' | 'nodewise';
  /** Both schedules' times, for comparison. */
  flatMs: number;
  nodewiseMs: number;
  /** Items whose rank changes. */
  movedItems: number;
  bytes: number;
  interNodeBytes: number;
  intraNodeBytes: number;
}

/** Per-rank traffic of one stage, with the number of distinct peers each rank talks to. */
interface StageLoad {
  out: Float64Array;
  in: Float64Array;
  peersOut: Uint32Array;
  peersIn: Uint32Array;
}

function newStage(ranks: number): StageLoad {
  return { out: new Float64Array(ranks), in: new Float64Array(ranks), peersOut: new Uint32Array(ranks), peersIn: new Uint32Array(ranks) };
}

/**
 * Aggregate (src, dst) → bytes, then fill one stage's per-rank loads. Keys are src·R + dst, below
 * 2^53 for any realistic R; pairs are visited in sorted key order so sums are deterministic.
 */
function addPairs(stage: StageLoad, pairs: Map<number, number>, ranks: number): void {
  const keys = [...pairs.keys()].sort((a, b) => a - b);
  for (const k of keys) {
    const b = pairs.get(k)!;
    if (b <= 0) continue;
    const s = Math.floor(k / ranks), d = k - s * ranks;
    stage.out[s]! += b;
    stage.in[d]! += b;
    stage.peersOut[s]!++;
    stage.peersIn[d]!++;
  }
}

function stageSeconds(stage: StageLoad, bw: number, perPeer: number): number {
  let worst = 0;
  for (let r = 0; r < stage.out.length; r++) {
    const t = Math.max(stage.out[r]!, stage.in[r]!) / bw + Math.max(stage.peersOut[r]!, stage.peersIn[r]!) * perPeer;
    if (t > worst) worst = t;
  }
  return worst;
}

function bump(m: Map<number, number>, key: number, b: number): void {
  m.set(key, (m.get(key) ?? 0) + b);
}

export function exchangeTime(flows: Flows, ranks: number, ranksPerNode: number, gpu: GpuPreset, scheme: ExchangeScheme): ExchangeTime {
  const n = flows.src.length;
  let movedItems = 0, bytes = 0, interNodeBytes = 0, intraNodeBytes = 0;
  // Direct pairs split by link (flat), and the two stages of the node-wise schedule.
  const intraDirect = new Map<number, number>();
  const interDirect = new Map<number, number>();
  const stage1 = new Map<number, number>();
  const stage2 = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const s = flows.src[i]!, d = flows.dst[i]!, b = flows.bytes[i]!;
    if (s === d) continue;
    movedItems++;
    bytes += b;
    const sn = Math.floor(s / ranksPerNode), dn = Math.floor(d / ranksPerNode);
    if (sn === dn) {
      intraNodeBytes += b;
      bump(intraDirect, s * ranks + d, b);
      bump(stage1, s * ranks + d, b);
    } else {
      interNodeBytes += b;
      bump(interDirect, s * ranks + d, b);
      // Relay: the GPU on the source node with the destination's local index (it owns that rail).
      const relay = sn * ranksPerNode + (d - dn * ranksPerNode);
      if (relay !== s) bump(stage1, s * ranks + relay, b);
      bump(stage2, relay * ranks + d, b);
    }
  }
  const result: ExchangeTime = {
    ms: 0, used: scheme === 'nodewise' ? 'nodewise' : 'flat', flatMs: 0, nodewiseMs: 0,
    movedItems, bytes, interNodeBytes, intraNodeBytes,
  };
  if (movedItems === 0) return result; // nothing moves: no collective is launched at all
  {
    const intra = newStage(ranks), inter = newStage(ranks);
    addPairs(intra, intraDirect, ranks);
    addPairs(inter, interDirect, ranks);
    let worst = 0;
    for (let r = 0; r < ranks; r++) {
      const ti = Math.max(intra.out[r]!, intra.in[r]!) / gpu.intraBw + Math.max(intra.peersOut[r]!, intra.peersIn[r]!) * gpu.intraPeerLatency;
      const tx = Math.max(inter.out[r]!, inter.in[r]!) / gpu.interBw + Math.max(inter.peersOut[r]!, inter.peersIn[r]!) * gpu.interPeerLatency;
      worst = Math.max(worst, ti, tx);
    }
    result.flatMs = (gpu.launchLatency + worst) * 1e3;
  }
  {
    const s1 = newStage(ranks), s2 = newStage(ranks);
    addPairs(s1, stage1, ranks);
    addPairs(s2, stage2, ranks);
    let seconds = 0;
    if (stage1.size > 0) seconds += gpu.launchLatency + stageSeconds(s1, gpu.intraBw, gpu.intraPeerLatency);
    if (stage2.size > 0) seconds += gpu.launchLatency + stageSeconds(s2, gpu.interBw, gpu.interPeerLatency);
    result.nodewiseMs = seconds * 1e3;
  }
  if (scheme === 'auto') result.used = result.nodewiseMs < result.flatMs ? 'nodewise' : 'flat';
  result.ms = result.used === 'flat' ? result.flatMs : result.nodewiseMs;
  return result;
}
