// The package as a user gets it: `npm pack`, the tarball installed into an empty project outside
// this tree, then the README's library example, the package's types and the `postbalance`
// command, all from that install (nothing here can resolve into the source tree).
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../src/cli.js';

const ROOT = join(import.meta.dirname, '..');
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

function sh(cmd: string, args: string[], opts: SpawnSyncOptions = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000, ...opts });
  return { status: r.status, signal: r.signal, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), error: r.error };
}

/** The first ```js block after `heading` in the README. */
function readmeBlock(heading: string, lang = 'js'): string {
  const text = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const at = text.indexOf(`\n${heading}\n`);
  if (at < 0) throw new Error(`README has no heading "${heading}"`);
  const m = new RegExp('```' + lang + '\\n([\\s\\S]*?)```').exec(text.slice(at));
  if (!m) throw new Error(`README: no \`\`\`${lang} block after "${heading}"`);
  return m[1];
}

const PY = process.env.POSTBALANCE_PYTHON ?? '/usr/bin/python3';
const hasTorch = spawnSync(PY, ['-c', 'import torch, venv, setuptools'], { encoding: 'utf8' }).status === 0;
const NO_TORCH = `${PY} cannot import torch, venv and setuptools: the pip install of the PyTorch client did NOT run ` +
  '(apt-get install -y python3-torch python3-venv python3-setuptools; .ci/run does it)';

const CONFIG = {
  ranks: 2, ranksPerNode: 1,
  phases: [
    { name: 'vision', modalities: ['image'], unit: 'segment', cost: { perItem: 1, perToken: 1 } },
    { name: 'llm', modalities: ['text', 'image'], unit: 'example', scale: { image: 0.5 }, cost: { perToken: 1, perTokenSquared: 0.01 } },
  ],
  bytesPerToken: { text: 2, image: 10 },
};
const BATCH = '{"id":"a","rank":0,"text":10,"image":[8,4]}\n{"id":"b","rank":0,"text":6}\n{"id":7,"rank":1,"text":3,"image":2}\n';

let tmp = '';
let app = '';
let files: string[] = [];

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'postbalance-pkg-'));
  // npm test has just built dist/; packing must not rebuild (prepare) or pick up anything else.
  const pack = sh('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], { cwd: ROOT });
  expect(pack.status, pack.stderr).toBe(0);
  const [info] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
  files = info.files.map((f) => f.path);
  app = join(tmp, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  const install = sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', join(tmp, info.filename)], { cwd: app, timeout: 170_000 });
  expect(install.status, `npm install of the tarball failed:\n${install.stderr}`).toBe(0);
}, 180_000);

afterAll(() => { if (tmp) rmSync(tmp, { recursive: true, force: true }); });

