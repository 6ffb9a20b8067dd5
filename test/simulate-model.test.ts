// The simulator's pure parts on hand-computed cases: presets, FLOPs, all-to-all time, step time.
import { describe, expect, it } from 'vitest';
import { exchangeTime } from '../src/simulate/alltoall.js';
import {
  blockParams, configFromModel, flopsOf, getGpu, getModel, llmFlopsModel, modelParams, overrideGpu,
  scaleEncoders, totalParams, type GpuPreset, VISION_ENCODER,
} from '../src/simulate/presets.js';
import { gradSyncMs, simulateStep, type StepInput } from '../src/simulate/step.js';
import { InputError } from '../src/errors.js';

// Round numbers so every expected value below can be checked by hand.
const GPU: GpuPreset = {
  name: 'test', peakFlops: 1e12, achievable: 0.5, intraBw: 1e10, interBw: 1e9,
  launchLatency: 5e-5, intraPeerLatency: 1e-5, interPeerLatency: 1e-4, memoryGB: 1,
};
// 5e11 FLOP/s sustained = 5e8 FLOP per ms: items of 1, 2, 3 GFLOP take 2, 4, 6 ms.
const flops = new Float64Array([1e9, 2e9, 3e9]);

function tiny(rank: number[], moves: { src: number[]; dst: number[]; bytes: number[] } | null, ranksPerNode = 1): StepInput {
  return {
    ranks: 2, ranksPerNode, tokens: 3000, gradSyncMs: 0,
    phases: [{ name: 'llm', flops, rank: Int32Array.from(rank) }],
    exchanges: moves ? [{
      name: 'x', scheme: 'flat',
      flows: { src: Int32Array.from(moves.src), dst: Int32Array.from(moves.dst), bytes: Float64Array.from(moves.bytes) },
    }] : [],
  };
}

describe('step time, 2 ranks and 3 items', () => {
  it('unbalanced sampled layout: the slowest rank sets the phase time', () => {
    const r = simulateStep(tiny([0, 1, 1], null), GPU);
    // rank 0: 2 ms; rank 1: 4 + 6 = 10 ms.
    expect(r.phases[0]!.computeMaxMs).toBeCloseTo(10, 12);
    expect(r.phases[0]!.computeMeanMs).toBeCloseTo(6, 12);
    expect(r.phases[0]!.idleFraction).toBeCloseTo(0.4, 12);
    expect(r.phases[0]!.lowerBoundMs).toBeCloseTo(6, 12); // max(mean 6, largest item 6)
    expect(r.stepMs).toBeCloseTo(10, 12);
    expect(r.exchangeMs).toBe(0);
    expect(r.tokensPerSec).toBeCloseTo(3000 / 0.01, 6);
    // 6 GFLOP in 10 ms on 2 GPUs of 1 PFLOP/s... 1e12: 6e9 / (0.01 × 2 × 1e12) = 0.3.
    expect(r.mfu).toBeCloseTo(0.3, 12);
  });

  it('balanced layout plus one inter-node move', () => {
    // Item 1 (4 ms) moves from rank 1 to rank 0: loads 6 / 6. One node per rank: 1 MB over the NIC.
    const r = simulateStep(tiny([0, 0, 1], { src: [0, 1, 1], dst: [0, 0, 1], bytes: [5e5, 1e6, 7e5] }), GPU);
    expect(r.computeMs).toBeCloseTo(6, 12);
    // launch 0.05 ms + 1e6 B / 1e9 B/s = 1 ms + one peer × 0.1 ms.
    expect(r.exchangeMs).toBeCloseTo(1.15, 12);
    expect(r.exchanges[0]!).toMatchObject({ movedItems: 1, bytes: 1e6, interNodeBytes: 1e6, intraNodeBytes: 0 });
    expect(r.stepMs).toBeCloseTo(7.15, 12);
    expect(r.mfu).toBeCloseTo(6e9 / (7.15e-3 * 2e12), 12);
  });

  it('the same move inside a node uses NVLink', () => {
    const r = simulateStep(tiny([0, 0, 1], { src: [1], dst: [0], bytes: [1e6] }, 2), GPU);
    // launch 0.05 ms + 1e6 / 1e10 s = 0.1 ms + one peer × 0.01 ms.
    expect(r.exchangeMs).toBeCloseTo(0.16, 12);
    expect(r.exchanges[0]!.intraNodeBytes).toBe(1e6);
  });

  it('padding: a rank costs count × its longest item', () => {
    const input = tiny([0, 1, 1], null);
    input.phases[0]!.padding = true;
    const r = simulateStep(input, GPU);
    expect(r.phases[0]!.computeMaxMs).toBeCloseTo(12, 12); // 2 items × 6 ms
  });
});

