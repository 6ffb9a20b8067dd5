"""A tiny multimodal model trained for a few steps on 4 ranks (gloo, CPU), once with every rank
computing its own sampled examples and once post-balanced with postbalance plans and
torch.distributed all-to-all exchanges. Same seed, same data, same math, so:

- the global loss, every gradient (after the data-parallel all-reduce) and every example's own
  loss must match between the two runs after each step (float64; tolerance 1e-9 relative);
- the per-rank compute-time spread (max/mean of thread CPU time) must shrink.

test_training.py runs it. By hand, with the package importable (installed, or
PYTHONPATH=integrations/pytorch) and the CLI findable (POSTBALANCE_CLI=bin/postbalance.mjs):
      /usr/bin/python3 integrations/pytorch/tests/training.py [--steps 4] [--json out.json]
      /usr/bin/python3 integrations/pytorch/tests/training.py --calibrate   (fit the cost model here)
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from typing import Any, Dict, List, Optional

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from postbalance_torch import Planner, keep_in_graph, plan_step
from tiny_mllm import CONFIG, build_model, example_data, sample_global_batch

WORLD = 4
SEED = 1234
LR = 0.05
RTOL = 1e-9
ATOL = 1e-12


def thread_ms() -> float:
    # CPU time of this thread: the work a rank did, not the time it waited for others (four
    # ranks share two cores here, so wall time would mostly measure the scheduler).
    return time.thread_time() * 1e3


def allreduce_grads(model: torch.nn.Module) -> None:
    """Data-parallel gradient sum (what DDP does); one flat buffer, one collective."""
    params = [p for p in model.parameters()]
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    dist.all_reduce(flat)
    off = 0
    for p in params:
        n = p.numel()
        p.grad = flat[off: off + n].view_as(p).clone()
        off += n


def flat_grads(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def run_baseline_step(model, local: List[Dict[str, Any]], data: Dict[str, Any], global_tokens: int) -> Dict[str, Any]:
    """No balancing: every rank runs every phase on the examples it sampled."""
    times = {"vision": 0.0, "audio": 0.0, "llm": 0.0, "backward": 0.0}
    t = thread_ms()
    img = {e["id"]: [model.vision(x) for x in data[e["id"]]["image"]] for e in local}
    times["vision"] = thread_ms() - t
    t = thread_ms()
    aud = {e["id"]: [model.audio(x) for x in data[e["id"]]["audio"]] for e in local}
    times["audio"] = thread_ms() - t
    t = thread_ms()
    losses = []
    for e in local:
        enc = torch.cat(img[e["id"]] + aud[e["id"]]) if img[e["id"]] or aud[e["id"]] else torch.zeros(0, model.llm.bos.shape[1], dtype=torch.float64)
        losses.append(model.llm.example_loss(enc, data[e["id"]]["text"]))
    loss = torch.stack(losses).sum() / global_tokens if losses else model.llm.bos.sum() * 0
    times["llm"] = thread_ms() - t
    t = thread_ms()
    loss.backward()
    times["backward"] = thread_ms() - t
    return {"loss": loss.detach(), "example_losses": [l.detach() for l in losses], "times": times}


def run_balanced_step(model, local: List[Dict[str, Any]], data: Dict[str, Any], global_tokens: int,
                      planner: Optional[Planner], mode: str) -> Dict[str, Any]:
    """Post-balanced: plan, move each phase's inputs to its layout, route encoder outputs to the
    example's LLM rank, and bring per-example losses back to the sampling rank."""
    times = {"vision": 0.0, "audio": 0.0, "llm": 0.0, "backward": 0.0}
    t0 = time.perf_counter()
    step = plan_step(local, CONFIG, planner, mode=mode, verify=True)
    plan_wall = (time.perf_counter() - t0) * 1e3
    d = model.llm.bos.shape[1]

    # Encoder inputs: sampled layout → each encoder's balanced layout (no gradient: raw data).
    def local_rows(modality: str, width: int) -> torch.Tensor:
        rows = [x for e in local for x in data[e["id"]][modality]]
        return torch.cat(rows) if rows else torch.zeros(0, width, dtype=torch.float64)

    to_vision = step.dispatch("vision")
    to_audio = step.dispatch("audio")
    patches = to_vision.split(to_vision(local_rows("image", model.vision.inp.in_features)))
    frames = to_audio.split(to_audio(local_rows("audio", model.audio.inp.in_features)))
    text_ex = step.dispatch("llm", rows=lambda e: e["text"])
    text_local = torch.cat([data[e["id"]]["text"] for e in local]) if local else torch.zeros(0, dtype=torch.long)
    texts = text_ex.split(text_ex(text_local))

    t = thread_ms()
    v_out = [model.vision(x) for x in patches]
    times["vision"] = thread_ms() - t
    t = thread_ms()
    a_out = [model.audio(x) for x in frames]
    times["audio"] = thread_ms() - t

    # One merged, differentiable route for both encoders: a single all-to-all in forward and
    # in backward, so every rank's autograd meets the same collectives in the same order.
    enc = torch.cat(v_out + a_out) if v_out or a_out else torch.zeros(0, d, dtype=torch.float64)
    route = step.route(["vision", "audio"], to="llm")
    routed = route(enc, backward=True)
    per_example = route.split_by_item(routed)

    t = thread_ms()
    losses = [model.llm.example_loss(per_example[i], texts[i]) for i in range(len(texts))]
    loss = torch.stack(losses).sum() / global_tokens if losses else routed.sum() * 0
    times["llm"] = thread_ms() - t
    loss = keep_in_graph(loss, routed)
    t = thread_ms()
    loss.backward()
    times["backward"] = thread_ms() - t

    # Per-example losses back to the rank and order they were sampled in (one value each).
    back = step.dispatch("llm", rows=lambda e: 1).inverse()
    mine = back(torch.stack([l.detach() for l in losses]) if losses else torch.zeros(0, dtype=torch.float64))
    planned = {p["name"]: p for p in step.plan["phases"]}
    return {
        "loss": loss.detach(), "example_losses": list(mine), "times": times, "plan_wall_ms": plan_wall,
        "plan_ratio": {n: planned[n]["maxCost"] / planned[n]["meanCost"] for n in planned},
        "moved_rows": {"vision": to_vision.moved_rows, "audio": to_audio.moved_rows, "route": route.moved_rows, "text": text_ex.moved_rows},
    }


