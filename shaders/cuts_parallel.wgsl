// Greedy contiguous cuts for many targets at once, in parallel over (target, position): the same
// results as cuts.wgsl and cutCountsCpu (src/accel.ts), by pointer jumping instead of a walk.
//   next_sum / next_padded : one thread per (target t, position p), p in [0, n]: the group the
//        greedy cut starts at p, as the entry (q, 1, load.lo, load.hi) where q is its end
//        (cut_sum: last q with prefix[q] - prefix[p] <= T, at least p + 1, found by galloping +
//        binary search over `prefix`; cut_padded: q = p + max(1, min(n - p, floor(T / cost[p]))),
//        all the rest when cost[p] == 0, load = take * cost[p], exact 64-bit division).
//        Position n is the sink: (n, 0, 0, 0).
//   jump : one thread per (t, p): dst[p] = src[p] followed by src[src[p].next], i.e.
//        (next of next, count + count, max(load, load)); after r rounds entry p covers the first
//        2^r groups from p (or all of them, ending at the sink). ceil(log2(n + 1)) rounds from
//        next_* reach the sink from p = 0 (a cut has at most n groups).
//   collect : one thread per target of the chunk: results[firstTarget + t] = entry (t, 0), i.e.
//        (end, groups, maxLoad.lo, maxLoad.hi), the same layout as cuts.wgsl's `state` (end == n
//        once enough rounds ran; the host checks it).
// All 64-bit values are vec2<u32>(lo, hi); comparisons, sums and the division are exact.
// Targets >= 2^64 must be saturated by the host to 2^64 - 1 (same results: every load < 2^53).
//
// Bindings (group 0):
//   0 params  : uniform Params { n, chunkTargets, firstTarget }
//   1 prefix  : storage read array<vec2<u32>>, n + 1 entries (next_sum)
//   2 costs   : storage read array<vec2<u32>>, n entries     (next_padded)
//   3 targets : storage read array<vec2<u32>>, firstTarget + chunkTargets entries or more
//   4 src     : storage read array<vec4<u32>>, chunkTargets * (n + 1) entries (jump, collect)
//   5 dst     : storage read_write array<vec4<u32>>, chunkTargets * (n + 1) entries (next_*, jump)
//   6 results : storage read_write array<vec4<u32>>, one per target (collect)
// Entry (t, p) is at index t * (n + 1) + p; the host keeps chunkTargets * (n + 1) * 16 bytes
// within maxStorageBufferBindingSize (so every index fits in u32).
// Workgroup size 64; dispatch ceil(chunkTargets * (n + 1) / 64) workgroups (ceil(chunkTargets / 64)
// for collect) in 2-D (x <= 65535). Loops per thread: at most 33 + 32 (search) or 64 (division).

const WG: u32 = 64u;

struct Params {
  n: u32,
  chunkTargets: u32,
  firstTarget: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> prefix: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> costs: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read> targets: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read_write> dst: array<vec4<u32>>;
@group(0) @binding(6) var<storage, read_write> results: array<vec4<u32>>;

fn threadIndex(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid;
}

fn add64Saturating(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
  let lo = a.x + b.x;
  let carry = select(0u, 1u, lo < a.x);
  let hi = a.y + b.y + carry;
  let overflow = hi < a.y || (hi == a.y && (b.y != 0u || carry != 0u));
  return select(vec2<u32>(lo, hi), vec2<u32>(0xffffffffu, 0xffffffffu), overflow);
}

fn sub64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
  return vec2<u32>(a.x - b.x, a.y - b.y - select(0u, 1u, a.x < b.x));
}

fn le64(a: vec2<u32>, b: vec2<u32>) -> bool {
  return a.y < b.y || (a.y == b.y && a.x <= b.x);
}

fn max64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
  return select(a, b, le64(a, b));
}

