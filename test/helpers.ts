// Test helpers: an independent float64 recomputation of what a plan claims, straight from the
// input examples and the config (no planner code involved), and a seeded random batch maker.
import { expect } from 'vitest';
import type { Config, Example, Plan } from '../src/types.js';

export { mulberry32 as mulberry } from '../src/rng.js';

/** Fresh seed per run unless POSTBALANCE_SEED pins one; logged so a failure can be replayed. */
export function testSeed(label: string): number {
  const env = process.env.POSTBALANCE_SEED;
  const seed = env ? Number(env) : (Date.now() ^ (process.pid << 8)) >>> 0;
  console.log(`[${label}] seed ${seed} (replay with POSTBALANCE_SEED=${seed})`);
  return seed;
}

/** Items of every phase recomputed from the contract's definitions: id → {tokens, cost, rank, bytes, example}. */
export function expectedItems(examples: Example[], config: Config) {
  return config.phases.map((ph) => {
    const items = new Map<string, { tokens: number; cost: number; rank: number; bytes: number; example: string }>();
    const c = (L: number) => (ph.cost.perItem ?? 0) + (ph.cost.perToken ?? 0) * L + (ph.cost.perTokenSquared ?? 0) * L * L;
    // A modality's own field only ("__proto__" would otherwise read Object.prototype); null = none.
    const segs = (ex: Example, m: string): number[] => {
      const v = Object.hasOwn(ex, m) ? ex[m] : undefined;
      return v === undefined || v === null ? [] : Array.isArray(v) ? (v as number[]) : [v as number];
    };
    const bpt = (m: string) => config.bytesPerToken?.[m] ?? 0;
    for (const ex of examples) {
      if (ph.unit === 'segment') {
        for (const m of ph.modalities) segs(ex, m).forEach((L, k) => items.set(`${ex.id}/${m}/${k}`, { tokens: L, cost: c(L), rank: ex.rank, bytes: L * bpt(m), example: String(ex.id) }));
      } else {
        let L = 0, b = 0, any = false;
        for (const m of ph.modalities) for (const s of segs(ex, m)) { const l = Math.ceil(s * (ph.scale?.[m] ?? 1)); L += l; b += l * bpt(m); any = true; }
        if (any) items.set(String(ex.id), { tokens: L, cost: c(L), rank: ex.rank, bytes: b, example: String(ex.id) });
      }
    }
    return items;
  });
}

/** Checks every invariant a user relies on; returns per-phase max costs. */
/** `sampled`: the plan is the sampled layout (`none`), which need not meet caps or counts. */
export function checkPlan(plan: Plan, examples: Example[], config: Config, sampled = false): number[] {
  const R = config.ranks;
  const expected = expectedItems(examples, config);
  expect(plan.ranks).toBe(R);
  expect(plan.phases.map((p) => p.name)).toEqual(config.phases.map((p) => p.name));
  return plan.phases.map((ph, p) => {
    const phase = config.phases[p];
    const exp = expected[p];
    expect(ph.ranks.length).toBe(R);
    const seen = new Set<string>();
    let moved = 0, bytes = 0, inter = 0, total = 0, max = 0;
    ph.ranks.forEach((rk, r) => {
      let cost = 0, tokens = 0, maxItem = 0;
      for (const id of rk.items) {
        expect(seen.has(id), `item ${id} placed twice`).toBe(false);
        seen.add(id);
        const it = exp.get(id);
        expect(it, `unknown item ${id}`).toBeDefined();
        cost += it!.cost;
        tokens += it!.tokens;
        maxItem = Math.max(maxItem, it!.cost);
        if (it!.rank !== r) {
          moved++;
          bytes += it!.bytes;
          if (Math.floor(it!.rank / config.ranksPerNode) !== Math.floor(r / config.ranksPerNode)) inter += it!.bytes;
        }
      }
      const recomputed = phase.padding ? rk.items.length * maxItem : cost;
      total += cost;
      max = Math.max(max, rk.cost);
      expect(Math.abs(rk.cost - recomputed)).toBeLessThanOrEqual(1e-6 * Math.max(1, recomputed));
      expect(rk.tokens).toBe(tokens);
      if (phase.maxTokensPerRank !== undefined && !sampled) expect(tokens).toBeLessThanOrEqual(phase.maxTokensPerRank);
      if (phase.equalCount && !sampled) {
        const q = Math.floor(exp.size / R);
        expect(rk.items.length).toBeGreaterThanOrEqual(q);
        expect(rk.items.length).toBeLessThanOrEqual(q + 1);
      }
    });
    expect(seen.size, `phase ${ph.name}: every item exactly once`).toBe(exp.size);
    expect(ph.items).toBe(exp.size);
    expect(ph.maxCost).toBe(max);
    expect(Math.abs(ph.meanCost - total / R)).toBeLessThanOrEqual(1e-6 * Math.max(1, total / R));
    // The sampled layout need not meet equal counts, so the count-aware bound does not bind it.
    if (!sampled || !phase.equalCount) expect(ph.maxCost, `${ph.name} below its lower bound`).toBeGreaterThanOrEqual(ph.lowerBound * (1 - 1e-9));
    expect(ph.exchange.movedItems).toBe(moved);
    expect(Math.abs(ph.exchange.bytes - bytes)).toBeLessThanOrEqual(1e-6 * Math.max(1, bytes));
    expect(Math.abs(ph.exchange.interNodeBytes - inter)).toBeLessThanOrEqual(1e-6 * Math.max(1, inter));
    const pairItems = ph.exchange.pairs.reduce((s, x) => s + x[2], 0);
    expect(pairItems).toBe(moved);
    return ph.maxCost;
  });
}

