// Include-only: unsigned 64-bit arithmetic on vec2<u32>(lo, hi) pairs, shared by pair_steps.wgsl
// and cut_group.wgsl (so cuts.wgsl and cuts_parallel.wgsl) through the line `//! include u64.wgsl`
// (resolved by shaderSource in src/gpu/shaders.ts). Not a kernel: no entry points, no bindings,
// no pipeline, never compiled on its own (it is not in SHADER_FILES).
//   add64           : a + b modulo 2^64
//   add64Saturating : a + b, or 2^64 - 1 where the sum overflows
//   sub64           : a - b modulo 2^64 (exact for a >= b)
//   lt64, le64      : a < b, a <= b
//   max64           : max(a, b)
//   twice           : 2 a (exact for a < 2^63)
//   widen           : a u32 as a 64-bit pair
//   div64           : floor(a / b) for b != 0, exact; a 64-step loop unless a and b fit in 32 bits
//                     (div64Steps(a, b) says how many: callers that count loop iterations use it)
//   mul64by32       : a * b for a 64-bit a and a 32-bit b, modulo 2^64
// Everything is exact integer arithmetic; no float, no module-scope state. Names an includer must
// not reuse: the functions above.

fn add64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
  let lo = a.x + b.x;
  return vec2<u32>(lo, a.y + b.y + select(0u, 1u, lo < a.x));
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

fn lt64(a: vec2<u32>, b: vec2<u32>) -> bool {
  return a.y < b.y || (a.y == b.y && a.x < b.x);
}

fn le64(a: vec2<u32>, b: vec2<u32>) -> bool {
  return a.y < b.y || (a.y == b.y && a.x <= b.x);
}

fn max64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
  return select(a, b, le64(a, b));
}

fn twice(a: vec2<u32>) -> vec2<u32> { // a < 2^63
  return vec2<u32>(a.x << 1u, (a.y << 1u) | (a.x >> 31u));
}

fn widen(a: u32) -> vec2<u32> {
  return vec2<u32>(a, 0u);
}

// Loop iterations div64(a, b) takes: 0 when both fit in 32 bits, else 64.
fn div64Steps(a: vec2<u32>, b: vec2<u32>) -> u32 {
  return select(64u, 0u, a.y == 0u && b.y == 0u);
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
