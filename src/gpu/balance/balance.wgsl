// Data-parallel balancing on the device: the deals and the balance rounds of balanceCpu
// (src/primitives/balance.ts), on items by position (cost descending), group of every position in
// `group`. The host (balance.ts) strings these kernels together with the radix sort, the scans,
// group_sort.wgsl and pair_steps.wgsl into one compute pass per submit; nothing is read back
// between rounds but the status words.
//
// Deals:
//   snake       : group[k] = k mod 2R, mirrored on the way back.
//   home_keys   : flags[k] = ~home[k], the radix sort's keys: positions by rank, ascending.
//   home_count  : counts[home[k]] += 1 (atomics; the host scans counts into bucket starts).
//   groups_clear: every group's state to zero.
//   keep        : one thread per rank walks its bucket (its positions ascending, from the radix
//                 sort by home), at most `budget` items a dispatch (resumable: cursor), keeping
//                 an item while load + c <= target, tokens within the cap and (equal counts)
//                 count < q; the others get POOLED.
//   pool_marks  : flag[k] = pooled, poolCost[k] = pooled ? cost[k] : 0 (then both scanned).
//   room_scan   : one workgroup: room[t] for ranks in kept-load order (`ranked`), the exclusive
//                 prefix (R + 1 entries), saturating at 2^52 (midpoints stay below 2^42: exact).
//                 Cost mode: target - load; slot mode: q - count, + 1 for the first n mod R.
//   cut         : a pooled position goes to ranked[t], t the last with 2 room[t] <= 2 P + c
//                 (cost mode) or room[t] <= j (slots: its index among the pooled).
// The arena (every round, rebuilt from `group`):
//   group_clear : counts to zero. group_count: counts[group[k]] += 1 (scanned into starts).
//   arena_keys  : keys[j] = ~group[n - 1 - j], so the stable radix sort lists every group's
//                 positions descending (ascending cost, ties by position descending).
//   arena_fill  : arena entry t (the sort's t-th): mc, mt, and the cost and token columns to scan.
//   group_stats : start, size, load and token sum of every group from the scans.
// A round (group_sort.wgsl has sorted the groups by (load, index) into `ranked`):
//   pairs       : pair i < half: h = ranked[R - 1 - i], l = ranked[i]; active while load[h] >
//                 target; its PairInfo (pair_steps.wgsl) and chunk count (0 when inactive or
//                 when pairStep could not step: g < 2, empty h, no step under the cap).
//   chunk_list  : chunk c (after the scan of the counts): (pair, first position), or the empty
//                 pair `half` beyond the total; and each pair's first chunk.
//   apply       : each pair's step from pair_steps.wgsl's select: group[x] = l, group[y] = h.
//   round_end   : one thread: no step applied -> done; else rounds += 1, steps += applied;
//                 rounds == maxRounds -> done. Rounds after done change nothing.
// All 64-bit values are vec2<u32>(lo, hi) (u64.wgsl); costs < 2^40, loads and token sums < 2^53.
//
// Bindings (group 0): each entry point uses at most 7 storage buffers.
//   0 params  : uniform Params (below)
//   1 cost    : read array<vec2<u32>>, n (by position)      2 tokens : read array<u32>, n
//   3 group   : read_write array<u32>, n                      4 groups : read_write array<Group>, R
//   5 order   : read array<u32> (a radix sort's payload)      6 flags  : read_write array<u32>
//   7 colA    : read_write array<vec2<u32>>                   8 colB   : read_write array<vec2<u32>>
//   9 status  : read_write array<atomic<u32>>, 4: done, rounds, steps, applied
//  10 home    : read array<u32>, n                           11 ranked : read array<u32>, R (group_sort's idx)
//  12 mc      : read_write array<vec2<u32>>, n               13 mt     : read_write array<u32>, n
//  14 pairs   : read_write array<PairInfo>, half + 1         15 pairHL : read_write array<vec2<u32>>, half
//  16 chunks  : read_write array<vec2<u32>>, maxChunks       17 steps  : read array<vec2<i32>>, half
//  18 counts  : read_write array<atomic<u32>>, R + 1
// Workgroup size 64 (1-D); a thread per position, group, pair or chunk, as named; dispatches in
// 2-D (x <= 65535), surplus threads exit. room_scan: one workgroup (R <= 65,536: <= 1,024 ranks a
// thread). Loops: keep runs <= budget iterations a dispatch; the rest are bounded by 1,024 or log2.

