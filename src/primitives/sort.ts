// CPU reference of the sort primitive (the radix sort kernel returns exactly this permutation).
//
// Stable LSD radix sort on inverted keys (descending key, ascending index), 8-bit digits, digits
// equal for every key skipped. The (inverted key, index) pairs move together from pass to pass,
// so every pass reads sequentially (no key lookups through the permutation); each loop is a
// small function of its own, optimised on its first calls rather than by stack replacement.

/** Permutation that orders `keys` descending, ties by index ascending. */
export function sortDescCpu(keys: Uint32Array): Uint32Array {
  return sortDescWithKeys(keys).order;
}

/** The permutation, and the keys in that order (what the partition stage reads by position). */
export function sortDescWithKeys(keys: Uint32Array): { order: Uint32Array; sorted: Uint32Array } {
  const n = keys.length;
  let idx = new Uint32Array(n), inv = new Uint32Array(n);
  const varying = invert(keys, inv, idx);
  if (n >= 2 && varying !== 0) {
    let idx2 = new Uint32Array(n), inv2 = new Uint32Array(n);
    const count = new Uint32Array(256);
    for (let shift = 0; shift < 32; shift += 8) {
      if (((varying >>> shift) & 0xff) === 0) continue;
      histogram(inv, shift, count);
      scatter(inv, idx, shift, count, inv2, idx2);
      [inv, inv2] = [inv2, inv];
      [idx, idx2] = [idx2, idx];
    }
  }
  return { order: idx, sorted: restore(inv) };
}

/** inv[i] = ~keys[i], idx[i] = i; returns the bits on which keys differ. */
function invert(keys: Uint32Array, inv: Uint32Array, idx: Uint32Array): number {
  let or = 0, and = 0xffffffff;
  for (let i = 0; i < keys.length; i++) {
    const k = ~keys[i] >>> 0;
    inv[i] = k;
    idx[i] = i;
    or |= k; and &= k;
  }
  return (or ^ and) >>> 0;
}

/** count[d] = first output slot of digit d (exclusive prefix sums of the digit counts). */
function histogram(inv: Uint32Array, shift: number, count: Uint32Array): void {
  count.fill(0);
  for (let i = 0; i < inv.length; i++) count[(inv[i] >>> shift) & 0xff]++;
  let sum = 0;
  for (let d = 0; d < 256; d++) { const c = count[d]; count[d] = sum; sum += c; }
}

function scatter(inv: Uint32Array, idx: Uint32Array, shift: number, count: Uint32Array, inv2: Uint32Array, idx2: Uint32Array): void {
  for (let i = 0; i < inv.length; i++) {
    const k = inv[i];
    const p = count[(k >>> shift) & 0xff]++;
    inv2[p] = k;
    idx2[p] = idx[i];
  }
}

/** The keys back from their inversions, in place. */
function restore(inv: Uint32Array): Uint32Array {
  for (let i = 0; i < inv.length; i++) inv[i] = ~inv[i] >>> 0;
  return inv;
}
