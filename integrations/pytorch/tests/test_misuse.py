"""Careless use of the newer client APIs: every bad argument is one clear error naming the field
(PlannerError, or the ValueError the API documents), never a KeyError, IndexError, TypeError or
AttributeError from inside; a bad timeout or config is refused before it reaches the sidecar,
which keeps serving with the config it had; a rank outside the world is refused, not read as
another rank's items; a bad example on one DP rank is the same PlannerError on every rank."""
from __future__ import annotations

import copy
import datetime
import math
import queue
import traceback
from typing import Any, Dict, Iterator, List

import numpy as np
import pytest
import torch

import torch.distributed as dist
import torch.multiprocessing as mp

from postbalance_torch import CostSamples, Planner, PlannerError, StepPlan, fit_config, plan_ahead, plan_step, refit, segment_lengths
from postbalance_torch.ahead import PlanAhead

CONFIG: Dict[str, Any] = {
    "ranks": 2,
    "phases": [
        {"name": "vision", "modalities": ["image"], "unit": "segment", "cost": {"perToken": 1}, "microBatches": {"count": 2}},
        {"name": "llm", "modalities": ["text", "image"], "unit": "example", "cost": {"perToken": 1}},
    ],
}
BATCH: List[Dict[str, Any]] = [
    {"id": "a", "rank": 0, "text": 10, "image": [5, 7]},
    {"id": "b", "rank": 1, "text": 30, "image": [9]},
    {"id": "c", "rank": 1, "text": 3},
]


@pytest.fixture(scope="module")
def planner() -> Iterator[Planner]:
    with Planner(CONFIG, backend="cpu", timeout=60) as p:
        yield p


def test_step_plan_unknown_phase_and_rank_outside_the_world(planner: Planner) -> None:
    plan = planner.plan(BATCH, format="compact")
    step = StepPlan(plan, BATCH, CONFIG, rank=0, world_size=2)
    for call in (step.local_tokens, step.micro_batches, step.item_micro_batches):
        with pytest.raises(ValueError) as e:
            call("nope")
        assert str(e.value) == "unknown phase 'nope' (config phases: vision, llm)"
        assert isinstance(e.value, KeyError)   # what it was before: callers catching it still do
    # rank 1 holds b's segment (9) in the plan; a rank outside [0, 2) is refused, never read as
    # another rank's items (rank=-1 used to give rank 1's).
    assert StepPlan(plan, BATCH, CONFIG, rank=np.int64(1), world_size=2).local_tokens("vision") \
        == StepPlan(plan, BATCH, CONFIG, rank=torch.tensor(1), world_size=2).local_tokens("vision")
    with pytest.raises(ValueError, match=r"^rank must be a non-negative integer, got -1$"):
        StepPlan(plan, BATCH, CONFIG, rank=-1, world_size=2)
    with pytest.raises(ValueError, match=r"^rank must be in \[0, 2\), got 2$"):
        StepPlan(plan, BATCH, CONFIG, rank=2, world_size=2)
    with pytest.raises(ValueError, match=r"^rank must be a non-negative integer, got '1'$"):
        StepPlan(plan, BATCH, CONFIG, rank="1", world_size=2)


