"""The Python client gives exactly the CLI's plan: same workload through `postbalance plan` and
through Planner.plan / Planner.plan_compact must agree byte for byte except the timings.

Run:  /usr/bin/python3 integrations/pytorch/check_client.py
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from postbalance_torch import Planner, PlannerError, compact_batch  # noqa: E402

BIN = os.path.join(REPO, "bin", "postbalance.mjs")


def workload(ranks: int, examples: int, seed: int) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """The CLI's built-in workload generator (the demo's mix), so shapes are the CLI's own."""
    script = (
        "import { generateWorkload } from './dist/workload.js';"
        f"const w = generateWorkload({{ ranks: {ranks}, examples: {examples}, seed: {seed} }});"
        "process.stdout.write(JSON.stringify(w));"
    )
    out = subprocess.run(["node", "--input-type=module", "-e", script], cwd=REPO, check=True, capture_output=True, text=True)
    w = json.loads(out.stdout)
    return w["config"], w["examples"]


def untimed(plan: Dict[str, Any]) -> str:
    p = json.loads(json.dumps(plan))
    p["stats"].pop("planMs", None)
    p["stats"].pop("stages", None)
    return json.dumps(p, separators=(",", ":"))


def cli_plan(config: Dict[str, Any], examples: List[Dict[str, Any]], *flags: str) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        cfg, batch = os.path.join(d, "config.json"), os.path.join(d, "batch.jsonl")
        with open(cfg, "w") as f:
            json.dump(config, f)
        with open(batch, "w") as f:
            f.write("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in examples))
        out = subprocess.run(["node", BIN, "plan", "--batch", batch, "--config", cfg, "--backend", "cpu", *flags],
                             check=True, capture_output=True, text=True)
        return json.loads(out.stdout)


def main() -> int:
    config, examples = workload(ranks=16, examples=512, seed=5)
    failures: List[str] = []

    def check(name: str, ok: bool) -> None:
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
        if not ok:
            failures.append(name)

    ref = cli_plan(config, examples)
    ref_lpt = cli_plan(config, examples, "--algorithm", "lpt", "--exchange", "full")
    with Planner(config, backend="cpu") as planner:
        check("sidecar answers the config with its backend", planner.info.get("backend") == "cpu")
        check("Planner.plan(list of example dicts) == postbalance plan", untimed(planner.plan(examples)) == untimed(ref))
        compact = compact_batch(examples, ["text", "image", "audio"])
        check("Planner.plan_compact(columns) == postbalance plan",
              untimed(planner.plan_compact(compact["ranks"], compact["lengths"], ids=compact["ids"])) == untimed(ref))
        check("per-request algorithm/exchange == the CLI flags",
              untimed(planner.plan(examples, algorithm="lpt", exchange="full")) == untimed(ref_lpt))
        bad = [dict(e) for e in examples[:8]]
        bad[3]["text"] = 2.5
        try:
            planner.plan(bad)
            check("a bad example raises PlannerError", False)
        except PlannerError as e:
            check(f"a bad example raises PlannerError naming it ({e})", "batch example 3" in str(e))
        check("the sidecar keeps serving after an error", untimed(planner.plan(examples)) == untimed(ref))
    check("leaving the context closes the sidecar's stdin and it exits 0", planner.returncode == 0)
    if failures:
        print(f"{len(failures)} client check(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
