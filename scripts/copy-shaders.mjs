// Build step: the WGSL kernels live beside their host code in src/gpu/<family>/; tsc compiles only
// the TypeScript, so this copies every .wgsl to the same place under the build folder (dist/gpu/,
// or the one given: dist-bench/src/gpu/ for the benchmarks), where the compiled loader
// (shaders.js beside them) looks for them.   node scripts/copy-shaders.mjs [OUT_GPU_DIR]
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const from = join(root, 'src', 'gpu'), to = process.argv[2] ? join(root, process.argv[2]) : join(root, 'dist', 'gpu');
let copied = 0;
for (const family of readdirSync(from, { withFileTypes: true })) {
  if (!family.isDirectory()) continue;
  for (const f of readdirSync(join(from, family.name))) {
    if (!f.endsWith('.wgsl')) continue;
    mkdirSync(join(to, family.name), { recursive: true });
    copyFileSync(join(from, family.name, f), join(to, family.name, f));
    copied++;
  }
}
if (copied === 0) throw new Error(`no .wgsl files under ${from}`);
