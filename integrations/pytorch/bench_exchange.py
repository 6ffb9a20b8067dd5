"""Flat against node-wise exchanges on real torch.distributed ranks (gloo on CPU).

Run:  /usr/bin/python3 integrations/pytorch/bench_exchange.py [--ranks 8 --per-node 4 --examples 256 --dim 64 --reps 7]

The demo's workload planned for R ranks as nodes of --per-node; then, on R processes, each
phase's dispatch (sampled layout -> the phase's plan) and the route of encoder outputs to the
LLM ranks, forward + backward, with three schedules: flat (one all-to-all on the whole group),
node-wise on its own stage groups (the default), and node-wise on the whole group with zero
splits to the ranks a stage does not talk to. Prints per schedule the slowest rank's median
time, the most peers a rank sends to, and the rows each stage moves off-rank (× --dim × 4 bytes).

On one machine every "node" shares the same memory, so this measures the cost of messages and
copies (gloo exchanges one message per pair of ranks in an all-to-all, empty or not), not a
network: across real nodes the inter-node stage's single message per node pair is what the
schedule is for.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import time
from typing import Any, Dict, List

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from postbalance_torch import Exchange, Planner, keep_in_graph, node_groups, plan_step
from tests.support import BIN, workload

os.environ.setdefault("POSTBALANCE_CLI", BIN)


def worker(rank: int, args: Any, port: int, config: Dict[str, Any], examples: List[Dict[str, Any]], results: Any) -> None:
    torch.set_num_threads(1)
    world = config["ranks"]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        local = [{k: v for k, v in e.items() if k != "rank"} for e in examples if e["rank"] == rank]
        planner = Planner(config, backend="cpu").start() if rank == 0 else None
        try:
            step = plan_step(local, config, planner, mode="broadcast")
        finally:
            if planner is not None:
                planner.close()
        zero = node_groups(None, args.per_node, subgroups=False)
        node_groups(None, args.per_node)  # created once, before any timing
        encoders = [p["name"] for p in config["phases"] if p.get("unit", "segment") == "segment"]

        def variants(make: Any) -> Dict[str, Exchange]:
            flat = make("flat")
            s = flat._numbering
            return {"flat": flat, "node": make("node"),
                    "node, zero splits": Exchange.numbered(rank, world, None, *s, [], [], stage_groups=zero)}

        cases = {f"dispatch {p}": variants(lambda s, p=p: step.dispatch(p, schedule=s)) for p in encoders}
        cases["route encoders -> llm"] = variants(lambda s: step.route(encoders, schedule=s))
        out: Dict[str, Any] = {}
        for case, exchanges in cases.items():
            x = torch.randn(next(iter(exchanges.values())).src_total, args.dim)
            times: Dict[str, List[float]] = {k: [] for k in exchanges}
            for rep in range(args.reps + 1):
                for name, ex in exchanges.items():  # interleaved, so load drifts hit all alike
                    leaf = x.clone().requires_grad_(True)
                    dist.barrier()
                    t = time.perf_counter()
                    y = ex(leaf, backward=True)
                    keep_in_graph(y.sum(), y).backward()
                    ms = (time.perf_counter() - t) * 1e3
                    if rep:
                        times[name].append(ms)
            out[case] = {name: {"ms": statistics.median(times[name]), "peers": ex.peers,
                                "rows": [s.sent_rows for s in ex.stages]} for name, ex in exchanges.items()}
        gathered: List[Any] = [None] * world
        dist.all_gather_object(gathered, out)
        if rank == 0:
            results.put(gathered)
    finally:
        dist.destroy_process_group()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, default=8)
    ap.add_argument("--per-node", type=int, default=4)
    ap.add_argument("--examples", type=int, default=256)
    ap.add_argument("--dim", type=int, default=64, help="float32 features per row")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--json", help="write the per-rank figures here")
    args = ap.parse_args()
    config, examples = workload(ranks=args.ranks, examples=args.examples, seed=args.seed)
    config["ranksPerNode"] = args.per_node
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.get_context("spawn").SimpleQueue()
    t = time.perf_counter()
    mp.spawn(worker, args=(args, port, config, examples, results), nprocs=args.ranks, join=True)
    per_rank = results.get()
    load = os.getloadavg()[0]
    print(f"{args.ranks} gloo ranks as {args.ranks // args.per_node} nodes x {args.per_node}; {args.examples} examples "
          f"(seed {args.seed}); rows of {args.dim} float32; forward + backward; median of {args.reps}, slowest rank; "
          f"load {load:.1f}; {time.perf_counter() - t:.0f} s")
    print(f"{'exchange':<26}{'schedule':<20}{'ms':>9}{'max peers':>11}   rows off-rank per stage (all ranks)")
    for case in per_rank[0]:
        for name in per_rank[0][case]:
            rs = [r[case][name] for r in per_rank]
            stages = [sum(r["rows"][k] for r in rs) for k in range(len(rs[0]["rows"]))] if rs[0]["rows"] else []
            print(f"{case:<26}{name:<20}{max(r['ms'] for r in rs):>9.1f}{max(r['peers'] for r in rs):>11}   "
                  + " + ".join(f"{v:,}" for v in stages))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(per_rank, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
