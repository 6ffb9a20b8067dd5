// The WGSL include step (shaderSource in src/gpu/shaders.ts) on its own, through temporary
// inlined shader maps, and the real kernel families under src/gpu/: every kernel resolves, no include is left.
// No GPU needed: the kernels' results are checked in gpu-kernels.test.ts and gpu-plan.test.ts.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SHADER_FILES, shaderSource } from '../src/gpu/shaders.js';

const INCLUDE = /^\s*\/\/!\s*include\b/m;
const GPU_DIR = join(import.meta.dirname, '..', 'src', 'gpu');
/** Every .wgsl beside its host code: name → path. */
const SHADER_PATHS = new Map(readdirSync(GPU_DIR, { withFileTypes: true }).filter((d) => d.isDirectory())
  .flatMap((d) => readdirSync(join(GPU_DIR, d.name)).filter((f) => f.endsWith('.wgsl')).map((f) => [f, join(GPU_DIR, d.name, f)] as const)));

/** Runs fn with globalThis.__POSTBALANCE_SHADERS__ = map, then puts back what was there. */
function withShaders<T>(map: Record<string, string>, fn: () => T): T {
  const had = Object.prototype.hasOwnProperty.call(globalThis, '__POSTBALANCE_SHADERS__');
  const saved = globalThis.__POSTBALANCE_SHADERS__;
  globalThis.__POSTBALANCE_SHADERS__ = map;
  try {
    return fn();
  } finally {
    if (had) globalThis.__POSTBALANCE_SHADERS__ = saved;
    else delete globalThis.__POSTBALANCE_SHADERS__;
  }
}

