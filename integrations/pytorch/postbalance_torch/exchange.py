"""Exchanges: one rank's view of an all-to-all from a source layout of items to a destination
layout, with the rows each item carries.

Vocabulary
- layout: for every rank, the ordered list of items it holds.
- rows: a tensor travelling with an item has that many rows along dim 0 (an image's patches, a
  clip's frames, a text's tokens, an encoder's outputs). Tensors are the row-concatenation of
  their items in layout order; features (dims 1..) must agree across ranks.

Every rank builds the same exchange from the same layouts, so no counts are communicated: the
send/receive splits are known locally. Layouts are given either as item keys per rank
(:class:`Exchange`'s constructor) or already numbered (what :class:`~postbalance_torch.StepPlan`
does from a plan's rank arrays, without building a string per item).

Schedules. ``"flat"``: one all-to-all in which any rank may send to any other. ``"node"``: the
node-wise exchange, two all-to-alls on smaller groups (see :mod:`~postbalance_torch.groups`):
first the inter-node stage among the ranks with the same local index on every node, in which
each rank carries everything its own items owe a node to its peer on that node; then the
intra-node stage, in which every rank hands each row to its destination on its node. A rank
talks to at most (nodes − 1) + (ranks per node − 1) others instead of R − 1, and inter-node
traffic goes in one message per node pair of a rail. Rows arrive in the same order either way;
the backward pass runs the stages in reverse (intra-node first).
"""
from __future__ import annotations

from typing import Callable, List, Mapping, Optional, Sequence, Union

import torch
import torch.distributed as dist

from .alltoall import all_to_all, exchange_rows
from .groups import StageGroups, node_groups

__all__ = ["Exchange", "ExchangeStage", "RouteExchange", "Key", "Layout", "SCHEDULES"]

Key = str
Layout = List[List[Key]]
#: Item keys of one rank, or a function that makes them when first asked for.
Keys = Union[List[Key], Callable[[], List[Key]]]
#: The exchange schedules.
SCHEDULES = ("flat", "node")


