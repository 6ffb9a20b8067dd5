// Greedy contiguous cuts for many targets at once, in parallel over (target, position): the same
// results as cuts.wgsl and cutCountsCpu (src/accel.ts), by pointer jumping instead of a walk.
//   next_sum / next_padded : one thread per (target t, position p), p in [0, n]: the group the
//        greedy cut starts at p, as the entry (q, 1, load.lo, load.hi) where q is its end
//        (next_sum: last q with prefix[q] - prefix[p] <= T, at least p + 1, found by galloping +
//        binary search over `prefix`; next_padded: q = p + max(1, min(n - p, floor(T / cost[p]))),
//        all the rest when cost[p] == 0, load = take * cost[p], exact 64-bit division).
//        Position n is the sink: (n, 0, 0, 0).
//   jump : one thread per (t, p): dst[p] = src[p] followed by src[src[p].next], i.e.
//        (next of next, count + count, max(load, load)); after r rounds entry p covers the first
//        2^r groups from p (or all of them, ending at the sink). ceil(log2(n + 1)) rounds from
//        next_* reach the sink from p = 0 (a cut has at most n groups).
//   collect : one thread per target of the chunk: results[firstTarget + t] = entry (t, 0), i.e.
//        (end, groups, maxLoad.lo, maxLoad.hi), the same layout as cuts.wgsl's `state` (end == n
//        once enough rounds ran; the host checks it).
// The group at p is sumGroup / paddedGroup from cut_group.wgsl (included below, with u64.wgsl),
// the same code as cuts.wgsl's walk. All 64-bit values are vec2<u32>(lo, hi); comparisons, sums
// and the division are exact.
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

//! include cut_group.wgsl

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

// What thread i of next_sum / next_padded computes: the group the greedy cut for target t starts
// at position p, with t's target `limit`. live is false past the last entry, and at the sink
// (p == n), whose entry (n, 0, 0, 0) is written here.
struct GroupStart {
  i: u32,
  p: u32,
  limit: vec2<u32>,
  live: bool,
}

fn groupStart(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> GroupStart {
  let i = threadIndex(wid, nwg, lid);
  let n = params.n;
  let width = n + 1u;
  if (i >= params.chunkTargets * width) { return GroupStart(); }
  let t = i / width;
  let p = i - t * width;
  if (p == n) { dst[i] = vec4<u32>(n, 0u, 0u, 0u); return GroupStart(); }
  return GroupStart(i, p, targets[params.firstTarget + t], true);
}

// Writes the entry of group g = (end, load.lo, load.hi, loops) from sumGroup / paddedGroup.
fn setGroup(s: GroupStart, g: vec4<u32>) {
  dst[s.i] = vec4<u32>(g.x, 1u, g.y, g.z);
}

@compute @workgroup_size(64)
fn next_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let s = groupStart(wid, nwg, lid);
  if (s.live) { setGroup(s, sumGroup(s.p, s.limit)); }
}

@compute @workgroup_size(64)
fn next_padded(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let s = groupStart(wid, nwg, lid);
  if (s.live) { setGroup(s, paddedGroup(s.p, s.limit)); }
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
