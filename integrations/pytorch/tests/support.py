"""What the tests (and bench_latency.py) share: this checkout's CLI, the demo's workload from the
built package, and the CLI's plan of a batch."""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from typing import Any, Dict, List, Tuple

#: The repository root (integrations/pytorch/tests -> ../../..).
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BIN = os.path.join(ROOT, "bin", "postbalance.mjs")


def workload(ranks: int, examples: int, seed: int) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """The demo's multimodal workload (the built library's generateWorkload)."""
    script = (
        "import { generateWorkload } from './dist/index.js';"
        f"const w = generateWorkload({{ ranks: {ranks}, examples: {examples}, seed: {seed} }});"
        "process.stdout.write(JSON.stringify(w));"
    )
    out = subprocess.run(["node", "--input-type=module", "-e", script], cwd=ROOT, check=True, capture_output=True, text=True)
    w = json.loads(out.stdout)
    return w["config"], w["examples"]


def cli_plan(config: Dict[str, Any], examples: List[Dict[str, Any]], *flags: str) -> Dict[str, Any]:
    """`postbalance plan` of this batch (CPU backend)."""
    with tempfile.TemporaryDirectory() as d:
        cfg, batch = os.path.join(d, "config.json"), os.path.join(d, "batch.jsonl")
        with open(cfg, "w") as f:
            json.dump(config, f)
        with open(batch, "w") as f:
            f.write("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in examples))
        out = subprocess.run(["node", BIN, "plan", "--batch", batch, "--config", cfg, "--backend", "cpu", *flags],
                             check=True, capture_output=True, text=True)
        return json.loads(out.stdout)


def untimed(plan: Dict[str, Any]) -> str:
    """The plan without its timings, as canonical JSON."""
    p = json.loads(json.dumps(plan))
    p["stats"].pop("planMs", None)
    p["stats"].pop("stages", None)
    return json.dumps(p, separators=(",", ":"))
