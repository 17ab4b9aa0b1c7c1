"""Power loss: what wf acknowledges must be on disk first (issue 13).

With the default durability (`power-loss`), SQLite runs in WAL mode with synchronous=FULL: the
log is fsynced at every commit. Acknowledged here means: `wf trigger` printing the new
instance's id (a create), `wf send-event` returning (an event), and `run()` going on to its next
step (a step's commit). strace shows the order of system calls: each acknowledgement must come
after an fdatasync (or fsync) of the state database's WAL that follows the previous one. With
`WF_DURABILITY=process` the same check must fail: that mode gives power-loss durability up.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "faults"
SYNC = re.compile(r"^\d+\s+(?:fdatasync|fsync)\(\d+<([^>]*)>")
WRITE = re.compile(r'^\d+\s+write\((\d+)<([^>]*)>, "((?:[^"\\]|\\.)*)"')

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path) -> Path:
    if shutil.which("strace") is None:
        if os.environ.get("CI"):
            pytest.fail("strace is missing: .ci/run installs it (Debian's strace package)")
        pytest.skip("these checks read system calls with strace (apt-get install strace)")
    dest = tmp_path / "faults"
    shutil.copytree(FIXTURE, dest, ignore=shutil.ignore_patterns("__pycache__", ".wf"))
    wf(dest, "trigger", "quick", '{"n": 0}')  # the store exists before what is traced
    return dest


def wf(project: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wf", *args],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=True,
    )


def traced(project: Path, *args: str, env: dict | None = None) -> list[str]:
    """The fsyncs and writes of `wf ARGS`, every thread, in the order they were made. Another
    connection stays open meanwhile, as a runner's would: the WAL outlives the command, so the
    syncs seen are those of its commits, not those of a WAL file being created."""
    import sqlite3

    holder = sqlite3.connect(project / ".wf" / "state.db", isolation_level=None)
    holder.execute("INSERT OR REPLACE INTO wf_meta VALUES ('held', '1')")  # the WAL begins: no header to sync
    try:
        return _strace(project, *args, env=env)
    finally:
        holder.close()


def _strace(project: Path, *args: str, env: dict | None = None) -> list[str]:
    log = project / "strace.txt"
    subprocess.run(
        [
            "strace",
            "-f",
            "-y",
            "-s",
            "200",
            "-e",
            "trace=fdatasync,fsync,write",
            "-o",
            str(log),
            sys.executable,
            "-m",
            "wf",
            *args,
        ],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=180,
        check=True,
    )
    return log.read_text().splitlines()


def acknowledged_after_sync(lines: list[str], acks: list[int]) -> list[bool]:
    """For each acknowledgement (a line number), whether a WAL sync lies between it and the one before."""
    syncs = [i for i, line in enumerate(lines) if (m := SYNC.match(line)) and m[1].endswith("state.db-wal")]
    out, previous = [], -1
    for ack in acks:
        out.append(any(previous < s < ack for s in syncs))
        previous = ack
    return out


def stdout_writes(lines: list[str], text: str) -> list[int]:
    return [i for i, line in enumerate(lines) if (m := WRITE.match(line)) and m[1] == "1" and text in m[3]]


@pytest.mark.parametrize("mode", ["power-loss", "process"])
def test_a_create_is_on_disk_before_its_id_is_printed(project, mode):
    lines = traced(project, "trigger", "quick", '{"n": 1}', "--id", "acked", env={"WF_DURABILITY": mode})
    [ack] = stdout_writes(lines, "acked")
    assert acknowledged_after_sync(lines, [ack]) == [mode == "power-loss"], "\n".join(lines[-40:])


@pytest.mark.parametrize("mode", ["power-loss", "process"])
def test_an_event_is_on_disk_before_send_event_returns(project, mode):
    wf(project, "trigger", "hang", json.dumps({"marker": str(project / "m"), "timeout": "1 second"}), "--id", "w")
    lines = traced(
        project, "send-event", "w", "--type", "approval", "--payload", "1", "--json", env={"WF_DURABILITY": mode}
    )
    [ack] = stdout_writes(lines, "sent")
    assert acknowledged_after_sync(lines, [ack]) == [mode == "power-loss"]


@pytest.mark.parametrize("mode", ["power-loss", "process"])
def test_each_step_is_on_disk_before_run_goes_on(project, mode):
    ledger = project / "ledger.jsonl"
    params = json.dumps({"ledger": str(ledger), "steps": 6, "work": 0.0})
    lines = traced(project, "trigger", "ledger", params, "--id", "l", "--wait", env={"WF_DURABILITY": mode})
    starts = [
        i for i, line in enumerate(lines) if (m := WRITE.match(line)) and m[2] == str(ledger) and '\\"start\\"' in m[3]
    ]
    assert len(starts) == 6, "\n".join(lines[-60:])
    synced = acknowledged_after_sync(lines, starts)[1:]  # step k+1 starts: step k was acknowledged
    assert synced == [mode == "power-loss"] * 5, "\n".join(lines[-80:])
