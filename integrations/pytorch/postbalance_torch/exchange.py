"""Move a step's data between the sampled layout and each phase's balanced layout with
torch.distributed all-to-all exchanges (NCCL on GPUs, gloo on CPUs), gradients included.

Vocabulary
- item key: how the plan names an item. Encoder phases (`unit: "segment"`): one item per segment,
  key "<exampleId>/<modality>/<k>". Example phases (`unit: "example"`): key "<exampleId>".
- layout: for every rank, the ordered list of item keys it holds. The *sampled* layout of a phase
  is each rank's own examples in the order it sampled them, then the phase's modalities in config
  order, then k. The *planned* layout is the plan's `phases[p].ranks[r].items`.
- rows: a tensor travelling with an item has that many rows along dim 0 (an image's patches, a
  clip's frames, a text's tokens, an encoder's outputs). Tensors are the row-concatenation of
  their items in layout order; features (dims 1..) must agree across ranks.

Every rank builds the same exchanges from the same plan and the same all-gathered example lengths,
so no counts are communicated: the send/receive splits are known locally.
"""
from __future__ import annotations

import hashlib
import json
import math
import operator
from itertools import accumulate, chain, compress, repeat
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.distributed as dist

from .planner import Planner, _js_id

__all__ = [
    "Exchange",
    "RouteExchange",
    "StepPlan",
    "all_to_all",
    "gather_examples",
    "plan_step",
    "plan_digest",
    "keep_in_graph",
    "segment_lengths",
]

Key = str
Layout = List[List[Key]]


def segment_lengths(value: Any) -> List[int]:
    """The segments of one modality of an example dict: a number is one segment, a list is
    several, missing/None is none (the CLI's input contract)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    return [int(value)]


# -- the autograd-aware all-to-all -------------------------------------------------------------


class _AllToAll(torch.autograd.Function):
    """all_to_all_single along dim 0 with uneven splits. Its gradient is the reverse exchange:
    the rows a rank received come back to the rank that sent them."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, send: List[int], recv: List[int], group: Any) -> torch.Tensor:  # type: ignore[override]
        ctx.splits = (send, recv, group)
        return _a2a(x, send, recv, group)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Tuple[Optional[torch.Tensor], None, None, None]:  # type: ignore[override]
        send, recv, group = ctx.splits
        return _a2a(grad, recv, send, group), None, None, None


def _a2a(x: torch.Tensor, send: List[int], recv: List[int], group: Any) -> torch.Tensor:
    out = x.new_empty((sum(recv),) + tuple(x.shape[1:]))
    dist.all_to_all_single(out, x.contiguous(), output_split_sizes=recv, input_split_sizes=send, group=group)
    return out


def all_to_all(x: torch.Tensor, send_splits: List[int], recv_splits: List[int], group: Any = None) -> torch.Tensor:
    """Differentiable uneven all-to-all along dim 0 (what torch.distributed.nn offers in newer
    releases, written out so that it works the same on torch 1.13)."""
    return _AllToAll.apply(x, list(send_splits), list(recv_splits), group)


def keep_in_graph(loss: torch.Tensor, *tensors: torch.Tensor) -> torch.Tensor:
    """`loss + 0·Σ t` for each tensor: a rank whose loss does not use an exchange's output (it got
    no items this phase) must still run that exchange's backward, or the other ranks wait forever
    in it. Adding zero keeps the exchange in every rank's graph without changing the loss."""
    for t in tensors:
        loss = loss + t.sum() * 0
    return loss


