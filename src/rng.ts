// Seeded pseudo-random numbers for workloads and tests: a result-shaping path never calls
// Math.random, so the same seed gives the same batch and the same plan on every machine.

/** mulberry32: 32-bit state, fast, good enough for synthetic workloads. Returns [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Integer in [lo, hi]. */
export function randInt(rand: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo + 1));
}

/** Log-normal sample with the given median and shape sigma (heavy-tailed lengths). */
export function logNormal(rand: () => number, median: number, sigma: number): number {
  // Box–Muller; 1 - u keeps the log argument in (0, 1].
  const u = 1 - rand(), v = rand();
  const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  return median * Math.exp(sigma * z);
}