def train(rank: int, balanced: bool, steps: int, per_rank: int, planner: Optional[Planner]) -> List[Dict[str, Any]]:
    model = build_model(SEED)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    out = []
    for s in range(steps):
        batch = sample_global_batch(SEED, s, WORLD, per_rank)
        local = [e for e in batch if e["rank"] == rank]
        data = {e["id"]: example_data(e) for e in local}
        global_tokens = sum(e["text"] for e in batch)  # every rank knows every length
        opt.zero_grad(set_to_none=True)
        dist.barrier()
        if balanced:
            # Alternate the two planning modes: every rank plans itself / rank 0 broadcasts.
            r = run_balanced_step(model, local, data, global_tokens, planner, "local" if s % 2 == 0 else "broadcast")
        else:
            r = run_baseline_step(model, local, data, global_tokens)
        allreduce_grads(model)
        loss = r["loss"].clone()
        dist.all_reduce(loss)
        r["loss"] = float(loss)
        r["grads"] = flat_grads(model).clone()
        r["example_losses"] = [float(x) for x in r["example_losses"]]
        r["example_ids"] = [e["id"] for e in local]
        opt.step()
        out.append(r)
    return out


def worker(rank: int, port: int, steps: int, per_rank: int, result_path: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        base = train(rank, False, steps, per_rank, None)
        # Every rank starts a sidecar (the "local" mode needs one per rank; "broadcast" uses rank 0's).
        with Planner(CONFIG, backend="cpu") as planner:
            bal = train(rank, True, steps, per_rank, planner)
        report: Dict[str, Any] = {"rank": rank, "steps": []}
        for s, (b, p) in enumerate(zip(base, bal)):
            gdiff = (b["grads"] - p["grads"]).abs()
            scale = b["grads"].abs().max().item()
            ex_b = dict(zip(b["example_ids"], b["example_losses"]))
            ex_p = dict(zip(p["example_ids"], p["example_losses"]))
            report["steps"].append({
                "loss_base": b["loss"], "loss_bal": p["loss"],
                "grad_max_abs_diff": gdiff.max().item(), "grad_scale": scale,
                "grads_match": bool(torch.allclose(p["grads"], b["grads"], rtol=RTOL, atol=ATOL * max(scale, 1.0))),
                "example_loss_max_diff": max(abs(ex_b[k] - ex_p[k]) for k in ex_b) if ex_b else 0.0,
                "examples_match": set(ex_b) == set(ex_p) and all(abs(ex_b[k] - ex_p[k]) <= RTOL * abs(ex_b[k]) + ATOL for k in ex_b),
                "times_base": b["times"], "times_bal": p["times"],
                "plan_ratio": p["plan_ratio"], "plan_wall_ms": p["plan_wall_ms"], "moved_rows": p["moved_rows"],
            })
        gathered: List[Any] = [None] * WORLD
        dist.all_gather_object(gathered, report)
        if rank == 0:
            with open(result_path, "w") as f:
                json.dump(gathered, f)
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spread(values: List[float]) -> float:
    mean = sum(values) / len(values)
    return max(values) / mean if mean > 0 else 1.0


def summarise(reports: List[Dict[str, Any]], steps: int) -> Dict[str, Any]:
    phases = ["vision", "audio", "llm", "backward"]
    rows = []
    totals = {"base": [0.0] * WORLD, "bal": [0.0] * WORLD}
    ok = True
    for s in range(steps):
        st = [r["steps"][s] for r in reports]
        s0 = st[0]
        match = all(x["grads_match"] and x["examples_match"] for x in st)
        loss_ok = abs(s0["loss_base"] - s0["loss_bal"]) <= RTOL * abs(s0["loss_base"])
        ok = ok and match and loss_ok
        row: Dict[str, Any] = {
            "step": s, "loss_base": s0["loss_base"], "loss_bal": s0["loss_bal"],
            "loss_diff": abs(s0["loss_base"] - s0["loss_bal"]),
            "grad_max_abs_diff": max(x["grad_max_abs_diff"] for x in st),
            "example_loss_max_diff": max(x["example_loss_max_diff"] for x in st),
            "match": match and loss_ok, "plan_ratio": s0["plan_ratio"],
            "plan_wall_ms": [round(x["plan_wall_ms"], 1) for x in st],
        }
        for kind in ("base", "bal"):
            per_rank = [sum(x[f"times_{kind}"][p] for p in phases) for x in st]
            for r in range(WORLD):
                totals[kind][r] += per_rank[r]
            row[f"compute_ms_{kind}"] = [round(v, 1) for v in per_rank]
            row[f"spread_{kind}"] = spread(per_rank)
            row[f"phase_spread_{kind}"] = {p: spread([x[f"times_{kind}"][p] for x in st]) for p in phases}
        rows.append(row)
    # The step waits for its slowest rank: Σ over steps of the max per-rank compute.
    critical = {k: sum(max(r[f"compute_ms_{k}"]) for r in rows) for k in ("base", "bal")}
    return {"ok": ok, "steps": rows, "total_ms": totals, "spread_base": spread(totals["base"]), "spread_bal": spread(totals["bal"]),
            "critical_ms_base": critical["base"], "critical_ms_bal": critical["bal"]}


def print_summary(summary: Dict[str, Any]) -> None:
    print("step  loss (no balancing)   loss (post-balanced)  |Δloss|   max|Δgrad|  compute ms per rank: no balancing → balanced (max/mean)")
    for r in summary["steps"]:
        print(f"{r['step']:>4}  {r['loss_base']:.15f}  {r['loss_bal']:.15f}  {r['loss_diff']:.1e}  {r['grad_max_abs_diff']:.1e}"
              f"   {r['compute_ms_base']} ({r['spread_base']:.2f}) → {r['compute_ms_bal']} ({r['spread_bal']:.2f})")
    print("per-phase max/mean (no balancing → balanced), planner's predicted max/mean after balancing:")
    for r in summary["steps"]:
        ph = ", ".join(f"{p} {r['phase_spread_base'][p]:.2f}→{r['phase_spread_bal'][p]:.2f}" for p in r["phase_spread_base"])
        pred = ", ".join(f"{p} {v:.3f}" for p, v in r["plan_ratio"].items())
        print(f"  step {r['step']}: {ph}   [plan: {pred}]")
    print(f"all steps: per-rank compute max/mean {summary['spread_base']:.3f} → {summary['spread_bal']:.3f}; "
          f"slowest rank's compute summed over steps {summary['critical_ms_base']:.0f} → {summary['critical_ms_bal']:.0f} ms; "
          f"losses, gradients and per-example losses match: {summary['ok']}")


def calibrate() -> None:
    """Fit perItem/perToken/perTokenSquared per phase to this model's forward+backward time."""
    from tiny_mllm import D_MODEL, FRAME_DIM, PATCH_DIM, VOCAB

    torch.set_num_threads(1)
    model = build_model(0)

    def timed(f) -> float:
        xs = []
        for _ in range(5):
            t = thread_ms()
            f()
            xs.append(thread_ms() - t)
        return sorted(xs)[2]

    def fit(name: str, Ls: List[int], f) -> None:
        ts = torch.tensor([timed(lambda: f(L)) for L in Ls], dtype=torch.float64)
        A = torch.tensor([[1.0, L, L * L] for L in Ls], dtype=torch.float64)
        a, b, c = torch.linalg.lstsq(A, ts.unsqueeze(1)).solution.squeeze(1).tolist()
        # The planner takes non-negative terms; a negative fit is timing noise: clamp it.
        item, sq = max(a, 0.0) / b, max(c, 0.0) / b
        print(f"{name}: time ≈ {a:.3f} + {b:.4f}·L + {c:.2e}·L² ms  →  cost {{perItem: {item:.0f}, perToken: 1, perTokenSquared: {sq:.2g}}}")

    fit("vision", [16, 36, 72, 144, 216, 300], lambda L: model.vision(torch.randn(L, PATCH_DIM, dtype=torch.float64)).sum().backward())
    fit("audio", [30, 60, 120, 240, 360, 500], lambda L: model.audio(torch.randn(L, FRAME_DIM, dtype=torch.float64)).sum().backward())

    def llm(L: int) -> None:
        enc = torch.randn(L // 4, D_MODEL, dtype=torch.float64, requires_grad=True)
        model.llm.example_loss(enc, torch.randint(0, VOCAB, (L - L // 4,))).backward()

    fit("llm", [20, 50, 100, 200, 400, 700], llm)


def run(steps: int = 4, per_rank: int = 6) -> Dict[str, Any]:
    """Trains both ways on 4 processes; returns the summary (see summarise)."""
    t0 = time.perf_counter()
    result_path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"postbalance-training-{os.getpid()}.json")
    mp.spawn(worker, args=(free_port(), steps, per_rank, result_path), nprocs=WORLD, join=True)
    with open(result_path) as f:
        reports = json.load(f)
    os.unlink(result_path)
    summary = summarise(reports, steps)
    summary["wall_s"] = round(time.perf_counter() - t0, 1)
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--per-rank", type=int, default=6, help="examples each rank samples per step")
    ap.add_argument("--json", help="write the summary here")
    ap.add_argument("--calibrate", action="store_true")
    args = ap.parse_args()
    if args.calibrate:
        calibrate()
        return 0
    summary = run(args.steps, args.per_rank)
    print_summary(summary)
    print(f"wall time {summary['wall_s']} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    failures = []
    if not summary["ok"]:
        failures.append("post-balancing changed the losses or the gradients")
    if not summary["spread_bal"] < summary["spread_base"]:
        failures.append(f"per-rank compute spread did not shrink ({summary['spread_base']:.3f} → {summary['spread_bal']:.3f})")
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
