"""Planning ahead. The client pipelines requests (plan_async): answers come back in order, each to
its own Future, equal to the synchronous plans; a config installed between requests applies to
those after it; an error answers only its request; the timeout counts from when the sidecar gets
to a request, and a stuck or broken sidecar fails every waiting Future with one PlannerError.
plan_ahead on 3 gloo ranks yields every batch with the plan plan_step gives it, the next batch's
request already sent; loaders of different lengths are one PlannerError on every rank."""
from __future__ import annotations

import os
import signal
import sys
import time
from concurrent.futures import Future
from typing import Any, Dict, List

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from postbalance_torch import Planner, PlannerError, compact_batch, plan_ahead, plan_digest, plan_step
from support import cli_plan, untimed, workload
from test_client import BATCH, CONFIG, alive, fake_sidecar


@pytest.fixture(scope="module")
def demo() -> Any:
    return workload(ranks=16, examples=512, seed=7)


def test_pipelined_requests_come_back_in_order(demo: Any) -> None:
    config, examples = demo
    parts = [examples[k::3] for k in range(3)]
    cheaper = {**config, "phases": [{**p, "cost": {"perItem": 1, "perToken": 1}} for p in config["phases"]]}
    with Planner(config, backend="cpu") as planner:
        sync = [untimed(planner.plan(p)) for p in parts]
        c = compact_batch(parts[1], ["text", "image", "audio"])
        futures: List[Future] = [planner.plan_async(p) for p in parts]
        futures.append(planner.plan_compact_async(c["ranks"], c["lengths"], ids=c["ids"]))
        bad = [dict(e) for e in parts[0][:5]]
        bad[2]["text"] = -1                      # the engine's check: an error answer, in line
        futures.append(planner.plan_async(bad))
        futures.append(planner.plan_async(parts[2], format="compact"))
        assert not all(f.done() for f in futures), "plan_async returns before the plan is there"
        assert untimed(planner.plan(parts[0])) == sync[0], "a plan() behind pipelined requests gets its own answer"
        assert [untimed(f.result()) for f in futures[:4]] == sync + [sync[1]]
        with pytest.raises(PlannerError, match=r'batch example 2, field "text": length must be a non-negative integer, got -1'):
            futures[4].result()
        assert futures[5].result()["format"] == "compact"
        assert futures[5].cancel() is False
        # A config installed between requests applies to those sent after it.
        before = planner.plan_async(parts[0])
        planner.set_config(cheaper)
        after = planner.plan_async(parts[0])
        assert untimed(before.result()) == sync[0]
        assert untimed(after.result()) == untimed(cli_plan(cheaper, parts[0]))
        assert planner.config == cheaper and planner.info["phases"] == [p["name"] for p in config["phases"]]
        with pytest.raises(PlannerError, match="config ranks: must be a positive integer"):
            planner.set_config({**cheaper, "ranks": 0})
        assert planner.config == cheaper, "a rejected config changes nothing"
        assert untimed(planner.plan(parts[0])) == untimed(cli_plan(cheaper, parts[0]))
        with pytest.raises(PlannerError, match=r'batch example 0, field "text": length must be a non-negative integer, got 2\.5'):
            planner.plan_async([{"id": "x", "rank": 0, "text": 2.5}])   # refused before it is sent
    assert planner.returncode == 0


def test_the_timeout_counts_from_when_the_sidecar_gets_to_a_request(tmp_path: Any) -> None:
    # Each answer takes 0.6 s: three requests sent at once with a 1 s timeout each all succeed
    # (the third is answered 1.8 s after it was sent, 0.6 s after the sidecar got to it).
    slow = fake_sidecar(tmp_path, """\
        import json, sys, time
        for line in sys.stdin:
            req = json.loads(line)
            if "config" in req:
                print(json.dumps({"id": req["id"], "ok": True}), flush=True)
                continue
            time.sleep(0.6)
            print(json.dumps({"id": req["id"], "plan": {"n": req["id"]}}), flush=True)
    """)
    with Planner(CONFIG, command=slow, timeout=1.0) as planner:
        futures = [planner.plan_async(BATCH) for _ in range(3)]
        assert [f.result()["n"] for f in futures] == [2, 3, 4]


def test_a_stuck_sidecar_fails_every_waiting_request() -> None:
    with Planner(CONFIG, backend="cpu", timeout=30) as planner:
        planner.plan(BATCH)
        pid = planner.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        t = time.monotonic()
        first, second = planner.plan_async(BATCH, timeout=1), planner.plan_async(BATCH, timeout=1)
        with pytest.raises(PlannerError, match=r"did not answer request (\d+) within 1 s; it was stopped"):
            first.result()
        with pytest.raises(PlannerError, match=r"was stopped \(request \d+ timed out\) before it answered request \d+"):
            second.result()
        assert time.monotonic() - t < 10
        assert planner.pid is None and not alive(pid)
        with pytest.raises(PlannerError, match="not running"):
            planner.plan_async(BATCH)


