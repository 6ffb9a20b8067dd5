"""Exchanges on awkward layouts, 3 gloo ranks: a rank that sampled nothing, an example without
encoder segments, zero-length segments, uneven rows, a phase with no items at all. Every row is
tagged with (item, row) so arrival order is checked exactly; gradients are checked against the
inverse exchange."""
from __future__ import annotations

import copy
import math
import zlib
from typing import Any, Dict, List

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from postbalance_torch import Planner, StepPlan, keep_in_graph, plan_step, segment_lengths

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
# The same, with an audio encoder that no example of this step feeds.
AUDIO = {"name": "audio", "modalities": ["audio"], "unit": "segment", "cost": {"perToken": 1}}
CONFIG_AUDIO: Dict[str, Any] = {**CONFIG, "phases": [CONFIG["phases"][0], AUDIO, {**CONFIG["phases"][1], "modalities": ["text", "image", "audio"]}]}


def tag(keys: List[str], rows: Dict[str, int], index: Dict[str, int]) -> torch.Tensor:
    """Rows (item index, row within item) for the given keys, in order."""
    parts = [torch.tensor([[float(index[k]), float(j)] for j in range(rows[k])], dtype=torch.float64).reshape(-1, 2) for k in keys]
    return torch.cat(parts) if parts else torch.zeros(0, 2, dtype=torch.float64)


def check_step(step: StepPlan, rank: int, local: List[Dict[str, Any]], encoders: List[str]) -> None:
    # Vision inputs: one row per token.
    seg_rows = step.item_tokens("vision")
    index = {k: i for i, k in enumerate(sorted(seg_rows))}
    to_vision = step.dispatch("vision")
    x = tag(step.local_keys("vision"), seg_rows, index)
    assert to_vision.src_keys == step.local_keys("vision")
    y = to_vision(x)
    assert to_vision.dst_keys == step.local_keys("vision", planned=True)
    assert torch.equal(y, tag(step.local_keys("vision", planned=True), seg_rows, index)), f"rank {rank}: vision rows out of order"
    assert torch.equal(to_vision.inverse()(y), x), f"rank {rank}: inverse did not restore the sampled rows"

    # Route encoder outputs (ceil(L/4) rows each) to the LLM ranks, with gradients.
    out_rows = {k: math.ceil(L * 0.25) for k, L in seg_rows.items()}
    route = step.route(encoders)
    enc = tag(step.local_keys("vision", planned=True), out_rows, index)
    z = route(enc, backward=True)
    per_example = route.split_by_item(z)
    assert route.item_keys == step.local_keys("llm", planned=True)
    for eid, rows in zip(route.item_keys, per_example):
        e = step.by_id[eid]
        segs = [f"{eid}/image/{k}" for k in range(len(segment_lengths(e.get("image"))))]
        assert torch.equal(rows, tag(segs, out_rows, index)), f"rank {rank}: example {eid} got the wrong encoder rows"
    # d(Σ w·z)/d enc must be w sent back: the backward of the route is its inverse.
    w = torch.arange(z.numel(), dtype=torch.float64).reshape(z.shape) + 100 * rank
    enc_leaf = enc.requires_grad_(True)
    z2 = route(enc_leaf, backward=True)
    keep_in_graph((w * z2).sum(), z2).backward()
    assert torch.equal(enc_leaf.grad, route.inverse()(w)), f"rank {rank}: route gradient is not the inverse exchange"

    # Text tokens to the LLM layout, integers, no autograd.
    to_llm = step.dispatch("llm", rows=lambda e: e.get("text", 0))
    toks = torch.cat([torch.full((e.get("text", 0),), zlib.crc32(str(e["id"]).encode()) % 1000, dtype=torch.long) for e in local]) if local else torch.zeros(0, dtype=torch.long)
    got = to_llm.split(to_llm(toks))
    for eid, t in zip(to_llm.dst_keys, got):
        e = step.by_id[eid]
        assert t.shape[0] == e.get("text", 0) and bool((t == zlib.crc32(str(e["id"]).encode()) % 1000).all()), f"rank {rank}: text of {eid}"


def worker(rank: int, port: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        local = [e for e in BATCH if e["rank"] == rank]
        planner = Planner(CONFIG, backend="cpu").start() if rank == 0 else None
        try:
            step = plan_step(local, CONFIG, planner, mode="broadcast", verify=True)
            assert step.plan.get("format") == "compact", "plan_step asks for the compact form"
            assert sum(p["exchange"]["movedItems"] for p in step.plan["phases"]) > 0, "the plan should move items off rank 0"
            check_step(step, rank, local, ["vision"])
            # The full form of the same plan gives the same exchanges.
            full = planner.plan(step.examples) if planner else None
        finally:
            if planner is not None:
                planner.close()
        box: List[Any] = [full]
        dist.broadcast_object_list(box, src=0)
        full_step = StepPlan(box[0], step.examples, CONFIG)
        for phase in ("vision", "llm"):
            assert torch.equal(full_step.item_ranks(phase), step.item_ranks(phase))
            assert full_step.planned_layout(phase) == step.planned_layout(phase)
        check_step(full_step, rank, local, ["vision"])

        # A step in which no example has audio: the engine plans the audio phase as R empty
        # ranks; its exchanges move empty tensors, and routing it with vision changes nothing.
        audio_planner = Planner(CONFIG_AUDIO, backend="cpu").start() if rank == 0 else None
        try:
            step_audio = plan_step(local, CONFIG_AUDIO, audio_planner, mode="broadcast", verify=True)
        finally:
            if audio_planner is not None:
                audio_planner.close()
        assert [p["items"] for p in step_audio.plan["phases"]] == [len(step.item_ranks("vision")), 0, len(step.item_ranks("llm"))]
        check_step(step_audio, rank, local, ["vision", "audio"])
        assert step_audio.dispatch("audio").send_splits == [0] * WORLD
        # The same by hand, in both forms, as a plan without the audio phase plus an empty one.
        for form in ("compact", "full"):
            plan = copy.deepcopy(step.plan if form == "compact" else box[0])
            empty: Dict[str, Any] = {"name": "audio", "lowerBound": 0, "maxCost": 0, "meanCost": 0, "algorithm": "none", "items": 0,
                                     "exchange": {"movedItems": 0, "bytes": 0, "interNodeBytes": 0, "intraNodeBytes": 0, "pairs": []}}
            if form == "compact":
                empty.update(rank=[], cost=[0] * WORLD, tokens=[0] * WORLD)
            else:
                empty["ranks"] = [{"items": [], "cost": 0, "tokens": 0} for _ in range(WORLD)]
            plan["phases"].insert(1, empty)
            s = StepPlan(plan, step.examples, CONFIG_AUDIO)
            to_audio = s.dispatch("audio")
            assert to_audio.send_splits == [0] * WORLD and to_audio.recv_splits == [0] * WORLD and to_audio.dst_keys == []
            frames = to_audio(torch.zeros(0, 7, dtype=torch.float64, requires_grad=True), backward=True)
            assert frames.shape == (0, 7) and to_audio.split(frames) == []
            assert s.local_keys("audio") == [] and s.sampled_layout("audio") == [[] for _ in range(WORLD)]
            check_step(s, rank, local, ["vision", "audio"])
        print(f"rank {rank}: ok", flush=True)
    finally:
        dist.destroy_process_group()


def test_exchanges_on_awkward_layouts(free_port: int) -> None:
    mp.spawn(worker, args=(free_port,), nprocs=WORLD, join=True)
