// Greedy contiguous cuts for many targets at once: one thread per target walks the cuts
// (see cutCountsCpu in src/accel.ts; results are identical by construction).
// The walk is resumable: each dispatch advances every unfinished target by at most
// params.budget loop iterations and saves (p, groups, maxLoad) in `state`; the host repeats the
// dispatch until every target has p == n. This bounds the work of one invocation, which matters
// on llvmpipe: it silently ends any shader loop nest after 65,535 iterations.
//   cut_sum    : a group starting at p takes the longest run p..q-1 with prefix[q] - prefix[p] <= T
//                (at least one item); q found by galloping + binary search over `prefix`.
//   cut_padded : a group starting at p takes max(1, min(n - p, floor(T / cost[p]))) items
//                (all the rest when cost[p] == 0); load = take * cost[p].
// All 64-bit values are vec2<u32>(lo, hi); comparisons, sums and the division are exact.
// Targets >= 2^64 must be saturated by the host to 2^64 - 1 (same results: every load < 2^53).
//
// Bindings (group 0):
//   0 params  : uniform Params { n, numTargets, budget } (budget >= MAX_STEPS_PER_GROUP)
//   1 prefix  : storage read array<vec2<u32>>, n + 1 entries (cut_sum)
//   2 costs   : storage read array<vec2<u32>>, n entries     (cut_padded)
//   3 targets : storage read array<vec2<u32>>, numTargets entries
//   4 state   : storage read_write array<vec4<u32>>: (p, groups, maxLoad.lo, maxLoad.hi),
//               zero-initialised; the walk for a target is finished when p == n
// Workgroup size 64; dispatch ceil(numTargets / 64) workgroups in 2-D (x <= 65535).
// Work per target: O(groups * log(n / groups)) for cut_sum, O(groups * 64) for cut_padded
// (O(groups) when target and costs are below 2^32).

const WG: u32 = 64u;

struct Params {
  n: u32,
  numTargets: u32,
  budget: u32,
}

// Loop iterations one group can take: gallop (<= 33) + binary search (<= 32), or the long
// division (64), plus the group itself.
const MAX_STEPS_PER_GROUP: u32 = 72u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> prefix: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> costs: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read> targets: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read_write> state: array<vec4<u32>>;

// Loop iterations used by this invocation in this dispatch.
var<private> steps: u32 = 0u;

fn targetIndex(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
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
    steps++;
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
  // Gallop: groups are usually short compared with n.
  var lo = p;
  var step = 1u;
  var hi = n;
  loop {
    if (step > n - lo) { break; }
    steps++;
    let probe = lo + step;
    if (!le64(prefix[probe], limit)) { hi = probe - 1u; break; }
    lo = probe;
    step <<= 1u;
  }
  while (lo < hi) {
    steps++;
    let mid = lo + (hi - lo + 1u) / 2u;
    if (le64(prefix[mid], limit)) { lo = mid; } else { hi = mid - 1u; }
  }
  return lo;
}

@compute @workgroup_size(64)
fn cut_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let t = targetIndex(wid, nwg, lid);
  if (t >= params.numTargets) { return; }
  let saved = state[t];
  let n = params.n;
  var p = saved.x;
  if (p >= n) { return; }
  var groups = saved.y;
  var worst = saved.zw;
  let targetLoad = targets[t];
  while (p < n && steps + MAX_STEPS_PER_GROUP <= params.budget) {
    steps++;
    let start = prefix[p];
    var q = lastAtMost(p, add64Saturating(start, targetLoad));
    if (q == p) { q = p + 1u; }
    worst = max64(worst, sub64(prefix[q], start));
    groups++;
    p = q;
  }
  state[t] = vec4<u32>(p, groups, worst.x, worst.y);
}

@compute @workgroup_size(64)
fn cut_padded(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let t = targetIndex(wid, nwg, lid);
  if (t >= params.numTargets) { return; }
  let saved = state[t];
  let n = params.n;
  var p = saved.x;
  if (p >= n) { return; }
  var groups = saved.y;
  var worst = saved.zw;
  let targetLoad = targets[t];
  while (p < n && steps + MAX_STEPS_PER_GROUP <= params.budget) {
    steps++;
    let cost = costs[p];
    let rest = n - p;
    var take = rest;
    if (cost.x != 0u || cost.y != 0u) {
      let fit = div64(targetLoad, cost);
      if (fit.y == 0u && fit.x < rest) { take = max(1u, fit.x); }
    }
    worst = max64(worst, mul64by32(cost, take));
    groups++;
    p += take;
  }
  state[t] = vec4<u32>(p, groups, worst.x, worst.y);
}