def test_a_broken_answer_fails_the_requests_behind_it(tmp_path: Any) -> None:
    swapped = fake_sidecar(tmp_path, """\
        import json, sys
        first = json.loads(sys.stdin.readline())
        print(json.dumps({"id": first["id"], "ok": True}), flush=True)
        a, b = json.loads(sys.stdin.readline()), json.loads(sys.stdin.readline())
        print(json.dumps({"id": b["id"], "plan": {}}), flush=True)
        sys.stdin.read()
    """)
    planner = Planner(CONFIG, command=swapped, timeout=20).start()
    pid = planner.pid
    a, b = planner.plan_async(BATCH), planner.plan_async(BATCH)
    with pytest.raises(PlannerError, match=r"answered 3 to request 2: protocol out of step"):
        a.result()
    with pytest.raises(PlannerError, match=r"was stopped \(.*protocol out of step.*\) before it answered request 3"):
        b.result()
    assert planner.pid is None and pid is not None and not alive(pid)


# -- plan_ahead on gloo --------------------------------------------------------------------

WORLD = 3
GCONFIG: Dict[str, Any] = {**CONFIG, "ranks": WORLD}
STEPS = 4


def batches(rank: int, n: int = STEPS) -> List[List[Dict[str, Any]]]:
    """Rank r's batches: a list of example dicts per step (rank 0 heavy)."""
    return [[{"id": f"s{s}r{rank}e{k}", "text": 1 + (7 * s + 3 * k + rank) % 13, "image": [2 + (s + k) % 9] * (k % 3)}
             for k in range(4 if rank == 0 else 1 + (s + rank) % 2)] for s in range(n)]


class Counting(Planner):
    """A Planner that numbers the batch requests it was sent."""
    sent = 0

    def plan_compact_async(self, *args: Any, **kwargs: Any) -> Any:
        self.sent += 1
        return super().plan_compact_async(*args, **kwargs)


def worker(rank: int, port: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        for mode, depth in (("broadcast", 1), ("local", 2)):
            planner = Counting(GCONFIG, backend="cpu").start() if mode == "local" or rank == 1 else None
            try:
                got = []
                for t, (batch, step) in enumerate(plan_ahead(batches(rank), GCONFIG, planner, examples=lambda b: b,
                                                             mode=mode, src=1, depth=depth)):
                    assert batch == batches(rank)[t]
                    if planner is not None:  # the next batches' requests go out while this step trains
                        want, deadline = min(t + 1 + depth, STEPS), time.monotonic() + 30
                        while planner.sent < want and time.monotonic() < deadline:
                            time.sleep(0.002)   # the worker thread sends them; this step does nothing
                        assert planner.sent == want, f"{mode}: {planner.sent} requests at step {t}"
                    assert set(step.timings) == {"gather", "wait", "build", "critical"}
                    got.append((plan_digest(step.plan), [e["id"] for e in step.examples], step.rank))
                assert len(got) == STEPS
                # The same plans as planning each step when it comes.
                ref = Planner(GCONFIG, backend="cpu").start() if rank == 1 else None
                try:
                    want = []
                    for b in batches(rank):
                        s = plan_step(b, GCONFIG, ref, mode="broadcast", src=1)
                        want.append((plan_digest(s.plan), [e["id"] for e in s.examples], s.rank))
                finally:
                    if ref is not None:
                        ref.close()
                assert got == want, f"rank {rank}, {mode}: plan_ahead's plans differ from plan_step's"
            finally:
                if planner is not None:
                    planner.close()
        # Loaders of different lengths: one PlannerError on every rank, at the batch one lacks.
        planner = Planner(GCONFIG, backend="cpu").start() if rank == 1 else None
        try:
            short = batches(rank, 3 if rank == 2 else STEPS)
            with pytest.raises(PlannerError, match=r"^batch 3: data-parallel ranks \[2\] have no batch 3, the others do"):
                for _ in plan_ahead(short, GCONFIG, planner, examples=lambda b: b, mode="broadcast", src=1):
                    pass
            # A batch the planner rejects: the same error on every rank.
            bad = [[dict(e, text=-2) for e in b] if rank == 0 else b for b in batches(rank, 1)]
            with pytest.raises(PlannerError, match=r'^batch example 0, field "text": length must be a non-negative integer, got -2$'):
                for _ in plan_ahead(bad, GCONFIG, planner, examples=lambda b: b, mode="broadcast", src=1):
                    pass
        finally:
            if planner is not None:
                planner.close()
    finally:
        dist.destroy_process_group()


def test_plan_ahead_on_three_ranks(free_port: int) -> None:
    mp.spawn(worker, args=(free_port,), nprocs=WORLD, join=True)
