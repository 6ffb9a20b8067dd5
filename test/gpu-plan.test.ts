// GPU plans equal CPU plans, byte for byte, on random batches and on the built-in workload, for
// every algorithm that uses the accelerator (sort for all; prefix sums and candidate cuts for
// padded and for best on padded phases). Runs for real on llvmpipe in CI: no adapter = failure.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpuAccelerator, type Accelerator } from '../src/primitives/accelerator.js';
import { getAccelerator } from '../src/backend.js';
import { createGpuAccelerator } from '../src/gpu/accelerator.js';
import { plan } from '../src/index.js';
import type { Algorithm, Config, Example } from '../src/types.js';
import { generateWorkload } from '../src/workload.js';
import { mulberry, randomCase, testSeed } from './helpers.js';

let gpu: Accelerator;
beforeAll(async () => {
  gpu = await getAccelerator('gpu'); // throws (and fails every test) when no adapter is found
  console.log(`GPU plan tests on adapter: ${gpu.adapter}`);
});
afterAll(() => gpu?.destroy());

const phasesJson = (p: { phases: unknown }) => JSON.stringify(p.phases);

describe('GPU plan = CPU plan', () => {
  it('uses a real WebGPU adapter', () => {
    expect(gpu.backend).toBe('webgpu');
    expect(gpu.adapter.length).toBeGreaterThan(0);
  });

  it('on random batches (plain, padded, equal counts, capped) for every algorithm', async () => {
    const rand = mulberry(testSeed('gpu plans'));
    const variants = [{}, { padding: true }, { equalCount: true }, { cap: true }];
    for (let trial = 0; trial < 12; trial++) {
      const { examples, config } = randomCase(rand, variants[trial % variants.length]);
      for (const algorithm of ['lpt', 'padded', 'best'] as Algorithm[]) {
        const run = async (a: Accelerator) => {
          try { return phasesJson(await plan(examples, config, { algorithm }, a)); } catch (e) { return `error: ${(e as Error).message}`; }
        };
        const c = await run(cpuAccelerator), g = await run(gpu);
        expect(g, `${algorithm}, trial ${trial}`).toBe(c);
      }
    }
  });

  it('on the built-in workload (sizes off the workgroup multiples) including padded phases', async () => {
    for (const [examples, ranks] of [[1, 1], [37, 5], [1500, 48]] as const) {
      const { config, examples: ex } = generateWorkload({ ranks, examples, seed: examples });
      for (const ph of config.phases) delete ph.maxTokensPerRank;
      const padded = structuredClone(config);
      padded.phases[2].padding = true;
      for (const cfg of [config, padded]) {
        for (const algorithm of ['padded', 'best'] as Algorithm[]) {
          let c: string, g: string;
          try { c = phasesJson(await plan(ex, cfg, { algorithm }, cpuAccelerator)); } catch (e) { c = (e as Error).message; }
          try { g = phasesJson(await plan(ex, cfg, { algorithm }, gpu)); } catch (e) { g = (e as Error).message; }
          expect(g, `${examples} examples, ${ranks} ranks, ${algorithm}`).toBe(c);
        }
      }
    }
  });

  it('with micro-batches (count, maxTokens, both; padded too) on random batches and the workload', async () => {
    const rand = mulberry(testSeed('gpu micro-batches'));
    const cases: { examples: Example[]; config: Config }[] = [];
    for (let trial = 0; trial < 6; trial++) cases.push(randomCase(rand, trial % 2 ? { padding: true } : {}));
    const w = generateWorkload({ ranks: 24, examples: 700, seed: 11 });
    for (const ph of w.config.phases) delete ph.maxTokensPerRank;
    cases.push(w);
    for (const [t, { examples, config }] of cases.entries()) {
      config.phases[0].microBatches = { count: 3 };
      config.phases[1].microBatches = { count: 2, maxTokens: 1 << 20 };
      config.phases[2].microBatches = { maxTokens: Math.max(...examples.map((e) => Number(e.text ?? 0))) * 2 + 4096 };
      for (const algorithm of ['lpt', 'best'] as Algorithm[]) {
        const run = async (a: Accelerator) => {
          try { return phasesJson(await plan(examples, config, { algorithm }, a)); } catch (e) { return `error: ${(e as Error).message}`; }
        };
        const c = await run(cpuAccelerator), g = await run(gpu);
        expect(c, `case ${t}: planned`).toMatch(/"microBatch":/);
        expect(g, `${algorithm}, case ${t}`).toBe(c);
      }
    }
  });

  it('on large phases: the deal and balance rounds run as kernels (balance), best and rounds', async () => {
    const { config, examples } = generateWorkload({ ranks: 64, examples: 20000, seed: 7 });
    for (const ph of config.phases) delete ph.maxTokensPerRank;
    let onDevice = 0;
    const counted: Accelerator = {
      ...gpu,
      balance: async (inp) => {
        const before = gpu.lastCall;
        const out = await gpu.balance(inp);
        if (gpu.lastCall !== before && gpu.lastCall?.submits) onDevice++;
        return out;
      },
    };
    for (const algorithm of ['best', 'rounds'] as const) {
      const c = await plan(examples, config, { algorithm }, cpuAccelerator);
      expect(c.phases.some((p) => /rounds/.test(p.algorithm)), algorithm).toBe(true);
      expect(phasesJson(await plan(examples, config, { algorithm }, counted))).toBe(phasesJson(c));
    }
    expect(onDevice).toBeGreaterThan(0);
  });

  it("on a phase with too few items per rank for best's rounds (its refinement's pair steps scored by the kernel)", async () => {
    const { config, examples } = generateWorkload({ ranks: 4096, examples: 8192, seed: 7 });
    for (const ph of config.phases) delete ph.maxTokensPerRank;
    // Forced onto the kernel: `auto` keeps pair steps on the host on software adapters.
    const forced = await createGpuAccelerator({ pairPath: 'gpu' });
    try {
      let onKernel = 0;
      const counted: Accelerator = {
        ...forced,
        pairSteps: async (a, p) => {
          const out = await forced.pairSteps(a, p);
          if (forced.lastCall?.pairPath === 'gpu') onKernel++;
          return out;
        },
      };
      const c = phasesJson(await plan(examples, config, { algorithm: 'best' }, cpuAccelerator));
      const g = phasesJson(await plan(examples, config, { algorithm: 'best' }, counted));
      expect(onKernel).toBeGreaterThan(0);
      expect(g).toBe(c);
      expect(phasesJson(await plan(examples, config, { algorithm: 'best' }, gpu))).toBe(c); // auto
    } finally {
      forced.destroy();
    }
  });

  it('reports the backend and adapter in stats', async () => {
    const { config, examples } = generateWorkload({ ranks: 8, examples: 64, seed: 2 });
    const p = await plan(examples, config, {}, gpu);
    expect(p.stats.backend).toBe('webgpu');
    expect(p.stats.adapter).toBe(gpu.adapter);
    // The GPU calls' split: upload, wait for the GPU, read back (and kernel time with timestamps).
    const st = p.stats.stages!;
    expect(Object.keys(st).slice(0, 10)).toEqual(['items', 'sort', 'partition', 'placement', 'output', 'scan', 'candidates', 'pairSteps', 'hostPartition', 'balance']);
    expect(Object.keys(st)).toEqual(expect.arrayContaining(['upload', 'gpu', 'readback']));
    // The kernel calls (sorts at least) took time, and within the stages that made them.
    expect(st.upload + st.gpu + st.readback).toBeGreaterThan(0);
    expect(st.upload + st.gpu + st.readback).toBeLessThanOrEqual(st.sort + st.partition + 0.01);
  });
});

