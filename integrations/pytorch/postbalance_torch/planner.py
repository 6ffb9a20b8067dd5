"""Client for the ``postbalance serve`` sidecar: one long-lived Node process per :class:`Planner`,
spoken to in newline-delimited JSON over its stdin/stdout (protocol in docs/PYTORCH.md).

A sidecar instead of spawning ``postbalance plan`` every step: Node start-up, module loading and
(with ``backend="gpu"`` or ``"auto"``) GPU adapter and pipeline creation are paid once, not per
training step. Requests can be pipelined (:meth:`Planner.plan_async`): the sidecar answers them
in order and a reader thread hands each answer to its request's Future.
"""
from __future__ import annotations

import collections
import json
import numbers
import operator
import os
import shlex
import shutil
import subprocess
import sys
import threading
from concurrent.futures import Future
from typing import IO, Any, Deque, Dict, Iterable, List, Mapping, Optional, Sequence, Union

__all__ = ["Planner", "PlannerError", "compact_batch", "default_command", "find_cli", "DEFAULT_TIMEOUT"]

#: Seconds a request (and start-up) may take before the sidecar is stopped and PlannerError raised.
DEFAULT_TIMEOUT = 120.0

_SCRIPT_SUFFIXES = (".mjs", ".js", ".cjs")


class PlannerError(RuntimeError):
    """The planner could not give a plan: a bad config or batch (the message names the field),
    no ``postbalance`` command to start, a sidecar that died, hung past its timeout, or answered
    out of protocol."""


# -- finding the command -----------------------------------------------------------------------


def _command_from(value: str) -> List[str]:
    """An executable path, a script Node runs (``.../bin/postbalance.mjs``) or a command line."""
    if os.path.isfile(value):
        return ["node", value] if value.endswith(_SCRIPT_SUFFIXES) else [value]
    return shlex.split(value)


def find_cli(cwd: Optional[str] = None) -> List[str]:
    """The command line that runs ``postbalance``.

    Looked for in this order: ``$POSTBALANCE_CLI`` (a path to the command, to its
    ``bin/postbalance.mjs``, or a shell-quoted command line); ``postbalance`` on ``PATH`` (a
    global npm install); ``node_modules/.bin/postbalance`` in ``cwd`` (default: the working
    directory) or the nearest folder above it that has one (the npm package installed in the
    project).

    Args:
        cwd: where to start looking for ``node_modules/.bin``.

    Returns:
        The command as an argument list, e.g. ``["/usr/local/bin/postbalance"]``.

    Raises:
        PlannerError: none of these gives a command.
    """
    for var in ("POSTBALANCE_CLI", "POSTBALANCE_COMMAND"):  # the second: its earlier name
        value = os.environ.get(var, "").strip()
        if value:
            return _command_from(value)
    on_path = shutil.which("postbalance")
    if on_path:
        return [on_path]
    d = os.path.abspath(cwd or os.getcwd())
    while True:
        local = os.path.join(d, "node_modules", ".bin", "postbalance")
        if os.path.isfile(local):
            return [local]
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    raise PlannerError(
        "cannot find the postbalance command: set POSTBALANCE_CLI to its path, put it on PATH, "
        "or install the postbalance npm package in this project (node_modules/.bin/postbalance)"
    )


def default_command() -> List[str]:
    """How a :class:`Planner` starts the sidecar when not told: :func:`find_cli`."""
    return find_cli()


# -- what goes on the wire ---------------------------------------------------------------------


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _as_int(v: Any, where: str, what: str = "must be an integer") -> int:
    """An integer of any common type (int, numpy integer, 0-d integer tensor, an integral
    float), else PlannerError naming the field."""
    if type(v) is int:
        return v
    if isinstance(v, bool) or v is None:
        raise PlannerError(f"{where}: {what}, got {_show(v)}")
    if isinstance(v, float):
        if v.is_integer():
            return int(v)
        raise PlannerError(f"{where}: {what}, got {_show(v)}")
    try:
        return operator.index(v)  # numpy integers and integer tensors of one element
    except TypeError:
        pass
    item = getattr(v, "item", None)  # a float tensor / numpy float holding an integer
    if callable(item) and getattr(v, "ndim", 0) == 0:
        x = item()
        if isinstance(x, float) and x.is_integer():
            return int(x)
    raise PlannerError(f"{where}: {what}, got {_show(v)}")


