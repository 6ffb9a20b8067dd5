"""postbalance for PyTorch: plan each step's batch with the postbalance sidecar and move every
phase's data to its balanced layout with torch.distributed all-to-all exchanges.

    from postbalance_torch import Planner, plan_step
    with Planner(config, backend="auto") as planner:
        step = plan_step(local_examples, config, planner)        # every rank plans locally
        to_vision = step.dispatch("vision"); patches = to_vision(local_patches)
        ...
"""
from .planner import Planner, PlannerError, compact_batch, default_command
from .exchange import (
    Exchange,
    RouteExchange,
    StepPlan,
    all_to_all,
    gather_examples,
    keep_in_graph,
    plan_digest,
    plan_step,
    segment_lengths,
)

__all__ = [
    "Planner",
    "PlannerError",
    "compact_batch",
    "default_command",
    "Exchange",
    "RouteExchange",
    "StepPlan",
    "all_to_all",
    "gather_examples",
    "keep_in_graph",
    "plan_digest",
    "plan_step",
    "segment_lengths",
]
