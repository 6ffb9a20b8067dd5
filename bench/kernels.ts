// Per-kernel throughput, WebGPU vs the CPU reference, on the same random inputs.
//   node dist-bench/bench/kernels.js [--sizes 1000,100000,1000000] [--reps 5] [--targets 64]
//                              [--bandwidth-gbs 4800] [--no-timestamps] [--verbose]
//                              [--cut-paths auto,serial,parallel]
// "GPU" times are medians of whole accelerator calls (upload + kernels + read back), after a
// warm-up; "host/wait/read" splits that wall time (host work before submit / submit until the
// read-back is mapped / copying results out). "kernel" is the GPU time of the compute passes,
// from timestamp queries, where the adapter has 'timestamp-query' (real GPUs; not llvmpipe: n/a).
// Bytes-moved model (the "GB/s" columns, wall and kernel-only):
//   radix sort : per executed 8-bit pass (constant digits are skipped) read key + payload and
//                write key + payload (16 B per key), plus the histogram traffic: 256 u32 counters
//                per 1024-key tile written, then read by the scan's reduce, read and written by
//                its scan, read by the scatter (4 x 1 KiB per tile, i.e. 4 B per key)
//   scan u64   : the reduce-then-scan traffic, 8 B values read twice and written once (24 B per
//                value), tile sums negligible
//   cuts       : not bandwidth-bound (dependent searches), no GB/s. One row per --cut-paths entry:
//                "auto" is what cutCounts does by default (the row names the path it took), "serial"
//                and "parallel" force the one-thread-per-target walk (cuts.wgsl) or the next-cut
//                pointers + pointer jumping (cuts_parallel.wgsl). Without --cut-paths, a software
//                adapter (llvmpipe) skips the forced parallel rows above 100,000 items (about 24 s
//                per call at 1M x 64 there).
//   pair steps : not bandwidth-bound either, no GB/s. A balance round's pairStep search
//                (pair_steps.wgsl vs pairStepsCpu): n items with costs 1..50,000 and tokens < 4096
//                dealt round-robin into R = max(2, n / 64) groups (blocks sorted by cost), no cap,
//                free counts; the R / 2 pairs match the heaviest group with the lightest, the
//                second heaviest with the second lightest, and so on.
// --bandwidth-gbs B (the device's memory bandwidth: 4800 for an H200, 3350 for an H100) adds
// "% of B" for kernel GB/s, and a per-size line comparing sort (32-bit keys) + scan
// kernel-only time against the bandwidth floor of their minimal traffic (16 B per key per pass,
// 16 B per value).

import { cpuAccelerator, type Accelerator, type BalanceInput, type PairArena } from '../src/primitives/accelerator.js';
import { createGpuAccelerator, type CutPath, type GpuAccelerator } from '../src/gpu/accelerator.js';
import { activeDigitShifts, SORT_TILE } from '../src/gpu/sort/sort.js';
import { intFlag, intList, numberFlag, oneOf } from '../src/commands/args.js';
import { benchFlags } from './flags.js';

interface Options {
  sizes: number[]; reps: number; targets: number; verbose: boolean; bandwidthGBs: number | null; timestamps: boolean;
  cutPaths: CutPath[]; cutPathsGiven: boolean;
}

