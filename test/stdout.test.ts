// A plan that cannot be written is an error, never exit 0: real child processes writing to a
// full device and to a pipe whose reader went away (`| head -c 100`: EPIPE).
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateWorkload, toJsonl } from '../src/workload.js';

const BIN = join(import.meta.dirname, '..', 'bin', 'postbalance.mjs');
const dir = mkdtempSync(join(tmpdir(), 'pb-stdout-'));
// A plan of about 1 MB: far more than a pipe buffer holds, so a reader that leaves early is seen.
const { config, examples } = generateWorkload({ ranks: 64, examples: 5000, seed: 5 });
const cfg = join(dir, 'config.json');
const batch = join(dir, 'batch.jsonl');
writeFileSync(cfg, JSON.stringify(config));
writeFileSync(batch, toJsonl(examples));
const PLAN = [BIN, 'plan', '--batch', batch, '--config', cfg, '--backend', 'cpu', '--algorithm', 'lpt'];
const ONE_LINE = /^postbalance: cannot write to stdout \((ENOSPC|EPIPE)\): the output is incomplete\n$/;

describe('plan and demo when stdout cannot be written', () => {
  it('`> /dev/full`: exit 1 and one line naming ENOSPC', () => {
    for (const args of [PLAN, [BIN, 'demo', '--ranks', '8', '--examples', '64']]) {
      const full = openSync('/dev/full', 'w');
      try {
        const r = spawnSync(process.execPath, args, { stdio: ['ignore', full, 'pipe'], encoding: 'utf8' });
        expect(r.status, args[1]).toBe(1);
        expect(r.stderr).toMatch(ONE_LINE);
        expect(r.stderr).toMatch(/ENOSPC/);
      } finally {
        closeSync(full);
      }
    }
  });

  it('`| head -c 100`: exit 1 and one line naming EPIPE', () => {
    const r = spawnSync('bash', ['-c', `"${process.execPath}" ${PLAN.map((a) => `"${a}"`).join(' ')} 2>"${dir}/err" | head -c 100 >/dev/null; echo "\${PIPESTATUS[0]}"; cat "${dir}/err"`], { encoding: 'utf8' });
    const [status, ...err] = r.stdout.split('\n');
    expect(status).toBe('1');
    expect(err.join('\n')).toMatch(ONE_LINE);
  });

  it('a reader that closes its end after 100 bytes: exit 1 and EPIPE', async () => {
    const child = spawn(process.execPath, PLAN, { stdio: ['ignore', 'pipe', 'pipe'] });
    let got = 0, stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
    child.stdout.on('data', (b: Buffer) => { got += b.length; if (got >= 100) child.stdout.destroy(); });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(1);
    expect(stderr).toMatch(/EPIPE/);
    expect(stderr).toMatch(ONE_LINE);
  });

  it('fit `> /dev/full`: exit 1 and that one line, no R² report after a config that was lost', () => {
    const fitConfig = { ranks: 2, phases: [{ name: 'vision', modalities: ['image'], unit: 'segment', cost: { perToken: 1 } }] };
    const samples = [[1], [5, 9], [300, 20, 7], [1000], [64, 64, 64, 64], [2000, 3]]
      .map((lengths) => JSON.stringify({ phase: 'vision', lengths, ms: lengths.reduce((s, L) => s + 2 + 0.1 * L + 1e-5 * L * L, 0) })).join('\n');
    writeFileSync(join(dir, 'fit-config.json'), JSON.stringify(fitConfig));
    writeFileSync(join(dir, 'samples.jsonl'), samples);
    const args = [BIN, 'fit', '--samples', join(dir, 'samples.jsonl'), '--config', join(dir, 'fit-config.json')];
    const ok = spawnSync(process.execPath, args, { encoding: 'utf8' });
    expect(ok.status).toBe(0);
    expect(ok.stderr).toMatch(/^postbalance fit: phase "vision": 6 samples: .*R² [\d.]+, residual/);
    const full = openSync('/dev/full', 'w');
    try {
      const r = spawnSync(process.execPath, args, { stdio: ['ignore', full, 'pipe'], encoding: 'utf8' });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(ONE_LINE);
    } finally {
      closeSync(full);
    }
  });

  it('a reader that reads everything gets the whole plan and exit 0', () => {
    const r = spawnSync(process.execPath, PLAN, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.length).toBeGreaterThan(256 * 1024);
    expect(JSON.parse(r.stdout).phases).toHaveLength(3);
  });
});
