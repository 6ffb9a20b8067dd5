// The PyTorch integration's real check (integrations/pytorch/run_check.sh): the Python client
// against the CLI, and a tiny multimodal model on 4 gloo ranks with and without post-balancing.
// Runs when Debian's python3-torch is importable by /usr/bin/python3; says so plainly when not.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const PY = process.env.POSTBALANCE_PYTHON ?? '/usr/bin/python3';
const probe = spawnSync(PY, ['-c', 'import torch, torch.distributed as d; assert d.is_available(); print(torch.__version__)'], { encoding: 'utf8' });
const hasTorch = probe.status === 0;
const NO_TORCH = `${PY} cannot import torch: the 4-rank PyTorch check did NOT run (apt-get install -y python3-torch)`;

describe('PyTorch integration', () => {
  it.skipIf(hasTorch)(`SKIPPED, recorded: ${NO_TORCH}`, () => {
    console.warn(`postbalance: ${NO_TORCH}`);
  });

  it.runIf(hasTorch)(`client == CLI; exchanges exact on awkward layouts; 4 ranks × 4 steps: same losses and gradients, smaller compute spread (torch ${(probe.stdout ?? "").trim()})`, () => {
    const out = join(mkdtempSync(join(tmpdir(), 'pb-torch-')), 'summary.json');
    // npm test has just built dist/ (tsc), so the script skips its own build.
    const r = spawnSync('bash', [join(ROOT, 'integrations/pytorch/run_check.sh'), '--json', out], {
      cwd: ROOT, encoding: 'utf8', env: { ...process.env, POSTBALANCE_SKIP_BUILD: '1' }, timeout: 230_000,
    });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    const summary = JSON.parse(readFileSync(out, 'utf8'));
    expect(summary.ok).toBe(true);
    for (const s of summary.steps) {
      expect(s.match).toBe(true);
      expect(s.loss_diff).toBeLessThanOrEqual(1e-9 * Math.abs(s.loss_base));
    }
    expect(summary.spread_bal).toBeLessThan(summary.spread_base);
    console.log(`pytorch check: per-rank compute max/mean ${summary.spread_base.toFixed(3)} → ${summary.spread_bal.toFixed(3)}, ${summary.wall_s} s`);
  }, 240_000);
});
