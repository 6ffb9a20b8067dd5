"""Measured phase times, and refitting the cost model to them.

Balance is only as good as the cost model. :class:`CostSamples` records, per step and phase, the
lengths of the items this rank ran and the time it took (CUDA events when the work is on a GPU,
``time.perf_counter`` on the CPU); :func:`fit_config` runs ``postbalance fit`` on such samples
(the lines docs/FORMAT.md, "Samples", describes) and :func:`refit` gathers every rank's samples,
fits them and installs the fitted config in the planner, the same config on every rank.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import tempfile
import time
from collections import deque
from typing import IO, Any, Deque, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.distributed as dist

from .ahead import PlanAhead
from .planner import DEFAULT_TIMEOUT, Planner, PlannerError, find_cli
from .step import _index as _count, segment_lengths

__all__ = ["CostSamples", "fit_config", "refit"]


def _global_rank() -> Optional[int]:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else None


class CostSamples:
    """A recorder of measured phase times: one sample per (step, phase) the rank ran, holding
    the lengths of its items in that phase (as the cost model counts them:
    :meth:`StepPlan.local_tokens`) and the milliseconds it took.

    Example::

        samples = CostSamples()
        for t, (batch, step) in enumerate(plan_ahead(...)):
            with samples.time(t, "vision", step.local_tokens("vision")):
                encoded = model.vision(images)      # forward (and backward, if timed together)
            ...
            if (t + 1) % 200 == 0:
                refit(samples, planner, ahead=ahead)   # every rank, the same step

    Args:
        rank: the rank written in each sample (default: the global rank, if torch.distributed
            is initialized; for the record only).
        keep: keep only the last ``keep`` samples (a window that follows drift); default all.
        cuda: time with CUDA events on the current stream (default: when CUDA is initialized,
            i.e. the model runs on a GPU). Event times are read when the samples are (they
            need the GPU to have reached the end event), so timing does not synchronize.
    """

    def __init__(self, rank: Optional[int] = None, keep: Optional[int] = None, cuda: Optional[bool] = None) -> None:
        if rank is not None:
            rank = _count(rank, "rank", 0)
        if keep is not None:
            keep = _count(keep, "keep", 1)
        self.rank = _global_rank() if rank is None else rank
        self._done: Deque[Dict[str, Any]] = deque(maxlen=keep)
        self._pending: List[Tuple[Dict[str, Any], Any, Any]] = []   # (sample, start, end) CUDA events
        self._keep = keep
        self.cuda = bool(torch.cuda.is_available() and torch.cuda.is_initialized()) if cuda is None else cuda

    def _sample(self, step: int, phase: str, lengths: Any) -> Dict[str, Any]:
        if not isinstance(phase, str) or not phase:
            raise ValueError(f"phase must be a non-empty string, got {phase!r}")
        step = _count(step, "step", 0)
        try:
            ls = segment_lengths(lengths)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"phase {phase!r}, step {step}: lengths must be integers, got {lengths!r}") from None
        bad = [L for L in ls if L < 0]
        if bad:
            raise ValueError(f"phase {phase!r}, step {step}: lengths must be non-negative, got {bad[0]}")
        s: Dict[str, Any] = {"phase": phase, "lengths": ls}
        if self.rank is not None:
            s["rank"] = int(self.rank)
        s["step"] = step
        return s

    def record(self, step: int, phase: str, lengths: Any, ms: float) -> None:
        """Adds a sample measured elsewhere.

        Args:
            step: the training step (a non-negative integer).
            phase: the phase's name.
            lengths: the lengths of the items this rank ran in it (a sequence of ints, a 1-d
                integer tensor or array).
            ms: the time it took, in milliseconds (finite, non-negative).

        Raises:
            ValueError: one of them is not as described (the message names it).
        """
        s = self._sample(step, phase, lengths)
        step, shown = s["step"], ms
        try:
            if not isinstance(ms, (str, bytes, bool)):
                ms = shown = float(ms)
            else:
                ms = math.nan
        except (TypeError, ValueError):
            ms = math.nan
        if not math.isfinite(ms) or ms < 0:
            raise ValueError(f"phase {phase!r}, step {step}: ms must be a finite non-negative number, got {shown!r}")
        s["ms"] = ms
        self._done.append(s)

    @contextlib.contextmanager
    def time(self, step: int, phase: str, lengths: Any) -> Iterator[None]:
        """Times the block as one sample of ``phase`` at ``step`` (arguments as in
        :meth:`record`). A block that raises records nothing."""
        s = self._sample(step, phase, lengths)
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            self._pending.append((s, start, end))
            if self._keep is not None and len(self._pending) > self._keep:
                self._resolve()
        else:
            t = time.perf_counter()
            yield
            s["ms"] = (time.perf_counter() - t) * 1e3
            self._done.append(s)

    def _resolve(self) -> None:
        for s, start, end in self._pending:
            end.synchronize()
            s["ms"] = float(start.elapsed_time(end))
            self._done.append(s)
        self._pending = []

    def samples(self) -> List[Dict[str, Any]]:
        """The samples, oldest first, as the dicts ``postbalance fit`` reads
        (``{"phase", "lengths", "rank", "step", "ms"}``); waits for pending CUDA events."""
        self._resolve()
        return [dict(s) for s in self._done]

    def __len__(self) -> int:
        return len(self._done) + len(self._pending)

    def clear(self) -> None:
        """Forgets every sample (e.g. after a refit, to fit the next window only)."""
        self._resolve()
        self._done.clear()

    def extend(self, samples: Sequence[Mapping[str, Any]]) -> None:
        """Adds samples as :meth:`samples` returns them (e.g. read back from a file).

        Raises:
            ValueError: a sample is not a dict (``postbalance fit`` checks its fields).
        """
        try:
            rows = list(samples) if not isinstance(samples, (str, bytes, Mapping)) else None
        except TypeError:
            rows = None
        if rows is None:
            raise ValueError(f"samples must be a sequence of sample dicts, got {repr(samples)[:60]}")
        for i, s in enumerate(rows):
            if not isinstance(s, Mapping):
                raise ValueError(f"samples[{i}]: must be a dict like {{'phase': 'vision', 'lengths': [576], 'ms': 12.3}}, got {repr(s)[:60]}")
        for s in rows:
            self._done.append(dict(s))

    def to_jsonl(self) -> str:
        """The samples as ``postbalance fit --samples`` reads them: one JSON line each."""
        return "".join(json.dumps(s, separators=(",", ":")) + "\n" for s in self.samples())

    def write(self, file: Union[str, "os.PathLike[str]", IO[str]]) -> None:
        """Writes :meth:`to_jsonl` to a path (replaced) or an open text file.

        Raises:
            OSError: the write failed (nothing is lost silently).
        """
        text = self.to_jsonl()
        if hasattr(file, "write"):
            file.write(text)  # type: ignore[union-attr]
            file.flush()      # type: ignore[union-attr]
            return
        with open(file, "w", encoding="utf-8") as f:  # type: ignore[arg-type]
            f.write(text)

    def gather(self, group: Optional[dist.ProcessGroup] = None) -> "CostSamples":
        """Every rank's samples, on every rank (one all-gather over ``group``, default the
        world; a collective: every rank of the group calls it). Rank order, then each rank's
        order."""
        out = CostSamples(rank=self.rank, cuda=False)
        mine = self.samples()
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size(group) == 1:
            out.extend(mine)
            return out
        parts: List[Any] = [None] * dist.get_world_size(group)
        dist.all_gather_object(parts, mine, group=group)
        for p in parts:
            out.extend(p)
        return out


def _fit_command(planner: Optional[Planner], command: Optional[Union[str, Sequence[str]]]) -> List[str]:
    """``postbalance`` without a subcommand: the given one, the planner's (before ``serve``),
    or :func:`find_cli`'s."""
    if command is not None:
        return [command] if isinstance(command, str) else list(command)
    if planner is not None and "serve" in planner.command:
        return planner.command[: planner.command.index("serve")]
    return find_cli()


