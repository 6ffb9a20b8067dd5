// The best single step (move or swap) for each disjoint (heavier h, lighter l) group pair of a
// balance round: exactly pairStepsCpu (src/partition/pairstep.ts), in two passes.
//   evaluate : one workgroup per chunk of CHUNK consecutive positions of one pair's h block.
//        Thread lid takes positions start + lid, start + lid + WG, ... (at most ITEMS of them);
//        for each x that is the last of its run of equal costs it binary-searches l's block for
//        k (the first cost y with 2 y >= 2 c_x - g, what the CPU's walking pointer finds) and
//        tries the swaps with k and k - 1. Thread 0 of a pair's first chunk also tries the two
//        moves (p = first cost of h with 2 c >= g, then p - 1) when the pair allows moves. Each
//        thread keeps its first minimum of (value, scan position); a two-level reduction in
//        workgroup memory (8 threads take 8 entries each, then thread 0 the 8 results: two
//        barriers, where a tree takes six, and llvmpipe charges much for each) leaves the chunk's,
//        written to best[chunk] as (v.lo, v.hi, pos, t).
//   select : one thread per pair: the first minimum over the pair's chunks, as the step
//        [position in h, position in l or -1 for a move], or [-1, -1] when no candidate is valid.
// Scan positions (ties go to the lower one, as in the CPU's scan order): move t = p -> 0,
// move t = p - 1 -> 1, swap (x, k) -> 2 + 2x, swap (x, k - 1) -> 3 + 2x.
// A candidate moves d = c_x - c_y (c_y = 0 for a move) from h to l; it is valid when 0 < d < g
// (g = L_h - L_l), with a cap: t_l + t_x <= cap + t_y and t_h + t_y <= cap + t_x (the CPU's
// t_l + dt <= cap and t_h - dt <= cap with dt = t_x - t_y moved across, so nothing is
// negative); its value is max(L_h - d, L_l + d). Every valid candidate is below L_h, so the
// first minimum is the CPU's result (its early stop at ceil((L_h + L_l) / 2) cannot change it).
// Halves are avoided by doubling: the move search compares 2 c with g; the swap search compares
// 2 y with W = 2 c_x - g (k = 0 when W <= 0). The CPU computes c_x - g/2 in doubles, which
// rounds a half to even once it is >= 2^52 (odd g, W >= 2^53); W is lowered by one where that
// rounding goes down (W mod 4 == 1), so k is the CPU's k for every input. (With loads that are
// their blocks' sums this never changes a step: the tie it decides needs two members of l at
// 2^52 or more. Arenas whose loads are set otherwise do reach it.)
// All 64-bit values are vec2<u32>(lo, hi), exact: costs and loads < 2^53, doubled values < 2^54,
// token sums < 2^53 - 2^32 (so the CPU's t_l + t_x is exact too); no float arithmetic. The
// helpers (add64, sub64, lt64, le64, twice, widen) come from u64.wgsl, included below.
//
// Bindings (group 0):
//   0 params : uniform Params { numChunks, numPairs, hasCap, cap.lo, cap.hi }
//              (cap = floor of the token cap, < 2^53; hasCap = 0: no cap)
//   1 mc     : storage read array<vec2<u32>>, the arena's member costs, its `used` prefix
//   2 mt     : storage read array<u32>, member tokens beside mc
//   3 pairs  : storage read array<PairInfo>, numPairs entries (filled by the host, see there)
//   4 chunks : storage read array<vec2<u32>>, numChunks entries: (pair, first position in h)
//   5 best   : storage read_write array<vec4<u32>>, numChunks entries (evaluate writes, select reads)
//   6 steps  : storage read_write array<vec2<i32>>, numPairs entries (select)
// Workgroup size 64 (1-D) for both. Dispatch: numChunks workgroups (evaluate),
// ceil(numPairs / 64) (select), laid out in 2-D (x <= 65535); surplus workgroups exit early.
// Sizes: positions and block sizes < 2^31 (the scan position 3 + 2x fits in u32).
// Loop bounds (llvmpipe silently ends a loop nest after about 65,535 iterations): an evaluate
// thread runs at most ITEMS positions x (1 + a binary search of <= 32 steps) plus one search of
// <= 32 steps for the moves, about 600 iterations; a select thread loops over its pair's chunks,
// ceil(|h| / CHUNK): at most 16,384 on llvmpipe, whose 128 MiB bindings hold 2^24 members.
// Workgroup storage: 1 KiB.

//! include u64.wgsl

const WG: u32 = 64u;
const ITEMS: u32 = 16u;
const CHUNK: u32 = 1024u; // WG * ITEMS

struct Params {
  numChunks: u32,
  numPairs: u32,
  hasCap: u32,
  capLo: u32,
  capHi: u32,
}

