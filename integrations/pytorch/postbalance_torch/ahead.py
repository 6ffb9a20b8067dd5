"""Planning ahead: the plan of step t+1 is computed while step t trains.

:func:`plan_ahead` wraps a data loader. Before it hands out step t's batch it takes batch t+1
from the loader, all-gathers its lengths over the data-parallel group and sends it to the
sidecar (:meth:`Planner.plan_compact_async`), which plans it while step t computes; when the
training loop asks for step t+1, its plan is (usually) already there. What a step still waits
for is the rest of the planning time, if the step was shorter than the plan, plus the
all-gather of the next batch's lengths and the building of its :class:`StepPlan`.

Collectives stay on the training thread, in the same order on every rank. In the background:
the sidecar (its own process) plans, and one worker thread turns each global batch into a
request, waits for its plan and builds its StepPlan (in broadcast mode every rank builds it
once the plan has been broadcast).
"""
from __future__ import annotations

import numbers
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Deque, Dict, Generic, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, TypeVar

import torch.distributed as dist

from .exchange import SCHEDULES
from .groups import dp_rank_size, group_ranks
from .planner import Planner, PlannerError, compact_batch
from .step import StepPlan, _modalities, check_config_ranks, local_meta, raise_gathered_error

__all__ = ["PlanAhead", "pipeline", "plan_ahead"]

B = TypeVar("B")

#: () -> (version, config): the config the next batch is planned with; the version changes with it.
Configs = Callable[[], Tuple[int, Mapping[str, Any]]]


class PlanAhead(Generic[B]):
    """What :func:`plan_ahead` returns: an iterator of ``(batch, step_plan)`` that can change
    the config the coming batches are planned with (:meth:`set_config`).

    Args:
        run: starts the pipeline given a function that returns the current (version, config).
        config: the config the first batches are planned with.
    """

    def __init__(self, run: Callable[[Configs], Iterator[Tuple[B, StepPlan]]], config: Mapping[str, Any]) -> None:
        self._config: Mapping[str, Any] = dict(config)
        self._version = 0
        self._it = run(lambda: (self._version, self._config))

    def __iter__(self) -> "PlanAhead[B]":
        return self

    def __next__(self) -> Tuple[B, StepPlan]:
        return next(self._it)

    def close(self) -> None:
        """Stops planning ahead (the worker thread is let go)."""
        close = getattr(self._it, "close", None)
        if close is not None:
            close()

    @property
    def config(self) -> Mapping[str, Any]:
        """The config batches requested from now on are planned with."""
        return self._config

    def set_config(self, config: Mapping[str, Any]) -> None:
        """Plans the batches requested from now on with ``config`` (e.g. refitted costs): the
        batch taken from the loader when the next step is handed out, and every later one. The
        ``depth`` batches already requested keep the old config. The switch happens at the
        same batch on every rank when every rank calls this at the same step (as
        :func:`~postbalance_torch.refit` does), so ranks that plan locally keep agreeing; the
        worker thread installs it in the sidecar (:meth:`Planner.set_config`) before that
        batch's request.

        Raises:
            PlannerError: the config is not a dict with a list of phases, or is for another
                number of ranks than this one (the config in use is kept). What only the
                sidecar checks (a negative cost, ...) fails the batch it would plan.
        """
        if not isinstance(config, Mapping):
            raise PlannerError(f"config must be a dict (the planner config), got {repr(config)[:60]}")
        phases = config.get("phases")
        if not isinstance(phases, list) or not phases or not all(isinstance(p, Mapping) and isinstance(p.get("name"), str) for p in phases):
            raise PlannerError(f"config phases: must be a non-empty list of phases, each with a \"name\", got {repr(phases)[:60]}")
        if config.get("ranks") != self._config.get("ranks"):
            raise PlannerError(f"config ranks is {config.get('ranks')!r}, the config planning ahead has {self._config.get('ranks')!r}")
        self._config = dict(config)
        self._version += 1


def _ms(t: float) -> float:
    return (time.perf_counter() - t) * 1e3


