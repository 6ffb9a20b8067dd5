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
"""
from __future__ import annotations

from typing import Callable, List, Mapping, Optional, Sequence, Union

import torch
import torch.distributed as dist

from .alltoall import all_to_all, exchange_rows

__all__ = ["Exchange", "RouteExchange", "Key", "Layout"]

Key = str
Layout = List[List[Key]]
#: Item keys of one rank, or a function that makes them when first asked for.
Keys = Union[List[Key], Callable[[], List[Key]]]


def ranges(starts: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Concatenation of ``arange(s, s + l)`` for each (s, l), vectorised: row indices of whole items."""
    total = int(lengths.sum()) if lengths.numel() else 0
    if total == 0:
        return torch.zeros(0, dtype=torch.long)
    # Row j of the output belongs to item i with j in [cum[i], cum[i]+l[i]): index = s[i] + (j - cum[i]).
    cum = torch.cumsum(lengths, 0) - lengths
    return torch.repeat_interleave(starts - cum, lengths) + torch.arange(total, dtype=torch.long)


class Exchange:
    """One all-to-all from a source layout to a destination layout, as seen by one rank.

    ``exchange(x)`` takes this rank's rows in source order (:attr:`src_keys`) and returns its
    rows in destination order (:attr:`dst_keys`, :attr:`dst_rows`). :meth:`inverse` goes back.

    Args:
        src: every rank's item keys in source order.
        dst: every rank's item keys in destination order: the same items, each exactly once.
        rows: rows each item carries.
        rank: this rank's index in the layouts.
        group: the process group the exchange runs on (default: the world).

    Raises:
        ValueError: the layouts have different rank counts, or do not hold the same items
            exactly once each.
    """

    def __init__(self, src: Layout, dst: Layout, rows: Mapping[Key, int], rank: int,
                 group: Optional[dist.ProcessGroup] = None) -> None:
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
        self._setup(rank, world, group, src_counts, row, dst_idx, dst_counts, list(src[rank]), list(dst[rank]))

    @classmethod
    def numbered(cls, rank: int, world: int, group: Optional[dist.ProcessGroup], src_counts: torch.Tensor, row: torch.Tensor,
                 dst_idx: torch.Tensor, dst_counts: torch.Tensor, src_keys: Keys, dst_keys: Keys) -> "Exchange":
        """An exchange from layouts already numbered.

        Items are numbered in source order, rank-major: ``src_counts[r]`` items on rank r,
        ``row[i]`` rows each. ``dst_idx`` lists the destination layout (rank-major,
        ``dst_counts[r]`` items per rank) as those numbers; the caller guarantees it is a
        permutation. Keys (this rank's, for :attr:`src_keys` / :attr:`dst_keys`) may be given
        as functions, called only if the keys are asked for.
        """
        self = cls.__new__(cls)
        self._setup(rank, world, group, src_counts, row, dst_idx, dst_counts, src_keys, dst_keys)
        return self

    def _setup(self, rank: int, world: int, group: Optional[dist.ProcessGroup], src_counts: torch.Tensor, row: torch.Tensor,
               dst_idx: torch.Tensor, dst_counts: torch.Tensor, src_keys: Keys, dst_keys: Keys) -> None:
        """The splits and permutations from the numbered layouts."""
        long = torch.long
        self.rank, self.world, self.group = rank, world, group
        self._keys = [src_keys, dst_keys]
        # Kept for inverse(), which swaps source and destination without re-keying.
        self._numbering = (src_counts, row, dst_idx, dst_counts)
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
        #: Rows sent to each rank of the group.
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
        arrival = torch.sort(mine_src, stable=True).indices       # buffer order: by source, stable
        buf_start = torch.zeros(mine.numel(), dtype=long)
        arrived_rows = mine_rows[arrival]
        buf_start[arrival] = torch.cumsum(arrived_rows, 0) - arrived_rows
        #: Rows this rank gets back.
        self.dst_total = int(mine_rows.sum())
        self.recv_index = ranges(buf_start, mine_rows)
        # Identity permutations are common (one source, or items that stay): skip those gathers.
        self._send_identity = bool(torch.equal(self.send_index, torch.arange(self.src_total)))
        self._recv_identity = bool(torch.equal(self.recv_index, torch.arange(self.dst_total)))

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
        y = x if self._send_identity else x.index_select(0, self.send_index.to(x.device))
        if x.requires_grad and torch.is_grad_enabled():
            y = all_to_all(y, self.send_splits, self.recv_splits, self.group)
        else:
            y = exchange_rows(y, self.send_splits, self.recv_splits, self.group)
        return y if self._recv_identity else y.index_select(0, self.recv_index.to(y.device))

    def inverse(self) -> "Exchange":
        """The exchange back: destination layout → source layout (e.g. per-example results from
        the LLM layout back to the ranks and order the examples were sampled in).

        Returns:
            An :class:`Exchange` whose source is this one's destination.
        """
        src_counts, row, dst_idx, dst_counts = self._numbering
        # Numbered in the old destination order; the old source item i now sits at back[i].
        back = torch.empty_like(dst_idx)
        back[dst_idx] = torch.arange(dst_idx.numel())
        src_keys, dst_keys = self._keys
        return Exchange.numbered(self.rank, self.world, self.group, dst_counts, row[dst_idx], back, src_counts,
                                 dst_keys, src_keys)

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
    """

    def __init__(self, src: Layout, dst: Layout, rows: Mapping[Key, int], rank: int, group: Optional[dist.ProcessGroup],
                 item_keys: Sequence[Key], item_rows: Sequence[int]) -> None:
        super().__init__(src, dst, rows, rank, group)
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