/** A random batch: R ranks, a few examples per rank with heavy-tailed lengths. */
export function randomCase(rand: () => number, opts: { padding?: boolean; equalCount?: boolean; cap?: boolean } = {}) {
  const R = 1 + Math.floor(rand() * 12);
  const n = R * (1 + Math.floor(rand() * 12)) + Math.floor(rand() * R);
  const heavy = () => Math.max(0, Math.round(Math.exp(rand() * 7)));
  const examples: Example[] = [];
  for (let e = 0; e < n; e++) {
    const ex: Example = { id: `e${e}`, rank: Math.floor(rand() * R) };
    ex.text = heavy();
    if (rand() < 0.4) ex.image = Array.from({ length: 1 + Math.floor(rand() * 3) }, heavy);
    if (rand() < 0.3) ex.audio = heavy();
    examples.push(ex);
  }
  // Guarantee every phase has items.
  examples[0].image = [1 + heavy()];
  examples[n - 1].audio = 1 + heavy();
  const config: Config = {
    ranks: R,
    ranksPerNode: 1 + Math.floor(rand() * 4),
    phases: [
      { name: 'vision', modalities: ['image'], unit: 'segment', cost: { perItem: 5, perToken: 1, perTokenSquared: 0.001 } },
      { name: 'audio', modalities: ['audio'], unit: 'segment', cost: { perToken: 0.7 } },
      { name: 'llm', modalities: ['text', 'image', 'audio'], unit: 'example', scale: { image: 0.25, audio: 0.5 }, cost: { perToken: 1, perTokenSquared: 0.0001 } },
    ],
    bytesPerToken: { text: 2, image: 100, audio: 50 },
  };
  const llm = config.phases[2];
  if (opts.padding) llm.padding = true;
  if (opts.equalCount && n >= R) llm.equalCount = true;
  if (opts.cap) {
    const tokens = expectedItems(examples, config)[2];
    let total = 0, big = 0;
    for (const it of tokens.values()) { total += it.tokens; big = Math.max(big, it.tokens); }
    llm.maxTokensPerRank = Math.max(big, Math.ceil((total / R) * 1.3));
  }
  return { examples, config };
}

/**
 * `best`'s documented promise, per phase: on sum-load phases with ≥ 8 items per rank its max is
 * at most max(lower bound + max(0.1%, one smallest item), min(lpt, kk)) (it may take the rounds
 * result within that bar); elsewhere at most min(lpt, kk). `kk` may be missing (refused).
 */
export function expectBestPromise(best: Plan, lpt: number[], kk: number[] | undefined, examples: Example[], config: Config): void {
  const items = expectedItems(examples, config);
  best.phases.forEach((ph, p) => {
    const seq = Math.min(lpt[p], kk ? kk[p] : Infinity);
    let limit = seq;
    if (!config.phases[p].padding && ph.items >= 8 * config.ranks && ph.items > 0) {
      const smallest = Math.min(...[...items[p].values()].map((x) => x.cost));
      limit = Math.max(seq, ph.lowerBound + Math.max(0.001 * ph.lowerBound, smallest));
    }
    // Decisions are taken on integer costs (a grid of 2^-20 of the largest item or finer).
    expect(ph.maxCost, `phase ${ph.name} (${ph.algorithm})`).toBeLessThanOrEqual(limit * (1 + 1e-9) + 1e-9);
  });
}
