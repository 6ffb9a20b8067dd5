// The balance primitive on the device (balance.wgsl, group_sort.wgsl, with the radix sort, the
// scans and pair_steps.wgsl): the deal and every balance round run as kernels over
// device-resident buffers, exactly balanceCpu (src/primitives/balance.ts). Costs, tokens and
// sampled ranks go up once; each submit encodes several rounds (4, then doubling) and reads back
// four status words (done, rounds, steps); the group of every position comes back once, at the
// end. A round's dispatches are recorded once and replayed (same buffers, same params).
import type { BalanceInput, BalanceResult } from '../../primitives/balance.js';
import { balanceCpu } from '../../primitives/balance.js';
import { bindGroup, dispatchGrid, putWordPair, type UniformSlot } from '../buffers.js';
import { Run, type Context } from '../context.js';
import { compileShader, createPipeline } from '../device.js';
import type { PairKernels } from '../pairs/pairs.js';
import { encodeF64ToU64, encodeScan, reserveScan } from '../scan/scan.js';
import { shaderSource } from '../shaders.js';
import { encodeSortDesc, SORT_TILE, type SortKernels } from '../sort/sort.js';

/** balance.wgsl's workgroup size (group_sort.wgsl's is GROUP_SORT_WG). */
const WG = 64;
const GROUP_SORT_WG = 256;
const GROUP_SORT_TILE = 1024;
/** Bytes per group of balance.wgsl's Group struct, and per pair of pair_steps.wgsl's PairInfo. */
const GROUP_BYTES = 32;
const PAIR_INFO_BYTES = 64;
const PAIR_CHUNK = 1024;
const TWO_53 = 9007199254740992;
/** Most groups: room_scan gives each of its 64 threads at most 1,024 ranks. */
export const MAX_BALANCE_GROUPS = 65536;

const BALANCE_ENTRIES = [
  'snake', 'home_keys', 'home_count', 'groups_clear', 'keep', 'pool_marks', 'room_scan', 'cut', 'group_clear', 'group_count',
  'arena_keys', 'arena_fill', 'group_stats', 'pairs_of_round', 'chunk_list', 'apply', 'round_end',
] as const;
type BalanceEntry = (typeof BALANCE_ENTRIES)[number];

export interface BalanceKernels extends SortKernels, PairKernels {
  balance: Record<BalanceEntry, GPUComputePipeline>;
  groupSortInit: GPUComputePipeline;
  groupSortLocal: GPUComputePipeline;
  groupSortGlobal: GPUComputePipeline;
  /** Loop iterations one keep thread may run per dispatch (llvmpipe ends longer loop nests). */
  keepBudget: number;
}

export async function createBalanceKernels(device: GPUDevice, software: boolean): Promise<Pick<BalanceKernels, 'balance' | 'groupSortInit' | 'groupSortLocal' | 'groupSortGlobal' | 'keepBudget'>> {
  const m = await compileShader(device, 'balance.wgsl', shaderSource('balance.wgsl'));
  const gs = await compileShader(device, 'group_sort.wgsl', shaderSource('group_sort.wgsl'));
  const pipelines = await Promise.all(BALANCE_ENTRIES.map((e) => createPipeline(device, 'balance.wgsl', m, e)));
  const [groupSortInit, groupSortLocal, groupSortGlobal] = await Promise.all(['init', 'local_stages', 'global_stage'].map((e) => createPipeline(device, 'group_sort.wgsl', gs, e)));
  const balance = Object.fromEntries(BALANCE_ENTRIES.map((e, i) => [e, pipelines[i]])) as Record<BalanceEntry, GPUComputePipeline>;
  return { balance, groupSortInit, groupSortLocal, groupSortGlobal, keepBudget: software ? 16384 : 262144 };
}

/** Dispatches captured once and replayed: a round is the same commands every time. */
interface Recorded { pipeline: GPUComputePipeline; group: GPUBindGroup; x: number; y: number }