//! include u64.wgsl

const WG: u32 = 64u;
const POOLED: u32 = 0xffffffffu;
const CHUNK: u32 = 1024u; // pair_steps.wgsl's chunk of h's block
const SATURATE_HI: u32 = 0x100000u; // 2^52 as (0, 2^20)

struct Params {
  n: u32,
  R: u32,
  half: u32,
  maxChunks: u32,
  targetLo: u32,
  targetHi: u32,
  hasCap: u32,
  capLo: u32,
  capHi: u32,
  q: u32,       // 0xffffffff: free counts
  extra: u32,   // n mod R
  budget: u32,
  maxRounds: u32,
  noStep: u32,  // the cap is negative: nothing is kept, no step is ever valid
}

struct Group {
  load: vec2<u32>,
  tok: vec2<u32>,
  size: u32,
  start: u32,
  cursor: u32,
  pad: u32,
}

struct PairInfo {
  blocks: vec4<u32>,
  loads: vec4<u32>,
  tokens: vec4<u32>,
  chunks: vec4<u32>,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> cost: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> tokens: array<u32>;
@group(0) @binding(3) var<storage, read_write> group: array<u32>;
@group(0) @binding(4) var<storage, read_write> groups: array<Group>;
@group(0) @binding(5) var<storage, read> order: array<u32>;
@group(0) @binding(6) var<storage, read_write> flags: array<u32>;
@group(0) @binding(7) var<storage, read_write> colA: array<vec2<u32>>;
@group(0) @binding(8) var<storage, read_write> colB: array<vec2<u32>>;
@group(0) @binding(9) var<storage, read_write> status: array<atomic<u32>>;
@group(0) @binding(10) var<storage, read> home: array<u32>;
@group(0) @binding(11) var<storage, read> ranked: array<u32>;
@group(0) @binding(12) var<storage, read_write> mc: array<vec2<u32>>;
@group(0) @binding(13) var<storage, read_write> mt: array<u32>;
@group(0) @binding(14) var<storage, read_write> pairs: array<PairInfo>;
@group(0) @binding(15) var<storage, read_write> pairHL: array<vec2<u32>>;
@group(0) @binding(16) var<storage, read_write> chunks: array<vec2<u32>>;
@group(0) @binding(17) var<storage, read> steps: array<vec2<i32>>;
@group(0) @binding(18) var<storage, read_write> counts: array<atomic<u32>>;

var<workgroup> partial: array<vec2<u32>, WG>;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid;
}

fn target64() -> vec2<u32> {
  return vec2<u32>(params.targetLo, params.targetHi);
}

fn withinCap(t: vec2<u32>) -> bool {
  if (params.noStep != 0u) { return false; } // a negative cap: nothing fits
  return params.hasCap == 0u || le64(t, vec2<u32>(params.capLo, params.capHi));
}

// min(a + b, 2^52) for a, b <= 2^52.
fn addSaturating52(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
  let s = add64(a, b);
  return select(s, vec2<u32>(0u, SATURATE_HI), s.y >= SATURATE_HI);
}

// ---- deals ----

@compute @workgroup_size(64)
fn snake(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let k = index(wid, nwg, lid);
  if (k >= params.n) { return; }
  let m = k % (2u * params.R);
  group[k] = select(2u * params.R - 1u - m, m, m < params.R);
}

@compute @workgroup_size(64)
fn home_keys(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let k = index(wid, nwg, lid);
  if (k >= params.n) { return; }
  flags[k] = ~home[k];
}

@compute @workgroup_size(64)
fn home_count(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let k = index(wid, nwg, lid);
  if (k >= params.n) { return; }
  atomicAdd(&counts[home[k]], 1u);
}

@compute @workgroup_size(64)
fn groups_clear(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let g = index(wid, nwg, lid);
  if (g >= params.R) { return; }
  groups[g] = Group(vec2<u32>(0u, 0u), vec2<u32>(0u, 0u), 0u, 0u, 0u, 0u);
}

