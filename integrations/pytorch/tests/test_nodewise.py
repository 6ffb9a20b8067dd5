"""The node-wise exchange on 8 gloo ranks as 2 nodes × 4: the same tensors as the flat exchange,
bit for bit, forward and backward (dispatch, route, inverse; with and without autograd; on its
own stage groups and on the whole group with zero splits); each rank sends to at most
(nodes − 1) + (ranks per node − 1) peers; the inter-node stage carries exactly the plan's
interNodeBytes and the intra-node stage its intraNodeBytes plus the relayed rows. The stage
groups are created once, and destroy_process_group() frees them (the client keeps no group
alive past it: a gloo group alive at interpreter shutdown can abort the process)."""
from __future__ import annotations

import gc
import random
import time
import weakref
from typing import Any, Dict, List

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from postbalance_torch import Exchange, Planner, StepPlan, node_groups, plan_step

WORLD, PER_NODE = 8, 4
CONFIG: Dict[str, Any] = {
    "ranks": WORLD, "ranksPerNode": PER_NODE,
    "phases": [
        {"name": "vision", "modalities": ["image"], "unit": "segment", "cost": {"perItem": 2, "perToken": 1}},
        {"name": "llm", "modalities": ["text", "image"], "unit": "example", "scale": {"image": 0.25}, "cost": {"perToken": 1}},
    ],
    # 8 bytes a token: a float64 row of one feature is one token's bytes, so rows × 8 = the plan's bytes.
    "bytesPerToken": {"text": 8, "image": 8},
}


def make_batch() -> List[Dict[str, Any]]:
    """Ranks 0 and 6 sample far more than the rest, so their items go to many ranks on both nodes."""
    rng = random.Random(11)
    batch: List[Dict[str, Any]] = []
    for r in range(WORLD):
        for k in range(10 if r in (0, 6) else 2):
            e: Dict[str, Any] = {"id": f"r{r}e{k}", "rank": r, "text": rng.randint(1, 30 if r in (0, 6) else 6)}
            if rng.random() < 0.7:
                e["image"] = [rng.randint(0, 40 if r in (0, 6) else 5) for _ in range(rng.randint(1, 3))]
            batch.append(e)
    return batch


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().contiguous().view(torch.int64)


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.equal(bits(a), bits(b))


def run_pair(flat: Exchange, node: Exchange, rank: int, what: str) -> Dict[str, float]:
    """Forward and backward of both exchanges on the same random rows; timings of each."""
    gen = torch.Generator().manual_seed(1000 + rank)
    x = torch.randn(flat.src_total, 1, dtype=torch.float64, generator=gen)
    g = torch.randn(flat.dst_total, 1, dtype=torch.float64, generator=gen)
    out: Dict[str, Any] = {}
    for name, ex in (("flat", flat), ("node", node)):
        leaf = x.clone().requires_grad_(True)
        t = time.perf_counter()
        y = ex(leaf, backward=True)
        (y * g).sum().backward()
        out[name] = (y.detach(), leaf.grad, time.perf_counter() - t)
    assert same_bits(out["flat"][0], out["node"][0]), f"rank {rank}, {what}: node-wise forward differs from flat"
    assert same_bits(out["flat"][1], out["node"][1]), f"rank {rank}, {what}: node-wise backward differs from flat"
    # Without autograd, on integers (the other all-to-all path).
    ints = torch.arange(flat.src_total, dtype=torch.long) + 1000 * rank
    assert torch.equal(flat(ints), node(ints)), f"rank {rank}, {what}: integer rows differ"
    # And back: the inverse on the node-wise schedule restores the source layout.
    back = node.inverse()
    assert back.schedule == "node" and same_bits(back(out["node"][0]), x), f"rank {rank}, {what}: inverse"
    return {"flat": out["flat"][2], "node": out["node"][2]}


