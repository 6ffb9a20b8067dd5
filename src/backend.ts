// Choosing the accelerator, above both primitives/ and gpu/ (it picks between them): `cpu`,
// `gpu` (an adapter is required, software ones included), or `auto`: a hardware GPU adapter if
// one can be had; on a software adapter (Mesa llvmpipe and the like, the only adapter of a
// GPU-less machine) the CPU path, which plans faster there (docs/BENCHMARKS.md: every size
// measured); with no adapter the CPU path and one line on stderr. Plans are identical whichever
// is chosen; stats.backendReason says why.
import { cpuAccelerator, type Accelerator } from './primitives/accelerator.js';
import { InputError } from './errors.js';

export type Backend = 'auto' | 'cpu' | 'gpu';
export const BACKENDS: readonly Backend[] = ['auto', 'cpu', 'gpu'];

export async function getAccelerator(backend: Backend, opts: { verbose?: boolean; warn?: (line: string) => void } = {}): Promise<Accelerator> {
  if (backend === 'cpu') return { ...cpuAccelerator, reason: 'backend cpu' };
  let reason: string;
  try {
    // Dynamic import: the GPU bindings load only when a GPU backend is asked for.
    const { createGpuAccelerator } = await import('./gpu/accelerator.js');
    return await createGpuAccelerator({
      verbose: opts.verbose, allowSoftware: backend === 'gpu',
      reason: backend === 'gpu' ? 'backend gpu' : 'auto: a hardware WebGPU adapter',
    });
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0];
    if (e instanceof Error && e.name === 'SoftwareAdapterError') {
      return { ...cpuAccelerator, reason: `auto: ${msg}, where the CPU path plans faster (the same plan)` };
    }
    // No adapter is an expected condition; anything else (a shader that fails to compile, a
    // device lost at start) is a WebGPU failure and says so.
    reason = e instanceof Error && e.name === 'GpuUnavailableError' ? msg : `WebGPU initialisation failed: ${msg}`;
  }
  if (backend === 'gpu') throw new InputError(`--backend gpu: ${reason}`);
  opts.warn?.(`postbalance: ${reason}; using the CPU path`);
  return { ...cpuAccelerator, reason: `auto: ${reason}` };
}
