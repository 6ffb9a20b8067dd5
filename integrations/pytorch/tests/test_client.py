"""The sidecar client: the CLI's plan, byte for byte; one PlannerError naming the field for every
bad input or broken sidecar; ids as written; no process left behind."""
from __future__ import annotations

import os
import signal
import stat
import sys
import textwrap
import time
from typing import Any, Dict, List

import numpy as np
import pytest
import torch

from postbalance_torch import Planner, PlannerError, compact_batch, find_cli
from support import cli_plan, untimed, workload

CONFIG: Dict[str, Any] = {
    "ranks": 2, "ranksPerNode": 1,
    "phases": [
        {"name": "vision", "modalities": ["image"], "unit": "segment", "cost": {"perItem": 1, "perToken": 1}},
        {"name": "llm", "modalities": ["text", "image"], "unit": "example", "scale": {"image": 0.5}, "cost": {"perToken": 1}},
    ],
}
BATCH: List[Dict[str, Any]] = [
    {"id": "a", "rank": 0, "text": 10, "image": [8, 4]},
    {"id": "b", "rank": 0, "text": 6},
    {"id": 7, "rank": 1, "text": 3, "image": 2},
]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) is not running.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def fake_sidecar(tmp_path: Any, body: str) -> List[str]:
    """A stand-in for `postbalance serve`: a Python script that reads requests and answers as told."""
    script = tmp_path / "fake_serve.py"
    script.write_text(textwrap.dedent(body))
    return [sys.executable, str(script), "serve"]


@pytest.fixture(scope="module")
def demo() -> Any:
    return workload(ranks=16, examples=512, seed=5)


def test_plans_equal_the_cli(demo: Any) -> None:
    config, examples = demo
    ref = cli_plan(config, examples)
    ref_lpt = cli_plan(config, examples, "--algorithm", "lpt", "--exchange", "full")
    with Planner(config, backend="cpu") as planner:
        assert planner.info["backend"] == "cpu"
        assert untimed(planner.plan(examples)) == untimed(ref)
        c = compact_batch(examples, ["text", "image", "audio"])
        assert untimed(planner.plan_compact(c["ranks"], c["lengths"], ids=c["ids"])) == untimed(ref)
        assert untimed(planner.plan(examples, algorithm="lpt", exchange="full")) == untimed(ref_lpt)
        bad = [dict(e) for e in examples[:8]]
        bad[3]["text"] = 2.5
        with pytest.raises(PlannerError, match=r'batch example 3, field "text": length must be a non-negative integer, got 2\.5'):
            planner.plan(bad)
        bad[3]["text"] = -4  # the engine's own check, through the sidecar
        with pytest.raises(PlannerError, match=r'batch example 3, field "text": length must be a non-negative integer, got -4'):
            planner.plan(bad)
        assert untimed(planner.plan(examples)) == untimed(ref), "the sidecar keeps serving after errors"
    assert planner.returncode == 0, "leaving the context closes stdin and the sidecar exits 0"


def test_integer_ids_come_back_as_written() -> None:
    big = 2**63 - 1                      # a 64-bit hash; as a double it would be ...776000
    near = [12345678901234567000, 12345678901234567001]  # distinct, equal once rounded to a double
    batch = [
        {"id": big, "rank": 0, "text": 5, "image": [3]},
        {"id": near[0], "rank": 1, "text": 4},
        {"id": near[1], "rank": 1, "text": 2},
        {"id": np.int64(-3), "rank": 0, "text": 1},
        {"id": torch.tensor(42), "rank": 0, "text": 1},
    ]
    with Planner(CONFIG, backend="cpu") as planner:
        plan = planner.plan(batch)
        llm = sorted(i for r in plan["phases"][1]["ranks"] for i in r["items"])
        assert llm == sorted([str(big), str(near[0]), str(near[1]), "-3", "42"])
        assert [i for r in plan["phases"][0]["ranks"] for i in r["items"]] == [f"{big}/image/0"]
        c = compact_batch(batch, ["text", "image"])
        assert untimed(planner.plan_compact(c["ranks"], c["lengths"], ids=c["ids"])) == untimed(plan)
        for bad_id, shown in [(1.5, "1.5"), (True, "True"), (None, "None")]:
            with pytest.raises(PlannerError, match=rf'batch example 0, field "id": must be a string or an integer, got {shown}'):
                planner.plan([{"id": bad_id, "rank": 0, "text": 1}])