def test_malformed_micro_batches_in_a_plan(planner: Planner) -> None:
    compact = planner.plan(BATCH, format="compact")
    n = len(compact["phases"][0]["microBatch"])
    cases = [
        ("microBatch", ["x"] * n, r"^phase 'vision': the plan's microBatch must be a list of integers, got \['x'"),
        ("microBatch", [0.5] * n, r"^phase 'vision': the plan's microBatch must be a list of integers, got \[0\.5"),
        ("microBatches", None, r"^phase 'vision': the plan's micro-batches are malformed \(TypeError: "),
    ]
    for field, value, message in cases:
        bad = copy.deepcopy(compact)
        bad["phases"][0][field] = value
        with pytest.raises(ValueError, match=message):
            StepPlan(bad, BATCH, CONFIG, rank=0, world_size=2).micro_batches("vision")
    full = planner.plan(BATCH)
    stranger = copy.deepcopy(full)
    entry = stranger["phases"][0]["ranks"][0]
    entry["items"] = ["zz/image/0"] * len(entry["items"])
    with pytest.raises(ValueError, match=r"^phase 'vision': the plan's item 'zz/image/0' is not an item of this batch$"):
        StepPlan(stranger, BATCH, CONFIG, rank=0, world_size=2).item_micro_batches("vision")
    not_a_rank = copy.deepcopy(full)
    not_a_rank["phases"][0]["ranks"][0] = 5
    with pytest.raises(ValueError, match=r"^phase 'vision': the plan's micro-batches are malformed \(AttributeError: "):
        StepPlan(not_a_rank, BATCH, CONFIG, rank=0, world_size=2).item_micro_batches("vision")


def test_cost_samples_refuse_bad_arguments_naming_the_field() -> None:
    s = CostSamples(rank=0, cuda=False)
    for ms in ("abc", None, [3], True):
        with pytest.raises(ValueError, match=rf"^phase 'vision', step 0: ms must be a finite non-negative number, got {re_repr(ms)}$"):
            s.record(0, "vision", [1], ms)
    with pytest.raises(ValueError, match=r"^phase 'vision', step 0: lengths must be integers, got \[inf\]$"):
        s.record(0, "vision", [math.inf], 1.0)
    # A step of any common integer type, an ms of any real type.
    s.record(np.int64(2), "vision", [1, 2], np.float32(3.0))
    s.record(torch.tensor(3), "vision", torch.tensor([4]), torch.tensor(1.5))
    assert [(x["step"], x["ms"]) for x in s.samples()] == [(2, 3.0), (3, 1.5)]
    assert all(type(x["step"]) is int for x in s.samples())
    for kwargs, message in (({"keep": 0}, "keep must be a positive integer, got 0"),
                            ({"keep": "3"}, "keep must be a positive integer, got '3'"),
                            ({"rank": "x"}, "rank must be a non-negative integer, got 'x'")):
        with pytest.raises(ValueError) as e:
            CostSamples(cuda=False, **kwargs)
        assert str(e.value) == message
    with pytest.raises(ValueError, match=r"^samples\[1\]: must be a dict like "):
        s.extend([{"phase": "vision", "lengths": [1], "ms": 1.0}, 5])
    with pytest.raises(ValueError, match=r"^samples must be a sequence of sample dicts, got None$"):
        s.extend(None)  # type: ignore[arg-type]
    assert len(s) == 2   # nothing added by a refused extend


def test_a_fractional_length_is_refused_not_truncated(planner: Planner) -> None:
    # Whole numbers of any common type are lengths; 1.5 is refused, as the planner refuses it.
    assert segment_lengths([576.0, np.int64(3), 2]) == [576, 3, 2]
    assert segment_lengths(torch.tensor([4.0, 5.0])) == [4, 5] and segment_lengths(7.0) == [7]
    for bad in (1.5, [2, 1.5], np.array([1.5]), torch.tensor([0.5])):
        with pytest.raises(ValueError, match=r"^length must be an integer, got "):
            segment_lengths(bad)
    with pytest.raises(ValueError, match=r"^phase 'vision', step 0: lengths must be integers, got \[576, 1\.5\]$"):
        CostSamples(cuda=False).record(0, "vision", [576, 1.5], 1.0)
    # A step's examples with a fractional length: refused (they were read as 5 and 7, the plan's lengths).
    plan = planner.plan(BATCH, format="compact")
    assert StepPlan(plan, [dict(BATCH[0], image=np.array([5.0, 7.0])), *BATCH[1:]], CONFIG, rank=0, world_size=2).plan is plan
    with pytest.raises(ValueError, match=r'^batch example 0, field "image": lengths must be integers, got array\(\[5\. , 7\.5\]\)$'):
        StepPlan(plan, [dict(BATCH[0], image=np.array([5.0, 7.5])), *BATCH[1:]], CONFIG, rank=0, world_size=2)


