// Include-only: the greedy group that starts at item p under a target load T, in both cut modes,
// shared by cuts.wgsl (one thread walks all of a target's groups) and cuts_parallel.wgsl (one
// thread per (target, p)) through the line `//! include cut_group.wgsl` (resolved by
// shaderSource in src/gpu/shaders.ts). Not a kernel: no entry points, no pipeline, never
// compiled on its own (it is not in SHADER_FILES). It includes u64.wgsl itself.
// It uses what the including shader declares: params.n (the item count, u32) and the bindings
//   prefix : array<vec2<u32>>, n + 1 prefix sums (sumGroup only)
//   costs  : array<vec2<u32>>, n costs           (paddedGroup only)
// so an entry point that calls one of them binds only the array that one reads.
//   sumGroup    : the longest run p..end-1 with prefix[end] - prefix[p] <= T (at least one item);
//                 end found by galloping (at most 33 probes) + binary search (at most 32 halvings)
//                 over `prefix`; load = prefix[end] - prefix[p].
//   paddedGroup : max(1, min(n - p, floor(T / cost[p]))) items (all the rest when cost[p] == 0),
//                 by exact 64-bit division (64 loop steps unless T and cost[p] fit in 32 bits);
//                 load = take * cost[p].
// Both need p < n and T < 2^64 (the host saturates larger targets), and return
// vec4<u32>(end, load.lo, load.hi, loops): the group is items [p, end), and `loops` counts the
// loop iterations it took (cuts.wgsl charges them to its per-dispatch budget).

//! include u64.wgsl

fn sumGroup(p: u32, targetLoad: vec2<u32>) -> vec4<u32> {
  let n = params.n;
  let start = prefix[p];
  let limit = add64Saturating(start, targetLoad);
  var loops = 0u;
  // Last index q in [p, n] with prefix[q] <= limit (prefix is non-decreasing, prefix[p] <= limit).
  // Gallop: groups are usually short compared with n.
  var lo = p;
  var step = 1u;
  var hi = n;
  loop {
    if (step > n - lo) { break; }
    loops++;
    let probe = lo + step;
    if (!le64(prefix[probe], limit)) { hi = probe - 1u; break; }
    lo = probe;
    step <<= 1u;
  }
  // Binary search.
  while (lo < hi) {
    loops++;
    let mid = lo + (hi - lo + 1u) / 2u;
    if (le64(prefix[mid], limit)) { lo = mid; } else { hi = mid - 1u; }
  }
  var end = lo;
  if (end == p) { end = p + 1u; }
  let load = sub64(prefix[end], start);
  return vec4<u32>(end, load.x, load.y, loops);
}

fn paddedGroup(p: u32, targetLoad: vec2<u32>) -> vec4<u32> {
  let cost = costs[p];
  let rest = params.n - p;
  var take = rest;
  var loops = 0u;
  if (cost.x != 0u || cost.y != 0u) {
    loops = div64Steps(targetLoad, cost);
    let fit = div64(targetLoad, cost);
    if (fit.y == 0u && fit.x < rest) { take = max(1u, fit.x); }
  }
  let load = mul64by32(cost, take);
  return vec4<u32>(p + take, load.x, load.y, loops);
}
