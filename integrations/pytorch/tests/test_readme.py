"""The README's PyTorch training step, run as a user would paste it: the second python block of
its "Use from PyTorch" section, on 4 gloo processes (2 "nodes" of 2: node-wise exchanges), with
micro-batches, planning ahead and a refit at step 3. It must finish, print every step's loss and
the refitted cost, and leave no process behind."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

from support import ROOT


def readme_training_step() -> str:
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    start = text.index("\n## Use from PyTorch\n")
    end = text.index("\n## ", start + 1)
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text[start:end], re.S) if "mp.spawn(" in b]
    assert len(blocks) == 1, "the README's PyTorch section has one runnable training step"
    return blocks[0]


def test_the_readme_training_step_runs(tmp_path: Any, free_port: int) -> None:
    script = tmp_path / "train.py"
    script.write_text(readme_training_step())
    env = {**os.environ, "MASTER_PORT": str(free_port), "PYTHONPATH": os.path.join(ROOT, "integrations", "pytorch")}
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    steps = [line for line in lines if line.startswith("step ")]
    assert [s.split(":")[0] for s in steps] == [f"step {t}" for t in range(6)], r.stdout
    assert all(re.fullmatch(r"step \d: loss \d+\.\d{4}, planning waited \d+\.\d ms", s) for s in steps), r.stdout
    refitted = [line for line in lines if line.startswith("refitted vision cost: ")]
    assert len(refitted) == 1 and re.search(r"'perItem': [\d.e+-]+, 'perToken': [\d.e+-]+, 'perTokenSquared': [\d.e+-]+", refitted[0]), r.stdout
    assert lines.index(refitted[0]) == lines.index(steps[3]) + 1, "refit at step 3, before step 4"
