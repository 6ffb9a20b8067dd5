// WGSL sources are loaded at run time from the package's shaders/ folder. A bundle can inline
// them instead by setting globalThis.__POSTBALANCE_SHADERS__ = { 'scan.wgsl': '...', ... }
// before the first accelerator is created.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

declare global {
  // eslint-disable-next-line no-var
  var __POSTBALANCE_SHADERS__: Record<string, string> | undefined;
}

export const SHADER_FILES = ['radix_sort.wgsl', 'scan.wgsl', 'cuts.wgsl', 'cuts_parallel.wgsl', 'pair_steps.wgsl'] as const;
export type ShaderFile = (typeof SHADER_FILES)[number];

/**
 * The package root: the nearest folder above this module holding package.json. This file runs
 * from src/gpu/ under vitest and from dist/src/gpu/ once compiled, so the depth differs.
 */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`postbalance: cannot find package.json above ${fileURLToPath(import.meta.url)} (needed to load shaders/)`);
    dir = parent;
  }
}

/** Source text of one shader file: inlined copy first, else shaders/<name> in the package. */
export function shaderSource(name: string): string {
  const inlined = globalThis.__POSTBALANCE_SHADERS__?.[name];
  if (inlined !== undefined) return inlined;
  return readFileSync(join(packageRoot(), 'shaders', name), 'utf8');
}
