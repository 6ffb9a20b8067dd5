"""A tiny multimodal model on 4 gloo ranks, with and without post-balancing (training.py): the
same losses, gradients and per-example losses, and a smaller per-rank compute spread."""
from __future__ import annotations

import json
import os

from training import RTOL, print_summary, run


def test_post_balanced_training_matches_and_evens_compute() -> None:
    summary = run(steps=4, per_rank=6)
    print_summary(summary)
    out = os.environ.get("POSTBALANCE_TRAINING_SUMMARY")
    if out:  # the npm test wrapper reports it
        with open(out, "w") as f:
            json.dump(summary, f)
    for s in summary["steps"]:
        assert s["match"], f"step {s['step']}: losses, gradients or per-example losses differ"
        assert s["loss_diff"] <= RTOL * abs(s["loss_base"])
    assert summary["ok"]
    assert summary["spread_bal"] < summary["spread_base"], "post-balancing did not even out per-rank compute"
