"""Process groups: the data-parallel (DP) group the client balances over, and the two groups of
the node-wise exchange's stages.

The client balances over a DP group, not the world: with tensor, pipeline or context
parallelism only the DP ranks sample different data, and the ranks of one TP/CP group hold the
same examples, get the same plan and move the same rows, each inside its own DP group. A rank is
known by its index in the DP group (``dist.get_rank(group)``); the config's ``ranks`` is the DP
size and ``ranksPerNode`` the DP ranks per node (node = DP index div ranksPerNode).

The node-wise exchange runs its inter-node stage among the DP ranks with the same local index on
every node (a "rail") and its intra-node stage among the DP ranks of one node. Those are new
process groups: ``torch.distributed.new_group`` is a collective of the whole world (every rank
creates every group, in the same order), so they are created once per (DP group, ranksPerNode)
and cached; :func:`node_groups` does it, and the first node-wise exchange calls it. The cache
holds weak references only: ``destroy_process_group()`` frees the stage groups with the rest
(a gloo group still alive when the interpreter shuts down can abort the process), and after a
new ``init_process_group`` they are created afresh.
"""
from __future__ import annotations

import weakref
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch.distributed as dist

from .planner import PlannerError

__all__ = ["StageGroups", "dp_rank_size", "group_ranks", "node_groups"]


def _initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def group_ranks(group: Optional[dist.ProcessGroup]) -> List[int]:
    """The global ranks of ``group`` in group-rank order (the world: ``0..world-1``)."""
    if not _initialized():
        return [0]
    if group is None or group is dist.group.WORLD:
        return list(range(dist.get_world_size()))
    return list(dist.get_process_group_ranks(group))


def dp_rank_size(group: Optional[dist.ProcessGroup], rank: Optional[int] = None) -> Tuple[int, int]:
    """This process's index in the DP group and the group's size, checked.

    Args:
        group: the DP process group (default: the world).
        rank: this rank's index in it, if the caller states it (checked against the group).

    Returns:
        (DP index, DP size).

    Raises:
        PlannerError: the group does not divide the world evenly, this process is not in it, or
            ``rank`` is not its index there.
    """
    if not _initialized():
        if rank not in (None, 0):
            raise PlannerError(f"dp rank {rank}: without torch.distributed there is one rank, 0")
        return 0, 1
    world = dist.get_world_size()
    me = dist.get_rank(group)
    if me < 0:
        raise PlannerError(f"rank {dist.get_rank()} is not in the data-parallel group it was given")
    size = dist.get_world_size(group)
    if world % size != 0:
        raise PlannerError(f"the data-parallel group has {size} ranks, which does not divide the world of {world}")
    if rank is not None and rank != me:
        raise PlannerError(f"dp rank {rank} was given, but this process is rank {me} of its data-parallel group")
    return me, size


class StageGroups:
    """The node-wise exchange's stage groups as one DP rank sees them.

    Attributes:
        nodes: nodes of the DP group (DP size / ranks_per_node).
        ranks_per_node: DP ranks per node.
        node, local: this rank's node and local index (DP index = node × ranks_per_node + local).
        inter: the inter-node stage's group (this rank's rail: local index ``local`` on every
            node; group rank = node), or the DP group itself when ``subgroups`` is False.
        intra: the intra-node stage's group (this node's DP ranks; group rank = local index),
            or the DP group itself.
        subgroups: whether ``inter``/``intra`` are their own groups; when False the stages run on
            the whole DP group with zero splits to every other rank (no new groups, but gloo
            still exchanges an empty message with each of them).
    """

    def __init__(self, nodes: int, ranks_per_node: int, dp_rank: int, inter: Optional[dist.ProcessGroup],
                 intra: Optional[dist.ProcessGroup], subgroups: bool) -> None:
        self.nodes, self.ranks_per_node = nodes, ranks_per_node
        self.node, self.local = divmod(dp_rank, ranks_per_node)
        self.inter, self.intra, self.subgroups = inter, intra, subgroups

    def inter_members(self) -> List[int]:
        """DP indices of the inter-node stage's ranks, in its group-rank order (one per node)."""
        return [n * self.ranks_per_node + self.local for n in range(self.nodes)]

    def intra_members(self) -> List[int]:
        """DP indices of the intra-node stage's ranks, in its group-rank order."""
        return [self.node * self.ranks_per_node + j for j in range(self.ranks_per_node)]


