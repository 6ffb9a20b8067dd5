"""Per-step planning latency seen from a Python training loop: the `postbalance serve` sidecar
(one process for the whole job) against spawning `postbalance plan` every step.

Run:  /usr/bin/python3 integrations/pytorch/bench_latency.py [--ranks 256 --examples 4096] [--backend cpu]

Both numbers are end to end from Python: write/serialise the batch, plan, read and json-parse
the plan. Also prints what a rank-0 broadcast would move (the plan's size, full and compact
form) for the local-planning vs broadcast comparison in docs/PYTORCH.md, and how long one rank
takes to build a step's exchanges (StepPlan and the four exchanges of the docs' example) from
either form.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List

from postbalance_torch import Planner, StepPlan, compact_batch
from tests.support import BIN, workload

os.environ.setdefault("POSTBALANCE_CLI", BIN)


def timed(f: Callable[[], Any], reps: int) -> List[float]:
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def fmt(ms: List[float]) -> str:
    ms = sorted(ms)
    return f"median {statistics.median(ms):8.1f} ms   min {ms[0]:8.1f} ms   (n={len(ms)})"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, default=256)
    ap.add_argument("--examples", type=int, default=4096)
    ap.add_argument("--backend", default="cpu", choices=["auto", "cpu", "gpu"])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--cli-reps", type=int, default=8)
    args = ap.parse_args()

    config, examples = workload(args.ranks, args.examples, seed=1)
    print(f"{args.examples} examples, {args.ranks} ranks, backend {args.backend}; {os.cpu_count()} × {cpu_name()}; "
          f"load average {os.getloadavg()[0]:.2f}; Python {platform.python_version()}, node {subprocess.run(['node', '--version'], capture_output=True, text=True).stdout.strip()}")
    result: Dict[str, Any] = {}

    with tempfile.TemporaryDirectory() as d:
        cfg, batch = os.path.join(d, "config.json"), os.path.join(d, "batch.jsonl")
        with open(cfg, "w") as f:
            json.dump(config, f)

        def cli_step() -> Dict[str, Any]:
            # What a training loop without the sidecar does each step.
            with open(batch, "w") as f:
                f.write("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in examples))
            out = subprocess.run(["node", BIN, "plan", "--batch", batch, "--config", cfg, "--backend", args.backend],
                                 check=True, capture_output=True, text=True)
            return json.loads(out.stdout)

        cli_step()  # warm the page cache
        result["cli"] = timed(cli_step, args.cli_reps)
        print(f"spawn `postbalance plan` per step : {fmt(result['cli'])}")

    t = time.perf_counter()
    with Planner(config, backend=args.backend) as planner:
        result["startup_ms"] = (time.perf_counter() - t) * 1e3
        print(f"sidecar start-up (once per job)   : {result['startup_ms']:8.1f} ms  [{planner.info.get('backend')}: {planner.info.get('adapter')}]")
        plans: List[Dict[str, Any]] = []
        planner.plan(examples)  # first request: JIT warm-up, also paid once
        result["sidecar"] = timed(lambda: plans.append(planner.plan(examples)), args.reps)
        print(f"sidecar, list of example dicts    : {fmt(result['sidecar'])}")
        cols = compact_batch(examples, ["text", "image", "audio"])
        result["sidecar_compact"] = timed(lambda: planner.plan_compact(cols["ranks"], cols["lengths"], ids=cols["ids"]), args.reps)
        print(f"sidecar, compact columns          : {fmt(result['sidecar_compact'])}")
        compact_plans: List[Dict[str, Any]] = []
        result["sidecar_compact_plan"] = timed(lambda: compact_plans.append(planner.plan_compact(
            cols["ranks"], cols["lengths"], ids=cols["ids"], format="compact")), args.reps)
        print(f"sidecar, compact columns and plan : {fmt(result['sidecar_compact_plan'])}")
        result["plan_ms"] = [p["stats"]["planMs"] for p in plans]
        print(f"  of which planning (stats.planMs) : {fmt(result['plan_ms'])}")

    def exchanges(p: Dict[str, Any]) -> None:
        step = StepPlan(p, examples, config, rank=0, world_size=args.ranks)
        step.dispatch("vision"), step.dispatch("audio"), step.dispatch("llm", rows=lambda e: e.get("text", 0))
        step.route(["vision", "audio"], to="llm")

    for name, p in (("full", plans[-1]), ("compact", compact_plans[-1])):
        result[f"exchanges_{name}"] = timed(lambda: exchanges(p), 5)
        print(f"StepPlan + 4 exchanges, {name:7} : {fmt(result[f'exchanges_{name}'])}")
    result["compact_plan_bytes"] = len(json.dumps(compact_plans[-1], separators=(",", ":")))

    plan = plans[-1]
    text = json.dumps(plan, separators=(",", ":"))
    t = time.perf_counter()
    blob = pickle.dumps(plan)
    pickle.loads(blob)
    result["plan_bytes"] = len(text)
    result["pickle_bytes"] = len(blob)
    result["pickle_roundtrip_ms"] = (time.perf_counter() - t) * 1e3
    print(f"plan size: {len(text) / 1e6:.2f} MB JSON, {len(blob) / 1e6:.2f} MB pickled (what broadcast_object_list moves to every rank); "
          f"pickle+unpickle {result['pickle_roundtrip_ms']:.1f} ms; compact form {result['compact_plan_bytes'] / 1e6:.2f} MB JSON")
    print(json.dumps({k: (round(statistics.median(v), 1) if isinstance(v, list) else v) for k, v in result.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