def wire_id(v: Any, where: str) -> str:
    """An example id as sent to the planner, and as the plan names it: a string as is, an
    integer (of any common type) in decimal. Sent as a string so that 64-bit ids come back
    exactly as written (JSON numbers are doubles in Node)."""
    if type(v) is str:
        return v
    if isinstance(v, str):
        return str(v)
    return str(_as_int(v, where, "must be a string or an integer"))


def _lengths(v: Any, where: str) -> Union[None, int, List[int]]:
    """A modality field: None (no segments), one length, or a sequence of lengths (list, tuple,
    numpy array, 1-d tensor)."""
    if v is None or type(v) is int:
        return v
    if isinstance(v, (list, tuple)):
        if all(type(x) is int for x in v):
            return list(v)
    elif hasattr(v, "tolist") and getattr(v, "ndim", 1) != 0:
        v = v.tolist()
    else:
        return _as_int(v, where, "length must be a non-negative integer")
    return [_as_int(x, f"{where}[{k}]", "length must be a non-negative integer") for k, x in enumerate(v)]


def _plain(e: Mapping[str, Any]) -> bool:
    """Already what goes on the wire: a string id, int rank and lengths (the common case, checked
    without a call per field)."""
    if type(e.get("id")) is not str or type(e.get("rank")) is not int:
        return False
    for k, v in e.items():
        t = type(v)
        if t is int or v is None or (t is str and k == "id"):
            continue
        if t is list and all(type(x) is int for x in v):
            continue
        return False
    return True


def _wire_example(e: Mapping[str, Any], i: int) -> Mapping[str, Any]:
    if type(e) is dict and _plain(e):
        return e
    if not isinstance(e, Mapping):
        raise PlannerError(f"batch example {i}: must be a dict like {{'id': ..., 'rank': ..., 'text': 12}}, got {_show(e)}")
    out: Dict[str, Any] = {}
    for k, v in e.items():
        if k == "id":
            out[k] = wire_id(v, f'batch example {i}, field "id"')
        elif k == "rank":
            out[k] = _as_int(v, f'batch example {i}, field "rank"')
        else:
            out[k] = _lengths(v, f'batch example {i}, field "{k}"')
    return out


def _column(values: Any, where: str) -> List[Any]:
    """A column (list, tuple, 1-d array or tensor) as a list, else PlannerError naming it."""
    if hasattr(values, "tolist") and not isinstance(values, (list, tuple)):
        values = values.tolist()
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise PlannerError(f"{where}: must be a list with one entry per example, got {_show(values)}")
    return list(values)