def plan_ahead(
    loader: Iterable[B],
    config: Mapping[str, Any],
    planner: Optional[Planner],
    examples: Callable[[B], Sequence[Mapping[str, Any]]],
    group: Optional[dist.ProcessGroup] = None,
    mode: str = "local",
    src: int = 0,
    depth: int = 1,
    algorithm: Optional[str] = None,
    timeout: Optional[float] = None,
    schedule: Optional[str] = None,
    rank: Optional[int] = None,
) -> PlanAhead[B]:
    """Yields ``(batch, step_plan)`` for every batch of ``loader``, each plan computed while the
    steps before it trained.

    Example::

        for batch, step in plan_ahead(loader, config, planner, examples=lengths_of, group=dp_group):
            ...   # step.dispatch(...), step.route(...), forward, backward, optimizer

    Args:
        loader: this rank's batches (any iterable; every DP rank must yield the same number).
        config: the planner config (``ranks`` = the DP size).
        planner: a started :class:`Planner` (every rank with ``mode="local"``, rank ``src``
            with ``mode="broadcast"``).
        examples: ``examples(batch)``: the batch's examples as the CLI's dicts without
            ``rank`` (``{"id", <modality>: length | [lengths]}``), in the order the rank's
            tensors hold them.
        group: the data-parallel group (default: the world).
        mode: ``"local"`` (every rank plans) or ``"broadcast"`` (rank ``src`` plans and
            broadcasts each plan when its step starts), as in :func:`plan_step`.
        src: the planning rank's index in ``group`` with ``mode="broadcast"``.
        depth: batches planned ahead of the one training (1: the next one; more keeps more
            batches in memory, for steps shorter than a plan).
        algorithm: as in :func:`plan_step`.
        timeout: as in :func:`plan_step`; counted from when the sidecar gets to the request.
        schedule: as in :func:`plan_step`.
        rank: as in :func:`plan_step`.

    Returns:
        A :class:`PlanAhead`: iterate it; ``set_config`` changes the config of the batches
        requested after it (what :func:`~postbalance_torch.refit` uses).

    Yields:
        ``(batch, step)``: the loader's batch and its :class:`StepPlan`. ``step.timings``
        holds, in ms: ``gather`` (this batch's all-gather, done during an earlier step),
        ``wait`` (waiting for its plan, and the broadcast), ``build`` (its StepPlan: in local
        mode built ahead by the worker thread) and ``critical``: the time this iteration took
        inside ``plan_ahead`` (the wait, the next batch's all-gather, and in broadcast mode the
        build), what the step still sees of planning.

    Raises:
        PlannerError: as :func:`plan_step` (a bad DP group or config, before any collective;
            a batch the planner rejects, or an example that is not a dict with an ``"id"`` on
            any rank, on every rank), or loaders of different lengths on the DP ranks (on every
            rank, at the first batch one of them lacks).
        ValueError: a missing planner, an unknown mode or schedule, ``depth`` not an integer
            >= 1, a negative or NaN ``timeout``.
    """
    me, size = dp_rank_size(group, rank)
    check_config_ranks(config, size)
    if mode not in ("local", "broadcast"):
        raise ValueError(f"mode must be 'local' or 'broadcast', got {mode!r}")
    if schedule is not None and schedule not in SCHEDULES:
        raise ValueError(f"schedule must be 'flat' or 'node', got {schedule!r}")
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or depth < 1:
        raise ValueError(f"depth must be an integer of at least 1, got {depth!r}")
    depth = int(depth)
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or not timeout >= 0):
        raise ValueError(f"timeout must be a non-negative number of seconds or None, got {timeout!r}")
    if mode == "broadcast" and not 0 <= src < size:
        raise PlannerError(f"src {src}: the planning rank must be an index in the data-parallel group [0, {size})")
    plans_here = mode == "local" or me == src
    if plans_here and planner is None:
        raise ValueError(f"mode={mode!r} needs a Planner on {'every rank' if mode == 'local' else f'rank {src}'}")
    batches = iter(loader)
    index, ended = 0, False

    def next_global() -> Optional[Tuple[B, List[Dict[str, Any]], float]]:
        """The next batch and its all-gathered global batch; None at the end of the loader (on
        every rank at once)."""
        nonlocal index, ended
        if ended:
            return None
        try:
            batch: Optional[B] = next(batches)
        except StopIteration:
            batch = None
        t = time.perf_counter()
        try:
            mine: Any = None if batch is None else local_meta(examples(batch), config, me)
        except PlannerError as e:
            if size == 1:
                raise
            mine = {"error": f"rank {me}: {e}"}   # raised on every rank after the all-gather
        parts: List[Any] = [mine]
        if size > 1:
            parts = [None] * size
            dist.all_gather_object(parts, mine, group=group)
            try:
                raise_gathered_error(parts)
            except PlannerError:
                ended = True
                raise
        out = [r for r, p in enumerate(parts) if p is None]
        if out:
            ended = True
            if len(out) == size:
                return None
            raise PlannerError(f"batch {index}: data-parallel ranks {out} have no batch {index}, the others do: "
                               "every DP rank's loader must yield the same number of batches")
        assert batch is not None
        index += 1
        return batch, [e for part in parts for e in part], _ms(t)

    return PlanAhead(lambda configs: pipeline(next_global, config, planner, me, size, group, mode, src, depth,
                                              algorithm, timeout, schedule, configs=configs), config)


