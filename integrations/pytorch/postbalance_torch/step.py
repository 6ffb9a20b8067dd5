"""The plan of one training step: all-gather the lengths, plan, and build the exchanges that move
each phase's data between the sampled layout and the plan's.

Items. The planner numbers each phase's items in its documented item order (docs/FORMAT.md):
examples in global-batch order; within an example, for an encoder phase (``unit: "segment"``)
one item per segment, the phase's modalities in config order, then segment k; for a backbone
phase (``unit: "example"``) one item per example that has any of the phase's modalities. The
compact plan gives, per phase, the rank of every item in that order; this module numbers the
items the same way from the lengths (integer tensors, no per-item strings) and reads the ranks
off. Item keys (``"<id>/<modality>/<k>"`` or ``"<id>"``) are built only when asked for.

Layouts. The *sampled* layout of a phase is, on each rank, its own examples in the order it
sampled them, then the phase's modalities, then k: the items of that rank in item order. The
*planned* layout is, on each rank, the items the plan gives it, in item order.
"""
from __future__ import annotations

import hashlib
import json
import math
import operator
import time
from itertools import chain, compress, repeat
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union, cast

import torch
import torch.distributed as dist

from .exchange import SCHEDULES, Exchange, Key, Layout, RouteExchange, ranges
from .groups import dp_rank_size, group_ranks
from .planner import Planner, PlannerError, compact_batch, wire_id

__all__ = ["StepPlan", "check_config_ranks", "default_schedule", "gather_examples", "local_meta", "plan_digest", "plan_step", "ranks_per_node", "segment_lengths"]

#: rows(length, modality) for segment items, rows(example) for example items.
RowsFn = Callable[..., int]


class _UnknownPhase(ValueError, KeyError):
    """A phase name the config lacks: a ValueError as the other bad arguments are, still a
    KeyError for callers that caught the earlier KeyError (its message without KeyError's quotes)."""

    __str__ = ValueError.__str__


def segment_lengths(value: Any) -> List[int]:
    """The segments of one modality of an example dict (the CLI's input contract).

    Args:
        value: a length (one segment), a sequence of lengths (list, tuple, numpy array, 1-d
            tensor), or None / missing (no segment).

    Returns:
        The segment lengths as Python ints.

    Raises:
        ValueError: a length that is not a whole number (1.5 is refused, as the planner refuses
            it; 576.0 is 576).
        TypeError: a length that is not a number.
    """
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [_whole(v) for v in value]
    if hasattr(value, "tolist") and getattr(value, "ndim", 1) != 0:
        return [_whole(v) for v in value.tolist()]
    return [_whole(value)]


def _whole(v: Any) -> int:
    """An integer length of any common type; a float only where it is a whole number."""
    if isinstance(v, float):
        if not v.is_integer():
            raise ValueError(f"length must be an integer, got {v!r}")
        return int(v)
    return operator.index(v)


def _index(v: Any, name: str, least: int) -> int:
    """An integer argument of any common type (int, numpy integer, 0-d integer tensor) that is
    at least ``least``, else ValueError naming it."""
    try:
        i = operator.index(v) if not isinstance(v, bool) else None
    except TypeError:
        i = None
    if i is None or i < least:
        raise ValueError(f"{name} must be a {'non-negative' if least == 0 else 'positive'} integer, got {v!r}")
    return i


def _long_column(values: Any, what: str) -> torch.Tensor:
    """A 1-d long tensor of integers, else ValueError saying ``what`` is malformed."""
    try:
        t = torch.as_tensor(values)
        ok = t.dim() == 1 and (t.numel() == 0 or not (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool))
    except (TypeError, ValueError, RuntimeError, OverflowError):
        ok = False
    if not ok:
        raise ValueError(f"{what} must be a list of integers, got {repr(values)[:60]}")
    return t.long()


def _rank_world(group: Optional[dist.ProcessGroup]) -> Tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(group), dist.get_world_size(group)
    return 0, 1


def ranks_per_node(config: Mapping[str, Any]) -> int:
    """The config's ``ranksPerNode`` as the engine reads it: default 8, capped at ``ranks``."""
    return int(min(int(config.get("ranksPerNode", 8)), int(config["ranks"])))


def default_schedule(config: Mapping[str, Any]) -> str:
    """The exchange schedule a config implies: ``"node"`` (node-wise) when the ranks span more
    than one whole node of more than one rank, else ``"flat"``."""
    ranks, per_node = int(config["ranks"]), ranks_per_node(config)
    return "node" if 1 < per_node < ranks and ranks % per_node == 0 else "flat"


def _modalities(config: Mapping[str, Any]) -> List[str]:
    out: List[str] = []
    for p in config["phases"]:
        for m in p["modalities"]:
            if m not in out:
                out.append(m)
    return out


