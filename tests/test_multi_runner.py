"""Two `wf worker` processes on one project and one SQLite store.

Each step execution of the test workflow appends a "start" and an "end" line (time, pid,
instance, step) to a side-effect ledger opened with O_APPEND, one line per write. From it:
no step ran in two processes at once, each committed step ran exactly once (nobody crashed),
both workers shared the work; and when one worker is SIGKILLed mid-run, the other takes its
instances over promptly, without re-running a step that had been committed.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import wait_until

from wf.client import Client
from wf.config import load_config

pytestmark = [pytest.mark.slow]

STEPS = ("reserve", "charge", "ship", "notify")

WORKFLOW = """
import asyncio
import json
import os
import time
import uuid

from wf import WorkflowEntrypoint

STEPS = %r


def append(path, record):
    line = (json.dumps(record) + "\\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one write, one line: lines from several processes never interleave
    finally:
        os.close(fd)


def side_effect(ledger, instance_id, name, work):
    async def body(ctx):
        record = {"run": uuid.uuid4().hex, "instance": instance_id, "step": name, "pid": os.getpid(),
                  "attempt": ctx.attempt}
        append(ledger, {**record, "ev": "start", "t": time.time()})
        await asyncio.sleep(work)
        append(ledger, {**record, "ev": "end", "t": time.time()})
        return f"{name}:{instance_id}"
    return body


class LedgerWorkflow(WorkflowEntrypoint):
    async def run(self, event, step):
        work = event.payload.get("work", 0.01)
        done = [await step.do(name, side_effect(self.env.LEDGER, event.instance_id, name, work))
                for name in STEPS]
        return {"steps": done}
""" % (STEPS,)  # noqa: UP031


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "ledger-project"
    (root / "src").mkdir(parents=True)
    (root / "src" / "index.py").write_text(WORKFLOW)
    (root / "wrangler.jsonc").write_text(
        json.dumps(
            {
                "name": "ledger",
                "main": "src/index.py",
                "vars": {"LEDGER": str(tmp_path / "side-effects.jsonl")},
                "workflows": [{"name": "ledger-flow", "binding": "FLOW", "class_name": "LedgerWorkflow"}],
            }
        )
    )
    return root


@pytest.fixture
def client(project):
    c = Client(load_config(project / "wrangler.jsonc"))
    yield c
    c.close()


def ledger(project) -> list[dict]:
    path = Path(json.loads((project / "wrangler.jsonc").read_text())["vars"]["LEDGER"])
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def executions(entries: list[dict], killed_pid: int | None = None, killed_at: float | None = None) -> dict:
    """(instance, step) -> [(start, end, pid)]; a run cut off by the kill ends at `killed_at`."""
    runs: dict[str, dict] = {}
    for e in entries:
        run = runs.setdefault(e["run"], {"key": (e["instance"], e["step"]), "pid": e["pid"]})
        run[e["ev"]] = e["t"]
    by_step = defaultdict(list)
    for run in runs.values():
        end = run.get("end")
        if end is None:
            assert run["pid"] == killed_pid, f"a run of {run['key']} in {run['pid']} never ended"
            end = killed_at
        by_step[run["key"]].append((run["start"], end, run["pid"]))
    return by_step


def assert_no_concurrent_runs(by_step: dict) -> None:
    """No step ran in two processes at once: intervals of different pids never overlap."""
    for key, runs in by_step.items():
        runs = sorted(runs)
        for (_s1, e1, p1), (s2, _e2, p2) in zip(runs, runs[1:]):
            assert p1 == p2 or s2 >= e1, f"{key} ran in {p1} and {p2} at once: {runs}"


def create(client, n: int, work: float) -> list[str]:
    ids = [f"job-{i:03d}" for i in range(n)]
    for start in range(0, n, 100):
        client.create_batch("ledger-flow", [{"id": i, "params": {"work": work}} for i in ids[start : start + 100]])
    return ids


def all_complete(client, ids: list[str], workers) -> bool:
    for w in workers:
        if w.proc.poll() is not None:
            raise AssertionError(f"worker {w.pid} exited {w.proc.returncode}:\n{w.output()}")
    counts = client.store.count_by_status("ledger-flow")
    assert not set(counts) - {"queued", "running", "waiting", "complete"}, counts
    return counts.get("complete", 0) == len(ids)


def assert_outputs(client, ids: list[str]) -> None:
    for i in ids:
        assert client.status(i) == {
            "status": "complete",
            "output": {"steps": [f"{s}:{i}" for s in STEPS]},
            "error": None,
        }


def test_two_workers_share_200_instances_each_step_once(project, client, wf_procs):
    workers = [wf_procs.worker(project, args=["--concurrency", "25"]) for _ in range(2)]
    for w in workers:
        w.wait_ready()
    ids = create(client, 200, work=0.01)
    wait_until(lambda: all_complete(client, ids, workers), 60, "200 instances to complete")
    assert_outputs(client, ids)

    entries = ledger(project)
    by_step = executions(entries)
    assert set(by_step) == {(i, s) for i in ids for s in STEPS}
    assert_no_concurrent_runs(by_step)
    ran_twice = {k: v for k, v in by_step.items() if len(v) != 1}
    assert not ran_twice, f"steps that ran more than once with no crash: {ran_twice}"

    per_pid = defaultdict(int)
    for runs in by_step.values():
        per_pid[runs[0][2]] += 1
    assert set(per_pid) == {w.pid for w in workers}, f"both workers should have run steps: {dict(per_pid)}"
    assert min(per_pid.values()) >= 40, f"the work was not shared: {dict(per_pid)}"
    for w in workers:
        assert w.stop() == 0, w.output()


def test_survivor_takes_over_a_killed_workers_instances(project, client, wf_procs):
    a, b = (wf_procs.worker(project, args=["--concurrency", "20"]) for _ in range(2))
    a.wait_ready()
    b.wait_ready()
    ids = create(client, 100, work=0.1)

    wait_until(
        lambda: sum(1 for e in ledger(project) if e["pid"] == a.pid and e["ev"] == "end") >= 20,
        30,
        "worker A to finish some steps",
    )
    a.proc.send_signal(signal.SIGKILL)
    assert a.proc.wait(10) == -signal.SIGKILL
    killed_at = time.time()
    committed, snapshot_at = committed_steps(client)
    assert len(committed) < len(ids) * len(STEPS), "the kill came too late: nothing left to take over"

    wait_until(lambda: all_complete(client, ids, [b]), 60, "every instance to complete after the kill")
    assert_outputs(client, ids)

    entries = ledger(project)
    by_step = executions(entries, killed_pid=a.pid, killed_at=killed_at)
    assert set(by_step) == {(i, s) for i in ids for s in STEPS}
    assert_no_concurrent_runs(by_step)
    assert not any(p == a.pid and s > killed_at for runs in by_step.values() for s, _, p in runs)

    rerun = {k: runs for k in committed for runs in [by_step[k]] if any(s > snapshot_at for s, _, _ in runs)}
    assert not rerun, f"steps committed before the kill ran again: {rerun}"
    for key, runs in by_step.items():
        assert len(runs) <= 2 and sum(1 for *_, p in runs if p == b.pid) <= 1, (key, runs)

    # A's instances that were cut off: B picked each of them up after the kill (how soon is
    # bench/'s figure 10b, goal 3 s)
    orphans = {k[0] for k, runs in by_step.items() if k not in committed and any(p == a.pid for *_, p in runs)}
    assert orphans, "worker A had no instance in flight when it was killed"
    for i in orphans:
        resumed = [s for k, runs in by_step.items() if k[0] == i for s, _, p in runs if p == b.pid and s > killed_at]
        assert resumed, f"the survivor never resumed {i}, an instance the dead worker was running"


def committed_steps(client) -> tuple[set, float]:
    """The (instance, step) pairs committed now, read in one consistent snapshot; and a time after it."""
    with sqlite3.connect(client.config.state_dir / "state.db") as conn:  # one read: one snapshot
        rows = conn.execute(
            "SELECT i.id, s.name FROM wf_steps s JOIN wf_instances i ON i.seq = s.instance "
            "WHERE s.status = 'complete' AND i.workflow = 'ledger-flow'"
        ).fetchall()
    conn.close()
    return {tuple(r) for r in rows}, time.time()
