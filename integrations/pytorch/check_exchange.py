"""Exchange helpers on awkward layouts, 3 gloo ranks: a rank that sampled nothing, an example
without encoder segments, zero-length segments, uneven rows. Every row is tagged with (item,
row) so arrival order is checked exactly; gradients are checked against the inverse exchange.

Run:  /usr/bin/python3 integrations/pytorch/check_exchange.py
"""
from __future__ import annotations

import math
import os
import socket
import sys
import zlib
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

from postbalance_torch import Planner, keep_in_graph, plan_step, segment_lengths  # noqa: E402

WORLD = 3
CONFIG: Dict[str, Any] = {
    "ranks": WORLD, "ranksPerNode": 1,
    "phases": [
        {"name": "vision", "modalities": ["image"], "unit": "segment", "cost": {"perItem": 1, "perToken": 1}},
        {"name": "llm", "modalities": ["text", "image"], "unit": "example", "scale": {"image": 0.25}, "cost": {"perToken": 1}},
    ],
}
# Rank 0 sampled everything heavy, rank 1 one text-only example, rank 2 nothing at all.
BATCH: List[Dict[str, Any]] = [
    {"id": "a", "rank": 0, "text": 5, "image": [40, 0, 13]},
    {"id": "b", "rank": 0, "text": 3, "image": [90]},
    {"id": 7, "rank": 0, "text": 9, "image": [33, 21]},
    {"id": "d", "rank": 0, "text": 2, "image": 64},
    {"id": "e", "rank": 0, "image": [50]},
    {"id": "t", "rank": 1, "text": 30},
]


def tag(keys: List[str], rows: Dict[str, int], index: Dict[str, int]) -> torch.Tensor:
    """Rows (item index, row within item) for the given keys, in order."""
    parts = [torch.tensor([[float(index[k]), float(j)] for j in range(rows[k])], dtype=torch.float64).reshape(-1, 2) for k in keys]
    return torch.cat(parts) if parts else torch.zeros(0, 2, dtype=torch.float64)


def worker(rank: int, port: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        local = [e for e in BATCH if e["rank"] == rank]
        planner = Planner(CONFIG, backend="cpu").start() if rank == 0 else None
        step = plan_step(local, CONFIG, planner, mode="broadcast", verify=True)
        if planner is not None:
            planner.close()
        moved = sum(p["exchange"]["movedItems"] for p in step.plan["phases"])
        assert moved > 0, "the plan should move items off rank 0"

        # Vision inputs: one row per token.
        seg_rows = step.item_tokens("vision")
        index = {k: i for i, k in enumerate(sorted(seg_rows))}
        to_vision = step.dispatch("vision")
        x = tag(step.local_keys("vision"), seg_rows, index)
        y = to_vision(x)
        assert torch.equal(y, tag(step.local_keys("vision", planned=True), seg_rows, index)), f"rank {rank}: vision rows out of order"
        assert torch.equal(to_vision.inverse()(y), x), f"rank {rank}: inverse did not restore the sampled rows"

        # Route encoder outputs (ceil(L/4) rows each) to the LLM ranks, with gradients.
        out_rows = {k: math.ceil(L * 0.25) for k, L in seg_rows.items()}
        route = step.route("vision")
        enc = tag(step.local_keys("vision", planned=True), out_rows, index)
        z = route(enc, backward=True)
        per_example = route.split_by_item(z)
        for eid, rows in zip(route.item_keys, per_example):
            e = step.by_id[eid]
            segs = [f"{eid}/image/{k}" for k in range(len(segment_lengths(e.get("image"))))]
            assert torch.equal(rows, tag(segs, out_rows, index)), f"rank {rank}: example {eid} got the wrong encoder rows"
        # d(Σ w·z)/d enc must be w sent back: the backward of the route is its inverse.
        w = torch.arange(z.numel(), dtype=torch.float64).reshape(z.shape) + 100 * rank
        loss = keep_in_graph((w * z).sum(), z)
        enc_leaf = enc.requires_grad_(True)
        z2 = route(enc_leaf, backward=True)
        keep_in_graph((w * z2).sum(), z2).backward()
        assert torch.equal(enc_leaf.grad, route.inverse()(w)), f"rank {rank}: route gradient is not the inverse exchange"
        del loss

        # Text tokens to the LLM layout, integers, no autograd.
        to_llm = step.dispatch("llm", rows=lambda e: e.get("text", 0))
        toks = torch.cat([torch.full((e.get("text", 0),), zlib.crc32(str(e["id"]).encode()) % 1000, dtype=torch.long) for e in local]) if local else torch.zeros(0, dtype=torch.long)
        got = to_llm.split(to_llm(toks))
        for eid, t in zip(to_llm.dst_keys, got):
            e = step.by_id[eid]
            assert t.shape[0] == e.get("text", 0) and bool((t == zlib.crc32(str(e["id"]).encode()) % 1000).all()), f"rank {rank}: text of {eid}"
        print(f"rank {rank}: vision {len(to_vision.dst_keys)} items, llm {len(to_llm.dst_keys)} examples: ok", flush=True)
    finally:
        dist.destroy_process_group()


def main() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(port,), nprocs=WORLD, join=True)
    print("exchange checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
