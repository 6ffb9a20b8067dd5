// WGSL sources live beside their host code, one folder per kernel family (src/gpu/<family>/*.wgsl;
// the build copies them to dist/gpu/<family>/), and are loaded at run time by file name from the
// family folders beside this module (names are unique across families). A bundle can inline them instead by setting
// globalThis.__POSTBALANCE_SHADERS__ = { 'scan.wgsl': '...', ... } before the first accelerator is
// created (bench/bundle-gpu.mjs inlines every .wgsl under src/gpu/, include-only files too).
//
// WGSL has no include, so shaderSource resolves one: a line
//   //! include u64.wgsl
// (a WGSL comment, so the raw files stay valid-looking) pulls in common/u64.wgsl, recursively,
// each file at most once per shader; a missing file, a cycle or a malformed include line is an
// Error. The include line becomes a plain comment and the included text is appended after the
// including file (module-scope WGSL declarations may come in any order), so a compile error in a
// kernel file keeps that file's line numbers; one in included text reports a line past the
// kernel file's end: see shaderSource(name) for the text that was compiled. Included files must
// hold only declarations (no `enable`, `requires` or `diagnostic` directives: those have to come
// first).

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

declare global {
  // eslint-disable-next-line no-var
  var __POSTBALANCE_SHADERS__: Record<string, string> | undefined;
}

/** The kernel files: each gets a shader module and pipelines. Include-only files are not listed. */
export const SHADER_FILES = ['radix_sort.wgsl', 'scan.wgsl', 'cuts.wgsl', 'cuts_parallel.wgsl', 'pair_steps.wgsl', 'group_sort.wgsl', 'balance.wgsl'] as const;
export type ShaderFile = (typeof SHADER_FILES)[number];

/** A line that starts an include directive; INCLUDE_LINE is the only well-formed shape. */
const INCLUDE_START = /^\s*\/\/!\s*include\b/;
const INCLUDE_LINE = /^\s*\/\/!\s*include\s+([A-Za-z0-9_.-]+\.wgsl)\s*$/;
/** Directives WGSL wants before every declaration, hence not in appended text. */
const WGSL_DIRECTIVE = /^\s*(enable|requires|diagnostic)\b/;

/** Every .wgsl file in the family folders beside this module (src/gpu/ or dist/gpu/): name → path. */
let shaderPaths: Map<string, string> | null = null;
function shaderPath(name: string): string | undefined {
  if (!shaderPaths) {
    shaderPaths = new Map();
    const root = dirname(fileURLToPath(import.meta.url));
    for (const family of readdirSync(root, { withFileTypes: true })) {
      if (!family.isDirectory()) continue;
      for (const f of readdirSync(join(root, family.name))) if (f.endsWith('.wgsl')) shaderPaths.set(f, join(root, family.name, f));
    }
  }
  return shaderPaths.get(name);
}

/** Text of one file as stored: inlined copy first, else <family>/<name> beside this module; null if neither. */
function rawSource(name: string): string | null {
  const inlined = globalThis.__POSTBALANCE_SHADERS__?.[name];
  if (inlined !== undefined) return inlined;
  const path = shaderPath(name);
  return path && existsSync(path) ? readFileSync(path, 'utf8') : null;
}

/** Where rawSource looked, for an error message. */
function lookedIn(): string {
  return globalThis.__POSTBALANCE_SHADERS__ ? 'not among the inlined shaders nor in the kernel folders' : 'not in the kernel folders';
}

/**
 * Source text of one shader file with its includes resolved: `//! include x.wgsl` lines become
 * comments and each included file's text (its own includes resolved the same way) is appended,
 * once per shader, in the order first met (depth first).
 */
export function shaderSource(name: string): string {
  const text = rawSource(name);
  if (text === null) throw new Error(`postbalance: shader ${name} not found (${lookedIn()})`);
  const parts: string[] = [];
  const included = new Set<string>([name]);
  expand(name, text, [name], included, parts);
  return parts.join('\n');
}

function expand(name: string, text: string, chain: string[], included: Set<string>, parts: string[]): void {
  const lines = text.split('\n');
  const children: string[] = [];
  lines.forEach((line, i) => {
    const where = `${name}:${i + 1}`;
    if (chain.length > 1 && WGSL_DIRECTIVE.test(line)) {
      throw new Error(`WGSL include: ${where} is included (${chain.join(' -> ')}) but holds a directive, which WGSL needs before every declaration: move it to the kernel file`);
    }
    if (!INCLUDE_START.test(line)) return;
    const match = INCLUDE_LINE.exec(line.replace(/\r$/, ''));
    if (!match) throw new Error(`WGSL include: malformed include line at ${where}: ${JSON.stringify(line.trim())} (expected "//! include name.wgsl")`);
    const child = match[1]!;
    if (chain.includes(child)) throw new Error(`WGSL include: cycle ${[...chain, child].join(' -> ')} (at ${where})`);
    lines[i] = `// (included: ${child}, appended once per shader)`;
    children.push(child);
  });
  parts.push(lines.join('\n'));
  for (const child of children) {
    if (included.has(child)) continue; // once per shader (a way back into the chain was caught above)
    included.add(child);
    const childText = rawSource(child);
    if (childText === null) throw new Error(`WGSL include: ${child}, included by ${chain.join(' -> ')}, is ${lookedIn()}`);
    parts.push(`// ---- ${child}, included by ${chain.join(' -> ')} ----`);
    expand(child, childText, [...chain, child], included, parts);
  }
}