def ranges(starts: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Concatenation of ``arange(s, s + l)`` for each (s, l), vectorised: row indices of whole items."""
    total = int(lengths.sum()) if lengths.numel() else 0
    if total == 0:
        return torch.zeros(0, dtype=torch.long)
    # Row j of the output belongs to item i with j in [cum[i], cum[i]+l[i]): index = s[i] + (j - cum[i]).
    cum = torch.cumsum(lengths, 0) - lengths
    return torch.repeat_interleave(starts - cum, lengths) + torch.arange(total, dtype=torch.long)


def _arrival_starts(key: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Where each item starts in a receive buffer filled source by source: items grouped by
    ``key`` (their source), stably (each source sends in the order given)."""
    order = torch.sort(key, stable=True).indices
    r = rows[order]
    start = torch.empty_like(rows)
    start[order] = torch.cumsum(r, 0) - r
    return start


class ExchangeStage:
    """One all-to-all of an exchange, as this rank runs it.

    Attributes:
        name: ``"flat"``, ``"inter"`` (node-wise, between nodes) or ``"intra"`` (inside a node).
        group: the process group it runs on.
        members: the DP index of each of the group's ranks, in group-rank order.
        me: this rank's position in ``members``.
        send_splits: rows this rank sends to each member (its own entry: rows it keeps).
        recv_splits: rows this rank receives from each member.
        active: False when no rank of the group sends a row to another, which every member knows
            from the plan: then the stage runs no collective at all.
    """

    def __init__(self, name: str, group: Optional[dist.ProcessGroup], members: List[int], me: int,
                 index: torch.Tensor, send: List[int], recv: List[int], active: bool) -> None:
        self.name, self.group, self.members, self.me = name, group, members, me
        #: Rows of this stage's input, in send order.
        self.index = index
        self.identity = bool(torch.equal(index, torch.arange(index.numel())))
        self.send_splits, self.recv_splits, self.active = send, recv, active

    @property
    def peers(self) -> int:
        """Ranks this rank sends at least one row to (itself not counted)."""
        return sum(1 for k, s in enumerate(self.send_splits) if s and k != self.me)

    @property
    def sent_rows(self) -> int:
        """Rows this rank sends to other ranks."""
        return sum(s for k, s in enumerate(self.send_splits) if k != self.me)

    def run(self, y: torch.Tensor, grad: bool) -> torch.Tensor:
        if not self.identity:
            y = y.index_select(0, self.index.to(y.device))
        if not self.active:
            return y
        if grad:
            return all_to_all(y, self.send_splits, self.recv_splits, self.group)
        return exchange_rows(y, self.send_splits, self.recv_splits, self.group)


def _expand(splits: torch.Tensor, members: List[int], world: int, subgroups: bool) -> List[int]:
    """Splits over a stage's members, or over the whole DP group (zeros elsewhere) when the
    stage runs on the DP group itself."""
    if subgroups:
        return splits.tolist()
    full = torch.zeros(world, dtype=torch.long)
    full[torch.tensor(members, dtype=torch.long)] = splits
    return full.tolist()


class Exchange:
    """One all-to-all from a source layout to a destination layout, as seen by one rank.

    ``exchange(x)`` takes this rank's rows in source order (:attr:`src_keys`) and returns its
    rows in destination order (:attr:`dst_keys`, :attr:`dst_rows`). :meth:`inverse` goes back.

    Args:
        src: every rank's item keys in source order.
        dst: every rank's item keys in destination order: the same items, each exactly once.
        rows: rows each item carries.
        rank: this rank's index in the layouts (its index in the data-parallel group).
        group: the process group the exchange runs on (default: the world).
        schedule: ``"flat"`` (one all-to-all) or ``"node"`` (node-wise: an inter-node stage,
            then an intra-node stage; needs ``ranks_per_node`` or ``stage_groups``). Default:
            node-wise when ``stage_groups`` is given, else flat.
        ranks_per_node: ranks of ``group`` per node, for ``schedule="node"``.
        stage_groups: the node-wise stages' groups (default: :func:`node_groups` of ``group``).

    Raises:
        ValueError: the layouts have different rank counts, or do not hold the same items
            exactly once each; an unknown schedule.
    """

    def __init__(self, src: Layout, dst: Layout, rows: Mapping[Key, int], rank: int,
                 group: Optional[dist.ProcessGroup] = None, schedule: Optional[str] = None,
                 ranks_per_node: Optional[int] = None, stage_groups: Optional[StageGroups] = None) -> None:
        world = len(src)
        if len(dst) != world:
            raise ValueError(f"source layout has {world} ranks, destination {len(dst)}")
        long = torch.long
        # After one dict pass that numbers the items (source order, rank-major), all bookkeeping
        # is done on integer tensors rather than in Python loops over ranks × items.
        flat_src = [k for keys in src for k in keys]
        index = {k: i for i, k in enumerate(flat_src)}
        n = len(flat_src)
        if len(index) != n:
            raise ValueError("an item appears twice in the source layout")
        src_counts = torch.tensor([len(keys) for keys in src], dtype=long)
        row = torch.tensor([int(rows[k]) for k in flat_src], dtype=long)
        try:
            dst_idx = torch.tensor([index[k] for keys in dst for k in keys], dtype=long)
        except KeyError as e:
            raise ValueError(f"destination item {e.args[0]!r} is in no rank's source layout") from None
        if dst_idx.numel() != n or bool((torch.bincount(dst_idx, minlength=n) != 1).any()):
            raise ValueError("the destination layout must hold every source item exactly once")
        dst_counts = torch.tensor([len(keys) for keys in dst], dtype=long)
        self._setup(rank, world, group, src_counts, row, dst_idx, dst_counts, list(src[rank]), list(dst[rank]),
                    self._stage_groups_for(schedule, group, ranks_per_node, stage_groups))

    @staticmethod
    def _stage_groups_for(schedule: Optional[str], group: Optional[dist.ProcessGroup], ranks_per_node: Optional[int],
                          stage_groups: Optional[StageGroups]) -> Optional[StageGroups]:
        if schedule is None:
            schedule = "flat" if stage_groups is None else "node"
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be 'flat' or 'node', got {schedule!r}")
        if schedule == "flat":
            return None
        if stage_groups is not None:
            return stage_groups
        if ranks_per_node is None:
            raise ValueError("schedule='node' needs ranks_per_node (or stage_groups)")
        return node_groups(group, ranks_per_node)

    @classmethod
    def numbered(cls, rank: int, world: int, group: Optional[dist.ProcessGroup], src_counts: torch.Tensor, row: torch.Tensor,
                 dst_idx: torch.Tensor, dst_counts: torch.Tensor, src_keys: Keys, dst_keys: Keys,
                 schedule: Optional[str] = None, ranks_per_node: Optional[int] = None,
                 stage_groups: Optional[StageGroups] = None) -> "Exchange":
        """An exchange from layouts already numbered.

        Items are numbered in source order, rank-major: ``src_counts[r]`` items on rank r,
        ``row[i]`` rows each. ``dst_idx`` lists the destination layout (rank-major,
        ``dst_counts[r]`` items per rank) as those numbers; the caller guarantees it is a
        permutation. Keys (this rank's, for :attr:`src_keys` / :attr:`dst_keys`) may be given
        as functions, called only if the keys are asked for. ``schedule``, ``ranks_per_node``
        and ``stage_groups`` as in the constructor.
        """
        self = cls.__new__(cls)
        self._setup(rank, world, group, src_counts, row, dst_idx, dst_counts, src_keys, dst_keys,
                    cls._stage_groups_for(schedule, group, ranks_per_node, stage_groups))
        return self

    def _setup(self, rank: int, world: int, group: Optional[dist.ProcessGroup], src_counts: torch.Tensor, row: torch.Tensor,
               dst_idx: torch.Tensor, dst_counts: torch.Tensor, src_keys: Keys, dst_keys: Keys,
               stage_groups: Optional[StageGroups]) -> None:
        """The splits and permutations from the numbered layouts."""
        long = torch.long
        self.rank, self.world, self.group = rank, world, group
        self._keys = [src_keys, dst_keys]
        # Kept for inverse(), which swaps source and destination without re-keying.
        self._numbering = (src_counts, row, dst_idx, dst_counts)
        self._stage_groups = stage_groups
        #: ``"flat"`` or ``"node"``.
        self.schedule = "flat" if stage_groups is None else "node"
        n = row.numel()
        owner = torch.repeat_interleave(torch.arange(world), src_counts)
        dst_rank = torch.repeat_interleave(torch.arange(world), dst_counts)

        # My source items are a contiguous range of the numbering; where each starts in my input.
        lo, mine_n = int(src_counts[:rank].sum()), int(src_counts[rank])
        my_rows = row[lo: lo + mine_n]
        src_start = torch.zeros(n, dtype=long)
        src_start[lo: lo + mine_n] = torch.cumsum(my_rows, 0) - my_rows
        #: Rows of each of this rank's source items, in source order.
        self.src_rows: List[int] = my_rows.tolist()
        #: Rows this rank passes in.
        self.src_total = int(my_rows.sum())

        # Send: to each rank d, my items in d's destination order (the destination layout is
        # rank-major, so they come out grouped by d), and d receives each source's rows already
        # in its own order: it only has to interleave the sources.
        sel = (owner[dst_idx] == rank).nonzero().squeeze(1)
        items, to = dst_idx[sel], dst_rank[sel]
        send_lens = row[items]
        self.send_index = ranges(src_start[items], send_lens)
        #: Rows sent to each rank of the group (the logical all-to-all, whatever the schedule).
        self.send_splits: List[int] = torch.zeros(world, dtype=long).scatter_add_(0, to, send_lens).tolist()
        #: Rows that leave this rank.
        self.moved_rows = int(send_lens[to != rank].sum())

        # Receive: rows arrive grouped by source rank; put them back in my destination order.
        dlo, dn = int(dst_counts[:rank].sum()), int(dst_counts[rank])
        mine = dst_idx[dlo: dlo + dn]
        mine_rows, mine_src = row[mine], owner[mine]
        #: Rows of each of this rank's destination items, in destination order.
        self.dst_rows: List[int] = mine_rows.tolist()
        #: Rows received from each rank of the group.
        self.recv_splits: List[int] = torch.zeros(world, dtype=long).scatter_add_(0, mine_src, mine_rows).tolist()
        buf_start = _arrival_starts(mine_src, mine_rows)
        #: Rows this rank gets back.
        self.dst_total = int(mine_rows.sum())
        self.recv_index = ranges(buf_start, mine_rows)
        if stage_groups is None:
            # Any row that changes rank makes the all-to-all run (every rank knows it from the plan).
            moves = bool((owner[dst_idx] != dst_rank).any()) if n else False
            #: The all-to-alls this exchange runs, in order.
            self.stages: List[ExchangeStage] = [
                ExchangeStage("flat", group, list(range(world)), rank, self.send_index, self.send_splits, self.recv_splits, moves)]
            self._final = self.recv_index
        else:
            self.stages, self._final = self._node_stages(stage_groups, owner[dst_idx], dst_rank, row[dst_idx], src_start[dst_idx])
        self._final_identity = bool(torch.equal(self._final, torch.arange(self.dst_total)))

    def _node_stages(self, sg: StageGroups, ow: torch.Tensor, dr: torch.Tensor, rows: torch.Tensor,
                     start: torch.Tensor) -> "tuple[List[ExchangeStage], torch.Tensor]":
        """The node-wise schedule. Every item is looked at in destination order j (rank-major,
        so also node-major): ``ow``/``dr`` its source and destination rank, ``rows`` its rows,
        ``start`` where it starts in its owner's input. Each stage sends in j order, so a
        receiver gets each source's rows in j order and only interleaves the sources.

        1. inter (rail group of local index L, group rank = node): the owner sends each item to
           the rank of the destination's node with local index L (itself for its own node).
        2. intra (node group, group rank = local index): the holder sends each item to its
           destination (the holder's local index is the owner's).
        """
        long = torch.long
        P, W, me = sg.ranks_per_node, self.world, self.rank
        node, local = sg.node, sg.local
        own_node, own_loc = torch.div(ow, P, rounding_mode="floor"), ow % P
        dst_node, dst_loc = torch.div(dr, P, rounding_mode="floor"), dr % P

        # 1. inter: my items, in j order (grouped by destination node).
        s1 = (ow == me).nonzero().squeeze(1)
        idx1 = ranges(start[s1], rows[s1])
        send1 = torch.zeros(sg.nodes, dtype=long).scatter_add_(0, dst_node[s1], rows[s1])
        # What I hold after it: items of my rail bound for my node, by source node, then j.
        h = ((own_loc == local) & (dst_node == node)).nonzero().squeeze(1)
        recv1 = torch.zeros(sg.nodes, dtype=long).scatter_add_(0, own_node[h], rows[h])
        buf1 = _arrival_starts(own_node[h], rows[h])
        # The stage runs when any rank of its group sends a row to another: of my rail across
        # nodes (on the whole DP group: anyone across nodes).
        cross = own_node != dst_node
        active1 = bool((cross & (own_loc == local)).any() if sg.subgroups else cross.any())

        # 2. intra: what I hold, in j order (grouped by destination, all on my node).
        idx2 = ranges(buf1, rows[h])
        send2 = torch.zeros(P, dtype=long).scatter_add_(0, dst_loc[h], rows[h])
        # What I receive: my destination items, by holder (= the owner's local index), then j.
        m = (dr == me).nonzero().squeeze(1)
        recv2 = torch.zeros(P, dtype=long).scatter_add_(0, own_loc[m], rows[m])
        buf2 = _arrival_starts(own_loc[m], rows[m])
        # ... and when any holder on my node sends to another rank of it (on the DP group: any).
        handed = own_loc != dst_loc
        active2 = bool((handed & (dst_node == node)).any() if sg.subgroups else handed.any())
        final = ranges(buf2, rows[m])

        inter_m, intra_m = sg.inter_members(), sg.intra_members()
        sub = sg.subgroups
        stages = [
            ExchangeStage("inter", sg.inter, inter_m if sub else list(range(W)), node if sub else me, idx1,
                          _expand(send1, inter_m, W, sub), _expand(recv1, inter_m, W, sub), active1),
            ExchangeStage("intra", sg.intra, intra_m if sub else list(range(W)), local if sub else me, idx2,
                          _expand(send2, intra_m, W, sub), _expand(recv2, intra_m, W, sub), active2),
        ]
        return stages, final

    def _key_list(self, which: int) -> List[Key]:
        keys = self._keys[which]
        if callable(keys):
            keys = keys()
            self._keys[which] = keys
        return keys

    @property
    def src_keys(self) -> List[Key]:
        """This rank's items in source order."""
        return self._key_list(0)

    @property
    def dst_keys(self) -> List[Key]:
        """This rank's items in destination order."""
        return self._key_list(1)

    @property
    def peers(self) -> int:
        """Ranks this rank sends rows to, over all stages (itself not counted)."""
        return sum(s.peers for s in self.stages if s.active)

    def __call__(self, x: torch.Tensor, backward: Optional[bool] = None) -> torch.Tensor:
        """Moves ``x`` (this rank's rows in source order) to the destination layout.

        Args:
            x: ``src_total`` rows; an empty rank passes an empty tensor with the same feature
                dims (e.g. ``torch.zeros(0, dim)``).
            backward: take part in the backward exchange even when ``x`` does not require grad
                (e.g. this rank has no items, so ``x`` is an empty constant): every rank must run
                the backward all-to-all, or the ones that do wait for the ones that do not.

        Returns:
            This rank's rows in destination order (``dst_total`` rows). Gradients flow back
            through the exchange when ``x`` requires grad.

        Raises:
            ValueError: ``x`` does not have ``src_total`` rows.
        """
        if x.shape[0] != self.src_total:
            raise ValueError(f"rank {self.rank}: exchange expects {self.src_total} rows in source order, got {x.shape[0]}")
        if backward and torch.is_grad_enabled() and x.is_floating_point() and not x.requires_grad:
            x = x.detach().requires_grad_(True)
        grad = x.requires_grad and torch.is_grad_enabled()
        y = x
        for stage in self.stages:
            y = stage.run(y, grad)
        return y if self._final_identity else y.index_select(0, self._final.to(y.device))

    def inverse(self) -> "Exchange":
        """The exchange back: destination layout → source layout (e.g. per-example results from
        the LLM layout back to the ranks and order the examples were sampled in), on the same
        schedule.

        Returns:
            An :class:`Exchange` whose source is this one's destination.
        """
        src_counts, row, dst_idx, dst_counts = self._numbering
        # Numbered in the old destination order; the old source item i now sits at back[i].
        back = torch.empty_like(dst_idx)
        back[dst_idx] = torch.arange(dst_idx.numel())
        src_keys, dst_keys = self._keys
        return Exchange.numbered(self.rank, self.world, self.group, dst_counts, row[dst_idx], back, src_counts,
                                 dst_keys, src_keys, schedule=self.schedule, stage_groups=self._stage_groups)

    def split(self, y: torch.Tensor) -> List[torch.Tensor]:
        """Per-item views of a destination-order tensor.

        Args:
            y: what :meth:`__call__` returned.

        Returns:
            One tensor per destination item (``dst_rows[i]`` rows each).
        """
        return list(torch.split(y, self.dst_rows, dim=0))


class RouteExchange(Exchange):
    """An :class:`Exchange` whose destination rows are grouped by destination example (see
    :meth:`StepPlan.route <postbalance_torch.StepPlan.route>`).

    Args:
        src: as :class:`Exchange`.
        dst: as :class:`Exchange`.
        rows: as :class:`Exchange`.
        rank: as :class:`Exchange`.
        group: as :class:`Exchange`.
        item_keys: this rank's destination examples, in order.
        item_rows: the routed rows of each of those examples.
        schedule: as :class:`Exchange`.
        ranks_per_node: as :class:`Exchange`.
        stage_groups: as :class:`Exchange`.
    """

    def __init__(self, src: Layout, dst: Layout, rows: Mapping[Key, int], rank: int, group: Optional[dist.ProcessGroup],
                 item_keys: Sequence[Key], item_rows: Sequence[int], schedule: Optional[str] = None,
                 ranks_per_node: Optional[int] = None, stage_groups: Optional[StageGroups] = None) -> None:
        super().__init__(src, dst, rows, rank, group, schedule, ranks_per_node, stage_groups)
        self._item_keys: Keys = list(item_keys)
        self.item_rows: List[int] = list(item_rows)

    @property
    def item_keys(self) -> List[Key]:
        """This rank's destination examples (ids), in planned order."""
        keys = self._item_keys
        if callable(keys):
            keys = keys()
            self._item_keys = keys
        return keys

    def set_items(self, item_keys: Keys, item_rows: Sequence[int]) -> None:
        """Sets :attr:`item_keys` (a list, or a function that makes it when first asked for) and
        :attr:`item_rows` of an exchange made by :meth:`Exchange.numbered`."""
        self._item_keys = item_keys
        self.item_rows = list(item_rows)

    def split_by_item(self, y: torch.Tensor) -> List[torch.Tensor]:
        """The routed rows of each destination example.

        Args:
            y: what :meth:`__call__` returned.

        Returns:
            One tensor per example of :attr:`item_keys` (empty for an example without segments
            in the routed phases).
        """
        return list(torch.split(y, self.item_rows, dim=0))