function parseArgs(): Options {
  const f = benchFlags('bench/kernels', {
    sizes: { type: 'string' }, reps: { type: 'string' }, targets: { type: 'string' }, verbose: { type: 'boolean' },
    'bandwidth-gbs': { type: 'string' }, 'no-timestamps': { type: 'boolean' }, 'cut-paths': { type: 'string' },
  }, 'usage: node dist-bench/bench/kernels.js [--sizes 1000,100000,1000000] [--reps 5] [--targets 64] [--bandwidth-gbs 4800]\n' +
    '         [--no-timestamps] [--verbose] [--cut-paths auto,serial,parallel]\n');
  return {
    sizes: f.sizes === undefined ? [1_000, 100_000, 1_000_000] : intList(f.sizes.replace(/_/g, ''), '--sizes'),
    reps: intFlag(f.reps, '--reps', 5),
    targets: intFlag(f.targets, '--targets', 64),
    verbose: f.verbose === true,
    bandwidthGBs: f['bandwidth-gbs'] === undefined ? null : numberFlag(f['bandwidth-gbs'], '--bandwidth-gbs', 0, (n) => n > 0, 'a positive number'),
    timestamps: f['no-timestamps'] !== true,
    cutPaths: f['cut-paths'] === undefined ? ['auto', 'serial', 'parallel']
      : f['cut-paths'].split(',').map((p) => oneOf(p, ['auto', 'serial', 'parallel'] as const, '--cut-paths', 'auto')),
    cutPathsGiven: f['cut-paths'] !== undefined,
  };
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

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

interface Timing { wall: number; kernel: number | null; host: number; wait: number; read: number }

/** Medians over `reps` calls after a warm-up; the GPU profile fields only when `gpu` is given. */
async function timeCalls(reps: number, fn: () => Promise<unknown>, gpu?: GpuAccelerator): Promise<Timing> {
  await fn(); // warm-up: pipelines, allocator, buffer pool, JIT
  const wall: number[] = [], kernel: number[] = [], host: number[] = [], wait: number[] = [], read: number[] = [];
  for (let r = 0; r < reps; r++) {
    const start = process.hrtime.bigint();
    await fn();
    wall.push(Number(process.hrtime.bigint() - start) / 1e9);
    const p = gpu?.lastCall;
    if (p) {
      if (p.kernelMs !== null) kernel.push(p.kernelMs / 1e3);
      host.push(p.hostMs / 1e3); wait.push(p.waitMs / 1e3); read.push(p.readMs / 1e3);
    }
  }
  const m = (xs: number[]) => (xs.length === reps ? median(xs) : NaN);
  return { wall: median(wall), kernel: kernel.length === reps ? median(kernel) : null, host: m(host), wait: m(wait), read: m(read) };
}

function same(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

interface Row { kernel: string; n: number; cpu: number; gpu: Timing; work: number; bytes: number; equal: boolean }

/** Bytes the radix sort moves under the model in the header (executed passes only). */
function sortBytes(keys: Uint32Array): number {
  const n = keys.length, passes = n < 2 ? 0 : activeDigitShifts(keys).length;
  return passes * (16 * n + 4 * 1024 * Math.ceil(n / SORT_TILE));
}

/** The accelerator per cut path ("auto" is the main one; the forced ones share its options). */
type CutAccelerators = Partial<Record<CutPath, GpuAccelerator>>;

async function measure(gpu: GpuAccelerator, cutGpus: CutAccelerators, n: number, options: Options): Promise<Row[]> {
  const rand = generator(n);
  const keys = Uint32Array.from({ length: n }, () => rand());
  const costs = Float64Array.from({ length: n }, () => 1 + (rand() % 50_000));
  const rows: Row[] = [];
  const both = async (kernel: string | (() => string), work: number, bytes: number, run: (a: Accelerator) => Promise<ArrayLike<number>[]>, on = gpu) => {
    const [cpuOut, gpuOut] = [await run(cpuAccelerator), await run(on)];
    const equal = cpuOut.every((part, i) => same(part, gpuOut[i]));
    const cpu = (await timeCalls(options.reps, () => run(cpuAccelerator))).wall;
    const gpuTime = await timeCalls(options.reps, () => run(on), on);
    rows.push({ kernel: typeof kernel === 'string' ? kernel : kernel(), n, cpu, gpu: gpuTime, work, bytes, equal });
  };
  await both('sort (32-bit keys)', n, sortBytes(keys), async (a) => [await a.sortDesc(keys)]);
  const shortKeys = keys.map((k) => k % 5000);
  await both('sort (keys < 5000)', n, sortBytes(shortKeys), async (a) => [await a.sortDesc(shortKeys)]);
  await both('scan u64', n, 24 * n, async (a) => [await a.prefixSum(costs)]);
  const prefix = await cpuAccelerator.prefixSum(costs);
  const total = prefix[n];
  // Targets spread around total / R for R from 64 to 16,384 ranks (the planner's search range).
  const targets = Float64Array.from({ length: options.targets }, (_, t) => Math.floor(total / (64 * Math.pow(256, t / Math.max(1, options.targets - 1)))));
  const sortedCosts = Float64Array.from(costs).sort().reverse();
  for (const mode of ['sum', 'padded'] as const) {
    for (const path of options.cutPaths) {
      const on = cutGpus[path];
      if (!on) continue;
      if (path === 'parallel' && !options.cutPathsGiven && on.parallelCutMinItems === Infinity && n > 100_000) {
        console.log(`cuts ${mode} parallel n=${n}: skipped on this software adapter (pass --cut-paths to run it)`);
        continue;
      }
      const label = () => `cuts ${mode} ${path === 'auto' ? `auto: ${on.lastCall?.cutPath ?? '-'}` : path} (K=${options.targets})`;
      await both(label, n * options.targets, 0, async (a) => {
        const r = await a.cutCounts(mode === 'sum' ? costs : sortedCosts, prefix, targets, mode);
        return [r.groups, r.maxLoad];
      }, on);
    }
  }
  const { arena, pairs } = pairStepInputs(costs, rand);
  await both(`pair steps (R=${arena.size.length}, ${pairs.length / 2} pairs)`, n, 0, async (a) => [await a.pairSteps(arena, pairs)]);
  for (const deal of ['home', 'snake'] as const) {
    const inp = balanceInput(sortedCosts, rand, deal);
    let label = '';
    await both(() => label, n, 0, async (a) => {
      const r = await a.balance(inp);
      label = `balance, ${deal} deal (R=${inp.groups}, ${r.rounds} rounds)`;
      return [r.group, [r.rounds, r.steps]];
    });
  }
  return rows;
}

/** The balance rows' input: the costs in cost order, ~180 items a group, random sampled ranks. */
function balanceInput(sortedCosts: Float64Array, rand: () => number, deal: 'home' | 'snake'): BalanceInput {
  const n = sortedCosts.length, R = Math.max(1, Math.min(65536, Math.round(n / 180)));
  const tokens = Uint32Array.from(sortedCosts, (c) => Math.max(1, Math.round(c / 16)));
  const home = Int32Array.from({ length: n }, () => rand() % R);
  let total = 0;
  for (let k = 0; k < n; k++) total += sortedCosts[k];
  return { cost: sortedCosts, tokens, home, groups: R, target: Math.max(Math.ceil(total / R), n ? sortedCosts[0] : 0), cap: Infinity, q: -1, deal, maxRounds: 64 };
}

/** The pair-steps row's arena and pairs (see the header). */
function pairStepInputs(costs: Float64Array, rand: () => number): { arena: PairArena; pairs: Int32Array } {
  const n = costs.length, R = Math.max(2, Math.floor(n / 64));
  const members: number[][] = Array.from({ length: R }, () => []);
  for (let i = 0; i < n; i++) members[i % R].push(i);
  const mc = new Float64Array(n), mt = new Uint32Array(n);
  const off = new Int32Array(R), size = new Int32Array(R), load = new Float64Array(R), tok = new Float64Array(R);
  let at = 0;
  for (let g = 0; g < R; g++) {
    members[g].sort((a, b) => costs[a] - costs[b] || a - b);
    off[g] = at; size[g] = members[g].length;
    for (const i of members[g]) {
      const t = rand() % 4096;
      mc[at] = costs[i]; mt[at] = t; load[g] += costs[i]; tok[g] += t; at++;
    }
  }
  const order = Array.from({ length: R }, (_, g) => g).sort((a, b) => load[b] - load[a] || a - b);
  const pairs = new Int32Array(2 * Math.floor(R / 2));
  for (let i = 0; i < pairs.length / 2; i++) { pairs[2 * i] = order[i]; pairs[2 * i + 1] = order[R - 1 - i]; }
  return { arena: { mc, mt, off, size, load, tok, cap: Infinity, q: -1, used: n }, pairs };
}

function format(rows: Row[], adapter: string, options: Options): string {
  const fmtTime = (s: number) => (s < 1e-3 ? `${(s * 1e6).toFixed(0)} µs` : `${(s * 1e3).toFixed(2)} ms`);
  const fmtMs = (s: number) => (Number.isFinite(s) ? (s * 1e3).toFixed(2) : '-');
  const fmtRate = (x: number) => (x >= 1e9 ? `${(x / 1e9).toFixed(2)} G` : x >= 1e6 ? `${(x / 1e6).toFixed(1)} M` : `${(x / 1e3).toFixed(1)} k`);
  const bw = options.bandwidthGBs;
  const header = ['kernel', 'n', 'CPU', 'GPU', 'GPU/CPU speed-up', 'GPU items/s', 'GPU GB/s', 'equal',
    'host/wait/read ms', 'GPU kernel-only', 'kernel GB/s', ...(bw ? [`% of ${bw} GB/s`] : [])];
  const body = rows.map((r) => {
    const k = r.gpu.kernel;
    const kernelGBs = k !== null && k > 0 && r.bytes > 0 ? r.bytes / k / 1e9 : null;
    return [
      r.kernel, String(r.n), fmtTime(r.cpu), fmtTime(r.gpu.wall), `${(r.cpu / r.gpu.wall).toFixed(2)}x`,
      fmtRate(r.work / r.gpu.wall), r.bytes > 0 ? (r.bytes / r.gpu.wall / 1e9).toFixed(3) : '-', r.equal ? 'yes' : 'NO',
      `${fmtMs(r.gpu.host)} / ${fmtMs(r.gpu.wait)} / ${fmtMs(r.gpu.read)}`,
      k === null ? 'n/a' : fmtTime(k),
      k === null ? 'n/a' : kernelGBs === null ? '-' : kernelGBs.toFixed(1),
      ...(bw ? [kernelGBs === null ? (k === null ? 'n/a' : '-') : `${((100 * kernelGBs) / bw).toFixed(1)}%`] : []),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  const out = [`adapter: ${adapter}`, line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)];
  // Sort + scan of n items against the memory-bandwidth limit (within 10x is the aim).
  for (const n of new Set(rows.map((r) => r.n))) {
    const sort = rows.find((r) => r.n === n && r.kernel.startsWith('sort (32-bit'));
    const scan = rows.find((r) => r.n === n && r.kernel === 'scan u64');
    if (!sort || !scan) continue;
    const kernel = sort.gpu.kernel !== null && scan.gpu.kernel !== null ? sort.gpu.kernel + scan.gpu.kernel : null;
    const passes = Math.round(sort.bytes / (16 * n + 4 * 1024 * Math.ceil(n / SORT_TILE)));
    const minimalBytes = passes * 16 * n + 16 * n;
    const floor = bw ? minimalBytes / (bw * 1e9) : null;
    out.push(`sort+scan n=${n}: wall ${fmtTime(sort.gpu.wall + scan.gpu.wall)}, kernel-only ${kernel === null ? 'n/a' : fmtTime(kernel)}`
      + (floor === null ? ' (pass --bandwidth-gbs for the bandwidth floor)'
        : `, bandwidth floor ${fmtTime(floor)} (${(minimalBytes / 1e6).toFixed(1)} MB at ${bw} GB/s)`
          + (kernel === null ? '' : `: ${(kernel / floor).toFixed(1)}x the floor`)));
  }
  return out.join('\n');
}

async function main(): Promise<void> {
  const options = parseArgs();
  const gpu = await createGpuAccelerator({ verbose: options.verbose, timestamps: options.timestamps, pairPath: 'gpu' }); // the kernel, whatever auto would pick
  const cutGpus: CutAccelerators = { auto: gpu };
  try {
    for (const path of ['serial', 'parallel'] as const) {
      if (options.cutPaths.includes(path)) cutGpus[path] = await createGpuAccelerator({ verbose: options.verbose, timestamps: options.timestamps, cutPath: path });
    }
    const rows: Row[] = [];
    for (const n of options.sizes) rows.push(...(await measure(gpu, cutGpus, n, options)));
    console.log(format(rows, gpu.adapter, options));
    console.log(`timestamps: ${gpu.timestamps ? 'yes (kernel-only = GPU time of the compute passes)' : 'n/a (adapter without timestamp-query, or --no-timestamps)'}`);
    if (rows.some((r) => !r.equal)) { console.error('GPU result differs from the CPU reference'); process.exitCode = 1; }
  } finally {
    cutGpus.serial?.destroy();
    cutGpus.parallel?.destroy();
    gpu.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(`bench/kernels: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
