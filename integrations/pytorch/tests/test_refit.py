"""Cost samples and refitting. Samples recorded through CostSamples with times from a known cost
model plus 1% noise are written as the JSONL `postbalance fit` reads, and the fit recovers every
coefficient within 5%. On 3 gloo ranks, refit gathers every rank's samples, fits them and
installs the same config on every rank (later plans are the CLI's plans under the fitted
config); through plan_ahead the new costs apply from the same batch on every rank. A degenerate
sample set is one PlannerError on every rank and changes nothing. The recorder times a block on
the CPU with perf_counter and refuses bad samples naming the field."""
from __future__ import annotations

import json
import math
import time
from typing import Any, Dict, List

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from postbalance_torch import CostSamples, Planner, PlannerError, fit_config, plan_ahead, plan_step, refit
from support import cli_plan

TRUTH = {
    "vision": {"perItem": 3.0, "perToken": 0.05, "perTokenSquared": 2e-5},
    "llm": {"perItem": 20.0, "perToken": 0.02, "perTokenSquared": 5e-6},
}
WORLD = 3
OLD: Dict[str, Any] = {
    "ranks": WORLD, "ranksPerNode": 1,
    "phases": [
        {"name": "vision", "modalities": ["image"], "unit": "segment", "cost": {"perToken": 1}},
        {"name": "llm", "modalities": ["text", "image"], "unit": "example", "scale": {"image": 0.25}, "cost": {"perToken": 1}},
    ],
}


def true_ms(phase: str, lengths: List[int], noise: float) -> float:
    c = TRUTH[phase]
    return sum(c["perItem"] + c["perToken"] * L + c["perTokenSquared"] * L * L for L in lengths) * (1 + noise)


def record_known(samples: CostSamples, seed: int, steps: int = 40) -> None:
    """Samples of both phases with times from TRUTH and 1% Gaussian noise."""
    g = torch.Generator().manual_seed(seed)
    for t in range(steps):
        for phase, (lo, hi, most) in (("vision", (16, 2048, 8)), ("llm", (50, 4000, 6))):
            n = int(torch.randint(1, most + 1, (1,), generator=g))
            lengths = torch.randint(lo, hi + 1, (n,), generator=g)   # a tensor: the recorder takes it as is
            noise = 0.01 * float(torch.randn(1, generator=g))
            samples.record(t, phase, lengths, true_ms(phase, lengths.tolist(), noise))


def assert_recovered(config: Dict[str, Any]) -> None:
    for p in config["phases"]:
        for k, want in TRUTH[p["name"]].items():
            got = p["cost"][k]
            assert abs(got - want) <= 0.05 * want, f"{p['name']} {k}: fitted {got}, true {want}"


def test_fit_recovers_known_coefficients(tmp_path: Any) -> None:
    samples = CostSamples(rank=0)
    record_known(samples, seed=1, steps=100)
    assert len(samples) == 200
    path = tmp_path / "samples.jsonl"
    samples.write(str(path))
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines == samples.samples() and set(lines[0]) == {"phase", "lengths", "rank", "step", "ms"}
    fitted, report = fit_config(samples, OLD)
    assert_recovered(fitted)
    assert [p["name"] for p in fitted["phases"]] == ["vision", "llm"] and fitted["ranks"] == WORLD
    assert len(report) == 2 and all("R²" in line for line in report)


def test_the_recorder_times_blocks_and_refuses_bad_samples() -> None:
    samples = CostSamples(rank=4, keep=3)
    with samples.time(7, "vision", [3, 5]):
        time.sleep(0.02)
    with pytest.raises(RuntimeError, match="boom"):
        with samples.time(8, "vision", [1]):
            raise RuntimeError("boom")          # a block that raises records nothing
    (s,) = samples.samples()
    assert s["phase"] == "vision" and s["lengths"] == [3, 5] and s["rank"] == 4 and s["step"] == 7
    assert 15 <= s["ms"] < 2000, s["ms"]
    for t in range(5):
        samples.record(t, "llm", [t], 1.0)
    assert [x["step"] for x in samples.samples()] == [2, 3, 4], "keep=3 keeps the last three"
    with pytest.raises(ValueError, match=r"^phase 'llm', step 1: ms must be a finite non-negative number, got -1\.0$"):
        samples.record(1, "llm", [3], -1)
    with pytest.raises(ValueError, match=r"^phase 'llm', step 1: ms must be a finite non-negative number, got nan$"):
        samples.record(1, "llm", [3], math.nan)
    with pytest.raises(ValueError, match=r"^phase 'llm', step 1: lengths must be non-negative, got -3$"):
        samples.record(1, "llm", [2, -3], 1.0)
    with pytest.raises(ValueError, match=r"^step must be a non-negative integer, got -1$"):
        samples.record(-1, "llm", [3], 1.0)
    # A phase the config does not have: the CLI's one line, as a PlannerError.
    bad = CostSamples(rank=0)
    bad.record(0, "sound", [3], 1.0)
    with pytest.raises(PlannerError, match=r'^postbalance: samples line 1, field "phase"') as e:
        fit_config(bad, OLD)
    assert "\n" not in str(e.value)


