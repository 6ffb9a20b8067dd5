// The strategies on real plans: ordering on realistic batches, monotonicity, zero exchange when
// nothing moves, hand-checked tiny batches, the CLI contract and its errors.
import { describe, expect, it } from 'vitest';
import type { CliIO } from '../src/cli.js';
import { main as configMain } from '../src/commands/config.js';
import { main as simulateMain } from '../src/commands/simulate.js';
import { InputError } from '../src/errors.js';
import { batchFromExamples, parseConfig } from '../src/input.js';
import { buildPhaseItems } from '../src/items.js';
import { configFromModel, flopsOf, getGpu, getModel, llmFlopsModel, phaseModels, type ModelPreset } from '../src/simulate/presets.js';
import { simulateStep, type PhaseLayout } from '../src/simulate/step.js';
import { simulateBatch } from '../src/simulate/strategies.js';
import { generateWorkload, toJsonl } from '../src/workload.js';
import type { Config, Example } from '../src/types.js';

const gpu = getGpu('h100');

function workload(model: ModelPreset, ranks: number, perRank: number, seed: number) {
  const G = Math.min(8, ranks);
  const { examples } = generateWorkload({ ranks, ranksPerNode: G, examples: ranks * perRank, seed });
  const config = configFromModel(model, ranks, G, ['image', 'audio']);
  return { examples, config, batch: batchFromExamples(examples, config) };
}

function io(stdin = '') {
  const out: string[] = [], err: string[] = [];
  const cli: CliIO = { stdout: (s) => out.push(s), stderr: (s) => err.push(s), readStdin: async () => stdin };
  return { cli, out: () => out.join(''), err: () => err.join('') };
}

/** The dispatcher's contract (src/cli.ts): InputError → its message on one line, exit 1. */
async function run(argv: string[], cli: CliIO): Promise<number> {
  const [cmd, ...args] = argv;
  try {
    return await (cmd === 'config' ? configMain : simulateMain)(args, cli);
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    cli.stderr(`postbalance: ${e.message}\n`);
    return 1;
  }
}