@compute @workgroup_size(64)
fn keep(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = index(wid, nwg, lid);
  if (r >= params.R) { return; }
  let begin = atomicLoad(&counts[r]);
  let end = atomicLoad(&counts[r + 1u]);
  var st = groups[r];
  let tgt = target64();
  for (var t = 0u; t < params.budget; t++) {
    let at = begin + st.cursor;
    if (at >= end) { break; }
    let k = order[at];
    let c = cost[k];
    let load = add64(st.load, c);
    let tok = add64(st.tok, widen(tokens[k]));
    if (le64(load, tgt) && withinCap(tok) && (params.q == 0xffffffffu || st.size < params.q)) {
      group[k] = r;
      st.load = load;
      st.tok = tok;
      st.size += 1u;
    } else {
      group[k] = POOLED;
    }
    st.cursor += 1u;
  }
  groups[r] = st;
}

@compute @workgroup_size(64)
fn pool_marks(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let k = index(wid, nwg, lid);
  if (k > params.n) { return; }
  // Entry n is the scans' trailing zero (their totals).
  let pooled = k < params.n && group[min(k, params.n - 1u)] == POOLED;
  flags[k] = select(0u, 1u, pooled);
  colA[k] = select(vec2<u32>(0u, 0u), cost[min(k, params.n - 1u)], pooled);
}

// The room of the t-th rank in kept-load order.
fn roomOf(t: u32) -> vec2<u32> {
  let g = groups[ranked[t]];
  if (params.q == 0xffffffffu) { return sub64(target64(), g.load); }
  return widen(params.q - g.size + select(0u, 1u, t < params.extra));
}

@compute @workgroup_size(64)
fn room_scan(@builtin(local_invocation_index) lid: u32) {
  let R = params.R;
  let per = (R + WG - 1u) / WG;
  let first = min(lid * per, R);
  let last = min(first + per, R);
  var s = vec2<u32>(0u, 0u);
  for (var t = first; t < last; t++) { s = addSaturating52(s, roomOf(t)); }
  partial[lid] = s;
  workgroupBarrier();
  if (lid == 0u) {
    var run = vec2<u32>(0u, 0u);
    for (var i = 0u; i < WG; i++) {
      let v = partial[i];
      partial[i] = run;
      run = addSaturating52(run, v);
    }
    colB[R] = run;
  }
  workgroupBarrier();
  var run = partial[lid];
  for (var t = first; t < last; t++) {
    colB[t] = run;
    run = addSaturating52(run, roomOf(t));
  }
}

@compute @workgroup_size(64)
fn cut(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let k = index(wid, nwg, lid);
  if (k >= params.n || group[k] != POOLED) { return; }
  var lo = 0u;
  var hi = params.R - 1u;
  if (params.q == 0xffffffffu) {
    let mid2 = add64(twice(colA[k]), cost[k]);
    while (lo < hi) {
      let mid = (lo + hi + 1u) / 2u;
      if (le64(twice(colB[mid]), mid2)) { lo = mid; } else { hi = mid - 1u; }
    }
  } else {
    let j = widen(flags[k]);
    while (lo < hi) {
      let mid = (lo + hi + 1u) / 2u;
      if (le64(colB[mid], j)) { lo = mid; } else { hi = mid - 1u; }
    }
  }
  group[k] = ranked[lo];
}

// ---- the arena ----

@compute @workgroup_size(64)
fn group_clear(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let g = index(wid, nwg, lid);
  if (g > params.R) { return; }
  atomicStore(&counts[g], 0u);
}

@compute @workgroup_size(64)
fn group_count(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let k = index(wid, nwg, lid);
  if (k >= params.n) { return; }
  atomicAdd(&counts[group[k]], 1u);
}

@compute @workgroup_size(64)
fn arena_keys(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let j = index(wid, nwg, lid);
  if (j >= params.n) { return; }
  flags[j] = ~group[params.n - 1u - j];
}

