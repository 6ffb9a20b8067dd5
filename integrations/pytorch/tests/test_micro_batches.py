"""Micro-batches in the client, on 3 gloo ranks: StepPlan.micro_batches(phase) gives every rank
the same count N, splits the rank's planned items (each exactly once) into micro-batches of at
most maxTokens tokens, agrees with the CLI's full plan (its per-rank microBatch arrays) and with
a StepPlan built from that full plan, and indexes the rows the dispatch exchange delivers. A
phase without microBatches is one micro-batch of everything; a plan whose microBatch array is
not this batch's is a ValueError."""
from __future__ import annotations

import zlib
from typing import Any, Dict, List

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from postbalance_torch import Planner, StepPlan, plan_step
from support import cli_plan

WORLD = 3
MAX_TOKENS = 40
COUNT = 4
CONFIG: Dict[str, Any] = {
    "ranks": WORLD, "ranksPerNode": 1,
    "phases": [
        {"name": "vision", "modalities": ["image"], "unit": "segment", "cost": {"perItem": 2, "perToken": 1},
         "microBatches": {"maxTokens": MAX_TOKENS}},
        {"name": "audio", "modalities": ["audio"], "unit": "segment", "cost": {"perToken": 1}},
        {"name": "llm", "modalities": ["text", "image", "audio"], "unit": "example", "scale": {"image": 0.25, "audio": 0.5},
         "cost": {"perToken": 1}, "microBatches": {"count": COUNT}},
    ],
}


def local_examples(rank: int) -> List[Dict[str, Any]]:
    """Rank 0 samples 6 examples, the others 1 or 2: 9 LLM items for 3 ranks x 4 micro-batches,
    so some rank has empty ones."""
    n = 6 if rank == 0 else rank
    return [{"id": f"r{rank}e{k}", "text": 3 + (5 * k + rank) % 11,
             "image": [4 + (7 * k + 3 * rank + j) % 33 for j in range(1 + k % 3)],
             "audio": [5 + k] if k % 2 else None} for k in range(n)]


def tagged(keys: List[str], rows: List[int]) -> torch.Tensor:
    """One row per token, tagged with crc32 of its item key."""
    parts = [torch.full((n, 1), float(zlib.crc32(k.encode())), dtype=torch.float64) for k, n in zip(keys, rows)]
    return torch.cat(parts) if parts else torch.zeros(0, 1, dtype=torch.float64)


def worker(rank: int, port: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        local = local_examples(rank)
        with Planner(CONFIG, backend="cpu") as planner:
            step = plan_step(local, CONFIG, planner)
        full = cli_plan(CONFIG, step.examples)
        from_full = StepPlan(full, step.examples, CONFIG, rank=rank, world_size=WORLD)
        empties = 0
        for phase, want_n in (("vision", None), ("audio", 1), ("llm", COUNT)):
            mbs = step.micro_batches(phase)
            keys = step.local_keys(phase, planned=True)
            tokens = step.local_tokens(phase)
            assert len(tokens) == len(keys)
            counts: List[Any] = [None] * WORLD
            dist.all_gather_object(counts, len(mbs))
            assert len(set(counts)) == 1, f"{phase}: ranks have {counts} micro-batches"
            planned = next(p for p in full["phases"] if p["name"] == phase)
            if want_n is None:
                assert len(mbs) == planned["microBatches"] >= 2, f"{phase}: {len(mbs)} micro-batches"
            else:
                assert len(mbs) == want_n
            # Every planned item exactly once, ascending positions inside a micro-batch.
            assert sorted(i for mb in mbs for i in mb) == list(range(len(keys)))
            assert all(mb == sorted(mb) for mb in mbs)
            if phase == "audio":
                assert mbs == [list(range(len(keys)))], "no microBatches in the config: one micro-batch of everything"
                assert "microBatches" not in planned
                continue
            if phase == "vision":
                assert all(sum(tokens[i] for i in mb) <= MAX_TOKENS for mb in mbs)
            # The CLI's full plan: this rank's microBatch array, parallel to its items.
            entry = planned["ranks"][rank]
            assert entry["items"] == keys
            assert [[keys[i] for i in mb] for mb in mbs] == [[k for k, m in zip(entry["items"], entry["microBatch"]) if m == j]
                                                              for j in range(len(mbs))]
            assert from_full.micro_batches(phase) == mbs
            # Empty micro-batches only where a rank has fewer items than N, and they come last.
            sizes = [len(mb) for mb in mbs]
            assert sizes == sorted(sizes, key=lambda s: s == 0)
            if len(keys) >= len(mbs):
                assert all(sizes)
            empties += sizes.count(0)
            # The dispatched rows, split by item, indexed by micro-batch: each holds its items.
            ex = step.dispatch(phase)
            got = ex.split(ex(tagged(step.local_keys(phase), step.local_tokens(phase, planned=False))))
            assert ex.dst_keys == keys
            for mb in mbs:
                for i in mb:
                    assert got[i].shape[0] == tokens[i]
                    assert bool((got[i] == float(zlib.crc32(keys[i].encode()))).all())
        total: List[Any] = [None] * WORLD
        dist.all_gather_object(total, empties)
        assert sum(total) > 0, "the batch was meant to leave some rank with empty micro-batches"

        # A plan that is not this batch's: one ValueError naming the phase.
        bad = {**step.plan, "phases": [dict(p, microBatch=p["microBatch"][:-1]) if p["name"] == "llm" else p for p in step.plan["phases"]]}
        with pytest.raises(ValueError, match=r"^phase 'llm': the plan has \d+ micro-batch entries, this batch \d+ items$"):
            StepPlan(bad, step.examples, CONFIG, rank=rank, world_size=WORLD).micro_batches("llm")
    finally:
        dist.destroy_process_group()


def test_micro_batches_on_three_ranks(free_port: int) -> None:
    mp.spawn(worker, args=(free_port,), nprocs=WORLD, join=True)