function recorder(): { pass: GPUComputePassEncoder; commands: Recorded[] } {
  const commands: Recorded[] = [];
  let pipeline: GPUComputePipeline | null = null, group: GPUBindGroup | null = null;
  const pass = {
    setPipeline(p: GPUComputePipeline) { pipeline = p; },
    setBindGroup(_i: number, g: GPUBindGroup) { group = g; },
    dispatchWorkgroups(x: number, y = 1) { commands.push({ pipeline: pipeline!, group: group!, x, y }); },
  };
  return { pass: pass as unknown as GPUComputePassEncoder, commands };
}

function replay(pass: GPUComputePassEncoder, commands: Recorded[]): void {
  for (const c of commands) {
    pass.setPipeline(c.pipeline);
    pass.setBindGroup(0, c.group);
    pass.dispatchWorkgroups(c.x, c.y);
  }
}

function run1d(pass: GPUComputePassEncoder, pipeline: GPUComputePipeline, group: GPUBindGroup, threads: number, wg = WG): void {
  if (threads <= 0) return;
  const [x, y] = dispatchGrid(Math.ceil(threads / wg));
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, group);
  pass.dispatchWorkgroups(x, y);
}

/** Radix digit shifts for keys ~v with v < limit (a constant digit needs no pass). */
function shiftsBelow(limit: number): number[] {
  const shifts: number[] = [];
  for (let s = 0; s < 32 && (s === 0 || limit - 1 >= 2 ** s); s += 8) shifts.push(s);
  return shifts;
}

function checkInput(inp: BalanceInput): void {
  const { cost, tokens, home, groups: R, target, deal, maxRounds } = inp;
  const n = cost.length;
  if (tokens.length !== n) throw new RangeError(`balance: ${tokens.length} tokens for ${n} costs`);
  if (deal === 'home' && home.length !== n) throw new RangeError(`balance: ${home.length} sampled ranks for ${n} costs`);
  if (deal !== 'home' && deal !== 'snake') throw new RangeError(`balance: unknown deal ${String(deal)}`);
  if (!(Number.isInteger(R) && R >= 1 && R <= MAX_BALANCE_GROUPS)) throw new RangeError(`balance: groups is ${R}, expected an integer in [1, ${MAX_BALANCE_GROUPS}]`);
  if (!(Number.isInteger(target) && target >= 0 && target < TWO_53)) throw new RangeError(`balance: target is ${target}, expected an integer in [0, 2^53)`);
  if (!(Number.isInteger(maxRounds) && maxRounds >= 0)) throw new RangeError(`balance: maxRounds is ${maxRounds}`);
  if (Number.isNaN(inp.cap)) throw new RangeError('balance: cap is NaN (Infinity for none)');
  if (!(inp.q === -1 || (Number.isInteger(inp.q) && inp.q >= 0 && inp.q < 0xffffffff))) throw new RangeError(`balance: q is ${inp.q}`);
}

/** Largest count of one value of home (the longest bucket a keep thread walks). */
function longestBucket(home: Int32Array, R: number): number {
  const count = new Uint32Array(R);
  let max = 0;
  for (let k = 0; k < home.length; k++) {
    const r = home[k];
    if (!(r >= 0 && r < R)) throw new RangeError(`balance: sampled rank ${r} at position ${k} is outside [0, ${R})`);
    if (++count[r] > max) max = count[r];
  }
  return max;
}

