"""postbalance for PyTorch: plan each step's global batch with the postbalance sidecar and move
every phase's data to its balanced layout with torch.distributed all-to-all exchanges.

Example::

    from postbalance_torch import Planner, plan_step
    with Planner(config, backend="auto") as planner:
        step = plan_step(local_examples, config, planner)   # every rank plans the same plan
        to_vision = step.dispatch("vision")
        patches = to_vision(local_patches)

Modules: ``planner`` (the sidecar client), ``alltoall`` (the differentiable all-to-all),
``exchange`` (one rank's view of an all-to-all between two layouts), ``step`` (a step's plan
and the exchanges it gives).
"""
from .alltoall import all_to_all, keep_in_graph
from .exchange import Exchange, RouteExchange
from .planner import DEFAULT_TIMEOUT, Planner, PlannerError, compact_batch, default_command, find_cli
from .step import StepPlan, gather_examples, plan_digest, plan_step, segment_lengths

__all__ = [
    "DEFAULT_TIMEOUT",
    "Planner",
    "PlannerError",
    "compact_batch",
    "default_command",
    "find_cli",
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
