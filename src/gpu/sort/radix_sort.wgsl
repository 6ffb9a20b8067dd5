// One pass of a stable LSD radix sort: u32 keys with a u32 payload, 8-bit digit per pass.
// Order: key descending, payload (item index) ascending, i.e. ascending on the inverted key
// (~key), stable. Keys are stored as given; the kernels invert them when taking a digit.
//
// Reduce-then-scan, no forward-progress assumption between workgroups, no subgroups:
//   histogram : per tile digit counts -> hist[digit * numTiles + tile]
//   (the host runs scan.wgsl's exclusive u32 scan over hist, in place: digit-major layout
//    makes hist[d * numTiles + t] the first output slot of digit d from tile t)
//   scatter   : stable local sort of the tile by digit (two 4-bit split rounds, each a
//               workgroup scan of 16 packed 16-bit counters), then each element goes to
//               hist[d * numTiles + tile] + (its rank among digit d in the tile).
//
// Bindings (group 0):
//   0 params  : uniform Params { n, shift, numTiles, firstPass }
//   1 keysIn  : storage read      array<u32>
//   2 valsIn  : storage read      array<u32>  (ignored when firstPass != 0: payload = index)
//   3 hist    : storage read_write array<u32>, 256 * numTiles entries
//   4 keysOut : storage read_write array<u32>   (scatter only)
//   5 valsOut : storage read_write array<u32>   (scatter only)
// Workgroup size 128; tile = 1024 elements (8 per thread); numTiles = ceil(n / 1024).
// Dispatch: numTiles workgroups in 2-D (x <= 65535), tile = wid.y * num_workgroups.x + wid.x.
// Workgroup storage: ~13 KiB (scatter), 1 KiB (histogram). Any n < 2^32 - 1024.

const WG: u32 = 128u;
const ITEMS: u32 = 8u;
const TILE: u32 = 1024u; // WG * ITEMS