def test_lengths_and_ranks_of_any_common_integer_type() -> None:
    plain = [{"id": "a", "rank": 0, "text": 10, "image": [8, 4]}, {"id": "b", "rank": 1, "text": 6, "image": 3}]
    typed = [
        {"id": "a", "rank": np.int64(0), "text": np.int64(10), "image": np.array([8, 4], dtype=np.int32)},
        {"id": "b", "rank": torch.tensor(1), "text": torch.tensor(6), "image": [torch.tensor(3)]},
    ]
    as_lists = [{"id": "a", "rank": 0, "text": 10.0, "image": torch.tensor([8, 4])}, {"id": "b", "rank": 1, "text": np.uint16(6), "image": (3,)}]
    with Planner(CONFIG, backend="cpu") as planner:
        ref = untimed(planner.plan(plain))
        assert untimed(planner.plan(typed)) == ref
        assert untimed(planner.plan(as_lists)) == ref
        assert untimed(planner.plan_compact(np.array([0, 1]), {"text": np.array([10, 6]), "image": [[8, 4], torch.tensor(3)]}, ids=["a", "b"])) == ref
        cases = [
            ({"id": "a", "rank": 0, "text": "12"}, r'batch example 0, field "text": length must be a non-negative integer, got \'12\''),
            ({"id": "a", "rank": 0, "text": torch.tensor(2.5)}, r'batch example 0, field "text": length must be a non-negative integer, got tensor\(2\.5'),
            ({"id": "a", "rank": 0, "image": [4, 2.5]}, r'batch example 0, field "image"\[1\]: length must be a non-negative integer, got 2\.5'),
            ({"id": "a", "rank": 0, "image": {"w": 4}}, r'batch example 0, field "image": length must be a non-negative integer, got \{'),
            ({"id": "a", "rank": None, "text": 1}, r'batch example 0, field "rank": must be an integer, got None'),
            ({"id": "a", "rank": 0.5, "text": 1}, r'batch example 0, field "rank": must be an integer, got 0\.5'),
        ]
        for example, message in cases:
            with pytest.raises(PlannerError, match=message):
                planner.plan([example])
        with pytest.raises(PlannerError, match=r"compact.lengths.text\[1\]: length must be a non-negative integer, got 'x'"):
            planner.plan_compact([0, 1], {"text": [1, "x"]})
        assert untimed(planner.plan(plain)) == ref


def test_a_hung_sidecar_times_out_and_is_stopped() -> None:
    with Planner(CONFIG, backend="cpu", timeout=30) as planner:
        planner.plan(BATCH)
        pid = planner.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # a stuck sidecar: alive, never answers
        t = time.monotonic()
        with pytest.raises(PlannerError, match=r"did not answer request \d+ within 1 s; it was stopped"):
            planner.plan(BATCH, timeout=1)
        assert time.monotonic() - t < 10
        assert planner.pid is None and not alive(pid)
        with pytest.raises(PlannerError, match="not running"):
            planner.plan(BATCH)
        planner.start()  # a new sidecar on demand
        assert planner.pid not in (None, pid)
        assert planner.plan(BATCH)["ranks"] == 2


def test_the_default_timeout_applies_to_every_request() -> None:
    with Planner(CONFIG, backend="cpu", timeout=1.5) as planner:
        pid = planner.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        with pytest.raises(PlannerError, match="within 1.5 s"):
            planner.plan(BATCH)
        assert not alive(pid)