def _timeout(v: Optional[float], where: str) -> Optional[float]:
    """None or a non-negative number of seconds: a NaN or negative one would stop the sidecar at once."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not v >= 0:
        raise PlannerError(f"{where}: must be a non-negative number of seconds or None, got {_show(v)}")
    return float(v)


def _lengths_column(col: Any, m: str) -> Any:
    """A compact lengths column: one entry per example, or CSR ``{"counts", "values"}``."""
    where = f"compact.lengths.{m}"
    if isinstance(col, Mapping):
        return {k: [_as_int(x, f"{where}.{k}[{j}]") for j, x in enumerate(_column(v, f"{where}.{k}"))] if k in ("counts", "values") else v
                for k, v in col.items()}
    return [_lengths(x, f"{where}[{e}]") for e, x in enumerate(_column(col, where))]


def compact_batch(examples: Sequence[Mapping[str, Any]], modalities: Iterable[str]) -> Dict[str, Any]:
    """The compact request form of a list of example dicts: one array per field, not one object
    per example (about half the bytes of the list form; the plan is the same).

    Args:
        examples: dicts ``{"id", "rank", <modality>: length | [lengths] | None}``.
        modalities: the modalities to send (the config's).

    Returns:
        ``{"ids": [...], "ranks": [...], "lengths": {modality: [...]}}``, ids as strings.

    Raises:
        PlannerError: a missing rank, or an id, rank or length that is not an integer.
    """
    mods = list(modalities)
    ids, ranks = [], []
    for i, e in enumerate(examples):
        if "rank" not in e:
            raise PlannerError(f'batch example {i}: has no "rank"')
        v, r = e.get("id", i), e["rank"]
        ids.append(v if type(v) is str else wire_id(v, f'batch example {i}, field "id"'))
        ranks.append(r if type(r) is int else _as_int(r, f'batch example {i}, field "rank"'))
    lengths = {}
    for m in mods:
        col = [e.get(m) for e in examples]
        # The common column shapes pass as they are; anything else is read value by value.
        if not all(type(v) is int or v is None or (type(v) is list and all(type(x) is int for x in v)) for v in col):
            col = [_lengths(v, f'batch example {i}, field "{m}"') for i, v in enumerate(col)]
        lengths[m] = col
    return {"ids": ids, "ranks": ranks, "lengths": lengths}


# -- the sidecar -------------------------------------------------------------------------------


class _Pending:
    """A request sent and not yet answered."""

    __slots__ = ("rid", "future", "timeout", "wants_plan")

    def __init__(self, rid: int, timeout: Optional[float], wants_plan: bool) -> None:
        self.rid, self.timeout, self.wants_plan = rid, timeout, wants_plan
        self.future: "Future[Dict[str, Any]]" = Future()
        self.future.set_running_or_notify_cancel()  # a request on the wire cannot be taken back


class _Session:
    """One running sidecar: its process, the requests sent and not yet answered (in order), the
    thread that reads the answers, and the watchdog of the oldest unanswered request."""

    def __init__(self, proc: "subprocess.Popen[bytes]") -> None:
        self.proc = proc
        self.pending: Deque[_Pending] = collections.deque()
        self.lock = threading.Lock()         # pending, timer, expired
        self.write_lock = threading.Lock()   # one request line at a time, in id order
        self.timer: Optional[threading.Timer] = None
        self.expired: Optional[_Pending] = None
        self.reader: Optional[threading.Thread] = None
        self.stderr_thread: Optional[threading.Thread] = None

    def arm(self) -> None:
        """Starts the watchdog of the oldest request (its clock runs while the sidecar works on
        it, not while it waits behind earlier ones). Called with ``lock`` held."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        head = self.pending[0] if self.pending else None
        if head is None or head.timeout is None:
            return
        seconds = head.timeout

        def expire() -> None:
            # A stopped or stuck sidecar must not block the training job: at the deadline the
            # process is killed, which ends the reader's blocked read.
            with self.lock:
                if not self.pending or self.pending[0] is not head:
                    return
                self.expired = head
            _kill(self.proc)

        self.timer = threading.Timer(seconds, expire)
        self.timer.daemon = True
        self.timer.start()


class Planner:
    """A ``postbalance serve`` sidecar bound to one config.

    Example::

        with Planner(config, backend="cpu") as planner:
            plan = planner.plan(batch)   # batch: [{"id", "rank", <modality>: len | [lens]}, ...]
            ahead = planner.plan_async(next_batch)   # a Future; planned while this thread works
            next_plan = ahead.result()

    :meth:`plan` returns the CLI's output contract as a dict: the plan ``postbalance plan
    --batch ... --config ...`` prints for the same batch (only ``stats`` timings differ).
    Requests may be pipelined (:meth:`plan_async`): the sidecar answers them in order, and a
    reader thread hands each answer to the request it belongs to.

    Args:
        config: the planner config (the CLI's ``--config``).
        backend: ``"auto"`` (a GPU if there is one, else the CPU), ``"cpu"`` or ``"gpu"``.
        command: how to start ``postbalance`` (a path or an argument list); default
            :func:`find_cli`. A command that already names ``serve`` is used as given.
        algorithm: default algorithm of every request (the CLI's ``--algorithm``).
        exchange: default ``"compact"`` or ``"full"`` (the CLI's ``--exchange``).
        env: extra environment variables for the sidecar.
        timeout: seconds start-up and each request may take (default :data:`DEFAULT_TIMEOUT`),
            counted from when the sidecar gets to it (pipelined requests wait for the earlier
            ones first); past it the sidecar is stopped and :class:`PlannerError` raised.
            ``None``: no limit.

    Raises:
        ValueError: an unknown backend, a config that is not a dict, a negative or NaN timeout.
        PlannerError: no ``postbalance`` command can be found (see :func:`find_cli`).
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        backend: str = "auto",
        command: Optional[Union[str, Sequence[str]]] = None,
        algorithm: Optional[str] = None,
        exchange: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
    ) -> None:
        if backend not in ("auto", "cpu", "gpu"):
            raise ValueError(f"backend must be auto, cpu or gpu, got {backend!r}")
        if not isinstance(config, Mapping):
            raise ValueError(f"config must be a dict (the planner config), got {_show(config)}")
        try:
            _timeout(timeout, "timeout")
        except PlannerError as e:
            raise ValueError(str(e)) from None
        self.config = dict(config)
        self.backend = backend
        self.algorithm = algorithm
        self.exchange = exchange
        self.timeout = timeout
        if command is None:
            base = find_cli()
        elif isinstance(command, str):
            base = _command_from(command)
        else:
            base = list(command)
        self.command: List[str] = base if "serve" in base else base + ["serve", "--backend", backend]
        self._env = dict(env) if env is not None else None
        self._session: Optional[_Session] = None
        self._id_lock = threading.Lock()
        self._next_id = 0
        self._stderr_tail: Deque[str] = collections.deque(maxlen=20)
        #: The sidecar's answer to the config: ranks, phases, backend, adapter.
        self.info: Dict[str, Any] = {}
        #: The sidecar's exit code once closed (0: it ended cleanly on EOF).
        self.returncode: Optional[int] = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def pid(self) -> Optional[int]:
        """The sidecar's process id while it runs, else None."""
        s = self._session
        return s.proc.pid if s is not None else None

    def start(self) -> "Planner":
        """Starts the sidecar and sends it the config.

        Returns:
            self.

        Raises:
            PlannerError: the command cannot be run, the config is rejected, or start-up takes
                longer than ``timeout``. No sidecar is left running.
        """
        if self._session is not None:
            return self
        env = None if self._env is None else {**os.environ, **self._env}
        try:
            proc = subprocess.Popen(
                self.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                # Buffered pipes: readline() on an unbuffered pipe reads one byte per syscall,
                # which costs ~0.4 s for a 0.6 MB plan. Requests are flushed explicitly.
                bufsize=-1,
            )
        except OSError as e:
            raise PlannerError(f"cannot start the planner sidecar {shlex.join(self.command)}: {e}") from e
        self.returncode = None
        s = self._session = _Session(proc)
        # Drain stderr in the background: a full pipe would block the sidecar; the user still
        # sees its lines (e.g. "no GPU adapter, using the CPU"), and errors quote the tail.
        s.stderr_thread = threading.Thread(target=self._pump_stderr, args=(proc,), daemon=True)
        s.stderr_thread.start()
        s.reader = threading.Thread(target=self._read, args=(s,), daemon=True)
        s.reader.start()
        try:
            resp = self._submit({"config": self.config}, self.timeout, wants_plan=False).result()
        except BaseException:
            self._stop(kill=True)
            raise
        self.info = {k: v for k, v in resp.items() if k not in ("id", "ok")}
        return self

    def close(self) -> int:
        """Ends the sidecar by closing its stdin (EOF): it answers what it was sent, then exits;
        one that does not exit within ``min(timeout, 30)`` seconds is killed.

        Returns:
            The sidecar's exit code (0: a clean end).
        """
        if self._session is None:
            return self.returncode if self.returncode is not None else 0
        return self._stop(kill=False)

    def _stop(self, kill: bool) -> int:
        s, self._session = self._session, None
        if s is None:
            return self.returncode if self.returncode is not None else 0
        proc = s.proc
        if kill:
            _kill(proc)
        with s.write_lock:
            try:
                assert proc.stdin is not None
                proc.stdin.close()
            except OSError:
                pass
        grace = 30.0 if self.timeout is None else min(self.timeout, 30.0)
        try:
            code = proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _kill(proc)
            code = proc.wait()
        if s.reader is not None and s.reader is not threading.current_thread():
            s.reader.join(timeout=10)
        if s.stderr_thread is not None:
            s.stderr_thread.join(timeout=5)
        with s.lock:
            if s.timer is not None:
                s.timer.cancel()
        self.returncode = code
        return code

    def __enter__(self) -> "Planner":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:  # best effort: do not leave a Node process behind
        try:
            s = self._session
            if s is not None:
                _kill(s.proc)
        except Exception:
            pass

    # -- requests --------------------------------------------------------------------------

    def plan(
        self,
        batch: Sequence[Mapping[str, Any]],
        algorithm: Optional[str] = None,
        exchange: Optional[str] = None,
        timeout: Optional[float] = None,
        format: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Plans a batch given as the CLI's example dicts.

        Args:
            batch: ``[{"id": ..., "rank": ..., <modality>: length | [lengths] | None}, ...]``;
                ids are strings or integers, ranks and lengths integers of any common type
                (int, numpy integers, 0-d integer tensors).
            algorithm: this request's algorithm (default: the planner's).
            exchange: ``"compact"`` or ``"full"`` (default: the planner's).
            timeout: seconds this request may take (default: the planner's ``timeout``).
            format: ``"full"`` (default: the CLI's output, item ids per rank) or ``"compact"``
                (per phase the rank of every item in item order; docs/FORMAT.md).

        Returns:
            The plan as a dict, in the form asked for.

        Raises:
            PlannerError: a bad batch (the message names the example and field), or a sidecar
                that died, timed out or answered out of protocol.
        """
        return self.plan_async(batch, algorithm, exchange, timeout, format).result()

    def plan_async(
        self,
        batch: Sequence[Mapping[str, Any]],
        algorithm: Optional[str] = None,
        exchange: Optional[str] = None,
        timeout: Optional[float] = None,
        format: Optional[str] = None,
    ) -> "Future[Dict[str, Any]]":
        """Sends a batch to plan and returns at once: the sidecar plans it while the caller
        goes on (e.g. plans step t+1 while step t trains).

        Args:
            batch: as :meth:`plan`.
            algorithm: as :meth:`plan`.
            exchange: as :meth:`plan`.
            timeout: as :meth:`plan`; counted from when the sidecar has answered the requests
                sent before this one.
            format: as :meth:`plan`.

        Returns:
            A :class:`concurrent.futures.Future` of the plan; its ``result()`` raises
            :class:`PlannerError` as :meth:`plan` would. Requests are answered in the order
            they were sent.

        Raises:
            PlannerError: at once, for a batch that cannot be sent (the message names the
                example and field) or a planner that is not running.
        """
        if isinstance(batch, (str, bytes, Mapping)) or not isinstance(batch, Iterable):
            raise PlannerError(f"batch: must be a list of example dicts, got {_show(batch)}")
        req: Dict[str, Any] = {"batch": [_wire_example(e, i) for i, e in enumerate(batch)]}
        return self._plan_request(req, algorithm, exchange, timeout, format)

    def plan_compact(
        self,
        ranks: Sequence[int],
        lengths: Mapping[str, Sequence[Any]],
        ids: Optional[Sequence[Union[str, int]]] = None,
        algorithm: Optional[str] = None,
        exchange: Optional[str] = None,
        timeout: Optional[float] = None,
        format: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Plans a batch given column-wise.

        Args:
            ranks: ``ranks[e]``, the rank that sampled example e.
            lengths: ``lengths[modality][e]``: a length, a list of segment lengths, or None.
            ids: ``ids[e]`` (default: the index e).
            algorithm: as in :meth:`plan`.
            exchange: as in :meth:`plan`.
            timeout: as in :meth:`plan`.
            format: as in :meth:`plan`.

        Returns:
            The plan as a dict, as :meth:`plan` returns it.

        Raises:
            PlannerError: as :meth:`plan`.
        """
        return self.plan_compact_async(ranks, lengths, ids, algorithm, exchange, timeout, format).result()

    def plan_compact_async(
        self,
        ranks: Sequence[int],
        lengths: Mapping[str, Sequence[Any]],
        ids: Optional[Sequence[Union[str, int]]] = None,
        algorithm: Optional[str] = None,
        exchange: Optional[str] = None,
        timeout: Optional[float] = None,
        format: Optional[str] = None,
    ) -> "Future[Dict[str, Any]]":
        """:meth:`plan_compact` without waiting: returns a Future of the plan, as
        :meth:`plan_async` does."""
        if not isinstance(lengths, Mapping):
            raise PlannerError(f"compact.lengths: must be a dict of modality -> column, got {_show(lengths)}")
        compact: Dict[str, Any] = {
            "ranks": [_as_int(r, f"compact.ranks[{e}]") for e, r in enumerate(_column(ranks, "compact.ranks"))],
            "lengths": {m: _lengths_column(v, m) for m, v in lengths.items()},
        }
        if ids is not None:
            compact["ids"] = [wire_id(x, f"compact.ids[{e}]") for e, x in enumerate(_column(ids, "compact.ids"))]
        return self._plan_request({"compact": compact}, algorithm, exchange, timeout, format)

    def set_config(self, config: Mapping[str, Any], timeout: Optional[float] = None) -> Dict[str, Any]:
        """Installs a new config in the running sidecar (e.g. costs refitted from measured
        times); requests sent after it are planned with it, those sent before with the old one.

        Args:
            config: the new config (the CLI's ``--config``).
            timeout: as in :meth:`plan`.

        Returns:
            The sidecar's answer (ranks, phases, backend, adapter), also kept in :attr:`info`.

        Raises:
            PlannerError: the sidecar rejected the config (the old one stays installed) or failed.
        """
        if not isinstance(config, Mapping):
            raise PlannerError(f"config: must be a dict (the planner config), got {_show(config)}")
        resp = self._submit({"config": dict(config)}, self.timeout if timeout is None else timeout, wants_plan=False).result()
        self.config = dict(config)
        self.info = {k: v for k, v in resp.items() if k not in ("id", "ok")}
        return self.info

    def _plan_request(self, req: Dict[str, Any], algorithm: Optional[str], exchange: Optional[str],
                      timeout: Optional[float], format: Optional[str]) -> "Future[Dict[str, Any]]":
        algorithm = algorithm or self.algorithm
        exchange = exchange or self.exchange
        if algorithm:
            req["algorithm"] = algorithm
        if exchange:
            req["exchange"] = exchange
        if format:
            req["format"] = format
        return self._submit(req, self.timeout if timeout is None else timeout, wants_plan=True)

    def _submit(self, req: Dict[str, Any], timeout: Optional[float], wants_plan: bool) -> "Future[Dict[str, Any]]":
        timeout = _timeout(timeout, "timeout")
        s = self._session
        if s is None:
            raise PlannerError("the planner is not running: use it as a context manager or call start()")
        with s.write_lock:  # ids, the pending queue and the pipe all in one order
            with self._id_lock:
                self._next_id += 1
                rid = self._next_id
            try:
                line = json.dumps({"id": rid, **req}, separators=(",", ":"), allow_nan=False) + "\n"
            except (TypeError, ValueError) as e:
                raise PlannerError(f"request {rid}: cannot be sent as JSON ({e})") from None
            p = _Pending(rid, timeout, wants_plan)
            with s.lock:
                s.pending.append(p)
                if len(s.pending) == 1:
                    s.arm()
            try:
                assert s.proc.stdin is not None
                s.proc.stdin.write(line.encode("utf-8"))
                s.proc.stdin.flush()
            except (OSError, ValueError):
                # A sidecar that is gone: its reader sees the end of its output and fails every
                # request still waiting, this one included, with the exit code and stderr.
                pass
        return p.future

    # -- the reader thread -----------------------------------------------------------------

    def _read(self, s: _Session) -> None:
        """Hands each response line to the oldest unanswered request; on a broken protocol or
        the end of the sidecar's output, stops it and fails every request still waiting."""
        proc = s.proc
        assert proc.stdout is not None
        fatal: Optional[str] = None
        failed: Optional[_Pending] = None
        while fatal is None:
            try:
                raw = proc.stdout.readline()
            except (OSError, ValueError):
                raw = b""
            if not raw:
                break
            with s.lock:
                p = s.pending.popleft() if s.pending else None
                s.arm()
            if p is None:
                fatal = f"planner sidecar sent a line no request waits for: {_show(raw[:200])}"
                break
            result, error, fatal = self._answer(p, raw)
            if fatal is not None:
                failed = p
            elif error is not None:
                p.future.set_exception(PlannerError(error))
            else:
                assert result is not None
                p.future.set_result(result)
        with s.lock:
            waiting = list(s.pending)
            s.pending.clear()
            expired = s.expired
            if s.timer is not None:
                s.timer.cancel()
        if fatal is None and not waiting:
            return  # the end of a clean close: nothing was left unanswered
        # Stop the sidecar first, so that whoever sees the error sees no process left.
        if fatal is not None or expired is not None:
            _kill(proc)
        try:
            code: Optional[int] = proc.wait(timeout=2 if fatal is None and expired is None else None)
        except subprocess.TimeoutExpired:
            code = None
        if s.stderr_thread is not None:
            s.stderr_thread.join(timeout=1)
        tail = " | ".join(self._stderr_tail)
        if self._session is s:
            self._stop(kill=True)
        if failed is not None:
            assert fatal is not None
            failed.future.set_exception(PlannerError(fatal))
        for p in waiting:
            if expired is p:
                msg = (f"the planner sidecar did not answer request {p.rid} within {p.timeout:g} s; "
                       "it was stopped (start() starts a new one)")
            elif expired is not None:
                msg = f"the planner sidecar was stopped (request {expired.rid} timed out) before it answered request {p.rid}"
            elif fatal is not None:
                msg = f"the planner sidecar was stopped ({fatal}) before it answered request {p.rid}"
            else:
                msg = f"planner sidecar {shlex.join(self.command)} failed (no response, exit code {code})" + (f": {tail}" if tail else "")
            p.future.set_exception(PlannerError(msg))

    @staticmethod
    def _answer(p: _Pending, raw: bytes) -> "tuple[Optional[Dict[str, Any]], Optional[str], Optional[str]]":
        """(result, error, fatal) of one response line: the response, the sidecar's error
        message for this request, or why the protocol is broken (the sidecar is then stopped)."""
        try:
            resp = json.loads(raw)
        except ValueError:
            return None, None, f"planner sidecar answered request {p.rid} with a line that is not JSON: {_show(raw[:200])}"
        if not isinstance(resp, dict) or resp.get("id") != p.rid:
            got = resp.get("id") if isinstance(resp, dict) else resp
            return None, None, f"planner sidecar answered {_show(got)} to request {p.rid}: protocol out of step; it was stopped"
        if "error" in resp:
            return None, str(resp["error"]), None
        if p.wants_plan:
            plan = resp.get("plan")
            if not isinstance(plan, dict):
                return None, None, f"planner sidecar answered request {p.rid} without a \"plan\": {_show(resp)}"
            return plan, None, None
        return resp, None, None

    def _pump_stderr(self, proc: "subprocess.Popen[bytes]") -> None:
        stream: Optional[IO[bytes]] = proc.stderr
        if stream is None:
            return
        for raw in iter(stream.readline, b""):
            text = raw.decode("utf-8", "replace").rstrip("\n")
            self._stderr_tail.append(text)
            print(text, file=sys.stderr, flush=True)
        stream.close()


def _kill(proc: "subprocess.Popen[bytes]") -> None:
    try:
        proc.kill()
    except OSError:
        pass
