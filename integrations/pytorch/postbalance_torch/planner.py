"""Client for the `postbalance serve` sidecar: one long-lived Node process per Planner, spoken to
in newline-delimited JSON over its stdin/stdout (protocol in docs/PYTORCH.md).

A sidecar instead of spawning `postbalance plan` every step: Node start-up, module loading and
(with --backend gpu|auto) GPU adapter/pipeline creation are paid once, not per training step.
"""
from __future__ import annotations

import collections
import json
import os
import shlex
import subprocess
import sys
import threading
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

__all__ = ["Planner", "PlannerError", "compact_batch", "default_command"]

# integrations/pytorch/postbalance_torch/planner.py -> repository root
_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


class PlannerError(RuntimeError):
    """The sidecar answered with an error (bad config or batch) or died."""


def default_command() -> List[str]:
    """How to start the sidecar when the caller does not say.

    $POSTBALANCE_COMMAND (a shell-quoted command line) wins; then this checkout's launcher
    (`node <repo>/bin/postbalance.mjs`), which exists when the package is used from the
    repository; otherwise `npx postbalance`, which finds an installed package.
    """
    env = os.environ.get("POSTBALANCE_COMMAND")
    if env:
        return shlex.split(env)
    launcher = os.path.join(_REPO, "bin", "postbalance.mjs")
    if os.path.exists(launcher) and os.path.exists(os.path.join(_REPO, "dist", "src", "cli.js")):
        return ["node", launcher]
    return ["npx", "postbalance"]


def _js_id(v: Any) -> str:
    """The string JavaScript's String(id) gives, which is how the planner names items."""
    if isinstance(v, bool):
        raise TypeError("example id must be a string or a number, not a bool")
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def compact_batch(examples: Sequence[Mapping[str, Any]], modalities: Iterable[str]) -> Dict[str, Any]:
    """The compact request form of a list of example dicts: one array per field, not one object
    per example. About half the bytes of the list form for typical batches; the plan is the same."""
    mods = list(modalities)
    out: Dict[str, Any] = {
        "ids": [e["id"] for e in examples],
        "ranks": [e["rank"] for e in examples],
        "lengths": {m: [e.get(m) for e in examples] for m in mods},
    }
    return out


