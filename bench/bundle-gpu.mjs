// Bundles the benchmarks and the CLI into .gpu/ for a machine without npm (such as a GPU
// machine that has only a driver): WGSL shaders are inlined through globalThis.__POSTBALANCE_SHADERS__ (every .wgsl under
// src/gpu/, include-only files such as u64.wgsl too: shaderSource resolves `//! include` lines
// from the same map at run time; a missing one fails the bundle here), and `webgpu` stays
// external, resolved from .gpu/node_modules/webgpu (package.json, index.js and dawn.node copied
// from node_modules); the KK worker is bundled beside them. Usage: node bench/bundle-gpu.mjs
import { build } from 'esbuild';
import { cpSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';

const shaders = Object.fromEntries(
  readdirSync('src/gpu', { withFileTypes: true }).filter((d) => d.isDirectory())
    .flatMap((d) => readdirSync(`src/gpu/${d.name}`).filter((f) => f.endsWith('.wgsl')).map((f) => [f, readFileSync(`src/gpu/${d.name}/${f}`, 'utf8')])),
);
for (const [file, text] of Object.entries(shaders)) {
  for (const [, name] of text.matchAll(/^\s*\/\/!\s*include\s+(\S+)\s*$/gm)) {
    if (!(name in shaders)) throw new Error(`${file} includes ${name}, which is not under src/gpu/`);
  }
}
const banner = `globalThis.__POSTBALANCE_SHADERS__ = ${JSON.stringify(shaders)};`;
const targets = [
  ['bench/run.ts', '.gpu/bench.mjs'],
  ['bench/kernels.ts', '.gpu/kernels.mjs'],
  ['bench/cli-entry.mjs', '.gpu/postbalance.mjs'],
  // Beside the bundles, where kk-background.ts looks for it (import.meta.url is the bundle's).
  ['src/partition/kk-worker.ts', '.gpu/kk-worker.mjs'],
];
for (const [entry, outfile] of targets) {
  const worker = outfile.endsWith('kk-worker.mjs'); // needs no shaders
  await build({
    entryPoints: [entry], bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile,
    external: ['webgpu'], banner: worker ? undefined : { js: banner }, logLevel: 'warning',
  });
}
const wg = '.gpu/node_modules/webgpu';
mkdirSync(`${wg}/dist/linux-x64`, { recursive: true });
for (const f of ['package.json', 'index.js']) cpSync(`node_modules/webgpu/${f}`, `${wg}/${f}`);
cpSync('node_modules/webgpu/dist/linux-x64/dawn.node', `${wg}/dist/linux-x64/dawn.node`);
console.log(`bundled ${targets.map((t) => t[1]).join(', ')} with ${Object.keys(shaders).length} shaders inlined`);
