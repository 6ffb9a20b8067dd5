// Choosing the accelerator: `cpu`, `gpu` (an adapter is required), or `auto` (a GPU adapter if
// one can be had — hardware first, then the OpenGL ES compatibility adapter — else the CPU path
// with one line on stderr saying so). Plans are identical whichever is chosen.
import { cpuAccelerator, type Accelerator } from './accel.js';
import { InputError } from './errors.js';

export type Backend = 'auto' | 'cpu' | 'gpu';
export const BACKENDS: readonly Backend[] = ['auto', 'cpu', 'gpu'];

type GpuModule = { createGpuAccelerator: (opts?: { verbose?: boolean }) => Promise<Accelerator> };

export async function getAccelerator(backend: Backend, opts: { verbose?: boolean; warn?: (line: string) => void } = {}): Promise<Accelerator> {
  if (backend === 'cpu') return cpuAccelerator;
  let reason: string;
  try {
    // Computed specifier: the GPU bindings load only when a GPU backend is asked for.
    const gpuPath = './gpu/accelerator.js';
    const mod = (await import(gpuPath)) as GpuModule;
    return await mod.createGpuAccelerator({ verbose: opts.verbose });
  } catch (e) {
    reason = (e instanceof Error ? e.message : String(e)).split('\n')[0];
  }
  if (backend === 'gpu') throw new InputError(`--backend gpu: no WebGPU adapter available (${reason})`);
  opts.warn?.(`postbalance: no WebGPU adapter (${reason}); using the CPU path`);
  return cpuAccelerator;
}
