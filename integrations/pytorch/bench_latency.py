"""Per-step planning latency seen from a Python training loop: the `postbalance serve` sidecar
(one process for the whole job) against spawning `postbalance plan` every step.

Run:  /usr/bin/python3 integrations/pytorch/bench_latency.py [--ranks 256 --examples 4096] [--backend cpu]

Both numbers are end to end from Python: write/serialise the batch, plan, read and json-parse
the plan. Also prints what a rank-0 broadcast would move (the plan's size) for the
local-planning vs broadcast comparison in docs/PYTORCH.md.
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from check_client import BIN, workload  # noqa: E402
from postbalance_torch import Planner, compact_batch  # noqa: E402


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
        result["plan_ms"] = [p["stats"]["planMs"] for p in plans]
        print(f"  of which planning (stats.planMs) : {fmt(result['plan_ms'])}")

    plan = plans[-1]
    text = json.dumps(plan, separators=(",", ":"))
    t = time.perf_counter()
    blob = pickle.dumps(plan)
    pickle.loads(blob)
    result["plan_bytes"] = len(text)
    result["pickle_bytes"] = len(blob)
    result["pickle_roundtrip_ms"] = (time.perf_counter() - t) * 1e3
    print(f"plan size: {len(text) / 1e6:.2f} MB JSON, {len(blob) / 1e6:.2f} MB pickled (what broadcast_object_list moves to every rank); "
          f"pickle+unpickle {result['pickle_roundtrip_ms']:.1f} ms")
    print(json.dumps({k: (round(statistics.median(v), 1) if isinstance(v, list) else v) for k, v in result.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