describe('the npm package, installed from its tarball into an empty project', () => {
  it('ships the compiled library, the command and the shaders, and no sources or benchmarks', () => {
    for (const f of ['package.json', 'README.md', 'bin/postbalance.mjs', 'dist/index.js', 'dist/index.d.ts', 'dist/main.js',
      'dist/partition/kk-worker.js', 'dist/gpu/accelerator.js', 'dist/gpu/sort/radix_sort.wgsl', 'dist/gpu/common/u64.wgsl']) {
      expect(files, f).toContain(f);
    }
    expect(files.filter((f) => /^(src|test|bench|dist-bench|integrations)\/|^dist\/(src|bench)\//.test(f))).toEqual([]);
  });

  it("runs the README's library example (CPU plan, then a reusable planner with backend 'auto') and exits by itself", () => {
    writeFileSync(join(app, 'example.mjs'), readmeBlock('## Use from Node'));
    // No process.exit in the example: the process must end once the planner is closed.
    const r = sh(process.execPath, ['example.mjs'], { cwd: app, timeout: 90_000 });
    expect(r.signal, 'the example did not exit on its own').toBeNull();
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^vision: rank 0: .*max\/bound \d\.\d{3}$/);
    expect(lines[1]).toMatch(/^llm: rank 0: .*max\/bound \d\.\d{3}$/);
    expect(lines.slice(2)).toHaveLength(3);
    for (const [k, l] of lines.slice(2).entries()) expect(l).toMatch(new RegExp(`^step ${k}: (cpu|webgpu), \\d+\\+\\d+ items move$`));
    // The warm planner gives the one-shot CPU plan on every step (same plan on either backend).
    expect(new Set(lines.slice(2).map((l) => l.replace(/^step \d+: \w+, /, ''))).size).toBe(1);
  });

  it('the library plans a batch as the CLI in this tree does, on a reusable CPU planner too', async () => {
    writeFileSync(join(app, 'config.json'), JSON.stringify(CONFIG));
    writeFileSync(join(app, 'batch.jsonl'), BATCH);
    writeFileSync(join(app, 'lib.mjs'), `
      import { readFileSync } from 'node:fs';
      import { createPlanner, parseBatch, parseConfig, plan, planCompact, formatPlan, formatCompactPlan } from 'postbalance';
      const config = parseConfig(readFileSync('config.json', 'utf8'));
      const examples = readFileSync('batch.jsonl', 'utf8').trim().split('\\n').map((l) => JSON.parse(l));
      const a = await plan(examples, config, { algorithm: 'lpt' });
      const planner = await createPlanner({ backend: 'cpu' });
      const b = await planner.plan(parseBatch(readFileSync('batch.jsonl', 'utf8'), config), config, { algorithm: 'lpt' });
      const c = JSON.parse(formatCompactPlan(await planCompact(examples, config, { algorithm: 'lpt' }))).phases;
      const d = JSON.parse(formatCompactPlan(await planner.planCompact(examples, config, { algorithm: 'lpt' }))).phases;
      planner.close();
      let closed = '';
      try { await planner.plan(examples, config); } catch (e) { closed = e.message; }
      console.log(JSON.stringify({ a: JSON.parse(formatPlan(a)).phases, b: b.phases, c, d, backend: planner.backend, closed }));
    `);
    const r = sh(process.execPath, ['lib.mjs'], { cwd: app });
    expect(r.status, r.stderr).toBe(0);
    const got = JSON.parse(r.stdout);
    let out = '';
    const code = await run(['plan', '--batch', '-', '--config', join(app, 'config.json'), '--algorithm', 'lpt', '--backend', 'cpu'],
      { stdout: (s) => { out += s; }, stderr: () => {}, readStdin: async () => BATCH });
    expect(code).toBe(0);
    const ref = JSON.parse(out).phases;
    expect(got.a).toEqual(ref);
    expect(got.b).toEqual(ref);
    let compact = '';
    await run(['plan', '--batch', '-', '--config', join(app, 'config.json'), '--algorithm', 'lpt', '--backend', 'cpu', '--format', 'compact'],
      { stdout: (s) => { compact += s; }, stderr: () => {}, readStdin: async () => BATCH });
    expect(got.c).toEqual(JSON.parse(compact).phases);
    expect(got.d).toEqual(JSON.parse(compact).phases);
    expect(got.backend).toBe('cpu');
    expect(got.closed).toMatch(/closed planner/);
  });

  it("the package's types resolve and describe its API (strict NodeNext consumer)", () => {
    writeFileSync(join(app, 'consumer.ts'), `
      import { createPlanner, plan, planCompact, InputError, type CompactPlan, type Config, type Example, type Plan, type Planner } from 'postbalance';
      const config: Config = { ranks: 2, ranksPerNode: 1, phases: [{ name: 'llm', modalities: ['text'], unit: 'example', cost: { perToken: 1 } }] };
      const examples: Example[] = [{ id: 'a', rank: 0, text: 5 }, { id: 'b', rank: 1, text: 3 }];
      export async function main(): Promise<number> {
        const p: Plan = await plan(examples, config, { algorithm: 'lpt', backend: 'cpu' });
        const planner: Planner = await createPlanner({ backend: 'auto', defaults: { exchange: 'full' } });
        const q = await planner.plan(examples, config);
        planner.close();
        const items: string[] = q.phases[0].ranks[0].items;
        const c: CompactPlan = await planCompact(examples, config);
        const rank: Int32Array = c.phases[0].rank;
        // @ts-expect-error: not a backend
        await createPlanner({ backend: 'tpu' });
        // @ts-expect-error: not an algorithm
        await plan(examples, config, { algorithm: 'magic' });
        return p.phases.length + items.length + rank.length + (new InputError('x') instanceof Error ? 1 : 0);
      }
    `);
    const r = sh(process.execPath, [TSC, '--noEmit', '--strict', '--skipLibCheck', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext',
      '--types', 'node', '--typeRoots', join(ROOT, 'node_modules', '@types'), 'consumer.ts'], { cwd: app });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });

  it('the postbalance command plans from the install, byte for byte as here', async () => {
    const bin = join(app, 'node_modules', '.bin', 'postbalance');
    const r = sh(bin, ['plan', '--batch', 'batch.jsonl', '--config', 'config.json', '--backend', 'cpu'], { cwd: app });
    expect(r.status, r.stderr).toBe(0);
    let out = '';
    await run(['plan', '--batch', '-', '--config', join(app, 'config.json'), '--backend', 'cpu'],
      { stdout: (s) => { out += s; }, stderr: () => {}, readStdin: async () => BATCH });
    expect(JSON.stringify(JSON.parse(r.stdout).phases)).toBe(JSON.stringify(JSON.parse(out).phases));
    const help = sh(bin, ['--help'], { cwd: app });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/usage: postbalance <command>/);
    const bad = sh(bin, ['plan', '--batch', 'nope.jsonl', '--config', 'config.json'], { cwd: app });
    expect(bad.status).toBe(1);
    expect(bad.stderr.trimEnd().split('\n')).toEqual(['postbalance: --batch "nope.jsonl": cannot read (ENOENT)']);
  });

  if (!hasTorch) {
    console.warn(`\npostbalance: ${NO_TORCH}\n`);
    it.skip(`NOT RUN: ${NO_TORCH}`, () => {});
  }

  it.runIf(hasTorch)("pip install of the PyTorch client (offline, into a venv that sees the system torch), then the README's Python example against this install", () => {
    // A copy: pip writes build/ and *.egg-info beside the sources it builds.
    const src = join(tmp, 'postbalance-torch');
    cpSync(join(ROOT, 'integrations', 'pytorch'), src, { recursive: true, filter: (f) => !/__pycache__|\.egg-info|[\\/]build$/.test(f) });
    const venv = join(tmp, 'venv');
    const mk = sh(PY, ['-m', 'venv', '--system-site-packages', venv]);
    expect(mk.status, mk.stderr).toBe(0);
    const pip = sh(join(venv, 'bin', 'python'), ['-m', 'pip', 'install', '--quiet', '--no-build-isolation', '--no-index', src], { timeout: 170_000 });
    expect(pip.status, pip.stdout + pip.stderr).toBe(0);
    // Only the install itself can tell the example where the planner is: no POSTBALANCE_CLI, and
    // a PATH without this checkout; the client finds app/node_modules/.bin/postbalance.
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${join(venv, 'bin')}:/usr/bin:/bin`, PYTHONDONTWRITEBYTECODE: '1' };
    delete env.POSTBALANCE_CLI;
    delete env.POSTBALANCE_COMMAND;
    delete env.PYTHONPATH;
    const where = sh(join(venv, 'bin', 'python'), ['-c', 'import postbalance_torch, os; print(os.path.dirname(postbalance_torch.__file__))'], { cwd: app, env });
    expect(where.status, where.stderr).toBe(0);
    const installed = where.stdout.trim();
    expect(installed.startsWith(venv), `imported from ${installed}`).toBe(true);
    expect(existsSync(join(installed, 'py.typed'))).toBe(true);
    writeFileSync(join(app, 'example.py'), readmeBlock('## Use from PyTorch', 'python'));
    const r = sh(join(venv, 'bin', 'python'), ['example.py'], { cwd: app, env, timeout: 90_000 });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^vision \[\[.*'9007199254740993\/image\/0'.*\]\] max\/bound \d\.\d{3}$/);
    expect(lines[1]).toMatch(/^llm \[\[.*'9007199254740993'.*\]\] max\/bound 1\.000$/);
    expect(lines[2]).toMatch(/^\{'vision': \[[01], [01], [01]\], 'llm': \[[01], [01], [01]\]\}$/);
  });
});
