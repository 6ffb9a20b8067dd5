// Per-kernel throughput, WebGPU vs the CPU reference, on the same random inputs.
//   node dist/bench/kernels.js [--sizes 1000,100000,1000000] [--reps 5] [--targets 64] [--verbose]
// Times are medians of whole accelerator calls (upload + kernels + read back), after a warm-up.
// GB/s counts the bytes a minimal implementation must move: radix sort 16 B per key per 8-bit
// pass (read and write key and index), u64 scan 16 B per value (read and write 8 B).

import { cpuAccelerator, type Accelerator } from '../src/accel.js';
import { createGpuAccelerator } from '../src/gpu/accelerator.js';

interface Options { sizes: number[]; reps: number; targets: number; verbose: boolean }

function parseArgs(argv: string[]): Options {
  const options: Options = { sizes: [1_000, 100_000, 1_000_000], reps: 5, targets: 64, verbose: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--sizes') options.sizes = value().split(',').map((s) => Number(s.replace(/_/g, '')));
    else if (arg === '--reps') options.reps = Number(value());
    else if (arg === '--targets') options.targets = Number(value());
    else if (arg === '--verbose') options.verbose = true;
    else throw new Error(`unknown argument ${arg} (expected --sizes, --reps, --targets, --verbose)`);
  }
  return options;
}

/** splitmix32-style deterministic generator: the same inputs every run. */
function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

async function medianSeconds(reps: number, fn: () => Promise<unknown>): Promise<number> {
  await fn(); // warm-up: pipelines, allocator, JIT
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const start = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - start) / 1e9);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

function same(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

interface Row { kernel: string; n: number; cpu: number; gpu: number; work: number; bytes: number; equal: boolean }

async function measure(gpu: Accelerator, n: number, options: Options): Promise<Row[]> {
  const rand = generator(n);
  const keys = Uint32Array.from({ length: n }, () => rand());
  const costs = Float64Array.from({ length: n }, () => 1 + (rand() % 50_000));
  const rows: Row[] = [];
  const both = async (kernel: string, work: number, bytes: number, run: (a: Accelerator) => Promise<ArrayLike<number>[]>) => {
    const [cpuOut, gpuOut] = [await run(cpuAccelerator), await run(gpu)];
    const equal = cpuOut.every((part, i) => same(part, gpuOut[i]));
    const cpu = await medianSeconds(options.reps, () => run(cpuAccelerator));
    const gpuTime = await medianSeconds(options.reps, () => run(gpu));
    rows.push({ kernel, n, cpu, gpu: gpuTime, work, bytes, equal });
  };
  await both('sort (32-bit keys)', n, 4 * 16 * n, async (a) => [await a.sortDesc(keys)]);
  const shortKeys = keys.map((k) => k % 5000);
  await both('sort (keys < 5000)', n, 2 * 16 * n, async (a) => [await a.sortDesc(shortKeys)]);
  await both('scan u64', n, 16 * n, async (a) => [await a.prefixSum(costs)]);
  const prefix = await cpuAccelerator.prefixSum(costs);
  const total = prefix[n];
  // Targets spread around total / R for R from 64 to 16,384 ranks (the planner's search range).
  const targets = Float64Array.from({ length: options.targets }, (_, t) => Math.floor(total / (64 * Math.pow(256, t / Math.max(1, options.targets - 1)))));
  await both(`cuts sum (K=${options.targets})`, n * options.targets, 0, async (a) => {
    const r = await a.cutCounts(costs, prefix, targets, 'sum');
    return [r.groups, r.maxLoad];
  });
  const sortedCosts = Float64Array.from(costs).sort().reverse();
  await both(`cuts padded (K=${options.targets})`, n * options.targets, 0, async (a) => {
    const r = await a.cutCounts(sortedCosts, prefix, targets, 'padded');
    return [r.groups, r.maxLoad];
  });
  return rows;
}

function format(rows: Row[], adapter: string): string {
  const fmtTime = (s: number) => (s < 1e-3 ? `${(s * 1e6).toFixed(0)} µs` : `${(s * 1e3).toFixed(2)} ms`);
  const fmtRate = (x: number) => (x >= 1e9 ? `${(x / 1e9).toFixed(2)} G` : x >= 1e6 ? `${(x / 1e6).toFixed(1)} M` : `${(x / 1e3).toFixed(1)} k`);
  const header = ['kernel', 'n', 'CPU', 'GPU', 'GPU/CPU speed-up', 'GPU items/s', 'GPU GB/s', 'equal'];
  const body = rows.map((r) => [
    r.kernel, String(r.n), fmtTime(r.cpu), fmtTime(r.gpu), `${(r.cpu / r.gpu).toFixed(2)}x`,
    fmtRate(r.work / r.gpu), r.bytes > 0 ? (r.bytes / r.gpu / 1e9).toFixed(3) : '-', r.equal ? 'yes' : 'NO',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [`adapter: ${adapter}`, line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const gpu = await createGpuAccelerator({ verbose: options.verbose });
  try {
    const rows: Row[] = [];
    for (const n of options.sizes) rows.push(...(await measure(gpu, n, options)));
    console.log(format(rows, gpu.adapter));
    if (rows.some((r) => !r.equal)) { console.error('GPU result differs from the CPU reference'); process.exitCode = 1; }
  } finally {
    gpu.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(`bench/kernels: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