def gather_examples(local: Sequence[Mapping[str, Any]], config: Mapping[str, Any],
                    group: Optional[dist.ProcessGroup] = None) -> List[Dict[str, Any]]:
    """All-gathers every rank's sampled examples.

    Only the id, the sampling rank and the config's modality lengths travel (a few integers per
    example).

    Args:
        local: this rank's examples, in the order it sampled them.
        config: the planner config.
        group: the process group (default: the world).

    Returns:
        The global batch: rank 0's examples, then rank 1's, …, each with ``rank`` set to the rank
        that sampled it.
    """
    rank, world = _rank_world(group)
    if world == 1:
        return local_meta(local, config, rank)
    # A bad example on one rank is the same PlannerError on every rank, not a raise on that
    # rank while the others wait in the all-gather.
    try:
        mine: Any = local_meta(local, config, rank)
    except PlannerError as e:
        mine = {"error": f"rank {rank}: {e}"}
    parts: List[Any] = [None] * world
    dist.all_gather_object(parts, mine, group=group)
    raise_gathered_error(parts)
    return [e for part in parts for e in part]


def raise_gathered_error(parts: Sequence[Any]) -> None:
    """Raises the first rank's error among all-gathered parts (``{"error": ...}``), if any."""
    for p in parts:
        if isinstance(p, dict) and "error" in p:
            raise PlannerError(p["error"])


def local_meta(local: Sequence[Mapping[str, Any]], config: Mapping[str, Any], rank: int) -> List[Dict[str, Any]]:
    """What travels of this rank's examples: id, sampling rank, the config's modality lengths."""
    mods = _modalities(config)
    mine = []
    if isinstance(local, (str, bytes, Mapping)) or not isinstance(local, Iterable):
        raise PlannerError(f"examples: must be a list of example dicts, got {repr(local)[:60]}")
    for i, e in enumerate(local):
        if not isinstance(e, Mapping):
            raise PlannerError(f"batch example {i}: must be a dict like {{'id': ..., 'text': 12}}, got {repr(e)[:60]}")
        if "id" not in e:
            raise PlannerError(f'batch example {i}: has no "id"')
        d: Dict[str, Any] = {"id": e["id"], "rank": rank}
        for m in mods:
            if e.get(m) is not None:
                d[m] = e[m]
        mine.append(d)
    return mine