def re_repr(v: Any) -> str:
    import re
    return re.escape(repr(v))


def test_fit_config_refuses_what_it_cannot_write() -> None:
    good = {"phase": "vision", "lengths": [1], "ms": 1.0}
    for samples, config, message in (
        ([{**good, "lengths": torch.tensor([1])}], CONFIG, r"^sample 0: cannot be written as JSON \(Object of type Tensor"),
        ([good, {**good, "ms": math.nan}], CONFIG, r"^sample 1: cannot be written as JSON \(Out of range float"),
        ([good], {**CONFIG, "ranks": np.int64(2)}, r"^config: cannot be written as JSON \(Object of type int64"),
        ([good], None, r"^config must be a dict \(the planner config\), got None$"),
        (None, CONFIG, r"^samples must be a sequence of sample dicts, got None$"),
        ([5], CONFIG, r"^samples\[0\]: must be a dict like "),
    ):
        with pytest.raises(PlannerError, match=message):
            fit_config(samples, config)  # type: ignore[arg-type]


def test_planner_requests_refuse_bad_arguments_and_keep_serving(planner: Planner) -> None:
    before = planner.plan(BATCH)
    cases = [
        (lambda: planner.plan_async(None), r"^batch: must be a list of example dicts, got None$"),  # type: ignore[arg-type]
        (lambda: planner.plan_async({"id": "a", "rank": 0}), r"^batch: must be a list of example dicts, got \{"),
        (lambda: planner.plan_compact_async([0, 1], None), r"^compact\.lengths: must be a dict of modality -> column, got None$"),  # type: ignore[arg-type]
        (lambda: planner.plan_compact_async([0, 1], [[1], [2]]), r"^compact\.lengths: must be a dict of modality -> column"),  # type: ignore[arg-type]
        (lambda: planner.plan_compact_async(torch.tensor(0), {"text": [1]}), r"^compact\.ranks: must be a list with one entry per example, got 0$"),
        (lambda: planner.plan_compact_async([0, 1], {"text": "ab"}), r"^compact\.lengths\.text: must be a list with one entry per example, got 'ab'$"),
        (lambda: planner.plan_compact_async([0, 1], {"image": {"counts": [1, 1], "values": None}}), r"^compact\.lengths\.image\.values: must be a list"),
        # A NaN or negative timeout used to stop the sidecar at once.
        (lambda: planner.plan_async(BATCH, timeout=math.nan), r"^timeout: must be a non-negative number of seconds or None, got nan$"),
        (lambda: planner.plan_async(BATCH, timeout=-1), r"^timeout: must be a non-negative number of seconds or None, got -1$"),
        (lambda: planner.set_config(CONFIG, timeout=-1.0), r"^timeout: must be a non-negative number of seconds or None, got -1\.0$"),
        (lambda: planner.set_config(None), r"^config: must be a dict \(the planner config\), got None$"),  # type: ignore[arg-type]
        (lambda: planner.set_config({**CONFIG, "phases": "x"}), r"^config phases: must be a non-empty array"),
    ]
    pid = planner.pid
    for call, message in cases:
        with pytest.raises(PlannerError, match=message):
            call()
    # Still the same sidecar, with the config it had.
    assert planner.pid == pid and planner.config == CONFIG
    assert planner.plan(BATCH)["phases"] == before["phases"]
    for kwargs in ({"timeout": -5}, {"timeout": math.nan}):
        with pytest.raises(ValueError, match=r"^timeout: must be a non-negative number of seconds or None"):
            Planner(CONFIG, backend="cpu", **kwargs)
    with pytest.raises(ValueError, match=r"^config must be a dict \(the planner config\), got None$"):
        Planner(None, backend="cpu")  # type: ignore[arg-type]