struct Params {
  n: u32,
  shift: u32,
  numTiles: u32,
  firstPass: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> keysIn: array<u32>;
@group(0) @binding(2) var<storage, read> valsIn: array<u32>;
@group(0) @binding(3) var<storage, read_write> hist: array<u32>;
@group(0) @binding(4) var<storage, read_write> keysOut: array<u32>;
@group(0) @binding(5) var<storage, read_write> valsOut: array<u32>;

var<workgroup> binCounts: array<atomic<u32>, 256>;
var<workgroup> sKeys: array<u32, TILE>;
var<workgroup> sVals: array<u32, TILE>;
// Per thread, 16 counters of 16 bits packed in 8 words (counts within a tile are <= 1024).
var<workgroup> sCounts: array<u32, 1024>; // WG * 8
var<workgroup> digitStart: array<u32, 256>;
var<workgroup> nibbleStart: array<u32, 16>;

fn tileIndex(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.y * nwg.x + wid.x;
}

fn digitOf(key: u32) -> u32 {
  return ((~key) >> params.shift) & 0xffu;
}

@compute @workgroup_size(128)
fn histogram(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let tile = tileIndex(wid, nwg);
  if (tile >= params.numTiles) { return; }
  atomicStore(&binCounts[lid], 0u);
  atomicStore(&binCounts[lid + WG], 0u);
  workgroupBarrier();
  for (var k = 0u; k < ITEMS; k++) {
    let i = tile * TILE + k * WG + lid;
    if (i < params.n) { atomicAdd(&binCounts[digitOf(keysIn[i])], 1u); }
  }
  workgroupBarrier();
  hist[lid * params.numTiles + tile] = atomicLoad(&binCounts[lid]);
  hist[(lid + WG) * params.numTiles + tile] = atomicLoad(&binCounts[lid + WG]);
}

// Stable split of the tile in workgroup memory by the 4-bit field at `nibbleShift` of the digit.
// Thread t owns positions t*ITEMS .. t*ITEMS+ITEMS-1, so thread order is element order.
// The counters live in workgroup memory (thread t owns sCounts[t*8 .. t*8+7]), so no private
// array is indexed by a computed nibble (that forces private arrays out of registers).
fn splitByNibble(lid: u32, nibbleShift: u32) {
  var keys: array<u32, ITEMS>;
  var vals: array<u32, ITEMS>;
  var nibbles: array<u32, ITEMS>;
  var ranks: array<u32, ITEMS>;     // rank among equal nibbles within this thread
  for (var w = 0u; w < 8u; w++) { sCounts[lid * 8u + w] = 0u; }
  for (var k = 0u; k < ITEMS; k++) {
    let key = sKeys[lid * ITEMS + k];
    let f = (digitOf(key) >> nibbleShift) & 0xfu;
    keys[k] = key;
    vals[k] = sVals[lid * ITEMS + k];
    nibbles[k] = f;
    let c = lid * 8u + (f >> 1u);
    let bit = (f & 1u) * 16u;
    let packed = sCounts[c];
    ranks[k] = (packed >> bit) & 0xffffu;
    sCounts[c] = packed + (1u << bit);
  }
  // Inclusive scan over threads of the 8 packed words (no field exceeds 1024, so no carries
  // cross 16-bit field boundaries).
  for (var offset = 1u; offset < WG; offset <<= 1u) {
    workgroupBarrier();
    var add: array<u32, 8>;
    for (var w = 0u; w < 8u; w++) {
      add[w] = 0u;
      if (lid >= offset) { add[w] = sCounts[(lid - offset) * 8u + w]; }
    }
    workgroupBarrier();
    for (var w = 0u; w < 8u; w++) { sCounts[lid * 8u + w] += add[w]; }
  }
  workgroupBarrier();
  // Start of each nibble value in the tile: exclusive scan of the tile totals (last thread's).
  if (lid < 16u) {
    var total = 0u;
    for (var f = 0u; f < lid; f++) {
      total += (sCounts[(WG - 1u) * 8u + (f >> 1u)] >> ((f & 1u) * 16u)) & 0xffffu;
    }
    nibbleStart[lid] = total;
  }
  workgroupBarrier(); // sKeys/sVals were read before the scan's barriers; sCounts is read only now
  for (var k = 0u; k < ITEMS; k++) {
    let f = nibbles[k];
    var before = 0u; // elements with nibble f in the threads before this one
    if (lid > 0u) { before = (sCounts[(lid - 1u) * 8u + (f >> 1u)] >> ((f & 1u) * 16u)) & 0xffffu; }
    let dst = nibbleStart[f] + before + ranks[k];
    sKeys[dst] = keys[k];
    sVals[dst] = vals[k];
  }
  workgroupBarrier();
}

@compute @workgroup_size(128)
fn scatter(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let tile = tileIndex(wid, nwg);
  if (tile >= params.numTiles) { return; }
  let base = tile * TILE;
  let valid = min(TILE, params.n - base);
  for (var k = 0u; k < ITEMS; k++) {
    let j = k * WG + lid;
    let i = base + j;
    if (j < valid) {
      sKeys[j] = keysIn[i];
      if (params.firstPass != 0u) { sVals[j] = i; } else { sVals[j] = valsIn[i]; }
    } else {
      // Padding: key 0 inverts to 0xffffffff, digit 0xff, so it sorts after every real
      // element (stable split keeps it behind real elements with digit 0xff too).
      sKeys[j] = 0u;
      sVals[j] = 0u;
    }
  }
  workgroupBarrier();
  splitByNibble(lid, 0u);
  splitByNibble(lid, 4u);
  // First position of each digit in the locally sorted tile (only present digits are read).
  for (var k = 0u; k < ITEMS; k++) {
    let j = lid * ITEMS + k;
    let d = digitOf(sKeys[j]);
    if (j == 0u || digitOf(sKeys[j - 1u]) != d) { digitStart[d] = j; }
  }
  workgroupBarrier();
  for (var k = 0u; k < ITEMS; k++) {
    let j = k * WG + lid;
    if (j < valid) {
      let key = sKeys[j];
      let d = digitOf(key);
      let dst = hist[d * params.numTiles + tile] + (j - digitStart[d]);
      keysOut[dst] = key;
      valsOut[dst] = sVals[j];
    }
  }
}
