"""The planning time a training step still sees, with and without planning ahead.

Run:  /usr/bin/python3 integrations/pytorch/bench_plan_ahead.py [--ranks 256 --examples 4096 --step-ms 1000 --steps 6]

One rank's critical path at a realistic size, in one process: the demo's workload (a new batch
per step) planned by the sidecar for --ranks ranks, as rank 0; each step then builds the four
exchanges of the PyTorch guide's step (no data moves) and "trains" for --step-ms (a sleep: a
GPU-bound step leaves the host CPU to the sidecar). Without planning ahead the step makes the
request, waits for the whole plan and builds its StepPlan; with plan_ahead's engine (the same
code, fed the global batches) the next batch is requested and its StepPlan built in the
background while the step trains. The all-gather of the lengths is left out (plan_ahead runs it
on the step's path either way).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any, Dict, List

from postbalance_torch import Planner, StepPlan, compact_batch
from postbalance_torch.ahead import pipeline
from tests.support import BIN, workload

os.environ.setdefault("POSTBALANCE_CLI", BIN)


def exchanges(step: StepPlan) -> None:
    """The four exchanges of the PyTorch guide's step (built, not run)."""
    step.dispatch("vision")
    step.dispatch("audio")
    step.dispatch("llm", rows=lambda e: e.get("text", 0))
    step.route(["vision", "audio"])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, default=256)
    ap.add_argument("--examples", type=int, default=4096)
    ap.add_argument("--step-ms", type=float, default=1000)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--backend", default="cpu")
    args = ap.parse_args()
    data = [workload(ranks=args.ranks, examples=args.examples, seed=100 + s) for s in range(args.steps)]
    config = data[0][0]
    R = config["ranks"]
    mods = ["text", "image", "audio"]
    rows: Dict[str, Dict[str, List[float]]] = {}
    with Planner(config, backend=args.backend) as planner:
        c = compact_batch(data[0][1], mods)
        planner.plan_compact(c["ranks"], c["lengths"], ids=c["ids"])  # warm up the sidecar
        # Planning when the step starts (what plan_step does, without its all-gather).
        r: Dict[str, List[float]] = {"critical": [], "exchanges": []}
        for s in range(args.steps):
            t = time.perf_counter()
            c = compact_batch(data[s][1], mods)
            plan = planner.plan_compact(c["ranks"], c["lengths"], ids=c["ids"], format="compact")
            step = StepPlan(plan, data[s][1], config, rank=0, world_size=R, schedule="flat")
            t1 = time.perf_counter()
            exchanges(step)
            if s > 0:
                r["critical"].append((t1 - t) * 1e3)
                r["exchanges"].append((time.perf_counter() - t1) * 1e3)
            time.sleep(args.step_ms / 1e3)
        rows["plan when the step starts"] = r
        # Planning ahead: plan_ahead's engine on the same global batches.
        feed = iter((s, data[s][1], 0.0) for s in range(args.steps))
        r = {"critical": [], "exchanges": []}
        for s, step in pipeline(lambda: next(feed, None), config, planner, 0, R, None, "local", 0, 1, None, None, "flat"):
            t1 = time.perf_counter()
            exchanges(step)
            if s > 0:  # step 0 has no step before it to plan behind
                r["critical"].append(step.timings["critical"])
                r["exchanges"].append((time.perf_counter() - t1) * 1e3)
            time.sleep(args.step_ms / 1e3)
        rows["plan ahead"] = r
    load = os.getloadavg()[0]
    print(f"{args.examples} examples x {args.ranks} ranks, backend {args.backend}, steps of {args.step_ms:.0f} ms, "
          f"{args.steps - 1} steps measured, load {load:.1f}")
    for name, r in rows.items():
        w, b = r["critical"], r["exchanges"]
        print(f"{name:<28} planning on the step's path: median {statistics.median(w):7.1f} ms (max {max(w):7.1f})   "
              f"then building 4 exchanges: median {statistics.median(b):7.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
