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
// One group is sumGroup / paddedGroup from cut_group.wgsl (included below, with u64.wgsl), the
// same code as cuts_parallel.wgsl's; the loop iterations each reports count against the budget.
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

//! include cut_group.wgsl

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

// One target's walk: resumed from `state` at the start of a dispatch, saved there at its end.
struct Walk {
  t: u32,           // the target's index
  p: u32,           // the next group starts at item p (the walk is finished when p == n)
  groups: u32,      // groups so far
  worst: vec2<u32>, // their largest load
  limit: vec2<u32>, // the target T
  live: bool,       // false: no such target, or its walk finished already (nothing to do or save)
}

// The walk of this invocation's target (t = its global index).
fn resume(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> Walk {
  let t = (wid.y * nwg.x + wid.x) * WG + lid;
  if (t >= params.numTargets) { return Walk(); }
  let saved = state[t];
  if (saved.x >= params.n) { return Walk(); }
  return Walk(t, saved.x, saved.y, saved.zw, targets[t], true);
}

// Whether the walk takes another group in this dispatch: items are left, and the budget has room
// for the most loop iterations one group can take. Counts the walk loop's own iteration.
fn nextGroup(w: Walk) -> bool {
  if (w.p >= params.n || steps + MAX_STEPS_PER_GROUP > params.budget) { return false; }
  steps++;
  return true;
}

// The walk after group g = (end, load.lo, load.hi, loops) from sumGroup / paddedGroup; charges
// the group's loop iterations to the budget.
fn advance(w: Walk, g: vec4<u32>) -> Walk {
  steps += g.w;
  var next = w;
  next.p = g.x;
  next.groups = w.groups + 1u;
  next.worst = max64(w.worst, g.yz);
  return next;
}

// Saves the walk in `state` for the next dispatch.
fn save(w: Walk) {
  state[w.t] = vec4<u32>(w.p, w.groups, w.worst.x, w.worst.y);
}

@compute @workgroup_size(64)
fn cut_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  var w = resume(wid, nwg, lid);
  if (!w.live) { return; }
  while (nextGroup(w)) { w = advance(w, sumGroup(w.p, w.limit)); }
  save(w);
}

@compute @workgroup_size(64)
fn cut_padded(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  var w = resume(wid, nwg, lid);
  if (!w.live) { return; }
  while (nextGroup(w)) { w = advance(w, paddedGroup(w.p, w.limit)); }
  save(w);
}