def pipeline(
    next_global: Callable[[], Optional[Tuple[B, List[Dict[str, Any]], float]]],
    config: Mapping[str, Any],
    planner: Optional[Planner],
    me: int,
    size: int,
    group: Optional[dist.ProcessGroup],
    mode: str,
    src: int,
    depth: int,
    algorithm: Optional[str],
    timeout: Optional[float],
    schedule: Optional[str],
    configs: Optional[Configs] = None,
) -> Iterator[Tuple[B, StepPlan]]:
    """:func:`plan_ahead`'s engine, on global batches: ``next_global()`` gives the next batch,
    its global batch (every DP rank's examples) and the ms its all-gather took, or None.

    A worker thread makes each request (the columns, their JSON), waits for the sidecar and
    builds the StepPlan; the training thread only runs the collectives (all-gather, and the
    broadcast of each plan in broadcast mode) and picks up what is ready. ``configs()`` gives
    the config each batch is planned with, read when the batch is taken (default: ``config``);
    when its version changes the worker installs it in the sidecar before that batch's request.
    """
    mods = _modalities(config)
    plans_here = mode == "local" or me == src
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="postbalance-plan-ahead")
    current: Configs = configs or (lambda: (0, config))
    installed = [0]   # the version in the sidecar (touched by the worker thread only)

    def prepare(global_examples: List[Dict[str, Any]], version: int, cfg: Mapping[str, Any]) -> Tuple[Dict[str, Any], Optional[StepPlan], float]:
        assert planner is not None
        if version != installed[0]:
            planner.set_config(cfg)   # before this batch's request: requests are answered in order
            installed[0] = version
        c = compact_batch(global_examples, mods)
        plan = planner.plan_compact_async(c["ranks"], c["lengths"], ids=c["ids"], algorithm=algorithm,
                                          timeout=timeout, format="compact").result()
        if mode == "broadcast":
            return plan, None, 0.0   # every rank builds its StepPlan once the plan is broadcast
        t = time.perf_counter()
        return plan, StepPlan(plan, global_examples, cfg, rank=me, world_size=size, group=group, schedule=schedule), _ms(t)

    # (batch, its global batch, the worker's job on it, its all-gather's ms, its config)
    queue: Deque[Tuple[Any, List[Dict[str, Any]], Optional["Future[Tuple[Dict[str, Any], Optional[StepPlan], float]]"], float, Mapping[str, Any]]] = deque()

    def request_next() -> None:
        got = next_global()
        if got is not None:
            batch, global_examples, gather_ms = got
            version, cfg = current()
            job = worker.submit(prepare, global_examples, version, cfg) if plans_here else None
            queue.append((batch, global_examples, job, gather_ms, cfg))

    def resolve(job: Optional["Future[Tuple[Dict[str, Any], Optional[StepPlan], float]]"]) -> Tuple[Dict[str, Any], Optional[StepPlan], float]:
        if mode == "local":
            assert job is not None
            return job.result()
        box: List[Any] = [None]
        if job is not None:
            try:
                box[0] = job.result()[0]
            except PlannerError as e:
                box[0] = {"error": str(e)}   # every rank raises it, none waits for a plan
        if size > 1:
            dist.broadcast_object_list(box, src=group_ranks(group)[src], group=group)
        if "error" in box[0]:
            raise PlannerError(box[0]["error"])
        return dict(box[0]), None, 0.0

    try:
        for _ in range(depth):
            request_next()
        while queue:
            start = time.perf_counter()
            batch, global_examples, job, gather_ms, cfg = queue.popleft()
            plan, step, build_ms = resolve(job)
            wait_ms = _ms(start)
            request_next()  # the next batch is planned while this one trains
            if step is None:
                t = time.perf_counter()
                step = StepPlan(plan, global_examples, cfg, rank=me, world_size=size, group=group, schedule=schedule)
                build_ms = _ms(t)
            step.timings = {"gather": gather_ms, "wait": wait_ms, "build": build_ms, "critical": _ms(start)}
            yield batch, step
    finally:
        worker.shutdown(wait=False)