describe('all-to-all time', () => {
  const R = 16, G = 4;
  it('is exactly zero when nothing moves, in both schemes', () => {
    const src = Int32Array.from({ length: 50 }, (_, i) => i % R);
    const flows = { src, dst: src.slice(), bytes: new Float64Array(50).fill(1e6) };
    for (const scheme of ['flat', 'nodewise', 'auto'] as const) {
      const t = exchangeTime(flows, R, G, GPU, scheme);
      expect(t).toMatchObject({ ms: 0, flatMs: 0, nodewiseMs: 0, movedItems: 0, bytes: 0, interNodeBytes: 0, intraNodeBytes: 0 });
    }
  });

  it('node-wise: intra-node stage to the rail GPU, then one message per node', () => {
    // Rank 0 (node 0, local 0) sends 1 MB to each of ranks 5, 6, 7 (node 1, locals 1..3).
    const flows = { src: Int32Array.from([0, 0, 0]), dst: Int32Array.from([5, 6, 7]), bytes: Float64Array.from([1e6, 1e6, 1e6]) };
    const flat = exchangeTime(flows, R, G, GPU, 'flat');
    // flat: NIC of rank 0 carries 3 MB to 3 peers: 0.05 + 3 + 0.3 ms.
    expect(flat.ms).toBeCloseTo(3.35, 12);
    const nw = exchangeTime(flows, R, G, GPU, 'nodewise');
    // stage 1: rank 0 → ranks 1, 2, 3 (1 MB each over NVLink): 0.05 + 0.3 + 3 × 0.01 = 0.38 ms.
    // stage 2: ranks 1, 2, 3 each → one peer, 1 MB over its own NIC: 0.05 + 1 + 0.1 = 1.15 ms.
    expect(nw.ms).toBeCloseTo(1.53, 12);
    expect(nw.interNodeBytes).toBe(3e6);
    expect(nw.bytes).toBe(flat.bytes);
    // auto picks the faster schedule and still reports both.
    const auto = exchangeTime(flows, R, G, GPU, 'auto');
    expect(auto).toMatchObject({ used: 'nodewise', flatMs: flat.ms, nodewiseMs: nw.ms });
    expect(auto.ms).toBe(nw.ms);
  });

  it('aggregates items of the same pair into one message', () => {
    const flows = { src: Int32Array.from([0, 0]), dst: Int32Array.from([1, 1]), bytes: Float64Array.from([1e6, 1e6]) };
    const t = exchangeTime(flows, R, G, GPU, 'flat');
    expect(t.ms).toBeCloseTo(0.05 + 0.2 + 0.01, 12);
    expect(t.movedItems).toBe(2);
  });
});

describe('presets and FLOPs', () => {
  it('parameter counts land in the advertised classes', () => {
    expect(totalParams(VISION_ENCODER) / 1e9).toBeCloseTo(0.63, 2);
    expect(totalParams(getModel('mllm-7b').llm) / 1e9).toBeGreaterThan(7);
    expect(totalParams(getModel('mllm-7b').llm) / 1e9).toBeLessThan(8);
    expect(totalParams(getModel('mllm-72b').llm) / 1e9).toBeCloseTo(72.7, 0);
    expect(modelParams(getModel('mllm-84b')) / 1e9).toBeGreaterThan(83);
    expect(modelParams(getModel('mllm-84b')) / 1e9).toBeLessThan(85);
  });

  it('LLM FLOPs: 6·params per token plus causal attention', () => {
    const llm = getModel('mllm-7b').llm;
    const f = llmFlopsModel(llm);
    expect(f.linear).toBe(6 * (blockParams(llm) + llm.vocab * llm.hidden));
    expect(f.quadratic).toBe(6 * llm.layers * llm.hidden);
    expect(flopsOf(f, 1000)).toBe(f.linear * 1000 + f.quadratic * 1e6);
  });

  it('config --model: costs in GFLOP, scales from the projector merge', () => {
    const c = configFromModel(getModel('mllm-84b'), 64, 8);
    expect(c.ranks).toBe(64);
    expect(c.phases.map((p) => p.name)).toEqual(['vision', 'audio', 'llm']);
    const llm = c.phases[2]!;
    expect(llm.unit).toBe('example');
    expect(llm.scale).toEqual({ image: 0.25, video: 0.25, audio: 0.5 });
    expect(llm.cost.perToken).toBeCloseTo(llmFlopsModel(getModel('mllm-84b').llm).linear / 1e9, 9);
    expect(c.bytesPerToken).toEqual({ text: 8, image: 1176, video: 1176, audio: 512 });
  });

  it('encoders twice as large double their layers', () => {
    const m = scaleEncoders(getModel('mllm-7b'), 2);
    expect(m.encoders.map((e) => e.layers)).toEqual([64, 64]);
  });

  it('gradient sync: one hierarchical all-reduce of bf16 params, times the exposed share', () => {
    // 1e9 params → 2e9 B. 2 nodes of 4: intra 2·2e9·3/4 / 1e10 = 0.3 s; inter 2·2e9·(1/2)/4 / 1e9 = 0.5 s.
    expect(gradSyncMs(1e9, 8, 4, GPU, 1)).toBeCloseTo(800, 9);
    expect(gradSyncMs(1e9, 8, 4, GPU, 0.1)).toBeCloseTo(80, 9);
    expect(gradSyncMs(1e9, 1, 4, GPU, 1)).toBe(0);
  });

  it('bad presets and overrides are one-line InputErrors', () => {
    expect(() => getModel('mllm-999b')).toThrow(InputError);
    expect(() => getModel('mllm-999b')).toThrow(/unknown model preset "mllm-999b" \(known: mllm-7b, mllm-32b, mllm-72b, mllm-84b\)/);
    expect(() => getGpu('a100')).toThrow(/unknown GPU preset "a100"/);
    expect(() => overrideGpu(getGpu('h100'), { nvlink: 1 })).toThrow(/unknown GPU field "nvlink"/);
    expect(() => overrideGpu(getGpu('h100'), { interBw: -1 })).toThrow(/must be a positive number/);
    expect(() => overrideGpu(getGpu('h100'), { achievable: 2 })).toThrow(/in \(0, 1\]/);
    expect(() => configFromModel(getModel('mllm-7b'), 0, 8)).toThrow(/--ranks: must be a positive integer/);
    expect(() => scaleEncoders(getModel('mllm-7b'), 0)).toThrow(/--encoder-scale/);
    expect(overrideGpu(getGpu('h100'), { interBw: 20e9 }).interBw).toBe(20e9);
  });
});
