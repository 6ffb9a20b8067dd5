// Bitonic sort of up to 65,536 groups by (key, index) ascending, key a u64 as vec2<u32>(lo, hi):
// the order balance rounds pair groups in (and the home deal orders ranks by kept load in).
// Keys are distinct pairs (the index breaks ties), so the result is the one total order, exactly
// the CPU's sort by (load, index).
//   init   : keys[i] = src[i * stride] for i < count, (2^64 - 1, i) padding up to p2; idx[i] = i.
//   local  : one workgroup sorts (k = 0: every stage up to min(p2, TILE)) or merges (k > TILE:
//            the stages of merge size k with stride < TILE) a tile of TILE entries in workgroup
//            memory; the direction of each compare-exchange follows bit k of the global index.
//   global : one compare-exchange stage (merge size k, stride j >= TILE), a thread per entry.
// The host runs init, local(0), then for k = 2 TILE .. p2: global(k, j) for j = k/2 .. TILE,
// then local(k): log2(p2 / TILE) * (log2(p2 / TILE) + 3) / 2 + 2 dispatches for p2 > TILE, 2 below.
//
// Bindings (group 0):
//   0 params : uniform Params { p2, k, j, count, stride }
//   1 src    : storage read array<vec2<u32>> (init: the u64 keys, every stride-th entry)
//   2 keys   : storage read_write array<vec2<u32>>, p2 entries
//   3 idx    : storage read_write array<u32>, p2 entries (the sorted group indices, count first)
// Workgroup size 256 (1-D); TILE = 1024 entries (4 per thread), workgroup storage 12 KiB.
// Dispatch: init and global ceil(p2 / 256) workgroups, local ceil(p2 / TILE), in 2-D
// (x <= 65535). Sizes: p2 a power of two, count <= p2 <= 2^24.

const WG: u32 = 256u;
const TILE: u32 = 1024u;

struct Params {
  p2: u32,
  k: u32,
  j: u32,
  count: u32,
  stride: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read_write> keys: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read_write> idx: array<u32>;

var<workgroup> sKey: array<vec2<u32>, TILE>;
var<workgroup> sIdx: array<u32, TILE>;

fn linear(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.y * nwg.x + wid.x;
}

// (ka, ia) after (kb, ib) in (hi, lo, index) order.
fn after(ka: vec2<u32>, ia: u32, kb: vec2<u32>, ib: u32) -> bool {
  if (ka.y != kb.y) { return ka.y > kb.y; }
  if (ka.x != kb.x) { return ka.x > kb.x; }
  return ia > ib;
}

@compute @workgroup_size(256)
fn init(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = linear(wid, nwg) * WG + lid;
  if (i >= params.p2) { return; }
  keys[i] = select(vec2<u32>(0xffffffffu, 0xffffffffu), src[i * params.stride], i < params.count);
  idx[i] = i;
}

@compute @workgroup_size(256)
fn global_stage(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let i = linear(wid, nwg) * WG + lid;
  if (i >= params.p2) { return; }
  let l = i ^ params.j;
  if (l <= i) { return; }
  let up = (i & params.k) == 0u;
  let ki = keys[i];
  let kl = keys[l];
  let ii = idx[i];
  let il = idx[l];
  if (after(ki, ii, kl, il) == up) {
    keys[i] = kl; keys[l] = ki;
    idx[i] = il; idx[l] = ii;
  }
}

// One compare-exchange stage inside the tile (entries < size), direction from bit k of the global index.
fn stage(base: u32, size: u32, k: u32, j: u32, lid: u32) {
  for (var t = lid; t < TILE / 2u; t += WG) {
    // The t-th pair of this stage: i has bit j clear, l = i + j.
    let i = (t / j) * 2u * j + (t % j);
    let l = i + j;
    if (l < size) {
      let up = ((base + i) & k) == 0u;
      let ki = sKey[i];
      let kl = sKey[l];
      let ii = sIdx[i];
      let il = sIdx[l];
      if (after(ki, ii, kl, il) == up) {
        sKey[i] = kl; sKey[l] = ki;
        sIdx[i] = il; sIdx[l] = ii;
      }
    }
  }
  workgroupBarrier();
}

@compute @workgroup_size(256)
fn local_stages(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let base = linear(wid, nwg) * TILE;
  if (base >= params.p2) { return; } // uniform across the workgroup
  let size = min(TILE, params.p2 - base);
  for (var t = lid; t < size; t += WG) {
    sKey[t] = keys[base + t];
    sIdx[t] = idx[base + t];
  }
  workgroupBarrier();
  if (params.k == 0u) {
    for (var k = 2u; k <= size; k <<= 1u) {
      for (var j = k >> 1u; j > 0u; j >>= 1u) { stage(base, size, k, j, lid); }
    }
  } else {
    for (var j = TILE >> 1u; j > 0u; j >>= 1u) { stage(base, size, params.k, j, lid); }
  }
  for (var t = lid; t < size; t += WG) {
    keys[base + t] = sKey[t];
    idx[base + t] = sIdx[t];
  }
}