def test_plan_ahead_set_config_refuses_a_bad_config_and_keeps_the_one_in_use() -> None:
    ahead: PlanAhead[Any] = PlanAhead(lambda configs: iter(()), CONFIG)
    for config, message in (
        (None, r"^config must be a dict \(the planner config\), got None$"),
        ({"ranks": 2, "phases": "x"}, r"^config phases: must be a non-empty list of phases, each with a \"name\", got 'x'$"),
        ({"ranks": 2, "phases": [{"modalities": ["text"]}]}, r"^config phases: must be a non-empty list of phases"),
        ({**CONFIG, "ranks": 3}, r"^config ranks is 3, the config planning ahead has 2$"),
    ):
        with pytest.raises(PlannerError, match=message):
            ahead.set_config(config)  # type: ignore[arg-type]
    assert ahead.config == CONFIG


def test_plan_ahead_and_refit_refuse_bad_arguments(planner: Planner) -> None:
    one = {**CONFIG, "ranks": 1}
    batch = [{"id": "a", "text": 5}]
    for kwargs, message in (({"depth": "2"}, r"^depth must be an integer of at least 1, got '2'$"),
                            ({"depth": 1.5}, r"^depth must be an integer of at least 1, got 1\.5$"),
                            ({"depth": 0}, r"^depth must be an integer of at least 1, got 0$"),
                            ({"timeout": -1}, r"^timeout must be a non-negative number of seconds or None, got -1$")):
        with pytest.raises(ValueError, match=message):
            plan_ahead([batch], one, planner, examples=lambda b: b, **kwargs)
    for examples, message in ((lambda b: [None], r"^batch example 0: must be a dict like "),
                              (lambda b: [{"text": 5}], r'^batch example 0: has no "id"$'),
                              (lambda b: 5, r"^examples: must be a list of example dicts, got 5$")):
        with pytest.raises(PlannerError, match=message):
            next(iter(plan_ahead([batch], one, planner, examples=examples)))
    with pytest.raises(PlannerError, match=r"^samples: must be a CostSamples, got \["):
        refit([{"phase": "vision", "lengths": [1], "ms": 1.0}], planner)  # type: ignore[arg-type]
    with pytest.raises(PlannerError, match=r"^ahead: must be what plan_ahead returned, got 5$"):
        refit(CostSamples(cuda=False), planner, ahead=5)  # type: ignore[arg-type]
    assert planner.config == CONFIG


def _bad_example_worker(rank: int, port: int, errors: Any) -> None:
    # A collective that waits for a rank that raised fails after 20 s, not gloo's 30 minutes.
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=20))
    try:
        with Planner(CONFIG, backend="cpu", timeout=60) as p:
            # Rank 1's example has no id: rank 1 used to raise a KeyError alone, and rank 0 to wait
            # in the all-gather until rank 1 went away (then gloo's connection error).
            local = [{"id": "a", "text": 5}] if rank == 0 else [{"text": 7}]
            for name, call in (("plan_ahead", lambda: next(iter(plan_ahead([local], CONFIG, p, examples=lambda b: b)))),
                               ("plan_step", lambda: plan_step(local, CONFIG, p))):
                try:
                    call()
                    errors.put((rank, name, "no error"))
                except PlannerError as e:
                    errors.put((rank, name, str(e)))
    except Exception:
        errors.put((rank, "worker", traceback.format_exc()))
    finally:
        dist.destroy_process_group()


def test_a_bad_example_on_one_rank_is_the_same_error_on_every_rank(free_port: int) -> None:
    ctx = mp.get_context("spawn")
    errors = ctx.Queue()
    mp.start_processes(_bad_example_worker, args=(free_port, errors), nprocs=2, join=True, start_method="spawn")
    got = []   # every process has ended: what they put is there
    while True:
        try:
            got.append(errors.get(timeout=2))
        except queue.Empty:
            break
    got.sort()
    assert got == [(r, name, 'rank 1: batch example 0: has no "id"') for r in (0, 1) for name in ("plan_ahead", "plan_step")]