describe('backend choice', () => {
  it('auto passes over a software adapter (the CPU plans faster there) and says why in stats', async () => {
    const software = /llvmpipe|lavapipe|softpipe|swiftshader|\(opengles\)/i.test(gpu.adapter);
    const auto = await getAccelerator('auto', { warn: () => {} });
    try {
      const { config, examples } = generateWorkload({ ranks: 8, examples: 64, seed: 3 });
      const p = await plan(examples, config, {}, auto);
      expect(auto.backend).toBe(software ? 'cpu' : 'webgpu');
      expect(p.stats.backendReason).toMatch(software ? /^auto: .* is a software adapter, where the CPU path plans faster/ : /^auto: a hardware WebGPU adapter/);
      expect((await plan(examples, config, {}, gpu)).stats.backendReason).toBe('backend gpu');
      expect(phasesJson(p)).toBe(phasesJson(await plan(examples, config, {}, gpu)));
    } finally {
      auto.destroy();
    }
  });
});

describe('CLI --backend gpu', () => {
  it('prints the same phases as --backend cpu, byte for byte', async () => {
    const { run } = await import('../src/cli.js');
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const { toJsonl } = await import('../src/workload.js');
    const dir = mkdtempSync(join(tmpdir(), 'postbalance-gpu-'));
    const { config, examples } = generateWorkload({ ranks: 24, examples: 700, seed: 5 });
    writeFileSync(join(dir, 'b.jsonl'), toJsonl(examples));
    writeFileSync(join(dir, 'c.json'), JSON.stringify(config));
    const cli = async (backend: string) => {
      let out = '', err = '';
      const code = await run(['plan', '--batch', join(dir, 'b.jsonl'), '--config', join(dir, 'c.json'), '--backend', backend],
        { stdout: (s) => { out += s; }, stderr: (s) => { err += s; }, readStdin: async () => '' });
      return { code, plan: JSON.parse(out), err };
    };
    const c = await cli('cpu'), g = await cli('gpu');
    expect(g.code).toBe(0);
    expect(g.plan.stats.backend).toBe('webgpu');
    expect(JSON.stringify(g.plan.phases)).toBe(JSON.stringify(c.plan.phases));
  });
});