def fit_config(samples: Union[CostSamples, Sequence[Mapping[str, Any]]], config: Mapping[str, Any],
               command: Optional[Union[str, Sequence[str]]] = None,
               timeout: Optional[float] = DEFAULT_TIMEOUT) -> Tuple[Dict[str, Any], List[str]]:
    """Runs ``postbalance fit`` on these samples.

    Args:
        samples: a :class:`CostSamples` or its :meth:`~CostSamples.samples`.
        config: the config whose sampled phases' costs are refitted.
        command: the ``postbalance`` command (default: :func:`find_cli`).
        timeout: seconds the fit may take (None: no limit).

    Returns:
        (the fitted config, the fit's report: one line per phase with its coefficients, R² and
        residual).

    Raises:
        PlannerError: the CLI refused the samples or the config (its one-line message: e.g. a
            phase with fewer than 3 distinct samples, or samples that cannot tell the
            coefficients apart), could not be started, or timed out.
    """
    if isinstance(samples, CostSamples):
        rows = samples.samples()
    else:
        given = CostSamples(cuda=False)
        try:
            given.extend(samples)
        except ValueError as e:
            raise PlannerError(str(e)) from None
        rows = given.samples()
    if not isinstance(config, Mapping):
        raise PlannerError(f"config must be a dict (the planner config), got {repr(config)[:60]}")
    # What cannot be written as JSON (a tensor, NaN) is named here, not a TypeError from json.
    sample_lines = []
    for i, s in enumerate(rows):
        try:
            sample_lines.append(json.dumps(s, separators=(",", ":"), allow_nan=False) + "\n")
        except (TypeError, ValueError) as e:
            raise PlannerError(f"sample {i}: cannot be written as JSON ({e})") from None
    try:
        config_text = json.dumps(dict(config), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise PlannerError(f"config: cannot be written as JSON ({e})") from None
    base = [command] if isinstance(command, str) else (list(command) if command is not None else find_cli())
    with tempfile.TemporaryDirectory(prefix="postbalance-fit-") as d:
        spath, cpath = os.path.join(d, "samples.jsonl"), os.path.join(d, "config.json")
        with open(spath, "w", encoding="utf-8") as f:
            f.write("".join(sample_lines))
        with open(cpath, "w", encoding="utf-8") as f:
            f.write(config_text)
        try:
            r = subprocess.run(base + ["fit", "--samples", spath, "--config", cpath], capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise PlannerError(f"postbalance fit did not finish within {timeout:g} s") from None
        except OSError as e:
            raise PlannerError(f"cannot start postbalance fit ({' '.join(base)}): {e.strerror or e}") from None
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    if r.returncode != 0:
        raise PlannerError(lines[-1] if lines else f"postbalance fit exited with {r.returncode}")
    try:
        fitted = json.loads(r.stdout)
    except ValueError:
        raise PlannerError("postbalance fit printed something that is not a config") from None
    return fitted, lines


def refit(samples: CostSamples, planner: Optional[Planner], group: Optional[dist.ProcessGroup] = None,
          ahead: Optional[PlanAhead[Any]] = None, command: Optional[Union[str, Sequence[str]]] = None,
          timeout: Optional[float] = DEFAULT_TIMEOUT) -> Optional[Dict[str, Any]]:
    """Refits the cost model to every rank's samples and installs it: a collective, called by
    every rank of ``group`` at the same step.

    The samples are all-gathered over ``group`` (default: the world, so that tensor-, pipeline-
    and context-parallel peers in other DP groups get the same config as theirs: they must
    plan alike); every rank with a planner fits them (the fit is deterministic: the same
    config on every rank) and installs the result, with ``planner.set_config`` for the next
    request, or with ``ahead.set_config`` when planning ahead (then from the next batch taken
    from the loader on, at the same batch on every rank; the ``depth`` batches already
    requested keep the old costs). Samples are kept; ``samples.clear()`` starts a new window.

    Args:
        samples: this rank's samples.
        planner: this rank's planner, or None on ranks that do not plan (broadcast mode).
        group: where samples are gathered and errors agreed on (default: the world).
        ahead: the :func:`plan_ahead` iterator, when planning ahead.
        command: the ``postbalance`` command (default: the planner's, else :func:`find_cli`).
        timeout: seconds the fit may take.

    Returns:
        The fitted config on ranks with a planner, None on the others.

    Raises:
        PlannerError: the fit failed on some rank (its one-line message, on every rank of the
            group; nothing is installed anywhere).
    """
    if not isinstance(samples, CostSamples):
        raise PlannerError(f"samples: must be a CostSamples, got {repr(samples)[:60]}")
    if ahead is not None and not isinstance(ahead, PlanAhead):
        raise PlannerError(f"ahead: must be what plan_ahead returned, got {repr(ahead)[:60]}")
    everyone = samples.gather(group)
    fitted: Optional[Dict[str, Any]] = None
    error: Optional[str] = None
    if planner is not None:
        base = ahead.config if ahead is not None else planner.config
        try:
            fitted, _ = fit_config(everyone, base, command=_fit_command(planner, command), timeout=timeout)
        except PlannerError as e:
            error = str(e)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1:
        errors: List[Any] = [None] * dist.get_world_size(group)
        dist.all_gather_object(errors, error, group=group)
        error = next((e for e in errors if e is not None), None)
    if error is not None:
        raise PlannerError(error)
    if fitted is not None:
        if ahead is not None:
            ahead.set_config(fitted)
        else:
            assert planner is not None
            planner.set_config(fitted)
    return fitted
