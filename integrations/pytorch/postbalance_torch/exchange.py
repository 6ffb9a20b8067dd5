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
        self.rank, self.world, self.group = rank, world, group
        self._src, self._dst, self._rows = src, dst, rows
        self.src_keys: List[Key] = list(src[rank])
        self.dst_keys: List[Key] = list(dst[rank])
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
        owner = torch.repeat_interleave(torch.arange(world), src_counts)
        row = torch.tensor([rows[k] for k in flat_src], dtype=long)
        try:
            dst_idx = torch.tensor([index[k] for keys in dst for k in keys], dtype=long)
        except KeyError as e:
            raise ValueError(f"destination item {e.args[0]!r} is in no rank's source layout") from None
        if dst_idx.numel() != n or bool((torch.bincount(dst_idx, minlength=n) != 1).any()):
            raise ValueError("the destination layout must hold every source item exactly once")
        dst_rank = torch.repeat_interleave(torch.arange(world), torch.tensor([len(keys) for keys in dst], dtype=long))

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
        return Exchange(self._dst, self._src, self._rows, self.rank, self.group)

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


class StepPlan:
    """A plan plus the global batch it was made from: builds the exchanges of one step.

    `global_examples` is the all-gathered batch (rank order, then sampled order), so this rank's
    sampled examples are those with `rank == self.rank`, in the order it sampled them.
    Every rank walks the whole batch to build its exchanges (that is what spares communicating
    counts), so per-example facts are computed once here and layouts are cached.
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
        self._ids: List[str] = [_js_id(e["id"]) for e in self.examples]
        self._ranks: List[int] = [int(e["rank"]) for e in self.examples]
        # Segment lengths per example and modality (only the modalities it has).
        self._segs: List[Dict[str, List[int]]] = [
            {m: segment_lengths(e.get(m)) for m in mods if e.get(m) is not None} for e in self.examples
        ]
        self._index: Dict[str, int] = {eid: i for i, eid in enumerate(self._ids)}
        self.by_id: Dict[str, Mapping[str, Any]] = {eid: e for eid, e in zip(self._ids, self.examples)}
        self.phases: Dict[str, Mapping[str, Any]] = {p["name"]: p for p in config["phases"]}
        self._planned: Dict[str, Mapping[str, Any]] = {p["name"]: p for p in plan["phases"]}
        self._cache: Dict[Tuple[str, str], Any] = {}

    # layouts ------------------------------------------------------------------------------

    def _segments(self, i: int, modalities: Sequence[str]) -> List[Tuple[Key, str, int]]:
        """(key, modality, length) of example i's segments of these modalities, in item order."""
        eid, segs = self._ids[i], self._segs[i]
        return [(f"{eid}/{m}/{k}", m, L) for m in modalities if m in segs for k, L in enumerate(segs[m])]

    def _phase_segments(self, phase: str) -> List[List[Tuple[Key, str, int]]]:
        """_segments of every example for a phase's modalities, computed once per phase."""
        key = ("segments", phase)
        if key not in self._cache:
            mods = self.phases[phase]["modalities"]
            self._cache[key] = [self._segments(i, mods) for i in range(len(self.examples))]
        return self._cache[key]

    def _has_any(self, i: int, modalities: Sequence[str]) -> bool:
        segs = self._segs[i]
        return any(segs.get(m) for m in modalities)

    def _is_segment(self, phase: str) -> bool:
        return self.phases[phase].get("unit", "segment") == "segment"

    def sampled_layout(self, phase: str) -> Layout:
        """Every rank's items of `phase` in sampled order (rows of your local tensors go in this order)."""
        key = ("sampled", phase)
        if key not in self._cache:
            mods = self.phases[phase]["modalities"]
            layout: Layout = [[] for _ in range(self.world)]
            if self._is_segment(phase):
                for i, segs in enumerate(self._phase_segments(phase)):
                    layout[self._ranks[i]].extend(k for k, _, _ in segs)
            else:
                for i in range(len(self.examples)):
                    if self._has_any(i, mods):
                        layout[self._ranks[i]].append(self._ids[i])
            self._cache[key] = layout
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

    def _item_rows(self, phase: str, seg_rows: Optional[RowsFn], ex_rows: Optional[RowsFn]) -> Dict[Key, int]:
        mods = self.phases[phase]["modalities"]
        out: Dict[Key, int] = {}
        if self._is_segment(phase):
            for segs in self._phase_segments(phase):
                for k, m, L in segs:
                    out[k] = L if seg_rows is None else int(seg_rows(L, m))
        else:
            scale = self.phases[phase].get("scale", {})
            for i, e in enumerate(self.examples):
                if self._has_any(i, mods):
                    out[self._ids[i]] = (
                        sum(math.ceil(L * scale.get(m, 1)) for _, m, L in self._segments(i, mods))
                        if ex_rows is None else int(ex_rows(e))
                    )
        return out

    def item_tokens(self, phase: str) -> Dict[Key, int]:
        """Item length in tokens as the planner counts it (segment length; or Σ ceil(L·scale))."""
        key = ("tokens", phase)
        if key not in self._cache:
            self._cache[key] = self._item_rows(phase, None, None)
        return self._cache[key]

    # exchanges ----------------------------------------------------------------------------

    def dispatch(self, phase: str, rows: Optional[RowsFn] = None) -> Exchange:
        """Sampled layout → the phase's planned layout.

        rows: rows per item. Segment phases: rows(length, modality) (default: the length, e.g.
        one row per patch/frame). Example phases: rows(example_dict) (default: the item's token
        count; pass e.g. `lambda e: e["text"]` to move only the text tokens).
        """
        if rows is None:
            counts = self.item_tokens(phase)
        elif self._is_segment(phase):
            counts = self._item_rows(phase, rows, None)
        else:
            counts = self._item_rows(phase, None, rows)
        return Exchange(self.sampled_layout(phase), self.planned_layout(phase), counts, self.rank, self.group)

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
        names = [phases] if isinstance(phases, str) else list(phases)
        if to is None:
            examples_phases = [p["name"] for p in self.config["phases"] if p.get("unit", "segment") == "example"]
            if not examples_phases:
                raise ValueError("no unit:'example' phase to route to")
            to = examples_phases[-1]
        scale = self.phases[to].get("scale", {})
        rows_fn: RowsFn = rows if rows is not None else (lambda L, m: math.ceil(L * scale.get(m, 1)))
        src: Layout = [[] for _ in range(self.world)]
        for name in names:
            for r, keys in enumerate(self.planned_layout(name)):
                src[r].extend(keys)
        counts: Dict[Key, int] = {}
        per_phase = [self._phase_segments(n) for n in names]
        dst: Layout = []
        item_rows: List[int] = []
        for r, keys in enumerate(self.planned_layout(to)):
            lst: List[Key] = []
            for eid in keys:
                total = 0
                i = self._index[eid]
                for k, m, L in (seg for segs in per_phase for seg in segs[i]):
                    n = int(rows_fn(L, m))
                    counts[k] = n
                    lst.append(k)
                    total += n
                if r == self.rank:
                    item_rows.append(total)
            dst.append(lst)
        if sum(len(x) for x in dst) != sum(len(x) for x in src):
            placed = {k for lst in dst for k in lst}
            missing = [k for keys in src for k in keys if k not in placed]
            raise ValueError(f"phase {to!r} does not hold the examples of {missing[:3]}: route to a phase that includes them")
        return RouteExchange(src, dst, counts, self.rank, self.group, list(self.planned_layout(to)[self.rank]), item_rows)


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