export async function balanceGpu(ctx: Context<BalanceKernels>, inp: BalanceInput): Promise<BalanceResult> {
  checkInput(inp);
  const { cost, tokens, home, groups: R, target, cap, q, deal, maxRounds } = inp;
  const n = cost.length;
  const k = ctx.k;
  const limit = Math.min(k.device.limits.maxStorageBufferBindingSize, k.device.limits.maxBufferSize);
  // Nothing to do, or too large for one binding (llvmpipe: 2^24 positions): the same result on the host.
  if (n === 0 || (n + 1) * 8 > limit) return balanceCpu(inp);
  const keepDispatches = deal === 'home' ? Math.ceil(longestBucket(home, R) / k.keepBudget) : 0;
  const half = R >> 1;
  const p2 = Math.max(2, 2 ** Math.ceil(Math.log2(R)));
  const maxChunks = Math.ceil(n / PAIR_CHUNK) + half + 1;

  const run = new Run(ctx);
  const call = run.call;
  const device = k.device;
  const range = (buffer: GPUBuffer, size: number): UniformSlot => ({ buffer, offset: 0, size: Math.max(16, size) });
  // Costs go up as doubles and are converted in place; the group buffer carries the status words
  // after its n entries for the read back.
  const costBuf = call.upload('balance cost', cost);
  const buf = {
    cost: range(costBuf, n * 8),
    tokens: range(call.upload('balance tokens', tokens), n * 4),
    home: range(deal === 'home' ? call.upload('balance home', home) : call.storage('balance home', 4), deal === 'home' ? n * 4 : 4),
    group: range(call.storage('balance group', n * 4 + 16), n * 4),
    groups: range(call.storage('balance groups', R * GROUP_BYTES), R * GROUP_BYTES),
    flags: range(call.storage('balance flags', (Math.max(n, half) + 1) * 4), (Math.max(n, half) + 1) * 4),
    colA: range(call.storage('balance column a', (n + 1) * 8), (n + 1) * 8),
    colB: range(call.storage('balance column b', (Math.max(n, R) + 1) * 8), (Math.max(n, R) + 1) * 8),
    status: range(call.storage('balance status', 16), 16),
    counts: range(call.storage('balance counts', (R + 1) * 4), (R + 1) * 4),
    mc: range(call.storage('balance mc', n * 8), n * 8),
    mt: range(call.storage('balance mt', n * 4), n * 4),
    pairs: range(call.storage('balance pairs', (half + 1) * PAIR_INFO_BYTES), (half + 1) * PAIR_INFO_BYTES),
    pairHL: range(call.storage('balance pair groups', half * 8), half * 8),
    chunks: range(call.storage('balance chunks', maxChunks * 8), maxChunks * 8),
    best: range(call.storage('balance best', maxChunks * 16), maxChunks * 16),
    steps: range(call.storage('balance steps', half * 8), half * 8),
    sortKeys: range(call.storage('balance group keys', p2 * 8), p2 * 8),
    ranked: range(call.storage('balance ranked', p2 * 4), p2 * 4),
  };
  // Pooled scratch at its largest first: recorded bind groups must keep their buffers.
  reserveScan(call, Math.max(n + 1, R + 1, half + 1, 256 * Math.ceil(n / SORT_TILE)), 'u32');
  reserveScan(call, n + 1, 'u64');
  const words = new Uint32Array(14);
  words[0] = n; words[1] = R; words[2] = half; words[3] = maxChunks;
  putWordPair(words, 4, target);
  const hasCap = cap >= 0 && cap < TWO_53;
  words[6] = hasCap ? 1 : 0;
  putWordPair(words, 7, hasCap ? Math.floor(cap) : 0);
  words[9] = q < 0 ? 0xffffffff : q;
  words[10] = n % R;
  words[11] = k.keepBudget;
  words[12] = maxRounds;
  words[13] = cap < 0 ? 1 : 0;
  const params = call.uniform(Array.from(words));
  const bg = (entry: BalanceEntry, b: Record<number, UniformSlot>) => bindGroup(device, k.balance[entry], { 0: params, ...b });
  const order = (buffer: GPUBuffer) => range(buffer, n * 4);

  // Groups by (load, index) into `ranked`: group_sort.wgsl over the groups' load words.
  const groupSort = recorder();
  {
    const gsParams = (kk: number, j: number) => call.uniform([p2, kk, j, R, GROUP_BYTES / 8]);
    const init = bindGroup(device, k.groupSortInit, { 0: gsParams(0, 0), 1: buf.groups, 2: buf.sortKeys, 3: buf.ranked });
    run1d(groupSort.pass, k.groupSortInit, init, p2, GROUP_SORT_WG);
    const local = (kk: number) => bindGroup(device, k.groupSortLocal, { 0: gsParams(kk, 0), 2: buf.sortKeys, 3: buf.ranked });
    const [lx, ly] = dispatchGrid(Math.ceil(p2 / GROUP_SORT_TILE));
    const runLocal = (g: GPUBindGroup) => { groupSort.pass.setPipeline(k.groupSortLocal); groupSort.pass.setBindGroup(0, g); groupSort.pass.dispatchWorkgroups(lx, ly); };
    runLocal(local(0));
    for (let kk = 2 * GROUP_SORT_TILE; kk <= p2; kk *= 2) {
      for (let j = kk / 2; j >= GROUP_SORT_TILE; j /= 2) {
        run1d(groupSort.pass, k.groupSortGlobal, bindGroup(device, k.groupSortGlobal, { 0: gsParams(kk, j), 2: buf.sortKeys, 3: buf.ranked }), p2, GROUP_SORT_WG);
      }
      runLocal(local(kk));
    }
  }

  // The arena from `group`: counts, the stable sort of positions by group, blocks and group stats.
  const arena = recorder();
  {
    const p = arena.pass;
    run1d(p, k.balance.group_clear, bg('group_clear', { 18: buf.counts }), R + 1);
    run1d(p, k.balance.group_count, bg('group_count', { 3: buf.group, 18: buf.counts }), n);
    encodeScan(k, p, call, buf.counts.buffer, R + 1, 'u32');
    run1d(p, k.balance.arena_keys, bg('arena_keys', { 3: buf.group, 6: buf.flags }), n);
    const sorted = order(encodeSortDesc(k, p, call, buf.flags.buffer, n, shiftsBelow(R)));
    run1d(p, k.balance.arena_fill, bg('arena_fill', { 1: buf.cost, 2: buf.tokens, 5: sorted, 7: buf.colA, 8: buf.colB, 12: buf.mc, 13: buf.mt }), n + 1);
    encodeScan(k, p, call, buf.colA.buffer, n + 1, 'u64');
    encodeScan(k, p, call, buf.colB.buffer, n + 1, 'u64');
    run1d(p, k.balance.group_stats, bg('group_stats', { 4: buf.groups, 7: buf.colA, 8: buf.colB, 18: buf.counts }), R);
    // A round: sort the groups, pair them, search every pair's step, apply.
    replay(p, groupSort.commands);
    run1d(p, k.balance.pairs_of_round, bg('pairs_of_round', { 4: buf.groups, 6: buf.flags, 9: buf.status, 11: buf.ranked, 14: buf.pairs, 15: buf.pairHL }), half + 1);
    encodeScan(k, p, call, buf.flags.buffer, half + 1, 'u32');
    run1d(p, k.balance.chunk_list, bg('chunk_list', { 6: buf.flags, 14: buf.pairs, 16: buf.chunks }), Math.max(half, maxChunks));
    const hasCapWords = new Uint32Array(2);
    putWordPair(hasCapWords, 0, hasCap ? Math.floor(cap) : 0);
    const pairParams = call.uniform([maxChunks, half, hasCap ? 1 : 0, hasCapWords[0], hasCapWords[1]]);
    const [ex, ey] = dispatchGrid(maxChunks);
    p.setPipeline(k.pairEvaluate);
    p.setBindGroup(0, bindGroup(device, k.pairEvaluate, { 0: pairParams, 1: buf.mc, 2: buf.mt, 3: buf.pairs, 4: buf.chunks, 5: buf.best }));
    p.dispatchWorkgroups(ex, ey);
    if (half > 0) {
      const [sx, sy] = dispatchGrid(Math.ceil(half / 64));
      p.setPipeline(k.pairSelect);
      p.setBindGroup(0, bindGroup(device, k.pairSelect, { 0: pairParams, 3: buf.pairs, 5: buf.best, 6: buf.steps }));
      p.dispatchWorkgroups(sx, sy);
    }
    run1d(p, k.balance.apply, bg('apply', { 3: buf.group, 4: buf.groups, 5: sorted, 9: buf.status, 15: buf.pairHL, 17: buf.steps }), half);
    run1d(p, k.balance.round_end, bg('round_end', { 9: buf.status }), 1);
  }

  let encoder = device.createCommandEncoder();
  encoder.clearBuffer(buf.status.buffer, 0, 16);
  let pass = run.beginPass(encoder);
  encodeF64ToU64(k, pass, call, costBuf, n);
  if (deal === 'snake') {
    run1d(pass, k.balance.snake, bg('snake', { 3: buf.group }), n);
  } else {
    run1d(pass, k.balance.home_keys, bg('home_keys', { 6: buf.flags, 10: buf.home }), n);
    const buckets = order(encodeSortDesc(k, pass, call, buf.flags.buffer, n, shiftsBelow(R)));
    run1d(pass, k.balance.group_clear, bg('group_clear', { 18: buf.counts }), R + 1);
    run1d(pass, k.balance.home_count, bg('home_count', { 10: buf.home, 18: buf.counts }), n);
    encodeScan(k, pass, call, buf.counts.buffer, R + 1, 'u32');
    run1d(pass, k.balance.groups_clear, bg('groups_clear', { 4: buf.groups }), R);
    const keepGroup = bg('keep', { 1: buf.cost, 2: buf.tokens, 3: buf.group, 4: buf.groups, 5: buckets, 18: buf.counts });
    for (let d = 0; d < keepDispatches; d++) run1d(pass, k.balance.keep, keepGroup, R);
    run1d(pass, k.balance.pool_marks, bg('pool_marks', { 1: buf.cost, 3: buf.group, 6: buf.flags, 7: buf.colA }), n + 1);
    encodeScan(k, pass, call, buf.flags.buffer, n + 1, 'u32');
    encodeScan(k, pass, call, buf.colA.buffer, n + 1, 'u64');
    replay(pass, groupSort.commands); // ranks by kept load
    pass.setPipeline(k.balance.room_scan);
    pass.setBindGroup(0, bg('room_scan', { 4: buf.groups, 8: buf.colB, 11: buf.ranked }));
    pass.dispatchWorkgroups(1);
    run1d(pass, k.balance.cut, bg('cut', { 1: buf.cost, 3: buf.group, 6: buf.flags, 7: buf.colA, 8: buf.colB, 11: buf.ranked }), n);
  }
  // Rounds: 4 in the first submit, then doubling; each submit reads back only the four status
  // words, and the groups come back once, with the submit that is known to be the last (the
  // round limit) or in one more when the device says done.
  let status = new Uint32Array(4);
  let out: Int32Array | null = null;
  const readAll = async (e: GPUCommandEncoder) => {
    e.copyBufferToBuffer(buf.status.buffer, 0, buf.group.buffer, n * 4, 16);
    const bytes = await run.submitAndRead(e, buf.group.buffer, n * 4 + 16);
    status = new Uint32Array(bytes, n * 4, 4);
    return new Int32Array(bytes, 0, n);
  };
  for (let rounds = Math.min(4, maxRounds), submitted = 0; ; rounds = Math.min(2 * rounds, maxRounds - submitted)) {
    for (let r = 0; r < rounds; r++) replay(pass, arena.commands);
    submitted += rounds;
    pass.end();
    if (submitted >= maxRounds) { out = await readAll(encoder); break; }
    status = new Uint32Array(await run.submitAndRead(encoder, buf.status.buffer, 16));
    run.resumeHost();
    encoder = device.createCommandEncoder();
    if (status[0] !== 0) { out = await readAll(encoder); break; }
    pass = run.beginPass(encoder);
  }
  run.finish();
  return { group: out!, rounds: status[1], steps: status[2] };
}