# (id of the DP group, ranks per node, subgroups) -> weak references to (the DP group, inter, intra)
# and the layout; weak, so that torch's destroy_process_group() is what ends the groups' lives.
_CACHE: Dict[Tuple[int, int, bool], Tuple[Callable[[], Any], Callable[[], Any], Callable[[], Any], Tuple[int, int, int]]] = {}


def _live(g: Any) -> bool:
    """Whether torch still knows ``g`` (it forgets every group on destroy_process_group)."""
    return g is not None and g in dist.distributed_c10d._pg_map


def node_groups(group: Optional[dist.ProcessGroup], ranks_per_node: int, subgroups: bool = True) -> StageGroups:
    """The stage groups of the node-wise exchange over ``group`` (created once, then cached).

    Creating them is a collective of the whole world: with a DP group smaller than the world,
    every rank of the world must call this (directly, or by building its first node-wise
    exchange) at the same point of its program, as SPMD training does; the DP groups'
    memberships are all-gathered once so that every rank creates every group in one order.

    Args:
        group: the DP group (default: the world).
        ranks_per_node: DP ranks per node (the config's ``ranksPerNode``); must divide the DP size.
        subgroups: False runs both stages on ``group`` itself with zero splits (for comparison;
            creates nothing).

    Returns:
        This rank's :class:`StageGroups`.

    Raises:
        PlannerError: ``ranks_per_node`` does not divide the DP size, or the DP group is invalid.
    """
    me, size = dp_rank_size(group)
    if ranks_per_node <= 0 or size % ranks_per_node != 0:
        raise PlannerError(f"ranksPerNode {ranks_per_node} does not divide the {size} data-parallel ranks: "
                           "the node-wise exchange needs whole nodes (use schedule=\"flat\")")
    nodes = size // ranks_per_node
    if not subgroups or size == 1:
        return StageGroups(nodes, ranks_per_node, me, group, group, False)
    default = dist.distributed_c10d._get_default_group()
    key_group = default if group is None else group
    key = (id(key_group), ranks_per_node, subgroups)
    hit = _CACHE.get(key)
    if hit is not None:
        dp_ref, inter_ref, intra_ref, layout = hit
        inter, intra = inter_ref(), intra_ref()
        if dp_ref() is key_group and _live(inter) and _live(intra):
            return StageGroups(*layout, inter, intra, True)
        del _CACHE[key]
    mine = tuple(group_ranks(group))
    world = dist.get_world_size()
    if len(mine) == world:
        dp_groups = [mine]
    else:
        everyone: List[Any] = [None] * world
        dist.all_gather_object(everyone, list(mine))
        dp_groups = sorted({tuple(g) for g in everyone})
        if any(len(g) != size for g in dp_groups) or sorted(r for g in dp_groups for r in g) != list(range(world)):
            raise PlannerError("the data-parallel groups must split the world into groups of one size, each rank in one")
    inter = intra = None
    # Every rank creates every group in one order (DP groups by their first rank; rails, then nodes).
    for members in dp_groups:
        for local in range(ranks_per_node):
            ranks = [members[n * ranks_per_node + local] for n in range(nodes)]
            g = dist.new_group(ranks=ranks)
            if members == mine and local == me % ranks_per_node:
                inter = g
        for node in range(nodes):
            ranks = list(members[node * ranks_per_node: (node + 1) * ranks_per_node])
            g = dist.new_group(ranks=ranks)
            if members == mine and node == me // ranks_per_node:
                intra = g
    _CACHE[key] = (weakref.ref(key_group), weakref.ref(inter), weakref.ref(intra), (nodes, ranks_per_node, me))
    return StageGroups(nodes, ranks_per_node, me, inter, intra, True)
