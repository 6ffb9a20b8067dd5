"""The README's PyTorch training step: examples/training_step.py runs as a user would run it, on 4
gloo processes (2 "nodes" of 2: node-wise exchanges), with micro-batches, planning ahead and a
refit at step 3; it must finish, print every step's loss and the refitted cost, and leave no
process behind. The loop the README quotes is that file's, line for line."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any, List

from support import ROOT


EXAMPLE = os.path.join(ROOT, "integrations", "pytorch", "examples", "training_step.py")


def readme_excerpt() -> List[str]:
    """The python block of the README's "Use from PyTorch" section that quotes the example."""
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    start = text.index("\n## Use from PyTorch\n")
    end = text.index("\n## ", start + 1)
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text[start:end], re.S) if "plan_ahead(" in b]
    assert len(blocks) == 1, "the README's PyTorch section quotes one training loop"
    return blocks[0].rstrip("\n").split("\n")


def test_the_readme_quotes_the_example() -> None:
    quote = readme_excerpt()
    lines = open(EXAMPLE, encoding="utf-8").read().split("\n")
    starts = [i for i, line in enumerate(lines) if line.strip() == quote[0].strip()]
    assert len(starts) == 1, f"the quote's first line is in the example once: {quote[0]!r}"
    i = starts[0]
    indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
    got = [line[len(indent):] if line.strip() else "" for line in lines[i: i + len(quote)]]
    assert got == quote, "README.md's training loop differs from examples/training_step.py"


def test_the_readme_training_step_runs(tmp_path: Any, free_port: int) -> None:
    script = tmp_path / "train.py"
    script.write_text(open(EXAMPLE, encoding="utf-8").read())
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
