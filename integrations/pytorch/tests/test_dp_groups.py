"""Balancing over the data-parallel group, not the world: 8 gloo ranks as 4 DP × 2 TP (TP peers
adjacent, two nodes of 4). Each DP group plans its own global batch; the two ranks of a TP group
hold the same examples, get the same plan and move the same rows; exchanges (node-wise by
default: 2 DP ranks per node) deliver every row to the rank the plan names. A config for another
number of ranks, a DP group that does not divide the world, a wrong DP index or a batch the
planner rejects is one PlannerError on every rank concerned, before any plan exists."""
from __future__ import annotations

import hashlib
import zlib
from typing import Any, Dict, List

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from postbalance_torch import Planner, PlannerError, plan_digest, plan_step

WORLD, TP, DP = 8, 2, 4
CONFIG: Dict[str, Any] = {
    "ranks": DP, "ranksPerNode": 2,   # DP ranks per node: 4 processes a node / TP 2
    "phases": [
        {"name": "vision", "modalities": ["image"], "unit": "segment", "cost": {"perItem": 2, "perToken": 1}},
        {"name": "llm", "modalities": ["text", "image"], "unit": "example", "scale": {"image": 0.25}, "cost": {"perToken": 1}},
    ],
}


def local_examples(dp: int) -> List[Dict[str, Any]]:
    """What DP rank dp samples: DP rank 0 far more than the others (same on both TP peers)."""
    n = 7 if dp == 0 else 2
    return [{"id": f"d{dp}x{k}", "text": 3 + (5 * k + dp) % 11, "image": [4 + (7 * k + 3 * dp) % 19] * (1 + k % 2)} for k in range(n)]


def key_rows(keys: List[str], rows: List[int]) -> torch.Tensor:
    """Rows tagged with their item: crc32(key) and the row's index in the item."""
    parts = [torch.tensor([[float(zlib.crc32(k.encode())), float(j)] for j in range(n)], dtype=torch.float64).reshape(-1, 2)
             for k, n in zip(keys, rows)]
    return torch.cat(parts) if parts else torch.zeros(0, 2, dtype=torch.float64)


def digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()


def worker(rank: int, port: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        # Every rank creates every group, in one order (torch.distributed's rule).
        tp_groups = [dist.new_group([2 * d, 2 * d + 1]) for d in range(DP)]
        dp_groups = [dist.new_group(list(range(t, WORLD, TP))) for t in range(TP)]
        three = dist.new_group([0, 1, 2])
        tp_group, dp_group = tp_groups[rank // TP], dp_groups[rank % TP]
        dp = rank // TP
        local = local_examples(dp)

        # Bad input first: one line, raised before any collective, on every rank it concerns.
        with pytest.raises(PlannerError, match=r"^config ranks is 8, but the data-parallel group has 4 ranks"):
            plan_step(local, dict(CONFIG, ranks=WORLD), None, group=dp_group)
        with pytest.raises(PlannerError, match=rf"^dp rank {(dp + 1) % DP} was given, but this process is rank {dp}"):
            plan_step(local, CONFIG, None, group=dp_group, rank=(dp + 1) % DP)
        if rank < 3:
            with pytest.raises(PlannerError, match=r"^the data-parallel group has 3 ranks, which does not divide the world of 8$"):
                plan_step(local, dict(CONFIG, ranks=3), None, group=three)
        else:
            with pytest.raises(PlannerError, match=rf"^rank {rank} is not in the data-parallel group"):
                plan_step(local, dict(CONFIG, ranks=3), None, group=three)

        # Rank src=1 of each DP group plans (global ranks 2 and 3) and broadcasts.
        planner = Planner(CONFIG, backend="cpu").start() if dp == 1 else None
        try:
            # A batch the planner rejects: every rank of the DP group gets the planner's error.
            bad = [dict(e, text=-1) for e in local] if dp == 2 else local
            with pytest.raises(PlannerError, match=r'^batch example \d+, field "text": length must be a non-negative integer, got -1$'):
                plan_step(bad, CONFIG, planner, mode="broadcast", src=1, group=dp_group)
            step = plan_step(local, CONFIG, planner, mode="broadcast", src=1, group=dp_group, verify=True)
        finally:
            if planner is not None:
                planner.close()
        assert (step.rank, step.world, step.schedule) == (dp, DP, "node")
        assert [e["rank"] for e in step.examples] == [d for d in range(DP) for _ in local_examples(d)]
        assert sum(p["exchange"]["movedItems"] for p in step.plan["phases"]) > 0

        out = {}
        for phase in ("vision", "llm"):
            rows = step.dispatch(phase, rows=(lambda L, m: 1 + L % 3) if phase == "vision" else (lambda e: 1 + e["text"] % 4))
            flat = step.dispatch(phase, rows=(lambda L, m: 1 + L % 3) if phase == "vision" else (lambda e: 1 + e["text"] % 4), schedule="flat")
            x = key_rows(rows.src_keys, rows.src_rows)
            y = rows(x)
            assert torch.equal(y, key_rows(step.local_keys(phase, planned=True), rows.dst_rows)), f"rank {rank}: {phase} rows"
            assert torch.equal(y, flat(x))
            out[phase] = y
        # TP peers: the same plan, the same rows.
        mine = [plan_digest(step.plan), digest(out["vision"]), digest(out["llm"])]
        peers: List[Any] = [None] * TP
        dist.all_gather_object(peers, mine, group=tp_group)
        assert peers[0] == peers[1], f"rank {rank}: TP peers differ"
        # The two DP groups planned the same batch (their data is the same): the same plan too.
        across: List[Any] = [None] * WORLD
        dist.all_gather_object(across, plan_digest(step.plan))
        assert len(set(across)) == 1
    finally:
        dist.destroy_process_group()


def test_balancing_over_the_data_parallel_group(free_port: int) -> None:
    mp.spawn(worker, args=(free_port,), nprocs=WORLD, join=True)