def worker(rank: int, port: int, results: Any) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        batch = make_batch()
        local = [e for e in batch if e["rank"] == rank]
        planner = Planner(CONFIG, backend="cpu").start() if rank == 0 else None
        try:
            step = plan_step(local, CONFIG, planner, mode="broadcast")
        finally:
            if planner is not None:
                planner.close()
        assert step.schedule == "node", "2 nodes of 4 ranks: node-wise by default"
        assert step.dispatch("vision").schedule == "node"
        zero_splits = node_groups(None, PER_NODE, subgroups=False)
        report: Dict[str, Any] = {}
        for phase in ("vision", "llm"):
            flat, node = step.dispatch(phase, schedule="flat"), step.dispatch(phase)
            assert [s.name for s in node.stages] == ["inter", "intra"] and [s.name for s in flat.stages] == ["flat"]
            times = run_pair(flat, node, rank, phase)
            parent = Exchange.numbered(*_numbering(step, phase, rank), stage_groups=zero_splits)
            run_pair(flat, parent, rank, f"{phase} on the whole group with zero splits")
            assert parent.peers == node.peers, "zero splits talk to the same ranks"
            report[phase] = {
                "flat_peers": flat.peers, "node_peers": [s.peers for s in node.stages],
                "flat_rows": flat.stages[0].sent_rows, "inter_rows": node.stages[0].sent_rows,
                "intra_rows": node.stages[1].sent_rows, **times,
            }
        route_flat, route_node = step.route("vision", schedule="flat"), step.route("vision")
        run_pair(route_flat, route_node, rank, "route")
        report["route"] = {"flat_peers": route_flat.peers, "node_peers": [s.peers for s in route_node.stages]}
        again = node_groups(None, PER_NODE)
        assert again.inter is node_groups(None, PER_NODE).inter, "the stage groups are created once"
        stage_refs = [weakref.ref(again.inter), weakref.ref(again.intra)]
        gathered: List[Any] = [None] * WORLD
        dist.all_gather_object(gathered, report)
        if rank == 0:
            sampled = {e["id"]: e["rank"] for e in batch}
            results.put((gathered, step.plan, {p: _moves(step, p, sampled) for p in ("vision", "llm")}))
        del step, flat, node, parent, route_flat, route_node, zero_splits, again
    finally:
        dist.destroy_process_group()
    gc.collect()
    assert all(r() is None for r in stage_refs), f"rank {rank}: a stage group outlived destroy_process_group()"


def _numbering(step: StepPlan, phase: str, rank: int) -> Any:
    """What StepPlan.dispatch passes to Exchange.numbered, rebuilt to put the exchange on other groups."""
    ex = step.dispatch(phase, schedule="flat")
    src_counts, row, dst_idx, dst_counts = ex._numbering
    return (rank, WORLD, None, src_counts, row, dst_idx, dst_counts, [], [])


def _moves(step: StepPlan, phase: str, sampled: Dict[str, int]) -> List[List[int]]:
    """(sampled rank, planned rank, bytes) of every item, from the plan and the batch alone."""
    items = step._items(phase)
    ranks = step.item_ranks(phase).tolist()
    ids = [step._ids[e] for e in items.ex.tolist()]
    return [[sampled[i], r, 8 * t] for i, r, t in zip(ids, ranks, items.tokens.tolist())]


def test_node_wise_equals_flat_with_fewer_peers(free_port: int) -> None:
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    mp.spawn(worker, args=(free_port, results), nprocs=WORLD, join=True)
    reports, plan, moves = results.get()
    node_of = lambda r: r // PER_NODE  # noqa: E731
    for p, phase in enumerate(("vision", "llm")):
        ex = plan["phases"][p]["exchange"]
        flat_peers = [r[phase]["flat_peers"] for r in reports]
        assert max(flat_peers) > (WORLD // PER_NODE - 1) + (PER_NODE - 1), f"{phase}: the batch should make some rank send widely"
        for r in reports:
            inter, intra = r[phase]["node_peers"]
            assert inter <= WORLD // PER_NODE - 1 and intra <= PER_NODE - 1, f"{phase}: node-wise peers {inter} + {intra}"
        assert 8 * sum(r[phase]["flat_rows"] for r in reports) == ex["bytes"]
        assert 8 * sum(r[phase]["inter_rows"] for r in reports) == ex["interNodeBytes"] > 0
        # Relayed: inter-node items whose source and destination local indices differ cross a node twice.
        relayed = sum(b for s, d, b in moves[phase] if node_of(s) != node_of(d) and s % PER_NODE != d % PER_NODE)
        assert relayed > 0
        assert 8 * sum(r[phase]["intra_rows"] for r in reports) == ex["intraNodeBytes"] + relayed
        print(f"{phase}: flat peers max {max(flat_peers)}, node-wise max {max(sum(r[phase]['node_peers']) for r in reports)}; "
              f"flat {1e3 * max(r[phase]['flat'] for r in reports):.1f} ms, node {1e3 * max(r[phase]['node'] for r in reports):.1f} ms (slowest rank)")