def plan_digest(plan: Mapping[str, Any]) -> str:
    """Digest of a plan without its timings: equal on every rank when the plans agree.

    Args:
        plan: a plan dict (full or compact form).

    Returns:
        A hex SHA-256 digest.
    """
    body = {k: v for k, v in plan.items() if k != "stats"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def plan_step(
    local: Sequence[Mapping[str, Any]],
    config: Mapping[str, Any],
    planner: Optional[Planner] = None,
    mode: str = "local",
    src: int = 0,
    group: Optional[dist.ProcessGroup] = None,
    verify: bool = False,
    algorithm: Optional[str] = None,
    timeout: Optional[float] = None,
    rank: Optional[int] = None,
    schedule: Optional[str] = None,
) -> "StepPlan":
    """Plans this step's global batch over the data-parallel group.

    The plan is requested in the compact form (the rank of every item, as integers). With
    tensor, pipeline or context parallelism, pass the DP group: the ranks of one TP/CP group
    sample the same examples and get the same plan, each in its own DP group.

    Args:
        local: this rank's examples, in the order it sampled them: dicts with ``id`` and the
            config's modalities (``rank`` is set here).
        config: the planner config.
        planner: a started :class:`Planner` (every rank with ``mode="local"``; rank ``src`` with
            ``mode="broadcast"``).
        mode: ``"local"``: every rank plans the all-gathered batch itself (plans are
            deterministic, so they agree; no plan travels). ``"broadcast"``: rank ``src`` plans
            and broadcasts the plan; only that rank needs a planner.
        src: the planning rank's index in ``group`` with ``mode="broadcast"``.
        group: the data-parallel process group (default: the world). Its size must divide the
            world and equal the config's ``ranks``.
        verify: check with one all-gather of a digest that every rank has the same plan.
        algorithm: this step's algorithm (default: the planner's).
        timeout: seconds the planner may take (default: the planner's).
        rank: this rank's index in ``group``, if the caller wants it checked (default: read
            from the group).
        schedule: the exchanges' default schedule, ``"node"`` or ``"flat"`` (default:
            :func:`default_schedule` of the config).

    Returns:
        The :class:`StepPlan` that builds this step's exchanges.

    Raises:
        ValueError: a missing planner or an unknown mode or schedule.
        PlannerError: the DP group does not divide the world, the config's ``ranks`` is not
            its size, ``rank`` is not this process's index in it, or the planner rejected the
            batch or failed. Checked before any collective: no rank gets a partial plan.
        RuntimeError: with ``verify``, the ranks' plans differ.
    """
    rank, world = dp_rank_size(group, rank)
    check_config_ranks(config, world)
    if mode not in ("local", "broadcast"):
        raise ValueError(f"mode must be 'local' or 'broadcast', got {mode!r}")
    if schedule is not None and schedule not in SCHEDULES:
        raise ValueError(f"schedule must be 'flat' or 'node', got {schedule!r}")
    if mode == "broadcast" and not 0 <= src < world:
        raise PlannerError(f"src {src}: the planning rank must be an index in the data-parallel group [0, {world})")
    t0 = time.perf_counter()
    global_examples = gather_examples(local, config, group)
    t1 = time.perf_counter()

    def make_plan(p: Optional[Planner], who: str) -> Dict[str, Any]:
        if p is None:
            raise ValueError(f"mode={mode!r} needs a Planner on {who}")
        c = compact_batch(global_examples, _modalities(config))
        return p.plan_compact(c["ranks"], c["lengths"], ids=c["ids"], algorithm=algorithm, timeout=timeout, format="compact")

    if mode == "local":
        plan = make_plan(planner, "every rank")
    else:
        box: List[Any] = [None]
        if rank == src:
            try:
                box[0] = make_plan(planner, f"rank {src}")
            except PlannerError as e:
                # Every rank raises the same error instead of waiting for a plan that never comes.
                box[0] = {"error": str(e)}
        if world > 1:
            # broadcast_object_list names the source by its global rank.
            dist.broadcast_object_list(box, src=group_ranks(group)[src], group=group)
        plan = box[0]
        if "error" in plan:
            raise PlannerError(plan["error"])
    if verify and world > 1:
        digests: List[Any] = [None] * world
        dist.all_gather_object(digests, plan_digest(plan), group=group)
        if len(set(digests)) != 1:
            raise RuntimeError(f"ranks disagree on the plan: digests {digests}")
    t2 = time.perf_counter()
    step = StepPlan(plan, global_examples, config, rank=rank, world_size=world, group=group, schedule=schedule)
    t3 = time.perf_counter()
    step.timings = {"gather": (t1 - t0) * 1e3, "wait": (t2 - t1) * 1e3, "build": (t3 - t2) * 1e3, "critical": (t3 - t0) * 1e3}
    return step


def check_config_ranks(config: Mapping[str, Any], dp_size: int) -> None:
    """The config must plan for exactly the DP group's ranks.

    Raises:
        PlannerError: it does not.
    """
    ranks = config.get("ranks") if isinstance(config, Mapping) else None
    if ranks != dp_size:
        raise PlannerError(f"config ranks is {ranks!r}, but the data-parallel group has {dp_size} ranks: "
                           "plan for the DP group (tensor/pipeline/context-parallel peers share a DP rank)")


def _segment_columns(examples: Sequence[Mapping[str, Any]], mods: Sequence[str]) -> Dict[str, Tuple[torch.Tensor, torch.Tensor]]:
    """Per modality: (segments per example, their lengths in example order), the batch's
    segments as integer columns (CSR)."""
    long = torch.long
    none = type(None)
    cols: Dict[str, Tuple[torch.Tensor, torch.Tensor]] = {}
    for m in mods:
        values = [e.get(m) for e in examples]
        # The common column shapes (all lists of ints, or all ints, with gaps) without a Python
        # call per example; anything else (numpy, tensors) through segment_lengths.
        kinds = set(map(type, values))
        segs: List[Any]
        if kinds <= {list, none} and all(type(x) is int for v in values if v for x in v):
            segs = [v or () for v in values]
        elif kinds <= {int, none}:
            segs = [() if v is None else (v,) for v in values]
        else:
            segs = []
            for i, v in enumerate(values):
                try:
                    segs.append(segment_lengths(v))
                except (TypeError, ValueError):
                    raise ValueError(f'batch example {i}, field "{m}": lengths must be integers, got {v!r}') from None
        cols[m] = (torch.tensor(list(map(len, segs)), dtype=long), torch.tensor(list(chain.from_iterable(segs)), dtype=long))
    return cols


def _ceil_scaled(lengths: torch.Tensor, scale: Any) -> torch.Tensor:
    """``math.ceil(L × scale)`` per length with Python floats, as the planner computes it, once
    per distinct length: there are few (image sizes, clip lengths)."""
    if lengths.numel() == 0:
        return lengths.clone()
    values, inverse = torch.unique(lengths, return_inverse=True)
    return torch.tensor([math.ceil(v * scale) for v in values.tolist()], dtype=torch.long)[inverse]


class _Items:
    """A phase's items numbered g = 0..n-1 in the planner's item order. Every per-item fact is an
    integer tensor over g; string keys are made on first use only."""

    def __init__(self, ids: Sequence[str], ex: torch.Tensor, tokens: torch.Tensor, per_example: torch.Tensor,
                 mods: Sequence[str], mod: Optional[torch.Tensor]) -> None:
        self._ids = ids                   # every example's id (as the plan spells it)
        self.ex = ex                      # example index per g
        self.tokens = tokens              # segment length, or Σ ceil(L × scale) of an example item
        self.per_example = per_example    # items per example (an example's items are contiguous)
        self.first = torch.cumsum(per_example, 0) - per_example
        self.mods = list(mods)
        self.mod = mod                    # segment items: index into mods per g; None for example items
        self._keys: Optional[List[Key]] = None

    def __len__(self) -> int:
        return self.ex.numel()

    @property
    def keys(self) -> List[Key]:
        """Item key per g: "<id>/<modality>/<k>" (segment items) or "<id>" (example items)."""
        if self._keys is None:
            if self.mod is None:
                self._keys = [self._ids[e] for e in self.ex.tolist()]
            else:
                # Each (example, modality) pair's prefix "<id>/<m>/" plus k, from prebuilt pieces.
                M = len(self.mods)
                counts = torch.zeros(len(self._ids) * M, dtype=torch.long)
                counts.index_add_(0, self.ex * M + self.mod, torch.ones_like(self.ex))
                pc = counts.tolist()
                ks = [str(k) for k in range(max(pc, default=0))]
                prefixes = chain.from_iterable(zip(*[map(operator.add, self._ids, repeat(f"/{m}/")) for m in self.mods]))
                self._keys = [p + k for p, c in zip(prefixes, pc) if c for k in ks[:c]]
        return self._keys

    def mod_names(self) -> List[str]:
        assert self.mod is not None
        return [self.mods[j] for j in self.mod.tolist()]


class StepPlan:
    """A plan plus the global batch it was made from: builds the exchanges of one step.

    Every rank walks the whole batch to build its exchanges (that is what spares communicating
    counts), so the lengths are read once into integer columns, each phase's items are numbered
    once, and exchanges are built on those numbers.

    Args:
        plan: the planner's plan for ``global_examples``, compact form (``plan_step`` asks for
            it) or full form.
        global_examples: the all-gathered batch (rank order, then sampled order), as
            :func:`gather_examples` returns it.
        config: the planner config.
        rank: this rank's index in the DP group (default: its rank in ``group``).
        world_size: the number of DP ranks (default: the size of ``group``).
        group: the data-parallel process group exchanges run on (default: the world).
        schedule: the exchanges' default schedule, ``"node"`` or ``"flat"`` (default:
            :func:`default_schedule` of the config).

    Raises:
        ValueError: the plan is for another number of ranks or another batch, or an example's
            rank is outside the world.
    """

    def __init__(
        self,
        plan: Mapping[str, Any],
        global_examples: Sequence[Mapping[str, Any]],
        config: Mapping[str, Any],
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
        group: Optional[dist.ProcessGroup] = None,
        schedule: Optional[str] = None,
    ) -> None:
        r, w = _rank_world(group)
        self.world = w if world_size is None else _index(world_size, "world_size", 1)
        # A rank outside the world would index another rank's items (a negative one silently).
        self.rank = r if rank is None else _index(rank, "rank", 0)
        if self.rank >= self.world:
            raise ValueError(f"rank must be in [0, {self.world}), got {self.rank}")
        if plan["ranks"] != self.world:
            raise ValueError(f"plan is for {plan['ranks']} ranks, the process group has {self.world}")
        self.plan = plan
        self.config = config
        self.group = group
        if schedule is not None and schedule not in SCHEDULES:
            raise ValueError(f"schedule must be 'flat' or 'node', got {schedule!r}")
        #: The exchanges' default schedule.
        self.schedule: str = schedule or default_schedule(config)
        #: DP ranks per node (the config's ``ranksPerNode``): node = DP index div this.
        self.ranks_per_node = ranks_per_node(config)
        #: Where this step's planning time went, in ms (set by :func:`plan_step` and
        #: :func:`~postbalance_torch.plan_ahead`): ``gather`` (the lengths' all-gather),
        #: ``wait`` (for the plan), ``build`` (this object), ``critical`` (what the training
        #: loop waited in all).
        self.timings: Dict[str, float] = {}
        self.examples = list(global_examples)
        try:
            self._ids: List[str] = [wire_id(e["id"], f'batch example {i}, field "id"') for i, e in enumerate(self.examples)]
        except PlannerError as e:
            raise ValueError(str(e)) from None
        ranks = torch.tensor([int(e["rank"]) for e in self.examples], dtype=torch.long)
        bad = ((ranks < 0) | (ranks >= self.world)).nonzero()
        if bad.numel():
            i = int(bad[0])
            raise ValueError(f'batch example {i}, field "rank": must be in [0, {self.world}), got {int(ranks[i])}')
        self._example_rank = ranks
        self._cols = _segment_columns(self.examples, _modalities(config))
        #: Every example of the global batch by id (as the plan spells it: integers in decimal).
        self.by_id: Dict[str, Mapping[str, Any]] = dict(zip(self._ids, self.examples))
        self.phases: Dict[str, Mapping[str, Any]] = {p["name"]: p for p in config["phases"]}
        self._planned: Dict[str, Mapping[str, Any]] = {p["name"]: p for p in plan["phases"]}
        self._cache: Dict[Tuple[Any, ...], Any] = {}

    # items --------------------------------------------------------------------------------

    def _is_segment(self, phase: str) -> bool:
        return bool(self.phases[phase].get("unit", "segment") == "segment")

    def _segment_items(self, mods: Sequence[str]) -> _Items:
        """One item per segment of these modalities, in item order (cached)."""
        ck = ("segment items", tuple(mods))
        if ck in self._cache:
            return cast(_Items, self._cache[ck])
        long = torch.long
        n, M = len(self.examples), len(mods)
        if M == 0:
            empty = torch.zeros(0, dtype=long)
            items = _Items(self._ids, empty, empty, torch.zeros(n, dtype=long), mods, empty)
        else:
            cols = [self._cols[m] for m in mods]
            # pair (example e, modality j), row-major = item order; its segments are a run of lengths.
            counts = torch.stack([c for c, _ in cols], 1)
            pair_counts = counts.reshape(-1)
            sizes = torch.tensor([L.numel() for _, L in cols], dtype=long)
            base = torch.cumsum(sizes, 0) - sizes
            starts = torch.stack([base[j] + torch.cumsum(c, 0) - c for j, (c, _) in enumerate(cols)], 1).reshape(-1)
            tokens = torch.cat([L for _, L in cols])[ranges(starts, pair_counts)]
            per_example = counts.sum(1)
            ex = torch.repeat_interleave(torch.arange(n), per_example)
            mod = torch.repeat_interleave(torch.arange(M).repeat(n), pair_counts)
            items = _Items(self._ids, ex, tokens, per_example, mods, mod)
        self._cache[ck] = items
        return items

    def _items(self, phase: str) -> _Items:
        """The phase's items (cached). Example phases: one item per example with any segment of
        the phase's modalities, tokens Σ ceil(L × scale) over its segments."""
        if phase not in self.phases:
            raise _UnknownPhase(f"unknown phase {phase!r} (config phases: {', '.join(self.phases)})")
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
            self._cache[ck] = _Items(self._ids, ex, tokens[ex], present.long(), mods, None)
        return cast(_Items, self._cache[ck])

    def item_ranks(self, phase: str) -> torch.Tensor:
        """The rank the plan gives each item of ``phase``, in item order (cached).

        Args:
            phase: a phase name of the config.

        Returns:
            A long tensor with one entry per item.

        Raises:
            ValueError: the plan does not place this batch's items of the phase (another batch,
                or a full plan whose item lists are not these items exactly once).
        """
        ck = ("item ranks", phase)
        if ck not in self._cache:
            items = self._items(phase)
            planned = self._planned.get(phase)
            if planned is None:
                raise ValueError(f"the plan has no phase {phase!r}")
            n = len(items)
            if "rank" in planned:  # compact form: the rank of every item, in item order
                rank = torch.tensor(planned["rank"], dtype=torch.long)
                if rank.numel() != n:
                    raise ValueError(f"phase {phase!r}: the plan has {rank.numel()} items, this batch {n}: not the plan of this batch")
                if n and bool(((rank < 0) | (rank >= self.world)).any()):
                    raise ValueError(f"phase {phase!r}: the plan names a rank outside [0, {self.world})")
            else:  # full form: item keys per rank
                index = dict(zip(items.keys, range(n)))
                if len(index) != n:
                    raise ValueError(f"phase {phase!r}: two items have the same key (repeated example ids)")
                rank = torch.full((n,), -1, dtype=torch.long)
                layout = planned["ranks"]
                if len(layout) != self.world:
                    raise ValueError(f"phase {phase!r}: the plan has {len(layout)} ranks, the process group {self.world}")
                try:
                    g = torch.tensor([index[k] for entry in layout for k in entry["items"]], dtype=torch.long)
                except KeyError as e:
                    raise ValueError(f"phase {phase!r}: the plan's item {e.args[0]!r} is not an item of this batch") from None
                counts = torch.tensor([len(entry["items"]) for entry in layout], dtype=torch.long)
                if g.numel() != n or bool((torch.bincount(g, minlength=n) != 1).any()):
                    raise ValueError(f"phase {phase!r}: the plan does not place every item of this batch exactly once")
                rank[g] = torch.repeat_interleave(torch.arange(self.world), counts)
            self._cache[ck] = rank
        return cast(torch.Tensor, self._cache[ck])

    def _order(self, phase: str, planned: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        """(g of each item in layout order, items per rank): the items stably sorted by their
        sampling rank (sampled layout) or their plan rank (planned layout) (cached)."""
        ck = ("order", phase, planned)
        if ck not in self._cache:
            ranks = self.item_ranks(phase) if planned else self._example_rank[self._items(phase).ex]
            order = torch.sort(ranks, stable=True).indices
            self._cache[ck] = (order, torch.bincount(ranks, minlength=self.world))
        return cast(Tuple[torch.Tensor, torch.Tensor], self._cache[ck])

    # layouts ------------------------------------------------------------------------------

    def _layout(self, phase: str, planned: bool) -> Layout:
        ck = ("layout", phase, planned)
        if ck not in self._cache:
            keys = self._items(phase).keys
            order, counts = self._order(phase, planned)
            flat = [keys[g] for g in order.tolist()]
            ends = torch.cumsum(counts, 0).tolist()
            self._cache[ck] = [flat[e - c: e] for e, c in zip(ends, counts.tolist())]
        return cast(Layout, self._cache[ck])

    def _rank_keys(self, phase: str, planned: bool, rank: int) -> Callable[[], List[Key]]:
        def keys() -> List[Key]:
            all_keys = self._items(phase).keys
            order, counts = self._order(phase, planned)
            lo = int(counts[:rank].sum())
            return [all_keys[g] for g in order[lo: lo + int(counts[rank])].tolist()]
        return keys

    def sampled_layout(self, phase: str) -> Layout:
        """Every rank's item keys of ``phase`` in sampled order (rows of local tensors go in this order)."""
        return self._layout(phase, planned=False)

    def planned_layout(self, phase: str) -> Layout:
        """Every rank's item keys of ``phase`` in the plan's layout (item order on each rank)."""
        return self._layout(phase, planned=True)

    def local_keys(self, phase: str, planned: bool = False) -> List[Key]:
        """This rank's item keys of ``phase``.

        Args:
            phase: a phase name.
            planned: the planned layout instead of the sampled one.

        Returns:
            The keys, in layout order.
        """
        return self._rank_keys(phase, planned, self.rank)()

    def item_tokens(self, phase: str) -> Dict[Key, int]:
        """Item length in tokens as the planner counts it (segment length, or Σ ceil(L·scale)), by item key."""
        items = self._items(phase)
        return dict(zip(items.keys, items.tokens.tolist()))

    def local_tokens(self, phase: str, planned: bool = True) -> List[int]:
        """This rank's items' lengths as the cost model counts them (segment length, or
        Σ ceil(L·scale) of an example item): what ``postbalance fit`` wants as a sample's
        ``lengths`` for the items this rank ran.

        Args:
            phase: a phase name.
            planned: the planned layout (default; what this rank runs) or the sampled one.

        Returns:
            One int per item, in layout order (position i is item i of :meth:`local_keys`).
        """
        order, counts = self._order(phase, planned)
        lo = int(counts[: self.rank].sum())
        return cast(List[int], self._items(phase).tokens[order[lo: lo + int(counts[self.rank])]].tolist())

    # micro-batches ------------------------------------------------------------------------

    def item_micro_batches(self, phase: str) -> Tuple[torch.Tensor, int]:
        """The micro-batch the plan gives each item of ``phase``, in item order, and the
        phase's micro-batch count N (cached). A phase without ``microBatches`` in the config
        is one micro-batch: every item 0, N = 1.

        Raises:
            ValueError: the plan's micro-batches do not fit this batch (another batch's plan, or
                a value outside [0, N)).
        """
        ck = ("item micro-batches", phase)
        if ck not in self._cache:
            items = self._items(phase)
            planned = self._planned.get(phase)
            if planned is None:
                raise ValueError(f"the plan has no phase {phase!r}")
            n = len(items)
            if "microBatches" not in planned:
                mb, count = torch.zeros(n, dtype=torch.long), 1
            else:
                # A plan is the sidecar's, or the user's: a malformed one is a ValueError naming
                # the phase, not a KeyError or TypeError from inside.
                try:
                    count = operator.index(planned["microBatches"])
                    if "microBatch" in planned:   # compact form: one entry per item, in item order
                        mb = _long_column(planned["microBatch"], f"phase {phase!r}: the plan's microBatch")
                        if mb.dim() != 1 or mb.numel() != n:
                            raise ValueError(f"phase {phase!r}: the plan has {mb.numel()} micro-batch entries, this batch {n} items")
                    else:                          # full form: parallel to each rank's items
                        index = dict(zip(items.keys, range(n)))
                        mb = torch.full((n,), -1, dtype=torch.long)
                        for r, entry in enumerate(planned["ranks"]):
                            if len(entry.get("microBatch", ())) != len(entry["items"]):
                                raise ValueError(f"phase {phase!r}: rank {r}'s microBatch is not parallel to its items")
                            try:
                                g = torch.tensor([index[k] for k in entry["items"]], dtype=torch.long)
                            except KeyError as e:
                                raise ValueError(f"phase {phase!r}: the plan's item {e.args[0]!r} is not an item of this batch") from None
                            mb[g] = _long_column(entry["microBatch"], f"phase {phase!r}: rank {r}'s microBatch")
                except (KeyError, TypeError, AttributeError, RuntimeError) as e:
                    raise ValueError(f"phase {phase!r}: the plan's micro-batches are malformed ({type(e).__name__}: {e})") from None
                if n and bool(((mb < 0) | (mb >= count)).any()):
                    raise ValueError(f"phase {phase!r}: the plan names a micro-batch outside [0, {count})")
            self._cache[ck] = (mb, count)
        return cast(Tuple[torch.Tensor, int], self._cache[ck])

    def micro_batches(self, phase: str) -> List[List[int]]:
        """This rank's items of ``phase`` split into the plan's micro-batches, in order.

        Every rank gets the same number N (the phase's ``microBatches`` in the plan); a rank
        with fewer than N items has empty micro-batches (last). Micro-batch k of every rank is
        planned to cost about the same, to run in lock-step (gradient accumulation, pipeline
        schedules). Without ``microBatches`` in the phase's config: one micro-batch of all the
        rank's items.

        Args:
            phase: a phase name.

        Returns:
            N lists of positions in this rank's planned layout, each ascending: the order the
            dispatch exchange delivers items in, so ``items = to_phase.split(received)`` then
            ``[items[i] for i in mb]`` is micro-batch ``mb``'s input (for the ``unit:
            "example"`` phase, ``route.split_by_item(...)`` is in the same order). Keys:
            :meth:`local_keys` ``(phase, planned=True)`` at these positions.
        """
        mb, count = self.item_micro_batches(phase)
        order, counts = self._order(phase, planned=True)
        lo = int(counts[: self.rank].sum())
        mine = mb[order[lo: lo + int(counts[self.rank])]]
        by_k = torch.sort(mine, stable=True)
        sizes = torch.bincount(mine, minlength=count).tolist()
        return [cast(List[int], part.tolist()) for part in torch.split(by_k.indices, sizes)]

    # exchanges ----------------------------------------------------------------------------

    def _schedule(self, schedule: Optional[str]) -> Dict[str, Any]:
        s = self.schedule if schedule is None else schedule
        if s not in SCHEDULES:
            raise ValueError(f"schedule must be 'flat' or 'node', got {s!r}")
        return {"schedule": s, "ranks_per_node": self.ranks_per_node}

    def dispatch(self, phase: str, rows: Optional[RowsFn] = None, schedule: Optional[str] = None) -> Exchange:
        """The exchange from the sampled layout to the phase's planned layout.

        Args:
            phase: a phase name.
            rows: rows per item. Segment phases: ``rows(length, modality)`` (default: the
                length, e.g. one row per patch or frame). Example phases: ``rows(example_dict)``
                (default: the item's token count; pass e.g. ``lambda e: e["text"]`` to move only
                the text tokens).
            schedule: ``"node"`` or ``"flat"`` (default: the step's :attr:`schedule`). The
                first node-wise exchange creates the stage groups (a collective of the world).

        Returns:
            An :class:`Exchange`: this rank's rows in sampled order in, its planned rows out. A
            phase without items gives an exchange of empty tensors (every rank still calls it).
        """
        items = self._items(phase)
        # Rows per item g (callbacks called once per item, in item order).
        if rows is None:
            row_g = items.tokens
        elif items.mod is not None:
            row_g = torch.tensor([int(rows(L, m)) for L, m in zip(items.tokens.tolist(), items.mod_names())], dtype=torch.long)
        else:
            row_g = torch.tensor([int(rows(self.examples[i])) for i in items.ex.tolist()], dtype=torch.long)
        src_order, src_counts = self._order(phase, planned=False)
        dst_order, dst_counts = self._order(phase, planned=True)
        # Source numbering = sampled order: item g is source number at[g].
        at = torch.empty_like(src_order)
        at[src_order] = torch.arange(src_order.numel())
        return Exchange.numbered(self.rank, self.world, self.group, src_counts, row_g[src_order], at[dst_order], dst_counts,
                                 self._rank_keys(phase, False, self.rank), self._rank_keys(phase, True, self.rank),
                                 **self._schedule(schedule))

    def route(
        self,
        phases: Union[str, Sequence[str]],
        to: Optional[str] = None,
        rows: Optional[RowsFn] = None,
        schedule: Optional[str] = None,
    ) -> RouteExchange:
        """The exchange of encoder outputs to the rank that holds their example in phase ``to``.

        Source: on each rank, the planned items of ``phases`` (in the order given), i.e. the
        encoder outputs in the order the encoders computed them. Destination: on each rank, for
        every example of ``to`` in planned order, its segments of each of ``phases`` in item
        order, so that :meth:`RouteExchange.split_by_item` yields each example's encoder outputs
        contiguously.

        Args:
            phases: the encoder phase(s); route them all in one call (one collective).
            to: the receiving phase (default: the last ``unit: "example"`` phase).
            rows: ``rows(length, modality)``: outputs per segment (default: ``ceil(length ×
                scale)`` with the target phase's scale, the token count the planner charged
                the backbone for).
            schedule: as in :meth:`dispatch`.

        Returns:
            A :class:`RouteExchange`.

        Raises:
            ValueError: no example phase to route to, or a routed segment whose example has no
                item in ``to``.
        """
        long = torch.long
        names = [phases] if isinstance(phases, str) else list(phases)
        if to is None:
            example_phases = [p["name"] for p in self.config["phases"] if p.get("unit", "segment") == "example"]
            if not example_phases:
                raise ValueError("no unit:'example' phase to route to")
            to = example_phases[-1]
        scale = self.phases[to].get("scale", {})
        tables = [self._items(n) for n in names]
        for n, t in zip(names, tables):
            if t.mod is None:
                raise ValueError(f"route: {n!r} is not a segment phase")
        sizes = [len(t) for t in tables]
        base = [sum(sizes[:p]) for p in range(len(tables))]
        total = sum(sizes)
        W = self.world

        # Destination: for each example of `to` in planned order, its items of each phase in turn.
        to_items = self._items(to)
        to_order, to_counts = self._order(to, planned=True)
        dst_ex = to_items.ex[to_order]
        dst_ex_rank = torch.repeat_interleave(torch.arange(W), to_counts)
        if tables:
            starts = torch.stack([b + t.first[dst_ex] for b, t in zip(base, tables)], 1)
            lens = torch.stack([t.per_example[dst_ex] for t in tables], 1)
        else:
            starts = lens = torch.zeros(dst_ex.numel(), 0, dtype=long)
        dst_u = ranges(starts.reshape(-1), lens.reshape(-1))
        items_per_ex = lens.sum(1)
        if dst_u.numel() != total:
            held = torch.zeros(len(self.examples), dtype=torch.bool)
            held[to_items.ex] = True
            lost = [self._ids[e] for e in torch.cat([t.ex for t in tables]).unique().tolist() if not held[e]]
            raise ValueError(f"phase {to!r} does not hold the examples of {lost[:3]}: route to a phase that includes them")

        # Rows per routed item u (callbacks once per item, in destination order).
        all_tokens = torch.cat([t.tokens for t in tables]) if tables else torch.zeros(0, dtype=long)
        mod_base = [sum(len(x.mods) for x in tables[:p]) for p in range(len(tables))]
        seg_mods = [t.mod for t in tables if t.mod is not None]  # every routed table is a segment table
        all_mod = torch.cat([m + b for m, b in zip(seg_mods, mod_base)]) if tables else torch.zeros(0, dtype=long)
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
        lo, cnt = int(to_counts[: self.rank].sum()), int(to_counts[self.rank])
        item_rows: List[int] = ex_rows[lo: lo + cnt].tolist()

        # Source order: rank-major, then the phases in the order given, then planned order.
        src_counts = torch.zeros(W, dtype=long)
        per_phase = []
        for t, name in zip(tables, names):
            order, counts = self._order(name, planned=True)
            per_phase.append((order, counts))
            src_counts += counts
        before = torch.cumsum(src_counts, 0) - src_counts
        src_u = torch.empty(total, dtype=long)
        for b, (order, counts) in zip(base, per_phase):
            r = torch.repeat_interleave(torch.arange(W), counts)
            rank_lo = torch.cumsum(counts, 0) - counts
            src_u[before[r] + torch.arange(order.numel()) - rank_lo[r]] = b + order
            before = before + counts
        at = torch.empty_like(src_u)
        at[src_u] = torch.arange(total)
        row_src = torch.empty_like(row_dst)
        row_src[at[dst_u]] = row_dst
        dst_counts = torch.zeros(W, dtype=long).index_add_(0, dst_ex_rank, items_per_ex)

        def keys_of(us: torch.Tensor) -> List[Key]:
            all_keys = list(chain.from_iterable(t.keys for t in tables))
            return [all_keys[u] for u in us.tolist()]

        slo = int(src_counts[: self.rank].sum())
        my_src = src_u[slo: slo + int(src_counts[self.rank])]
        dlo = int(dst_counts[: self.rank].sum())
        my_dst = dst_u[dlo: dlo + int(dst_counts[self.rank])]
        ex = RouteExchange.numbered(self.rank, W, self.group, src_counts, row_src, at[dst_u], dst_counts,
                                    lambda: keys_of(my_src), lambda: keys_of(my_dst), **self._schedule(schedule))
        assert isinstance(ex, RouteExchange)
        my_ex = dst_ex[lo: lo + cnt]
        ex.set_items(lambda: [self._ids[e] for e in my_ex.tolist()], item_rows)
        return ex