def test_a_failed_start_leaves_no_sidecar(tmp_path: Any) -> None:
    bad = dict(CONFIG, ranks=0)
    planner = Planner(bad, backend="cpu")
    with pytest.raises(PlannerError, match="config ranks: must be a positive integer"):
        planner.start()
    assert planner.pid is None and planner.returncode is not None
    # A sidecar that never answers the config: stopped at the timeout.
    silent = Planner(CONFIG, command=fake_sidecar(tmp_path, "import time; time.sleep(60)\n"), timeout=1)
    with pytest.raises(PlannerError, match="within 1 s"):
        silent.start()
    assert silent.pid is None
    # A command that cannot run at all.
    with pytest.raises(PlannerError, match="cannot start the planner sidecar"):
        Planner(CONFIG, command=[str(tmp_path / "no-such-postbalance")]).start()


def test_a_sidecar_out_of_protocol_is_one_planner_error(tmp_path: Any) -> None:
    answer_config = """\
        import json, sys
        first = json.loads(sys.stdin.readline())
        print(json.dumps({"id": first["id"], "ok": True}), flush=True)
        req = json.loads(sys.stdin.readline())
    """
    cases = [
        ('print("Segmentation fault (core dumped)", flush=True)', "a line that is not JSON"),
        ('print(json.dumps({"id": req["id"], "serveMs": 1}), flush=True)', 'without a "plan"'),
        ('print(json.dumps({"id": req["id"], "plan": [1, 2]}), flush=True)', 'without a "plan"'),
        ('print(json.dumps({"id": 999, "plan": {}}), flush=True)', "protocol out of step"),
        ('print("[]", flush=True)', "protocol out of step"),
        ("sys.exit(3)", r"failed \(no response, exit code 3\)"),
    ]
    for then, message in cases:
        planner = Planner(CONFIG, command=fake_sidecar(tmp_path, textwrap.dedent(answer_config) + then + "\nsys.stdin.read()\n"), timeout=20)
        planner.start()
        pid = planner.pid
        with pytest.raises(PlannerError, match=message):
            planner.plan(BATCH)
        assert planner.pid is None and pid is not None and not alive(pid)


def test_finding_the_command(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("POSTBALANCE_CLI", "POSTBALANCE_COMMAND"):
        monkeypatch.delenv(var, raising=False)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    project = tmp_path / "project"
    (project / "src" / "deep").mkdir(parents=True)
    with pytest.raises(PlannerError, match="cannot find the postbalance command: set POSTBALANCE_CLI"):
        find_cli(str(project / "src" / "deep"))
    with pytest.raises(PlannerError, match="cannot find the postbalance command"):
        Planner(CONFIG)

    def executable(path: Any) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
        return str(path)

    local = executable(project / "node_modules" / ".bin" / "postbalance")
    assert find_cli(str(project / "src" / "deep")) == [local], "node_modules/.bin of the nearest project above"
    monkeypatch.chdir(project / "src")
    assert find_cli() == [local], "from the working directory by default"
    on_path = executable(tmp_path / "global-bin" / "postbalance")
    monkeypatch.setenv("PATH", f"{empty}{os.pathsep}{tmp_path / 'global-bin'}")
    assert find_cli() == [on_path], "PATH before a local install"
    script = tmp_path / "checkout" / "bin" / "postbalance.mjs"
    script.parent.mkdir(parents=True)
    script.write_text("")
    monkeypatch.setenv("POSTBALANCE_CLI", str(script))
    assert find_cli() == ["node", str(script)], "POSTBALANCE_CLI first; a script runs with node"
    monkeypatch.setenv("POSTBALANCE_CLI", "node --max-old-space-size=8192 /opt/pb/bin/postbalance.mjs")
    assert find_cli() == ["node", "--max-old-space-size=8192", "/opt/pb/bin/postbalance.mjs"], "or a command line"
    assert Planner(CONFIG, backend="cpu").command[-3:] == ["serve", "--backend", "cpu"]
