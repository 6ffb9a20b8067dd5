// Exclusive prefix sums, reduce-then-scan (no forward-progress assumption between workgroups).
//
// One tile = WG threads x ITEMS elements = 1024 elements. A scan of n elements runs as:
//   reduce_*  : tile sums of `data` into `tileSums` (one workgroup per tile)
//   (the host scans `tileSums` recursively with these same kernels, in place)
//   scan_*    : in-place exclusive scan of each tile of `data`, plus `tileSums[tile]` when
//               params.hasOffsets != 0 (a single-tile scan runs with hasOffsets = 0).
// u32 entry points wrap modulo 2^32 (used for radix histograms, whose totals are <= n).
// u64 entry points hold a value as vec2<u32>(lo, hi) and add with carry (exact modulo 2^64).
// With params.convert bit 0 set, the u64 kernels read `data64` as IEEE-754 doubles (the host's
// Float64Array bytes, uploaded as is) and convert them on load (f64ToU64); with bit 1 set,
// scan_u64 stores its results as doubles (u64ToF64), so the host reads a Float64Array back
// without a conversion loop. Only the top level of a scan converts; tile sums stay u64.
//   f64_to_u64 : in-place conversion of `data64` (n entries) from doubles to (lo, hi) words.
//
// Bindings (group 0), each entry point uses its own subset:
//   0 params   : uniform Params { n, hasOffsets, convert }
//   1 data32   : storage read_write array<u32>        (u32 kernels)
//   2 sums32   : storage read_write array<u32>        (u32 kernels; >= 1 element even when unused)
//   3 data64   : storage read_write array<vec2<u32>>  (u64 kernels)
//   4 sums64   : storage read_write array<vec2<u32>>  (u64 kernels)
// Workgroup size: 256 (1-D). Dispatch: ceil(n / 1024) workgroups laid out in 2-D
// (x <= 65535), tile = wid.y * num_workgroups.x + wid.x; surplus workgroups exit early.
// Workgroup storage: 5 KiB (u32) / 10 KiB (u64).

const WG: u32 = 256u;
const ITEMS: u32 = 4u;
const TILE: u32 = 1024u; // WG * ITEMS

struct Params {
  n: u32,
  hasOffsets: u32,
  convert: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> data32: array<u32>;
@group(0) @binding(2) var<storage, read_write> sums32: array<u32>;
@group(0) @binding(3) var<storage, read_write> data64: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read_write> sums64: array<vec2<u32>>;

var<workgroup> tile32: array<u32, TILE>;
var<workgroup> part32: array<u32, WG>;
var<workgroup> tile64: array<vec2<u32>, TILE>;
var<workgroup> part64: array<vec2<u32>, WG>;

fn tileIndex(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.y * nwg.x + wid.x;
}

fn tileCount() -> u32 {
  return (params.n + TILE - 1u) / TILE;
}

fn add64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
  let lo = a.x + b.x;
  return vec2<u32>(lo, a.y + b.y + select(0u, 1u, lo < a.x));
}

fn sub64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
  return vec2<u32>(a.x - b.x, a.y - b.y - select(0u, 1u, a.x < b.x));
}

fn shl64(a: vec2<u32>, s: u32) -> vec2<u32> { // s < 64 (WGSL shifts take the amount mod 32)
  if (s == 0u) { return a; }
  if (s >= 32u) { return vec2<u32>(0u, a.x << (s - 32u)); }
  return vec2<u32>(a.x << s, (a.y << s) | (a.x >> (32u - s)));
}

fn shr64(a: vec2<u32>, s: u32) -> vec2<u32> { // s < 64
  if (s == 0u) { return a; }
  if (s >= 32u) { return vec2<u32>(a.y >> (s - 32u), 0u); }
  return vec2<u32>((a.x >> s) | (a.y << (32u - s)), a.y >> s);
}

// A double's bits (lo, hi) to the u64 floor of its value, as the host's toWordPairs maps it
// (src/gpu/buffers.ts): values < 1, zeros, subnormals and NaN give 0, values >= 2^64 and
// +infinity saturate to 2^64 - 1. Negative values are outside the contract (sign ignored).
fn f64ToU64(b: vec2<u32>) -> vec2<u32> {
  let biased = (b.y >> 20u) & 0x7ffu;
  let frac = vec2<u32>(b.x, b.y & 0xfffffu);
  if (biased == 0x7ffu && (frac.x | frac.y) != 0u) { return vec2<u32>(0u, 0u); } // NaN
  if (biased < 1023u) { return vec2<u32>(0u, 0u); }
  let e = biased - 1023u;
  if (e >= 64u) { return vec2<u32>(0xffffffffu, 0xffffffffu); }
  let m = vec2<u32>(frac.x, frac.y | 0x100000u); // value = m * 2^(e - 52)
  if (e >= 52u) { return shl64(m, e - 52u); }
  return shr64(m, 52u - e);
}

// A u64 to the bits of the nearest double (ties to even, as hi * 2^32 + lo rounds on the host);
// exact below 2^53.
fn u64ToF64(v: vec2<u32>) -> vec2<u32> {
  if (v.x == 0u && v.y == 0u) { return vec2<u32>(0u, 0u); }
  var top: u32; // index of the leading one bit
  if (v.y != 0u) { top = 32u + firstLeadingBit(v.y); } else { top = firstLeadingBit(v.x); }
  var m: vec2<u32>;
  if (top <= 52u) {
    m = shl64(v, 52u - top);
  } else {
    let s = top - 52u; // 1..11: the dropped bits all lie in the low word
    m = shr64(v, s);
    let rest = v.x & ((1u << s) - 1u);
    let half = 1u << (s - 1u);
    if (rest > half || (rest == half && (m.x & 1u) == 1u)) {
      m.x += 1u;
      if (m.x == 0u) { m.y += 1u; }
      if (m.y == 0x200000u) { m = vec2<u32>(0u, 0x100000u); top += 1u; } // rounded up to 2^53
    }
  }
  return vec2<u32>(m.x, ((top + 1023u) << 20u) | (m.y & 0xfffffu));
}

