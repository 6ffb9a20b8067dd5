// CPU reference of the prefix-sum primitive.

export function prefixSumCpu(values: Float64Array): Float64Array {
  const out = new Float64Array(values.length + 1);
  let s = 0;
  for (let i = 0; i < values.length; i++) { out[i] = s; s += values[i]; }
  out[values.length] = s;
  return out;
}