// One pair, as the host packs it: its blocks, loads, token sums and chunk range.
struct PairInfo {
  blocks: vec4<u32>,  // (off[h], size[h], off[l], size[l])
  loads: vec4<u32>,   // (L_h.lo, L_h.hi, L_l.lo, L_l.hi)
  tokens: vec4<u32>,  // (t_h.lo, t_h.hi, t_l.lo, t_l.hi)
  chunks: vec4<u32>,  // (first chunk, chunk count (0: no step possible), moves allowed, 0)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> mc: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> mt: array<u32>;
@group(0) @binding(3) var<storage, read> pairs: array<PairInfo>;
@group(0) @binding(4) var<storage, read> chunks: array<vec2<u32>>;
@group(0) @binding(5) var<storage, read_write> best: array<vec4<u32>>;
@group(0) @binding(6) var<storage, read_write> steps: array<vec2<i32>>;

var<workgroup> reduced: array<vec4<u32>, WG>;

// (v.lo, v.hi, pos, t) of "no candidate": above every real value.
const NONE: vec4<u32> = vec4<u32>(0xffffffffu, 0xffffffffu, 0xffffffffu, 0u);

// a before b: lower value, then lower scan position.
fn before(a: vec4<u32>, b: vec4<u32>) -> bool {
  if (a.y != b.y) { return a.y < b.y; }
  if (a.x != b.x) { return a.x < b.x; }
  return a.z < b.z;
}

// The candidate moving d from h to l, as (v.lo, v.hi, pos, t) if valid (0 < d < g, and the
// cap where there is one), else NONE. tx/ty: tokens of the item leaving h / l (ty = 0 for a move).
fn candidate(d: vec2<u32>, g: vec2<u32>, tx: u32, ty: u32, info: PairInfo, pos: u32, t: u32) -> vec4<u32> {
  if ((d.x == 0u && d.y == 0u) || !lt64(d, g)) { return NONE; }
  if (params.hasCap != 0u) {
    let cap = vec2<u32>(params.capLo, params.capHi);
    let th = info.tokens.xy;
    let tl = info.tokens.zw;
    if (!le64(add64(tl, widen(tx)), add64(cap, widen(ty)))) { return NONE; }
    if (!le64(add64(th, widen(ty)), add64(cap, widen(tx)))) { return NONE; }
  }
  let a = sub64(info.loads.xy, d);
  let b = add64(info.loads.zw, d);
  let v = select(a, b, lt64(a, b));
  return vec4<u32>(v.x, v.y, pos, t);
}

@compute @workgroup_size(64)
fn evaluate(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let chunk = wid.y * nwg.x + wid.x;
  if (chunk >= params.numChunks) { return; } // uniform across the workgroup
  let job = chunks[chunk];
  let info = pairs[job.x];
  let ho = info.blocks.x;
  let hn = info.blocks.y;
  let lo = info.blocks.z;
  let ln = info.blocks.w;
  let g = sub64(info.loads.xy, info.loads.zw);
  var mine = NONE;

  if (lid == 0u && job.y == 0u && info.chunks.z != 0u) {
    // Moves: p = first position of h with 2 c >= g; then t = p, p - 1.
    var a = 0u;
    var b = hn;
    while (a < b) {
      let mid = a + (b - a) / 2u;
      if (lt64(twice(mc[ho + mid]), g)) { a = mid + 1u; } else { b = mid; }
    }
    for (var j = 0u; j < 2u; j++) {
      if (j > a) { break; }
      let t = a - j;
      if (t >= hn) { continue; }
      let c = candidate(mc[ho + t], g, mt[ho + t], 0u, info, j, t);
      if (before(c, mine)) { mine = c; }
    }
  }

  let end = min(job.y + CHUNK, hn);
  for (var x = job.y + lid; x < end; x += WG) {
    let cx = mc[ho + x];
    if (x + 1u < hn) {
      let next = mc[ho + x + 1u];
      if (next.x == cx.x && next.y == cx.y) { continue; } // not the last of its run
    }
    // k = first position of l with 2 y >= W = 2 c_x - g (0 when W <= 0).
    var k = 0u;
    let cx2 = twice(cx);
    if (lt64(g, cx2)) {
      var w = sub64(cx2, g);
      if ((g.x & 1u) == 1u && w.y >= (1u << 21u) && (w.x & 3u) == 1u) {
        w = sub64(w, vec2<u32>(1u, 0u)); // the CPU's c_x - g/2 rounded down to an even integer
      }
      var b = ln;
      while (k < b) {
        let mid = k + (b - k) / 2u;
        if (lt64(twice(mc[lo + mid]), w)) { k = mid + 1u; } else { b = mid; }
      }
    }
    let tx = mt[ho + x];
    for (var j = 0u; j < 2u; j++) {
      if (j > k) { break; }
      let t = k - j;
      if (t >= ln) { continue; }
      let cy = mc[lo + t];
      if (!lt64(cy, cx)) { continue; }
      let c = candidate(sub64(cx, cy), g, tx, mt[lo + t], info, 2u + 2u * x + j, t);
      if (before(c, mine)) { mine = c; }
    }
  }

  // Thread j < 8 folds in entries j + 8, j + 16, ...; it only writes entries below 8.
  reduced[lid] = mine;
  workgroupBarrier();
  if (lid < 8u) {
    for (var i = lid + 8u; i < WG; i += 8u) {
      if (before(reduced[i], mine)) { mine = reduced[i]; }
    }
    reduced[lid] = mine;
  }
  workgroupBarrier();
  if (lid == 0u) {
    for (var i = 1u; i < 8u; i++) {
      if (before(reduced[i], mine)) { mine = reduced[i]; }
    }
    best[chunk] = mine;
  }
}

@compute @workgroup_size(64)
fn select_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * nwg.x + wid.x) * WG + lid;
  if (i >= params.numPairs) { return; }
  let range = pairs[i].chunks;
  var b = NONE;
  for (var c = range.x; c < range.x + range.y; c++) {
    let r = best[c];
    if (before(r, b)) { b = r; }
  }
  if (b.z == NONE.z) {
    steps[i] = vec2<i32>(-1, -1);
  } else if (b.z < 2u) {
    steps[i] = vec2<i32>(i32(b.w), -1);
  } else {
    steps[i] = vec2<i32>(i32((b.z - 2u) / 2u), i32(b.w));
  }
}
