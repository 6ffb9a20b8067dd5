// Choosing the accelerator: `cpu`, `gpu` (an adapter is required), or `auto` (a GPU adapter if
// one can be had — hardware first, then the OpenGL ES compatibility adapter — else the CPU path
// with one line on stderr saying so). Plans are identical whichever is chosen.
import { cpuAccelerator, type Accelerator } from './accelerator.js';
import { InputError } from '../errors.js';

export type Backend = 'auto' | 'cpu' | 'gpu';
export const BACKENDS: readonly Backend[] = ['auto', 'cpu', 'gpu'];

export async function getAccelerator(backend: Backend, opts: { verbose?: boolean; warn?: (line: string) => void } = {}): Promise<Accelerator> {
  if (backend === 'cpu') return cpuAccelerator;
  let reason: string;
  try {
    // Dynamic import: the GPU bindings load only when a GPU backend is asked for.
    const { createGpuAccelerator } = await import('../gpu/accelerator.js');
    return await createGpuAccelerator({ verbose: opts.verbose });
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0];
    // No adapter is an expected condition; anything else (a shader that fails to compile, a
    // device lost at start) is a WebGPU failure and says so.
    reason = e instanceof Error && e.name === 'GpuUnavailableError' ? msg : `WebGPU initialisation failed: ${msg}`;
  }
  if (backend === 'gpu') throw new InputError(`--backend gpu: ${reason}`);
  opts.warn?.(`postbalance: ${reason}; using the CPU path`);
  return cpuAccelerator;
}