def batches(rank: int, n: int = 4) -> List[List[Dict[str, Any]]]:
    """Many small images on rank 0, a few large ones elsewhere: per-item and quadratic costs
    move the balance away from the per-token one."""
    out = []
    for s in range(n):
        if rank == 0:
            out.append([{"id": f"s{s}r0e{k}", "text": 20 + k, "image": [24 + (k + s) % 9] * 4} for k in range(6)])
        else:
            out.append([{"id": f"s{s}r{rank}e{k}", "text": 30 + 7 * k + s, "image": [700 + 300 * ((k + rank + s) % 4)]} for k in range(2)])
    return out


def compact_ranks(config: Dict[str, Any], examples: List[Dict[str, Any]]) -> Dict[str, List[int]]:
    return {p["name"]: p["rank"] for p in cli_plan(config, examples, "--format", "compact")["phases"]}


def worker(rank: int, port: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        samples = CostSamples()
        record_known(samples, seed=100 + rank)        # each rank its own samples
        assert {s["rank"] for s in samples.samples()} == {rank}
        with Planner(OLD, backend="cpu") as planner:
            # Direct: the next request is planned with the fitted costs.
            fitted = refit(samples, planner)
            assert fitted is not None
            assert_recovered(fitted)
            configs: List[Any] = [None] * WORLD
            dist.all_gather_object(configs, json.dumps(fitted, sort_keys=True))
            assert len(set(configs)) == 1, "every rank installs the same config"
            assert planner.config == fitted
            local = batches(rank)[0]
            step = plan_step(local, OLD, planner)
            new, old = compact_ranks(fitted, step.examples), compact_ranks(OLD, step.examples)
            assert new != old, "the fitted costs were meant to change the plan"
            assert {p: step.item_ranks(p).tolist() for p in new} == new

            # Planning ahead (depth 1): refit during step 1; batch 2 was requested before it and
            # keeps the old costs, batch 3 is the first planned with the new ones, on every rank.
            planner.set_config(OLD)
            ahead = plan_ahead(batches(rank), OLD, planner, examples=lambda b: b)
            for t, (batch, step) in enumerate(ahead):
                want = compact_ranks(fitted if t >= 3 else OLD, step.examples)
                assert {p: step.item_ranks(p).tolist() for p in want} == want, f"step {t}"
                if t == 1:
                    assert refit(samples, planner, ahead=ahead) == fitted
                    assert ahead.config == fitted
            assert t == 3 and planner.config == fitted

        # Degenerate samples (every item of one length), only rank 0 fitting (broadcast mode's
        # planning rank): one PlannerError on every rank, nothing installed.
        flat = CostSamples()
        for t in range(5):
            flat.record(t, "vision", [64, 64], 10.0 + t)
        with Planner(OLD, backend="cpu") if rank == 0 else _nothing() as p0:
            with pytest.raises(PlannerError, match=r'^postbalance: .*phase "vision"') as e:
                refit(flat, p0)
            assert "\n" not in str(e.value)
            if p0 is not None:
                assert p0.config == OLD
            errors: List[Any] = [None] * WORLD
            dist.all_gather_object(errors, str(e.value))
            assert len(set(errors)) == 1
    finally:
        dist.destroy_process_group()


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def test_refit_on_three_ranks(free_port: int) -> None:
    mp.spawn(worker, args=(free_port,), nprocs=WORLD, join=True)