class Planner:
    """A postbalance sidecar bound to one config.

    >>> with Planner(config, backend="cpu") as planner:
    ...     plan = planner.plan(batch)      # batch: list of {"id", "rank", <modality>: len | [lens]}

    `plan()` returns the CLI's output contract as a dict: the same plan, byte for byte, that
    `postbalance plan --batch ... --config ...` prints (only `stats.planMs` differs: it is a
    timing). Not thread-safe across concurrent callers except through the internal lock, which
    serialises requests: one request, one response, in order.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        backend: str = "auto",
        command: Optional[Union[str, Sequence[str]]] = None,
        algorithm: Optional[str] = None,
        exchange: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
    ) -> None:
        if backend not in ("auto", "cpu", "gpu"):
            raise ValueError(f"backend must be auto, cpu or gpu, got {backend!r}")
        self.config = dict(config)
        self.backend = backend
        self.algorithm = algorithm
        self.exchange = exchange
        if command is None:
            base = default_command()
        elif isinstance(command, str):
            base = shlex.split(command)
        else:
            base = list(command)
        # A command that already names the subcommand is used as given.
        self.command = base if "serve" in base else base + ["serve", "--backend", backend]
        self._env = dict(env) if env is not None else None
        self._proc: Optional[subprocess.Popen] = None
        self._lock = threading.Lock()
        self._next_id = 0
        self._stderr_tail: collections.deque = collections.deque(maxlen=20)
        self._stderr_thread: Optional[threading.Thread] = None
        self.info: Dict[str, Any] = {}
        #: The sidecar's exit code once closed (0: it ended cleanly on EOF).
        self.returncode: Optional[int] = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> "Planner":
        if self._proc is not None:
            return self
        env = None if self._env is None else {**os.environ, **self._env}
        try:
            self._proc = subprocess.Popen(
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
        # Drain stderr in the background: a full pipe would block the sidecar; the user still
        # sees its lines (e.g. "no GPU adapter, using the CPU"), and errors quote the tail.
        self._stderr_thread = threading.Thread(target=self._pump_stderr, daemon=True)
        self._stderr_thread.start()
        resp = self._request({"config": self.config})
        self.info = {k: v for k, v in resp.items() if k not in ("id", "ok")}
        return self

    def close(self) -> int:
        """End the sidecar by closing its stdin (EOF); returns its exit code."""
        proc, self._proc = self._proc, None
        if proc is None:
            return self.returncode if self.returncode is not None else 0
        try:
            assert proc.stdin is not None
            proc.stdin.close()
        except OSError:
            pass
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()
        self.returncode = code
        return code

    def __enter__(self) -> "Planner":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:  # best effort: do not leave a Node process behind
        try:
            if self._proc is not None:
                self.close()
        except Exception:
            pass

    # -- requests --------------------------------------------------------------------------

    def plan(
        self,
        batch: Sequence[Mapping[str, Any]],
        algorithm: Optional[str] = None,
        exchange: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Plan a batch given as the CLI's example dicts; returns the plan dict."""
        req: Dict[str, Any] = {"batch": list(batch)}
        return self._plan_request(req, algorithm, exchange)

    def plan_compact(
        self,
        ranks: Sequence[int],
        lengths: Mapping[str, Sequence[Any]],
        ids: Optional[Sequence[Union[str, int]]] = None,
        algorithm: Optional[str] = None,
        exchange: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Plan a batch given column-wise: `ranks[e]`, `lengths[modality][e]` (a number, a list of
        segment lengths, or None), `ids[e]` (default: the index e)."""
        compact: Dict[str, Any] = {"ranks": list(ranks), "lengths": {m: list(v) for m, v in lengths.items()}}
        if ids is not None:
            compact["ids"] = list(ids)
        return self._plan_request({"compact": compact}, algorithm, exchange)

    def _plan_request(self, req: Dict[str, Any], algorithm: Optional[str], exchange: Optional[str]) -> Dict[str, Any]:
        algorithm = algorithm or self.algorithm
        exchange = exchange or self.exchange
        if algorithm:
            req["algorithm"] = algorithm
        if exchange:
            req["exchange"] = exchange
        return self._request(req)["plan"]

    def _request(self, req: Dict[str, Any]) -> Dict[str, Any]:
        with self._lock:
            proc = self._proc
            if proc is None:
                raise PlannerError("the planner is not running: use it as a context manager or call start()")
            self._next_id += 1
            rid = self._next_id
            line = json.dumps({"id": rid, **req}, separators=(",", ":"), allow_nan=False) + "\n"
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(line.encode("utf-8"))
                proc.stdin.flush()
                raw = proc.stdout.readline()
            except (BrokenPipeError, OSError) as e:
                raise self._died(f"write failed: {e}") from e
            if not raw:
                raise self._died("no response")
            resp = json.loads(raw)
            if resp.get("id") != rid:
                raise PlannerError(f"planner sidecar answered id {resp.get('id')!r} to request {rid}: protocol out of step")
            if "error" in resp:
                raise PlannerError(resp["error"])
            return resp

    def _died(self, what: str) -> PlannerError:
        proc = self._proc
        code = proc.poll() if proc is not None else None
        if proc is not None and code is None:
            try:
                code = proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=1)
        tail = " | ".join(self._stderr_tail)
        return PlannerError(f"planner sidecar {shlex.join(self.command)} failed ({what}, exit code {code})" + (f": {tail}" if tail else ""))

    def _pump_stderr(self) -> None:
        proc = self._proc
        if proc is None or proc.stderr is None:
            return
        for raw in iter(proc.stderr.readline, b""):
            text = raw.decode("utf-8", "replace").rstrip("\n")
            self._stderr_tail.append(text)
            print(text, file=sys.stderr, flush=True)
        proc.stderr.close()