def _ranges(starts: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Concatenation of arange(s, s+l) for each (s, l), vectorised: row indices of whole items."""
    total = int(lengths.sum()) if lengths.numel() else 0
    if total == 0:
        return torch.zeros(0, dtype=torch.long)
    # Row j of the output belongs to item i with j in [cum[i], cum[i]+l[i]): index = s[i] + (j - cum[i]).
    cum = torch.cumsum(lengths, 0) - lengths
    return torch.repeat_interleave(starts - cum, lengths) + torch.arange(total, dtype=torch.long)


class Exchange:
    """One all-to-all from a source layout to a destination layout, as seen by one rank.

    `exchange(x)` takes this rank's rows in source order (`src_keys`) and returns its rows in
    destination order (`dst_keys`, `dst_rows`). `exchange.inverse()` goes back. Built from global
    layouts that every rank knows; nothing is communicated to build it.
    """

    def __init__(self, src: Layout, dst: Layout, rows: Mapping[Key, int], rank: int, group: Any = None) -> None:
        world = len(src)
        if len(dst) != world:
            raise ValueError(f"source layout has {world} ranks, destination {len(dst)}")
        src_keys, dst_keys = list(src[rank]), list(dst[rank])
        long = torch.long

        # Every rank builds every step's exchanges over the whole global batch, so after one
        # dict pass that numbers the items (source order, rank-major) all bookkeeping is done on
        # integer tensors rather than in Python loops over ranks × items.
        flat_src = [k for keys in src for k in keys]
        index = {k: i for i, k in enumerate(flat_src)}
        n = len(flat_src)
        if len(index) != n:
            raise ValueError("an item appears twice in the source layout")
        src_counts = torch.tensor([len(keys) for keys in src], dtype=long)
        row = torch.tensor([rows[k] for k in flat_src], dtype=long)
        try:
            dst_idx = torch.tensor([index[k] for keys in dst for k in keys], dtype=long)
        except KeyError as e:
            raise ValueError(f"destination item {e.args[0]!r} is in no rank's source layout") from None
        if dst_idx.numel() != n or bool((torch.bincount(dst_idx, minlength=n) != 1).any()):
            raise ValueError("the destination layout must hold every source item exactly once")
        dst_counts = torch.tensor([len(keys) for keys in dst], dtype=long)
        self._setup(rank, world, group, src_counts, row, dst_idx, dst_counts, src_keys, dst_keys)

    @classmethod
    def _numbered(cls, rank: int, world: int, group: Any, src_counts: torch.Tensor, row: torch.Tensor,
                  dst_idx: torch.Tensor, dst_counts: torch.Tensor, src_keys: List[Key], dst_keys: List[Key]) -> "Exchange":
        """An exchange from layouts already numbered (what __init__ derives from the keys): StepPlan
        numbers a phase's items once and reuses that, instead of re-keying ~10^5 strings per call.
        The caller guarantees what __init__ checks (dst_idx is a permutation of the source items)."""
        self = cls.__new__(cls)
        self._setup(rank, world, group, src_counts, row, dst_idx, dst_counts, src_keys, dst_keys)
        return self

    def _setup(self, rank: int, world: int, group: Any, src_counts: torch.Tensor, row: torch.Tensor,
               dst_idx: torch.Tensor, dst_counts: torch.Tensor, src_keys: List[Key], dst_keys: List[Key]) -> None:
        """The splits and permutations from the numbered layouts. Items are numbered in source
        order (rank-major): src_counts[r] items per rank, row[i] rows each; dst_idx lists the
        destination layout (rank-major, dst_counts[r] per rank) as those numbers."""
        long = torch.long
        self.rank, self.world, self.group = rank, world, group
        self.src_keys: List[Key] = src_keys
        self.dst_keys: List[Key] = dst_keys
        # Kept for inverse(), which swaps source and destination without re-keying.
        self._numbering = (src_counts, row, dst_idx, dst_counts)
        n = row.numel()
        owner = torch.repeat_interleave(torch.arange(world), src_counts)
        dst_rank = torch.repeat_interleave(torch.arange(world), dst_counts)

        # My source items are a contiguous range of the numbering; where each starts in my input.
        lo = int(src_counts[:rank].sum())
        my_rows = row[lo: lo + len(self.src_keys)]
        src_start = torch.zeros(n, dtype=long)
        src_start[lo: lo + my_rows.numel()] = torch.cumsum(my_rows, 0) - my_rows
        self.src_rows: List[int] = my_rows.tolist()
        self.src_total = int(my_rows.sum())

        # Send: to each rank d, my items in d's destination order (the destination layout is
        # rank-major, so they come out grouped by d), and d receives each source's rows already
        # in its own order: it only has to interleave the sources.
        sel = (owner[dst_idx] == rank).nonzero().squeeze(1)
        items, to = dst_idx[sel], dst_rank[sel]
        send_lens = row[items]
        self.send_index = _ranges(src_start[items], send_lens)
        self.send_splits: List[int] = torch.zeros(world, dtype=long).scatter_add_(0, to, send_lens).tolist()
        self.moved_rows = int(send_lens[to != rank].sum())

        # Receive: rows arrive grouped by source rank; put them back in my destination order.
        dlo = int((dst_rank < rank).sum())
        mine = dst_idx[dlo: dlo + len(self.dst_keys)]
        mine_rows, mine_src = row[mine], owner[mine]
        self.dst_rows: List[int] = mine_rows.tolist()
        self.recv_splits: List[int] = torch.zeros(world, dtype=long).scatter_add_(0, mine_src, mine_rows).tolist()
        arrival = torch.sort(mine_src, stable=True).indices       # buffer order: by source, stable
        buf_start = torch.zeros(mine.numel(), dtype=long)
        arrived_rows = mine_rows[arrival]
        buf_start[arrival] = torch.cumsum(arrived_rows, 0) - arrived_rows
        self.dst_total = int(mine_rows.sum())
        self.recv_index = _ranges(buf_start, mine_rows)
        # Identity permutations are common (one source, or items that stay): skip those gathers.
        self._send_identity = bool(torch.equal(self.send_index, torch.arange(self.src_total)))
        self._recv_identity = bool(torch.equal(self.recv_index, torch.arange(self.dst_total)))

    def __call__(self, x: torch.Tensor, backward: Optional[bool] = None) -> torch.Tensor:
        """Move x (this rank's rows in source order) to the destination layout.

        Gradients flow back through the exchange when x requires grad. `backward=True` makes this
        rank take part in the backward exchange even when its x does not require grad (e.g. it
        has no items, so x is an empty constant): every rank must run the backward all-to-all,
        or the ones that do wait for the ones that do not.
        """
        if x.shape[0] != self.src_total:
            raise ValueError(f"rank {self.rank}: exchange expects {self.src_total} rows in source order, got {x.shape[0]}")
        if backward and torch.is_grad_enabled() and x.is_floating_point() and not x.requires_grad:
            x = x.detach().requires_grad_(True)
        y = x if self._send_identity else x.index_select(0, self.send_index.to(x.device))
        if x.requires_grad and torch.is_grad_enabled():
            y = all_to_all(y, self.send_splits, self.recv_splits, self.group)
        else:
            y = _a2a(y, self.send_splits, self.recv_splits, self.group)
        return y if self._recv_identity else y.index_select(0, self.recv_index.to(y.device))

    def inverse(self) -> "Exchange":
        """The exchange back: destination layout → source layout (e.g. per-example results from
        the LLM layout back to the ranks and order the examples were sampled in)."""
        src_counts, row, dst_idx, dst_counts = self._numbering
        # Numbered in the old destination order; the old source item i now sits at back[i].
        back = torch.empty_like(dst_idx)
        back[dst_idx] = torch.arange(dst_idx.numel())
        return Exchange._numbered(self.rank, self.world, self.group, dst_counts, row[dst_idx], back, src_counts,
                                  list(self.dst_keys), list(self.src_keys))

    def split(self, y: torch.Tensor) -> List[torch.Tensor]:
        """Per-item views of a destination-order tensor."""
        return list(torch.split(y, self.dst_rows, dim=0))


# -- plans for a step --------------------------------------------------------------------------


def _rank_world(group: Any) -> Tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(group), dist.get_world_size(group)
    return 0, 1


def gather_examples(local: Sequence[Mapping[str, Any]], config: Mapping[str, Any], group: Any = None) -> List[Dict[str, Any]]:
    """All-gather every rank's sampled examples (id, rank and the config's modality lengths only:
    a few integers each), in rank order then sampled order. Sets `rank` to the sampling rank."""
    rank, world = _rank_world(group)
    mods = _modalities(config)
    mine = []
    for e in local:
        d: Dict[str, Any] = {"id": e["id"], "rank": rank}
        for m in mods:
            if e.get(m) is not None:
                d[m] = e[m]
        mine.append(d)
    if world == 1:
        return mine
    parts: List[Any] = [None] * world
    dist.all_gather_object(parts, mine, group=group)
    return [e for part in parts for e in part]


def plan_digest(plan: Mapping[str, Any]) -> str:
    """Digest of a plan without its timings: equal on every rank when the plans agree."""
    body = {k: v for k, v in plan.items() if k != "stats"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def plan_step(
    local: Sequence[Mapping[str, Any]],
    config: Mapping[str, Any],
    planner: Optional[Planner] = None,
    mode: str = "local",
    src: int = 0,
    group: Any = None,
    verify: bool = False,
    algorithm: Optional[str] = None,
) -> "StepPlan":
    """Plan this step's global batch and return the exchanges' source of truth.

    mode="local": every rank plans the all-gathered batch itself (plans are deterministic, so
        they agree; `verify=True` checks that with one all-gather of a digest). Needs a planner
        on every rank; no plan travels.
    mode="broadcast": rank `src` plans and broadcasts the plan; only that rank needs a planner.
    """
    rank, world = _rank_world(group)
    global_examples = gather_examples(local, config, group)
    if mode == "local":
        if planner is None:
            raise ValueError("mode='local' needs a Planner on every rank")
        plan = planner.plan(global_examples, algorithm=algorithm)
    elif mode == "broadcast":
        box: List[Any] = [None]
        if rank == src:
            if planner is None:
                raise ValueError(f"mode='broadcast' needs a Planner on rank {src}")
            box[0] = planner.plan(global_examples, algorithm=algorithm)
        if world > 1:
            dist.broadcast_object_list(box, src=src, group=group)
        plan = box[0]
    else:
        raise ValueError(f"mode must be 'local' or 'broadcast', got {mode!r}")
    if verify and world > 1:
        digests: List[Any] = [None] * world
        dist.all_gather_object(digests, plan_digest(plan), group=group)
        if len(set(digests)) != 1:
            raise RuntimeError(f"ranks disagree on the plan: digests {digests}")
    return StepPlan(plan, global_examples, config, rank=rank, world_size=world, group=group)


def _modalities(config: Mapping[str, Any]) -> List[str]:
    out: List[str] = []
    for p in config["phases"]:
        for m in p["modalities"]:
            if m not in out:
                out.append(m)
    return out


RowsFn = Callable[..., int]


def _segment_columns(examples: Sequence[Mapping[str, Any]], mods: Sequence[str]) -> Dict[str, Tuple[torch.Tensor, torch.Tensor]]:
    """Per modality: (segments per example, their lengths in example order), the batch's
    segments as integer columns (CSR). Lengths are read as segment_lengths reads them."""
    long = torch.long
    none = type(None)
    try:
        cols: Dict[str, Tuple[torch.Tensor, torch.Tensor]] = {}
        for m in mods:
            values = [e.get(m) for e in examples]
            # The segments of each example as a sequence; the common column shapes (all lists,
            # or all numbers, with gaps) without a Python call per example.
            kinds = set(map(type, values))
            if kinds <= {list, none}:
                segs: List[Any] = [v or () for v in values]
            elif kinds <= {int, none}:
                segs = [() if v is None else (v,) for v in values]
            else:
                segs = list(map(segment_lengths, values))
            counts = torch.tensor(list(map(len, segs)), dtype=long)
            cols[m] = (counts, torch.tensor(list(map(int, chain.from_iterable(segs))), dtype=long))
        return cols
    except Exception:
        # A bad length: raise what reading example by example raises first (the error names the
        # first bad example, not the first bad modality column).
        for e in examples:
            for m in mods:
                segment_lengths(e.get(m))
        raise


def _ceil_scaled(lengths: torch.Tensor, scale: Any) -> torch.Tensor:
    """math.ceil(L × scale) per length, with Python floats exactly as per item before, but
    evaluated once per distinct length: there are few (image sizes, clip lengths)."""
    if lengths.numel() == 0:
        return lengths.clone()
    values, inverse = torch.unique(lengths, return_inverse=True)
    return torch.tensor([math.ceil(v * scale) for v in values.tolist()], dtype=torch.long)[inverse]


class _Items:
    """A phase's items numbered g = 0..n-1 in the planner's item order: example order, then the
    phase's modalities in config order, then segment k (src/items.ts). Every per-item fact is an
    integer tensor over g; the string keys are made once and used only where keys are needed
    (the plan names its items by key; the public API returns keys)."""

    def __init__(self, keys: List[Key], ex: torch.Tensor, tokens: torch.Tensor, per_example: torch.Tensor,
                 mods: Sequence[str], mod: Optional[torch.Tensor]) -> None:
        self.keys = keys                  # item key per g
        self.ex = ex                      # example index per g
        self.tokens = tokens              # segment length, or Σ ceil(L × scale) of an example item
        self.per_example = per_example    # items per example (an example's items are contiguous)
        self.first = torch.cumsum(per_example, 0) - per_example
        self.mods = list(mods)
        self.mod = mod                    # segment items: index into mods per g; None for example items
        self._index: Optional[Dict[Key, int]] = None

    def index(self) -> Dict[Key, int]:
        """key → g (the last g when keys repeat: duplicate example ids)."""
        if self._index is None:
            self._index = dict(zip(self.keys, range(len(self.keys))))
        return self._index

    def unique_keys(self) -> bool:
        return len(self.index()) == len(self.keys)

    def mod_names(self) -> List[str]:
        assert self.mod is not None
        return [self.mods[j] for j in self.mod.tolist()]


class StepPlan:
    """A plan plus the global batch it was made from: builds the exchanges of one step.

    `global_examples` is the all-gathered batch (rank order, then sampled order), so this rank's
    sampled examples are those with `rank == self.rank`, in the order it sampled them.
    Every rank walks the whole batch to build its exchanges (that is what spares communicating
    counts), so per-example facts are read once here into integer columns, each phase's items
    are numbered once, and exchanges are built on those numbers (no per-call re-keying).
    Irregular inputs (repeated item keys, a plan that does not cover a phase's items exactly
    once) go through the string-keyed Exchange constructor, which raises what it always raised.
    """

    def __init__(
        self,
        plan: Mapping[str, Any],
        global_examples: Sequence[Mapping[str, Any]],
        config: Mapping[str, Any],
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
        group: Any = None,
    ) -> None:
        r, w = _rank_world(group)
        self.rank = r if rank is None else rank
        self.world = w if world_size is None else world_size
        if plan["ranks"] != self.world:
            raise ValueError(f"plan is for {plan['ranks']} ranks, the process group has {self.world}")
        self.plan = plan
        self.config = config
        self.group = group
        self.examples = list(global_examples)
        mods = _modalities(config)
        self._ids: List[str] = [v if type(v) is str else _js_id(v) for v in [e["id"] for e in self.examples]]
        self._ranks: List[int] = list(map(int, [e["rank"] for e in self.examples]))
        # Segment lengths per modality, as integer columns over the examples.
        self._cols = _segment_columns(self.examples, mods)
        self._index: Dict[str, int] = dict(zip(self._ids, range(len(self._ids))))
        self.by_id: Dict[str, Mapping[str, Any]] = dict(zip(self._ids, self.examples))
        self.phases: Dict[str, Mapping[str, Any]] = {p["name"]: p for p in config["phases"]}
        self._planned: Dict[str, Mapping[str, Any]] = {p["name"]: p for p in plan["phases"]}
        self._cache: Dict[Tuple[Any, ...], Any] = {}

    # items --------------------------------------------------------------------------------

    def _is_segment(self, phase: str) -> bool:
        return self.phases[phase].get("unit", "segment") == "segment"

    def _segment_items(self, mods: Sequence[str]) -> _Items:
        """One item per segment of these modalities, key "<id>/<modality>/<k>" (cached)."""
        ck = ("segment items", tuple(mods))
        if ck in self._cache:
            return self._cache[ck]
        long = torch.long
        n, M = len(self.examples), len(mods)
        cols = [self._cols[m] for m in mods]
        if M == 0:
            empty = torch.zeros(0, dtype=long)
            items = _Items([], empty, empty, torch.zeros(n, dtype=long), mods, empty)
            self._cache[ck] = items
            return items
        # pair (example e, modality j), row-major = item order; its segments are a run of lengths.
        counts = torch.stack([c for c, _ in cols], 1)
        pair_counts = counts.reshape(-1)
        sizes = torch.tensor([L.numel() for _, L in cols], dtype=long)
        base = torch.cumsum(sizes, 0) - sizes
        starts = torch.stack([base[j] + torch.cumsum(c, 0) - c for j, (c, _) in enumerate(cols)], 1).reshape(-1)
        tokens = torch.cat([L for _, L in cols])[_ranges(starts, pair_counts)]
        per_example = counts.sum(1)
        ex = torch.repeat_interleave(torch.arange(n), per_example)
        mod = torch.repeat_interleave(torch.arange(M).repeat(n), pair_counts)
        # Keys: each pair's prefix "<id>/<m>/" plus k, from prebuilt pieces (one concatenation
        # per item rather than a full f-string).
        pc = pair_counts.tolist()
        ks = [str(k) for k in range(max(pc, default=0))]
        prefixes = chain.from_iterable(zip(*[map(operator.add, self._ids, repeat(f"/{m}/")) for m in mods]))
        keys = [p + k for p, c in zip(prefixes, pc) if c for k in ks[:c]]
        items = _Items(keys, ex, tokens, per_example, mods, mod)
        self._cache[ck] = items
        return items

    def _items(self, phase: str) -> _Items:
        """The phase's items (cached). Example phases: one item per example with any segment of
        the phase's modalities, key "<id>", tokens Σ ceil(L × scale) over its segments."""
        cfg = self.phases[phase]
        mods = cfg["modalities"]
        if self._is_segment(phase):
            return self._segment_items(mods)
        ck = ("example items", phase)
        if ck not in self._cache:
            n = len(self.examples)
            scale = cfg.get("scale", {})
            present = torch.zeros(n, dtype=torch.bool)
            tokens = torch.zeros(n, dtype=torch.long)
            for m in mods:
                c, L = self._cols[m]
                present |= c > 0
                tokens.index_add_(0, torch.repeat_interleave(torch.arange(n), c), _ceil_scaled(L, scale.get(m, 1)))
            ex = present.nonzero().squeeze(1)
            keys = list(compress(self._ids, present.tolist()))
            self._cache[ck] = _Items(keys, ex, tokens[ex], present.long(), mods, None)
        return self._cache[ck]

    def _item_ranks(self, ex: torch.Tensor, checked: torch.Tensor) -> torch.Tensor:
        """The sampling rank of examples `ex`, as sampled_layout files them: a rank r < 0 wraps
        like list indexing (world + r); one outside [-world, world) among examples `checked` is
        an IndexError (segment phases index the layout for every example, even one without
        segments; example phases only for their items)."""
        if ("ranks",) not in self._cache:
            w = self.world
            # -1: out of range (kept out of the tensor: a huge Python int would not fit).
            self._cache[("ranks",)] = torch.tensor([r if 0 <= r < w else (r + w if -w <= r < 0 else -1) for r in self._ranks],
                                                   dtype=torch.long)
        ranks = self._cache[("ranks",)]
        if bool((ranks[checked] < 0).any()):
            raise IndexError("list index out of range")
        return ranks[ex]

    def _sampled(self, phase: str) -> Tuple[torch.Tensor, torch.Tensor]:
        """(g of each item in sampled order, items per rank): each rank's items in example
        order, i.e. the items stably sorted by sampling rank (cached)."""
        ck = ("sampled order", phase)
        if ck not in self._cache:
            items = self._items(phase)
            checked = torch.arange(len(self.examples)) if self._is_segment(phase) else items.ex
            ranks = self._item_ranks(items.ex, checked)
            order = torch.sort(ranks, stable=True).indices
            self._cache[ck] = (order, torch.bincount(ranks, minlength=self.world))
        return self._cache[ck]

    def _planned_examples(self, phase: str) -> torch.Tensor:
        """The example index of each item of the plan's layout of `phase` (an example phase: its
        keys are example ids), flat in plan order; KeyError for an unknown id (cached)."""
        ck = ("planned examples", phase)
        if ck not in self._cache:
            flat = chain.from_iterable(self.planned_layout(phase))
            self._cache[ck] = torch.tensor(list(map(self._index.__getitem__, flat)), dtype=torch.long)
        return self._cache[ck]

    def _planned_numbers(self, phase: str, items: _Items) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
        """(g of each planned item, items per rank) of the plan's layout of `phase`, or None when
        it is not a permutation of `items` over this world (then the string path reports it)."""
        ck = ("planned order", phase, id(items))    # tables are cached, so their ids are stable
        if ck not in self._cache:
            layout = self.planned_layout(phase)
            g = self._planned_items(phase, items) if len(layout) == self.world else None
            n = len(items.keys)
            ok = g is not None and g.numel() == n and bool((torch.bincount(g, minlength=n) == 1).all())
            self._cache[ck] = (g, torch.tensor([len(keys) for keys in layout], dtype=torch.long)) if ok else None
        return self._cache[ck]

    def _planned_items(self, phase: str, items: _Items) -> Optional[torch.Tensor]:
        """g of each key of the plan's layout of `phase`, flat; None when keys are ambiguous
        (repeated) or one is not an item."""
        if items.mod is not None:
            # Segment items: one dict lookup per planned key.
            if not items.unique_keys():
                return None
            try:
                return torch.tensor(list(map(items.index().__getitem__, chain.from_iterable(self.planned_layout(phase)))),
                                    dtype=torch.long)
            except KeyError:
                return None
        # Example items: keys are ids, already looked up by _planned_examples (shared with route).
        if len(self._index) != len(self.examples):
            return None
        try:
            ex = self._planned_examples(phase)
        except KeyError:
            return None
        g_of_ex = torch.full((len(self.examples),), -1, dtype=torch.long)
        g_of_ex[items.ex] = torch.arange(items.ex.numel())
        g = g_of_ex[ex]
        return None if bool((g < 0).any()) else g

    # layouts ------------------------------------------------------------------------------

    def sampled_layout(self, phase: str) -> Layout:
        """Every rank's items of `phase` in sampled order (rows of your local tensors go in this order)."""
        key = ("sampled", phase)
        if key not in self._cache:
            keys = self._items(phase).keys
            order, counts = self._sampled(phase)
            flat = [keys[g] for g in order.tolist()]
            ends = torch.cumsum(counts, 0).tolist()
            self._cache[key] = [flat[e - c: e] for e, c in zip(ends, counts.tolist())]
        return self._cache[key]

    def planned_layout(self, phase: str) -> Layout:
        """Every rank's items of `phase` in the plan's order (the plan's `ranks[r].items`)."""
        key = ("planned", phase)
        if key not in self._cache:
            self._cache[key] = [r["items"] for r in self._planned[phase]["ranks"]]
        return self._cache[key]

    def local_keys(self, phase: str, planned: bool = False) -> List[Key]:
        """This rank's item keys of `phase`, sampled (default) or planned order."""
        return list((self.planned_layout(phase) if planned else self.sampled_layout(phase))[self.rank])

    def item_tokens(self, phase: str) -> Dict[Key, int]:
        """Item length in tokens as the planner counts it (segment length; or Σ ceil(L·scale))."""
        key = ("tokens", phase)
        if key not in self._cache:
            items = self._items(phase)
            self._cache[key] = dict(zip(items.keys, items.tokens.tolist()))
        return self._cache[key]

    # exchanges ----------------------------------------------------------------------------

    def dispatch(self, phase: str, rows: Optional[RowsFn] = None) -> Exchange:
        """Sampled layout → the phase's planned layout.

        rows: rows per item. Segment phases: rows(length, modality) (default: the length, e.g.
        one row per patch/frame). Example phases: rows(example_dict) (default: the item's token
        count; pass e.g. `lambda e: e["text"]` to move only the text tokens).
        """
        items = self._items(phase)
        # Rows per item g (callbacks called once per item, in item order).
        if rows is None:
            row_g = items.tokens
        elif self._is_segment(phase):
            row_g = torch.tensor([int(rows(L, m)) for L, m in zip(items.tokens.tolist(), items.mod_names())], dtype=torch.long)
        else:
            row_g = torch.tensor(list(map(int, map(rows, [self.examples[i] for i in items.ex.tolist()]))), dtype=torch.long)
        order, counts = self._sampled(phase)
        planned = self._planned_numbers(phase, items)
        if planned is None or not 0 <= self.rank < self.world:
            return Exchange(self.sampled_layout(phase), self.planned_layout(phase), dict(zip(items.keys, row_g.tolist())),
                            self.rank, self.group)
        # Source numbering = sampled order: item g is source number at[g].
        g_dst, dst_counts = planned
        at = torch.empty_like(order)
        at[order] = torch.arange(order.numel())
        lo = int(counts[: self.rank].sum())
        src_keys = [items.keys[g] for g in order[lo: lo + int(counts[self.rank])].tolist()]
        return Exchange._numbered(self.rank, self.world, self.group, counts, row_g[order], at[g_dst], dst_counts,
                                  src_keys, list(self.planned_layout(phase)[self.rank]))

    def route(
        self,
        phases: Union[str, Sequence[str]],
        to: Optional[str] = None,
        rows: Optional[RowsFn] = None,
    ) -> "RouteExchange":
        """Encoder outputs → the rank holding their example in phase `to` (default: the last
        `unit: "example"` phase).

        Source: on each rank, the planned items of `phases` (in the order given), i.e. the
        encoder outputs in the order the encoders computed them. Destination: on each rank, for
        every example of `to` in planned order, its segments of each of `phases`, in k order, so
        that `split_by_item()` yields each example's encoder outputs contiguously.
        rows(length, modality): outputs per segment (default: ceil(length × scale) with the
        target phase's scale, the token count the planner charged the backbone for).
        """
        long = torch.long
        names = [phases] if isinstance(phases, str) else list(phases)
        if to is None:
            examples_phases = [p["name"] for p in self.config["phases"] if p.get("unit", "segment") == "example"]
            if not examples_phases:
                raise ValueError("no unit:'example' phase to route to")
            to = examples_phases[-1]
        scale = self.phases[to].get("scale", {})
        src: Layout = [[] for _ in range(self.world)]
        for name in names:
            for r, keys in enumerate(self.planned_layout(name)):
                src[r].extend(keys)
        # The routed items: each phase's segments, numbered u = base[p] + g (phase p's g).
        tables = [self._segment_items(self.phases[n]["modalities"]) for n in names]
        sizes = [len(t.keys) for t in tables]
        base = [sum(sizes[:p]) for p in range(len(tables))]
        to_layout = self.planned_layout(to)

        # Destination: for each example of `to` in planned order, its items of each phase in turn.
        dst_ex = self._planned_examples(to)
        dst_ex_rank = torch.repeat_interleave(torch.arange(len(to_layout)), torch.tensor([len(k) for k in to_layout], dtype=long))
        if tables:
            starts = torch.stack([b + t.first[dst_ex] for b, t in zip(base, tables)], 1)
            lens = torch.stack([t.per_example[dst_ex] for t in tables], 1)
        else:
            starts = lens = torch.zeros(dst_ex.numel(), 0, dtype=long)
        dst_u = _ranges(starts.reshape(-1), lens.reshape(-1))
        items_per_ex = lens.sum(1)

        # Rows per destination item (callbacks once per item, in destination order).
        all_tokens = torch.cat([t.tokens for t in tables]) if tables else torch.zeros(0, dtype=long)
        # Modality of each u, as an index into all_names (each table's mods, in turn).
        mod_base = [sum(len(x.mods) for x in tables[:p]) for p in range(len(tables))]
        all_mod = torch.cat([t.mod + b for t, b in zip(tables, mod_base)]) if tables else torch.zeros(0, dtype=long)
        all_names = [m for t in tables for m in t.mods]
        if rows is None:
            row_u = torch.zeros_like(all_tokens)
            for j, m in enumerate(all_names):
                sel = all_mod == j
                row_u[sel] = _ceil_scaled(all_tokens[sel], scale.get(m, 1))
            row_dst = row_u[dst_u]
        else:
            names_dst = [all_names[j] for j in all_mod[dst_u].tolist()]
            row_dst = torch.tensor([int(rows(L, m)) for L, m in zip(all_tokens[dst_u].tolist(), names_dst)], dtype=long)

        # This rank's examples' total rows (what split_by_item splits by).
        ex_rows = torch.zeros(dst_ex.numel(), dtype=long).index_add_(
            0, torch.repeat_interleave(torch.arange(dst_ex.numel()), items_per_ex), row_dst)
        mine = (dst_ex_rank == self.rank).nonzero().squeeze(1)
        item_rows: List[int] = ex_rows[mine].tolist()

        all_keys = list(chain.from_iterable(t.keys for t in tables))
        numbered = self._route_numbering(names, tables, base, src, to_layout, dst_u)
        if numbered is None:
            # Irregular: the string-keyed path, with its errors.
            dst_flat = [all_keys[u] for u in dst_u.tolist()]
            dst_counts = torch.zeros(len(to_layout), dtype=long).index_add_(0, dst_ex_rank, items_per_ex).tolist()
            ends = list(accumulate(dst_counts))
            dst = [dst_flat[e - c: e] for e, c in zip(ends, dst_counts)]
            counts = dict(zip(dst_flat, row_dst.tolist()))
            if len(dst_flat) != sum(len(x) for x in src):
                placed = set(dst_flat)
                missing = [k for keys in src for k in keys if k not in placed]
                raise ValueError(f"phase {to!r} does not hold the examples of {missing[:3]}: route to a phase that includes them")
            return RouteExchange(src, dst, counts, self.rank, self.group, list(to_layout[self.rank]), item_rows)

        src_u, src_counts = numbered
        at = torch.empty_like(src_u)
        at[src_u] = torch.arange(src_u.numel())
        row_src = torch.empty_like(row_dst)
        row_src[at[dst_u]] = row_dst
        dst_counts = torch.zeros(self.world, dtype=long).index_add_(0, dst_ex_rank, items_per_ex)
        dlo = int(dst_counts[: self.rank].sum())
        dst_keys = [all_keys[u] for u in dst_u[dlo: dlo + int(dst_counts[self.rank])].tolist()]
        ex = RouteExchange._numbered(self.rank, self.world, self.group, src_counts, row_src, at[dst_u], dst_counts,
                                     list(src[self.rank]), dst_keys)
        ex.item_keys = list(to_layout[self.rank])
        ex.item_rows = item_rows
        return ex

    def _route_numbering(self, names: List[str], tables: List[_Items], base: List[int], src: Layout,
                         to_layout: Layout, dst_u: torch.Tensor) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
        """(u of each source item in source order, source items per rank), or None when the
        route is irregular and must go through the string-keyed constructor: keys that may
        repeat, a planned layout that is not a permutation of its phase's items, a destination
        that does not hold every source item exactly once, a rank outside the world."""
        long = torch.long
        if not 0 <= self.rank < self.world or len(to_layout) != self.world:
            return None
        # Keys are distinct across the routed phases when each phase's keys are distinct and the
        # phases share no modality whose name could blur the "<id>/<m>/<k>" split.
        all_mods = [m for t in tables for m in t.mods]
        if len(set(all_mods)) != len(all_mods) or not all(isinstance(m, str) and "/" not in m for m in all_mods):
            return None
        planned = []
        for name, t in zip(names, tables):
            numbers = self._planned_numbers(name, t)
            if numbers is None:
                return None
            planned.append(numbers)
        total = sum(len(t.keys) for t in tables)
        if dst_u.numel() != total or bool((torch.bincount(dst_u, minlength=total) != 1).any()):
            return None
        # Source order: rank-major, then the phases in the order given, then planned order. Each
        # phase's planned items are rank-major already, so each item's source position is its
        # rank's start + the items of earlier phases on that rank + its offset within the rank.
        src_counts = torch.tensor([len(keys) for keys in src], dtype=long)
        before = torch.cumsum(src_counts, 0) - src_counts
        src_u = torch.empty(total, dtype=long)
        for b, (g, per_rank) in zip(base, planned):
            r = torch.repeat_interleave(torch.arange(self.world), per_rank)
            rank_lo = torch.cumsum(per_rank, 0) - per_rank
            src_u[before[r] + torch.arange(g.numel()) - rank_lo[r]] = b + g
            before = before + per_rank
        return src_u, src_counts


class RouteExchange(Exchange):
    """An Exchange whose destination rows are grouped by destination example (see StepPlan.route)."""

    def __init__(self, src: Layout, dst: Layout, rows: Mapping[Key, int], rank: int, group: Any,
                 item_keys: List[Key], item_rows: List[int]) -> None:
        super().__init__(src, dst, rows, rank, group)
        self.item_keys = list(item_keys)
        self.item_rows = list(item_rows)

    def split_by_item(self, y: torch.Tensor) -> List[torch.Tensor]:
        """The routed rows of each destination example, in planned order (empty for an example
        without segments in the routed phases)."""
        return list(torch.split(y, self.item_rows, dim=0))
