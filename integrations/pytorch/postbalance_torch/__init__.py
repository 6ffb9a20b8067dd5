"""postbalance for PyTorch: plan each step's global batch with the postbalance sidecar and move
every phase's data to its balanced layout with torch.distributed all-to-all exchanges.

Example::

    from postbalance_torch import Planner, plan_step
    with Planner(config, backend="auto") as planner:
        step = plan_step(local_examples, config, planner)   # every rank plans the same plan
        to_vision = step.dispatch("vision")
        patches = to_vision(local_patches)

Modules: ``planner`` (the sidecar client, requests pipelined), ``ahead`` (planning the next
batch while the current one trains), ``alltoall`` (the differentiable all-to-all),
``samples`` (measured phase times, refitting the cost model), ``groups`` (the data-parallel group, the node-wise exchange's stage groups), ``exchange`` (one
rank's view of an all-to-all between two layouts, flat or node-wise), ``step`` (a step's plan
and the exchanges it gives).
"""
from .ahead import PlanAhead, plan_ahead
from .alltoall import all_to_all, keep_in_graph
from .exchange import SCHEDULES, Exchange, ExchangeStage, RouteExchange
from .groups import StageGroups, dp_rank_size, group_ranks, node_groups
from .samples import CostSamples, fit_config, refit
from .planner import DEFAULT_TIMEOUT, Planner, PlannerError, compact_batch, default_command, find_cli
from .step import StepPlan, default_schedule, gather_examples, plan_digest, plan_step, ranks_per_node, segment_lengths

__all__ = [
    "CostSamples",
    "DEFAULT_TIMEOUT",
    "PlanAhead",
    "Planner",
    "PlannerError",
    "compact_batch",
    "default_command",
    "find_cli",
    "Exchange",
    "ExchangeStage",
    "RouteExchange",
    "SCHEDULES",
    "StageGroups",
    "StepPlan",
    "all_to_all",
    "default_schedule",
    "fit_config",
    "dp_rank_size",
    "gather_examples",
    "group_ranks",
    "keep_in_graph",
    "node_groups",
    "plan_ahead",
    "plan_digest",
    "plan_step",
    "ranks_per_node",
    "refit",
    "segment_lengths",
]
