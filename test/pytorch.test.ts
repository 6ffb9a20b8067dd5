// The PyTorch client's own tests (integrations/pytorch/tests, pytest): the client against the
// CLI, every PlannerError path, exchanges on 3 gloo ranks, the node-wise exchange on 8, and a
// tiny multimodal model on 4 gloo ranks with and without post-balancing. They need torch
// (Debian's python3-torch, which `.ci/run` installs); without it this file says so in its test
// names and on stderr, never by a silent skip.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const PY = process.env.POSTBALANCE_PYTHON ?? '/usr/bin/python3';
const probe = spawnSync(PY, ['-c', 'import torch, torch.distributed as d, pytest, numpy; assert d.is_available(); print(torch.__version__)'], { encoding: 'utf8' });
const hasTorch = probe.status === 0;
const MISSING = `${PY} cannot import torch, pytest and numpy: the PyTorch client's tests did NOT run ` +
  `(apt-get install -y python3-torch python3-pytest python3-numpy; .ci/run does it)`;

describe('PyTorch client (pytest)', () => {
  if (!hasTorch) {
    // Said twice: on stderr now, and as a skipped test whose name is the reason.
    console.warn(`\npostbalance: ${MISSING}\n${(probe.stderr ?? '').trim().split('\n').pop()}\n`);
    it.skip(`NOT RUN: ${MISSING}`, () => {});
  }

  it.runIf(hasTorch)(`client == CLI, every PlannerError path, exchanges on 3 ranks, node-wise == flat on 8 ranks, 4 DP x 2 TP, planning ahead, micro-batches, refit, the README's training step, training on 4 ranks (torch ${(probe.stdout ?? '').trim()})`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'postbalance-pytest-'));
    try {
      const junit = join(dir, 'junit.xml'), summary = join(dir, 'training.json');
      const r = spawnSync(PY, ['-m', 'pytest', '-q', '--junitxml', junit], {
        cwd: join(ROOT, 'integrations', 'pytorch'), encoding: 'utf8', timeout: 420_000,
        env: { ...process.env, POSTBALANCE_CLI: join(ROOT, 'bin', 'postbalance.mjs'), POSTBALANCE_TRAINING_SUMMARY: summary, PYTHONDONTWRITEBYTECODE: '1' },
      });
      expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
      const suite = /<testsuite [^>]*>/.exec(readFileSync(junit, 'utf8'))![0];
      const count = (k: string) => Number(new RegExp(`${k}="(\\d+)"`).exec(suite)![1]);
      expect({ failures: count('failures'), errors: count('errors'), skipped: count('skipped') }).toEqual({ failures: 0, errors: 0, skipped: 0 });
      expect(count('tests')).toBeGreaterThanOrEqual(10);
      const s = JSON.parse(readFileSync(summary, 'utf8'));
      console.log(`pytest: ${count('tests')} passed; training on 4 ranks: per-rank compute max/mean ${s.spread_base.toFixed(3)} → ${s.spread_bal.toFixed(3)}, ${s.wall_s} s`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 440_000);
});