/** Tiny private PRNG for the tests (the result-shaping code never draws random numbers). */
function lcg(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

describe('strategies on realistic batches', () => {
  for (const [name, ranks, seed] of [['mllm-84b', 64, 1], ['mllm-7b', 32, 2], ['mllm-32b', 16, 3], ['mllm-7b', 128, 4]] as const) {
    it(`orchestrated ≤ llm-only ≤ none in step time: ${name}, ${ranks} ranks, seed ${seed}`, async () => {
      const model = getModel(name);
      const { batch, config } = workload(model, ranks, 8, seed);
      const sim = await simulateBatch(batch, config, { model, gpu });
      const [none, llmOnly, orch] = sim.strategies;
      expect(sim.strategies.map((s) => s.name)).toEqual(['none', 'llm-only', 'orchestrated']);
      expect(orch!.stepMs).toBeLessThanOrEqual(llmOnly!.stepMs);
      expect(llmOnly!.stepMs).toBeLessThanOrEqual(none!.stepMs);
      // Same batch, same work: only the time differs.
      expect(orch!.flops).toBe(none!.flops);
      expect(orch!.mfu).toBeGreaterThan(none!.mfu);
      expect(none!.exchangeMs).toBe(0);
      // llm-only leaves the encoders exactly as sampled.
      expect(llmOnly!.phases[0]!.computeMaxMs).toBe(none!.phases[0]!.computeMaxMs);
      expect(llmOnly!.phases[2]!.computeMaxMs).toBe(orch!.phases[2]!.computeMaxMs);
      expect(llmOnly!.exchanges[0]!.bytes).toBe(0); // no raw input moves
      expect(orch!.exchanges[0]!.bytes).toBeGreaterThan(0);
    });
  }

  it('is deterministic for the same batch', async () => {
    const model = getModel('mllm-7b');
    const { batch, config } = workload(model, 16, 8, 9);
    const a = await simulateBatch(batch, config, { model, gpu });
    const b = await simulateBatch(batch, config, { model, gpu });
    expect(a.strategies.map((s) => [s.stepMs, s.exchangeMs])).toEqual(b.strategies.map((s) => [s.stepMs, s.exchangeMs]));
  });
});

describe('monotonicity: more imbalance never makes `none` faster', () => {
  it('moving items onto the busiest rank of a phase, one at a time', () => {
    const model = getModel('mllm-7b');
    const { batch, config } = workload(model, 16, 8, 5);
    const items = buildPhaseItems(batch, config);
    const pm = phaseModels(model);
    const layouts: PhaseLayout[] = items.map((it, p) => ({
      name: it.phase.name, rank: Int32Array.from(it.sampledRank),
      flops: Float64Array.from(it.tokens, (L) => flopsOf(pm.find((m) => m.name === it.phase.name)!.flops, L)),
    }));
    const rand = lcg(7);
    const step = () => simulateStep({ ranks: 16, ranksPerNode: 8, phases: layouts, exchanges: [], tokens: 1, gradSyncMs: 0 }, gpu);
    let prev = step();
    for (let k = 0; k < 200; k++) {
      const p = Math.floor(rand() * layouts.length);
      const loads = prev.loads[p]!;
      let busiest = 0;
      for (let r = 1; r < 16; r++) if (loads[r]! > loads[busiest]!) busiest = r;
      const i = Math.floor(rand() * layouts[p]!.rank.length);
      layouts[p]!.rank[i] = busiest;
      const next = step();
      expect(next.stepMs).toBeGreaterThanOrEqual(prev.stepMs);
      expect(next.phases[p]!.maxOverMean).toBeGreaterThanOrEqual(prev.phases[p]!.maxOverMean - 1e-12);
      prev = next;
    }
  });

  it('resampling an example onto the busiest rank never speeds up `none`', async () => {
    const model = getModel('mllm-7b');
    const { examples, config } = workload(model, 8, 4, 6);
    const ex: Example[] = examples.map((e) => ({ ...e }));
    let prev = Infinity * -1;
    for (let k = 0; k < 6; k++) {
      const sim = await simulateBatch(batchFromExamples(ex, config), config, { model, gpu });
      const none = sim.strategies[0]!;
      expect(none.stepMs).toBeGreaterThanOrEqual(prev);
      prev = none.stepMs;
      const llm = none.loads[2]!;
      let busiest = 0;
      for (let r = 1; r < 8; r++) if (llm[r]! > llm[busiest]!) busiest = r;
      const victim = ex.findIndex((e) => e.rank !== busiest && typeof e.text === 'number');
      ex[victim]!.rank = busiest;
    }
  });
});

describe('tiny batches by hand', () => {
  const model = getModel('mllm-7b');
  const f = llmFlopsModel(model.llm);
  const perMs = (gpu.peakFlops * gpu.achievable) / 1e3;
  const textOnly: Config = {
    ranks: 2, ranksPerNode: 1,
    phases: [{ name: 'llm', modalities: ['text'], unit: 'example', cost: { perToken: f.linear / 1e9, perTokenSquared: f.quadratic / 1e9 } }],
    bytesPerToken: { text: 8 },
  };

  it('2 ranks, 3 items: compute, exchange and step time', async () => {
    const ex = [{ id: 'a', rank: 0, text: 1000 }, { id: 'b', rank: 0, text: 600 }, { id: 'c', rank: 1, text: 400 }];
    const sim = await simulateBatch(batchFromExamples(ex, textOnly), textOnly, { model, gpu, syncExposed: 0 });
    const [none, , orch] = sim.strategies;
    const fa = flopsOf(f, 1000), fb = flopsOf(f, 600), fc = flopsOf(f, 400);
    // Sampled: rank 0 = a + b, rank 1 = c.
    expect(none!.phases[0]!.computeMaxMs).toBeCloseTo((fa + fb) / perMs, 9);
    expect(none!.phases[0]!.computeMeanMs).toBeCloseTo((fa + fb + fc) / 2 / perMs, 9);
    expect(none!.stepMs).toBeCloseTo((fa + fb) / perMs, 9);
    // Balanced: {a} stays on rank 0, {b, c} on rank 1 (attention is quadratic: 600² + 400² < 1000²).
    expect(fb + fc).toBeLessThan(fa);
    expect(orch!.phases[0]!.computeMaxMs).toBeCloseTo(fa / perMs, 9);
    // Only b moves: 600 text tokens × 8 B across nodes (one rank per node).
    const x = orch!.exchanges[1]!;
    expect(x).toMatchObject({ movedItems: 1, bytes: 4800, interNodeBytes: 4800 });
    // node-wise with one GPU per node is stage 2 only: launch + bytes / NIC + one peer.
    expect(x.ms).toBeCloseTo((gpu.launchLatency + 4800 / gpu.interBw + gpu.interPeerLatency) * 1e3, 9);
    expect(orch!.exchanges[2]!.ms).toBe(0); // text has no gradient to send back
    expect(orch!.stepMs).toBeCloseTo(fa / perMs + x.ms, 9);
    expect(sim.tokens).toBe(2000);
    expect(orch!.tokensPerSec).toBeCloseTo(2000 / (orch!.stepMs / 1e3), 6);
  });

  it('exchange time is zero when nothing moves', async () => {
    const config = configFromModel(model, 2, 2, ['image', 'audio']);
    const ex = [
      { id: 'a', rank: 0, text: 300, image: [576], audio: [800] },
      { id: 'b', rank: 1, text: 300, image: [576], audio: [800] },
    ];
    const sim = await simulateBatch(batchFromExamples(ex, config), config, { model, gpu });
    for (const s of sim.strategies) {
      expect(s.exchangeMs).toBe(0);
      for (const x of s.exchanges) expect(x).toMatchObject({ ms: 0, bytes: 0, movedItems: 0 });
      expect(s.stepMs).toBeCloseTo(sim.strategies[0]!.stepMs, 9);
    }
  });

  it('a batch without audio drops the empty phase instead of failing', async () => {
    const config = configFromModel(model, 2, 2);
    const ex = [{ id: 'a', rank: 0, text: 300, image: [576] }, { id: 'b', rank: 0, text: 30 }];
    const sim = await simulateBatch(batchFromExamples(ex, config), config, { model, gpu });
    expect(sim.strategies[0]!.phases.map((p) => p.name)).toEqual(['vision', 'llm']);
  });
});

describe('bad configs and presets', () => {
  const model = getModel('mllm-84b');
  const ex = [{ id: 'a', rank: 0, text: 10, image: [576] }];
  it('a phase the model does not know, or the wrong unit, is a clear error', async () => {
    const bad = configFromModel(model, 1, 1);
    bad.phases[0]!.name = 'pixels';
    await expect(simulateBatch(batchFromExamples(ex, bad), bad, { model, gpu }))
      .rejects.toThrow(/config phase "pixels": model mllm-84b has no such component \(phases: vision, audio, llm\)/);
    const unit = configFromModel(model, 1, 1);
    unit.phases[0]!.unit = 'example';
    await expect(simulateBatch(batchFromExamples(ex, unit), unit, { model, gpu }))
      .rejects.toThrow(/config phase "vision": unit must be "segment"/);
    const noLlm = configFromModel(model, 1, 1);
    noLlm.phases = noLlm.phases.slice(0, 1);
    await expect(simulateBatch(batchFromExamples([{ id: 'a', rank: 0, image: [576] }], noLlm), noLlm, { model, gpu }))
      .rejects.toThrow(/no "llm" phase/);
  });

  it('CLI: one-line errors, exit 1, nothing on stdout', async () => {
    const cases: [string[], RegExp][] = [
      [['simulate', '--sweep', '8', '--model', 'gpt-5'], /unknown model preset "gpt-5"/],
      [['simulate', '--sweep', '8', '--gpu', 'v100'], /unknown GPU preset "v100"/],
      [['simulate', '--sweep', '8,x'], /--sweep: expected a comma-separated list of positive integers/],
      [['simulate', '--sweep', '8', '--set', 'interBw=0'], /--set interBw: must be a positive number/],
      [['simulate', '--sweep', '8', '--set', 'warp=3'], /unknown GPU field "warp"/],
      [['simulate', '--sweep', '8', '--scheme', 'ring'], /--scheme: must be one of flat, nodewise, auto/],
      [['simulate', '--sweep', '8', '--sync-exposed', '2'], /--sync-exposed: must be a number in \[0, 1\]/],
      [['simulate', '--sweep', '8', '--load-ranks', '16'], /--load-ranks: 16 is not one of the sweep's rank counts/],
      [['simulate', '--sweep', '8', '--batch', 'x'], /--batch and --sweep do not go together/],
      [['simulate', '--frobnicate'], /unknown option "--frobnicate"/],
      [['simulate'], /give --batch FILE/],
      [['simulate', '--batch', '-'], /--batch needs --config FILE or --ranks N/],
      [['simulate', '--batch', '/nonexistent.jsonl', '--ranks', '2'], /--batch "\/nonexistent.jsonl": cannot read \(ENOENT\)/],
      [['simulate', '--batch', '-', '--config', '/nonexistent.json'], /--config "\/nonexistent.json": cannot read \(ENOENT\)/],
      [['config'], /config: --model is required/],
      [['config', '--model', 'mllm-84b', '--ranks', '0'], /--ranks: must be an integer ≥ 1/],
    ];
    for (const [argv, re] of cases) {
      const t = io('{"id":"a","rank":0,"text":5}\n');
      const code = await run(argv, t.cli);
      expect(code, argv.join(' ')).toBe(1);
      expect(t.out()).toBe('');
      expect(t.err()).toMatch(re);
      expect(t.err().trim().split('\n')).toHaveLength(1);
    }
  });
});

describe('CLI contract', () => {
  it('config --model prints a config the planner accepts, with costs in GFLOP', async () => {
    const t = io();
    expect(await run(['config', '--model', 'mllm-84b', '--ranks', '16', '--ranks-per-node', '8'], t.cli)).toBe(0);
    const config = parseConfig(t.out());
    expect(config).toEqual(configFromModel(getModel('mllm-84b'), 16, 8));
  });

  it('simulate --batch - --json: the documented shape', async () => {
    const { examples } = generateWorkload({ ranks: 8, examples: 64, seed: 3 });
    const t = io(toJsonl(examples));
    expect(await run(['simulate', '--batch', '-', '--ranks', '8', '--model', 'mllm-7b', '--json'], t.cli)).toBe(0);
    const out = JSON.parse(t.out());
    expect(out).toMatchObject({ model: 'mllm-7b', gpu: 'h100', ranks: 8, examples: 64 });
    expect(out.strategies.map((s: { name: string }) => s.name)).toEqual(['none', 'llm-only', 'orchestrated']);
    for (const s of out.strategies) {
      for (const k of ['stepMs', 'tokensPerSec', 'mfu', 'speedup', 'exchangeMs', 'computeMs', 'gradSyncMs']) expect(typeof s[k]).toBe('number');
      expect(s.phases.map((p: { name: string }) => p.name)).toEqual(['vision', 'audio', 'llm']);
      for (const p of s.phases) for (const k of ['computeMaxMs', 'computeMeanMs', 'maxOverMean', 'idleFraction']) expect(typeof p[k]).toBe('number');
    }
    expect(t.err()).toBe('');
  });

  it('simulate --batch with a foreign cost model says so on stderr', async () => {
    const { examples, config } = generateWorkload({ ranks: 4, examples: 32, seed: 3 });
    const { writeFileSync, mkdtempSync } = await import('node:fs');
    const dir = mkdtempSync('/tmp/pb-sim-');
    writeFileSync(`${dir}/c.json`, JSON.stringify(config));
    const t = io(toJsonl(examples));
    expect(await run(['simulate', '--batch', '-', '--config', `${dir}/c.json`, '--model', 'mllm-7b'], t.cli)).toBe(0);
    expect(t.err()).toMatch(/^note: config costs of vision, audio, llm are not mllm-7b's FLOPs/);
    expect(t.out()).toMatch(/orchestrated/);
  });

  it('a small sweep: table, charts, same output twice', async () => {
    const { mkdtempSync, readFileSync } = await import('node:fs');
    const dir = mkdtempSync('/tmp/pb-sweep-');
    const argv = ['simulate', '--sweep', '8,16', '--examples-per-rank', '4', '--model', 'mllm-7b', '--seed', '2', '--svg', `${dir}/s.svg`];
    const a = io(), b = io();
    expect(await run(argv, a.cli)).toBe(0);
    const svg1 = readFileSync(`${dir}/s.svg`, 'utf8'), load1 = readFileSync(`${dir}/s-load.svg`, 'utf8');
    expect(await run(argv, b.cli)).toBe(0);
    expect(b.out()).toBe(a.out());
    expect(readFileSync(`${dir}/s.svg`, 'utf8')).toBe(svg1);
    expect(readFileSync(`${dir}/s-load.svg`, 'utf8')).toBe(load1);
    expect(svg1).toMatch(/^<svg/);
    expect(load1).toMatch(/16 ranks: per-rank compute/);
    const rows = a.out().trim().split('\n');
    expect(rows).toHaveLength(2 + 2 * 3);
    expect(rows[1]).toMatch(/^ranks\s+strategy\s+step ms/);
    const j = io();
    expect(await run([...argv.slice(0, -2), '--json'], j.cli)).toBe(0);
    const out = JSON.parse(j.out());
    expect(out.sweep.map((s: { ranks: number }) => s.ranks)).toEqual([8, 16]);
  });
});