/** How often `needle` occurs in `text`. */
function count(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

describe('WGSL include step', () => {
  it('returns a file without includes byte for byte', () => {
    const text = 'fn f() {}\r\n// a comment mentioning include x.wgsl\n';
    expect(withShaders({ 'test_plain.wgsl': text }, () => shaderSource('test_plain.wgsl'))).toBe(text);
  });

  it('resolves nested includes, appended after the including file, whose lines keep their numbers', () => {
    const map = {
      'test_kernel.wgsl': '// kernel\n//! include test_a.wgsl\nfn kernelBody() { a(); b(); }\n',
      'test_a.wgsl': '// a\n  //!   include   test_b.wgsl  \nfn a() { b(); }\n',
      'test_b.wgsl': 'fn b() {}\n',
    };
    const out = withShaders(map, () => shaderSource('test_kernel.wgsl'));
    expect(out).not.toMatch(INCLUDE);
    const lines = out.split('\n');
    expect(lines[0]).toBe('// kernel');
    expect(lines[1]).toMatch(/^\/\/ .*test_a\.wgsl/); // the include line, now a plain comment
    expect(lines[2]).toBe('fn kernelBody() { a(); b(); }');
    // a after the kernel, b after a; each once.
    const [k, a, b] = ['fn kernelBody', 'fn a()', 'fn b()'].map((s) => out.indexOf(s));
    expect(k).toBeGreaterThanOrEqual(0);
    expect(a).toBeGreaterThan(k);
    expect(b).toBeGreaterThan(a);
    for (const s of ['fn kernelBody', 'fn a()', 'fn b()']) expect(count(out, s)).toBe(1);
    // An included file resolves the same way on its own.
    expect(withShaders(map, () => shaderSource('test_a.wgsl'))).toContain('fn b() {}');
  });

  it('includes a file at most once per shader (twice in one file, and through two paths)', () => {
    const map = {
      'test_kernel.wgsl': '//! include test_u64.wgsl\n//! include test_a.wgsl\n//! include test_u64.wgsl\nfn k() {}\n',
      'test_a.wgsl': '//! include test_u64.wgsl\nfn a() {}\n',
      'test_u64.wgsl': 'fn helper() {}\n',
    };
    const out = withShaders(map, () => shaderSource('test_kernel.wgsl'));
    expect(count(out, 'fn helper() {}')).toBe(1);
    expect(count(out, 'fn a() {}')).toBe(1);
    expect(out).not.toMatch(INCLUDE);
    // Once per shader, not once per process: another shader gets its own copy.
    expect(withShaders(map, () => shaderSource('test_a.wgsl'))).toContain('fn helper() {}');
  });

  it('a missing include is an Error naming the file and who includes it', () => {
    const map = {
      'test_kernel.wgsl': '//! include test_a.wgsl\n',
      'test_a.wgsl': '//! include test_missing.wgsl\n',
    };
    expect(() => withShaders(map, () => shaderSource('test_kernel.wgsl')))
      .toThrow(/test_missing\.wgsl, included by test_kernel\.wgsl -> test_a\.wgsl, is not among the inlined shaders nor in the kernel folders/);
    expect(() => withShaders({}, () => shaderSource('test_nothing.wgsl'))).toThrow(/shader test_nothing\.wgsl not found/);
  });

  it('a cycle is an Error that spells it out', () => {
    const map = {
      'test_kernel.wgsl': '//! include test_a.wgsl\n',
      'test_a.wgsl': '//! include test_b.wgsl\n',
      'test_b.wgsl': 'fn b() {}\n//! include test_a.wgsl\n',
      'test_self.wgsl': '//! include test_self.wgsl\n',
    };
    expect(() => withShaders(map, () => shaderSource('test_kernel.wgsl')))
      .toThrow('cycle test_kernel.wgsl -> test_a.wgsl -> test_b.wgsl -> test_a.wgsl (at test_b.wgsl:2)');
    expect(() => withShaders(map, () => shaderSource('test_self.wgsl'))).toThrow('cycle test_self.wgsl -> test_self.wgsl');
  });

  it('a malformed include line, or a WGSL directive in an included file, is an Error', () => {
    for (const line of ['//! include', '//! include "test_a.wgsl"', '//! include test_a.wgsl extra', '//! include ../test_a.wgsl', '//!include test_a']) {
      expect(() => withShaders({ 'test_kernel.wgsl': `fn k() {}\n${line}\n`, 'test_a.wgsl': '' }, () => shaderSource('test_kernel.wgsl')), line)
        .toThrow(/malformed include line at test_kernel\.wgsl:2/);
    }
    const map = { 'test_kernel.wgsl': 'enable f16;\n//! include test_a.wgsl\n', 'test_a.wgsl': '// a\nenable f16;\n' };
    expect(() => withShaders(map, () => shaderSource('test_kernel.wgsl'))).toThrow(/test_a\.wgsl:2 is included .* but holds a directive/);
  });

  it('restores the inlined map', () => {
    const before = globalThis.__POSTBALANCE_SHADERS__;
    withShaders({ 'test_x.wgsl': '' }, () => shaderSource('test_x.wgsl'));
    expect(globalThis.__POSTBALANCE_SHADERS__).toBe(before);
  });
});

describe('src/gpu/*/*.wgsl', () => {
  const files = [...SHADER_PATHS.keys()].sort();
  const raw = Object.fromEntries(files.map((f) => [f, readFileSync(SHADER_PATHS.get(f)!, 'utf8')]));

  it('every kernel file in SHADER_FILES resolves to source with no include lines left', () => {
    for (const file of SHADER_FILES) {
      const source = shaderSource(file);
      expect(source, file).not.toMatch(INCLUDE);
      expect(source, file).toMatch(/@compute/);
    }
  });

  it('resolves the same from the inlined map bench/bundle-gpu.mjs builds (every .wgsl under src/gpu/)', () => {
    for (const file of SHADER_FILES) {
      expect(withShaders(raw, () => shaderSource(file)), file).toBe(shaderSource(file));
    }
  });

  it('every other .wgsl is include-only: reached by an include from a kernel, header says so, no entry points', () => {
    const reached = new Set<string>();
    for (const file of SHADER_FILES) {
      for (const [, name] of shaderSource(file).matchAll(/^\/\/ \(included: (\S+), appended once per shader\)$/gm)) reached.add(name!);
    }
    const includeOnly = files.filter((f) => !(SHADER_FILES as readonly string[]).includes(f));
    expect(includeOnly.length).toBeGreaterThan(0);
    for (const file of includeOnly) {
      expect(reached.has(file), `${file} is included by some kernel`).toBe(true);
      expect(raw[file], file).toMatch(/^\/\/ Include-only:/);
      expect(raw[file], file).not.toMatch(/@compute|@group|@binding/);
    }
  });
});
