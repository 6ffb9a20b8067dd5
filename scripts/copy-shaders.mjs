// Build step: the WGSL kernels live beside their host code in src/gpu/<family>/; tsc compiles only
// the TypeScript, so this copies every .wgsl to the same place under dist/gpu/, where the
// compiled loader (dist/gpu/shaders.js) looks for them.
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const from = join(root, 'src', 'gpu'), to = join(root, 'dist', 'gpu');
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