// floor(a / b) for b != 0, by restoring long division (64 steps) unless both fit in 32 bits.
fn div64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
  if (a.y == 0u && b.y == 0u) { return vec2<u32>(a.x / b.x, 0u); }
  var q = vec2<u32>(0u, 0u);
  var r = vec2<u32>(0u, 0u);
  for (var i = 63i; i >= 0i; i--) {
    let word = select(a.x, a.y, i >= 32i);
    let bit = (word >> (u32(i) & 31u)) & 1u;
    r = vec2<u32>((r.x << 1u) | bit, (r.y << 1u) | (r.x >> 31u));
    if (le64(b, r)) {
      r = sub64(r, b);
      if (i >= 32i) { q.y |= 1u << (u32(i) - 32u); } else { q.x |= 1u << u32(i); }
    }
  }
  return q;
}

// a * b for a 64-bit a and a 32-bit b, modulo 2^64 (exact whenever the product < 2^64).
fn mul64by32(a: vec2<u32>, b: u32) -> vec2<u32> {
  let a0 = a.x & 0xffffu;
  let a1 = a.x >> 16u;
  let b0 = b & 0xffffu;
  let b1 = b >> 16u;
  let p00 = a0 * b0;
  let p01 = a0 * b1;
  let p10 = a1 * b0;
  let p11 = a1 * b1;
  let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
  let lo = (p00 & 0xffffu) | (mid << 16u);
  let hi = p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u) + a.y * b;
  return vec2<u32>(lo, hi);
}

// Last index q in [p, n] with prefix[q] <= limit (prefix is non-decreasing, prefix[p] <= limit).
fn lastAtMost(p: u32, limit: vec2<u32>) -> u32 {
  let n = params.n;
  // Gallop: groups are usually short compared with n (at most 33 probes).
  var lo = p;
  var step = 1u;
  var hi = n;
  loop {
    if (step > n - lo) { break; }
    let probe = lo + step;
    if (!le64(prefix[probe], limit)) { hi = probe - 1u; break; }
    lo = probe;
    step <<= 1u;
  }
  // Binary search (at most 32 halvings).
  while (lo < hi) {
    let mid = lo + (hi - lo + 1u) / 2u;
    if (le64(prefix[mid], limit)) { lo = mid; } else { hi = mid - 1u; }
  }
  return lo;
}

@compute @workgroup_size(64)
fn next_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let i = threadIndex(wid, nwg, lid);
  let n = params.n;
  let width = n + 1u;
  if (i >= params.chunkTargets * width) { return; }
  let t = i / width;
  let p = i - t * width;
  if (p == n) { dst[i] = vec4<u32>(n, 0u, 0u, 0u); return; }
  let start = prefix[p];
  var q = lastAtMost(p, add64Saturating(start, targets[params.firstTarget + t]));
  if (q == p) { q = p + 1u; }
  let load = sub64(prefix[q], start);
  dst[i] = vec4<u32>(q, 1u, load.x, load.y);
}

@compute @workgroup_size(64)
fn next_padded(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let i = threadIndex(wid, nwg, lid);
  let n = params.n;
  let width = n + 1u;
  if (i >= params.chunkTargets * width) { return; }
  let t = i / width;
  let p = i - t * width;
  if (p == n) { dst[i] = vec4<u32>(n, 0u, 0u, 0u); return; }
  let cost = costs[p];
  let rest = n - p;
  var take = rest;
  if (cost.x != 0u || cost.y != 0u) {
    let fit = div64(targets[params.firstTarget + t], cost);
    if (fit.y == 0u && fit.x < rest) { take = max(1u, fit.x); }
  }
  let load = mul64by32(cost, take);
  dst[i] = vec4<u32>(p + take, 1u, load.x, load.y);
}

@compute @workgroup_size(64)
fn jump(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = threadIndex(wid, nwg, lid);
  let n = params.n;
  let width = n + 1u;
  if (i >= params.chunkTargets * width) { return; }
  let here = src[i];
  if (here.x == n) { dst[i] = here; return; } // already at the sink
  let t = i / width;
  let there = src[t * width + here.x];
  let worst = max64(here.zw, there.zw);
  dst[i] = vec4<u32>(there.x, here.y + there.y, worst.x, worst.y);
}

@compute @workgroup_size(64)
fn collect(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let t = threadIndex(wid, nwg, lid);
  if (t >= params.chunkTargets) { return; }
  let first = src[t * (params.n + 1u)];
  results[params.firstTarget + t] = first;
}
