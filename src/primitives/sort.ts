// CPU reference of the sort primitive (shaders' radix sort returns exactly this permutation).

/** Stable LSD radix sort on inverted keys: descending key, ascending index. */
export function sortDescCpu(keys: Uint32Array): Uint32Array {
  const n = keys.length;
  let idx: Uint32Array = new Uint32Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  if (n < 2) return idx;
  let tmp: Uint32Array = new Uint32Array(n);
  const count = new Uint32Array(256);
  // Skip passes whose digit is the same for every key (short lengths need one or two passes).
  let or = 0, and = 0xffffffff;
  for (let i = 0; i < n; i++) { const k = ~keys[i] >>> 0; or |= k; and &= k; }
  for (let shift = 0; shift < 32; shift += 8) {
    if ((((or ^ and) >>> shift) & 0xff) === 0) continue;
    count.fill(0);
    for (let i = 0; i < n; i++) count[((~keys[idx[i]] >>> 0) >>> shift) & 0xff]++;
    let sum = 0;
    for (let d = 0; d < 256; d++) { const c = count[d]; count[d] = sum; sum += c; }
    for (let i = 0; i < n; i++) {
      const id = idx[i];
      tmp[count[((~keys[id] >>> 0) >>> shift) & 0xff]++] = id;
    }
    const t = idx; idx = tmp; tmp = t;
  }
  return idx;
}