@compute @workgroup_size(64)
fn arena_fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = index(wid, nwg, lid);
  if (t > params.n) { return; }
  if (t == params.n) {
    colA[t] = vec2<u32>(0u, 0u);
    colB[t] = vec2<u32>(0u, 0u);
    return;
  }
  let k = params.n - 1u - order[t];
  let c = cost[k];
  let tk = tokens[k];
  mc[t] = c;
  mt[t] = tk;
  colA[t] = c;
  colB[t] = widen(tk);
}

@compute @workgroup_size(64)
fn group_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let g = index(wid, nwg, lid);
  if (g >= params.R) { return; }
  let a = atomicLoad(&counts[g]);
  let b = atomicLoad(&counts[g + 1u]);
  groups[g] = Group(sub64(colA[b], colA[a]), sub64(colB[b], colB[a]), b - a, a, 0u, 0u);
}

// ---- a round ----

@compute @workgroup_size(64)
fn pairs_of_round(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = index(wid, nwg, lid);
  let half = params.half;
  if (i > half) { return; }
  if (i == half) {
    // The empty pair that surplus chunks point at, and the scan's trailing entry.
    pairs[half] = PairInfo(vec4<u32>(0u), vec4<u32>(0u), vec4<u32>(0u), vec4<u32>(0u));
    flags[half] = 0u;
    return;
  }
  let h = ranked[params.R - 1u - i];
  let l = ranked[i];
  let gh = groups[h];
  let gl = groups[l];
  pairHL[i] = vec2<u32>(h, l);
  let overTarget = atomicLoad(&status[0]) == 0u && lt64(target64(), gh.load);
  let g = sub64(gh.load, gl.load);
  var count = 0u;
  if (overTarget && params.noStep == 0u && !lt64(g, vec2<u32>(2u, 0u)) && gh.size > 0u) {
    count = (gh.size + CHUNK - 1u) / CHUNK;
  }
  let moves = params.q == 0xffffffffu || (gh.size == params.q + 1u && gl.size == params.q);
  pairs[i] = PairInfo(
    vec4<u32>(gh.start, gh.size, gl.start, gl.size),
    vec4<u32>(gh.load.x, gh.load.y, gl.load.x, gl.load.y),
    vec4<u32>(gh.tok.x, gh.tok.y, gl.tok.x, gl.tok.y),
    vec4<u32>(0u, count, select(0u, 1u, moves), 0u));
  flags[i] = count;
}

@compute @workgroup_size(64)
fn chunk_list(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let c = index(wid, nwg, lid);
  let half = params.half;
  if (c < half) { pairs[c].chunks.x = flags[c]; }
  if (c >= params.maxChunks) { return; }
  if (c >= flags[half]) {
    chunks[c] = vec2<u32>(half, 0u);
    return;
  }
  // The pair whose chunks hold c: the last i with start[i] <= c.
  var lo = 0u;
  var hi = half - 1u;
  while (lo < hi) {
    let mid = (lo + hi + 1u) / 2u;
    if (flags[mid] <= c) { lo = mid; } else { hi = mid - 1u; }
  }
  chunks[c] = vec2<u32>(lo, (c - flags[lo]) * CHUNK);
}

@compute @workgroup_size(64)
fn apply(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = index(wid, nwg, lid);
  if (i >= params.half) { return; }
  let s = steps[i];
  if (s.x < 0i) { return; }
  let hl = pairHL[i];
  let n1 = params.n - 1u;
  group[n1 - order[groups[hl.x].start + u32(s.x)]] = hl.y;
  if (s.y >= 0i) { group[n1 - order[groups[hl.y].start + u32(s.y)]] = hl.x; }
  atomicAdd(&status[3], 1u);
}

@compute @workgroup_size(1)
fn round_end() {
  let applied = atomicLoad(&status[3]);
  atomicStore(&status[3], 0u);
  if (atomicLoad(&status[0]) != 0u) { return; }
  if (applied == 0u) {
    atomicStore(&status[0], 1u);
    return;
  }
  let rounds = atomicLoad(&status[1]) + 1u;
  atomicStore(&status[1], rounds);
  atomicStore(&status[2], atomicLoad(&status[2]) + applied);
  if (rounds >= params.maxRounds) { atomicStore(&status[0], 1u); }
}