fn load64(i: u32) -> vec2<u32> {
  let v = data64[i];
  if ((params.convert & 1u) != 0u) { return f64ToU64(v); }
  return v;
}

fn store64(i: u32, v: vec2<u32>) {
  if ((params.convert & 2u) != 0u) { data64[i] = u64ToF64(v); } else { data64[i] = v; }
}

// Inclusive Hillis-Steele scan of part32 across the workgroup (log2(WG) steps).
fn scanParts32(lid: u32) {
  for (var offset = 1u; offset < WG; offset <<= 1u) {
    workgroupBarrier();
    var add = 0u;
    if (lid >= offset) { add = part32[lid - offset]; }
    workgroupBarrier();
    part32[lid] += add;
  }
  workgroupBarrier();
}

fn scanParts64(lid: u32) {
  for (var offset = 1u; offset < WG; offset <<= 1u) {
    workgroupBarrier();
    var add = vec2<u32>(0u, 0u);
    if (lid >= offset) { add = part64[lid - offset]; }
    workgroupBarrier();
    part64[lid] = add64(part64[lid], add);
  }
  workgroupBarrier();
}

@compute @workgroup_size(256)
fn reduce_u32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let tile = tileIndex(wid, nwg);
  if (tile >= tileCount()) { return; }
  var sum = 0u;
  for (var k = 0u; k < ITEMS; k++) {
    let i = tile * TILE + k * WG + lid;
    if (i < params.n) { sum += data32[i]; }
  }
  part32[lid] = sum;
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    workgroupBarrier();
    if (lid < stride) { part32[lid] += part32[lid + stride]; }
  }
  if (lid == 0u) { sums32[tile] = part32[0]; }
}

@compute @workgroup_size(256)
fn scan_u32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let tile = tileIndex(wid, nwg);
  if (tile >= tileCount()) { return; }
  // Coalesced load into workgroup memory; each thread then scans ITEMS consecutive elements.
  for (var k = 0u; k < ITEMS; k++) {
    let i = tile * TILE + k * WG + lid;
    var v = 0u;
    if (i < params.n) { v = data32[i]; }
    tile32[k * WG + lid] = v;
  }
  workgroupBarrier();
  var run = 0u;
  for (var k = 0u; k < ITEMS; k++) {
    let v = tile32[lid * ITEMS + k];
    tile32[lid * ITEMS + k] = run;
    run += v;
  }
  part32[lid] = run;
  scanParts32(lid);
  var offset = part32[lid] - run;
  if (params.hasOffsets != 0u) { offset += sums32[tile]; }
  for (var k = 0u; k < ITEMS; k++) { tile32[lid * ITEMS + k] += offset; }
  workgroupBarrier();
  for (var k = 0u; k < ITEMS; k++) {
    let i = tile * TILE + k * WG + lid;
    if (i < params.n) { data32[i] = tile32[k * WG + lid]; }
  }
}

@compute @workgroup_size(256)
fn reduce_u64(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let tile = tileIndex(wid, nwg);
  if (tile >= tileCount()) { return; }
  var sum = vec2<u32>(0u, 0u);
  for (var k = 0u; k < ITEMS; k++) {
    let i = tile * TILE + k * WG + lid;
    if (i < params.n) { sum = add64(sum, load64(i)); }
  }
  part64[lid] = sum;
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    workgroupBarrier();
    if (lid < stride) { part64[lid] = add64(part64[lid], part64[lid + stride]); }
  }
  if (lid == 0u) { sums64[tile] = part64[0]; }
}

@compute @workgroup_size(256)
fn scan_u64(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let tile = tileIndex(wid, nwg);
  if (tile >= tileCount()) { return; }
  for (var k = 0u; k < ITEMS; k++) {
    let i = tile * TILE + k * WG + lid;
    var v = vec2<u32>(0u, 0u);
    if (i < params.n) { v = load64(i); }
    tile64[k * WG + lid] = v;
  }
  workgroupBarrier();
  var run = vec2<u32>(0u, 0u);
  for (var k = 0u; k < ITEMS; k++) {
    let v = tile64[lid * ITEMS + k];
    tile64[lid * ITEMS + k] = run;
    run = add64(run, v);
  }
  part64[lid] = run;
  scanParts64(lid);
  var offset = sub64(part64[lid], run);
  if (params.hasOffsets != 0u) { offset = add64(offset, sums64[tile]); }
  for (var k = 0u; k < ITEMS; k++) { tile64[lid * ITEMS + k] = add64(tile64[lid * ITEMS + k], offset); }
  workgroupBarrier();
  for (var k = 0u; k < ITEMS; k++) {
    let i = tile * TILE + k * WG + lid;
    if (i < params.n) { store64(i, tile64[k * WG + lid]); }
  }
}

@compute @workgroup_size(256)
fn f64_to_u64(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let tile = tileIndex(wid, nwg);
  if (tile >= tileCount()) { return; }
  for (var k = 0u; k < ITEMS; k++) {
    let i = tile * TILE + k * WG + lid;
    if (i < params.n) { data64[i] = f64ToU64(data64[i]); }
  }
}
