"""Four `wf worker` processes on one PostgreSQL store; one is SIGKILLed mid-run.

The workflow and its side-effect ledger are test_multi_runner's (each step execution appends a
"start" and an "end" line with its pid). From the ledger and the store: every instance
completes; no step ran in two processes at once; no step committed before the kill ran again;
and the dead worker's instances were taken over within its lease (WF_LEASE=2 s here).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from conftest import wait_until
from pgtest import Schema, require_base_url
from test_multi_runner import STEPS, WORKFLOW, assert_no_concurrent_runs, executions, ledger
from wf.client import Client
from wf.config import load_config

N = 1000
LEASE = 2.0
REAP = 1.0  # the runner's reap interval: how often a worker looks for lapsed leases


@pytest.fixture
def pg_store_url():
    schema = Schema(require_base_url())
    yield schema.url
    schema.drop()


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "pg-project"
    (root / "src").mkdir(parents=True)
    (root / "src" / "index.py").write_text(WORKFLOW)
    (root / "wrangler.jsonc").write_text(json.dumps({
        "name": "ledger", "main": "src/index.py", "vars": {"LEDGER": str(tmp_path / "side-effects.jsonl")},
        "workflows": [{"name": "ledger-flow", "binding": "FLOW", "class_name": "LedgerWorkflow"}]}))
    return root


class Worker:
    def __init__(self, project: Path, url: str, log: Path, concurrency: int):
        env = {k: v for k, v in os.environ.items() if k not in ("WF_CRASH_AT", "NO_COLOR")}
        env.update(WF_STORE=url, WF_LEASE=str(LEASE), PYTHONUNBUFFERED="1")
        self.log = log
        with open(log, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "wf", "worker", "--concurrency", str(concurrency)],
                                         cwd=project, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err, start_new_session=True)
        self.pid = self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"worker {self.pid} exited {self.proc.returncode}:\n{self.output()}")
        return "ready" in self.output()


@pytest.fixture
def workers(project, pg_store_url, tmp_path):
    started: list[Worker] = []

    def start(n: int, concurrency: int) -> list[Worker]:
        for i in range(n):
            started.append(Worker(project, pg_store_url, tmp_path / f"worker-{i}.log", concurrency))
        for w in started:
            wait_until(w.ready, 30, f"worker {w.pid} to be ready")
        return started
    yield start
    for w in started:
        try:
            os.killpg(w.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        w.proc.wait(10)


def committed_steps(client) -> tuple[set, float]:
    """(instance id, step) pairs committed now, and a time taken after reading them."""
    store = client.store
    with store.transaction():
        rows = store._c.execute("SELECT i.id, s.name FROM wf_steps s JOIN wf_instances i ON i.seq = s.instance "
                                "WHERE s.status = 'complete'").fetchall()
    return {tuple(r) for r in rows}, time.time()


def test_four_workers_1000_instances_one_killed(project, pg_store_url, workers):
    started = time.monotonic()
    client = Client(load_config(project / "wrangler.jsonc", store=pg_store_url))
    pool = workers(4, concurrency=40)
    victim, survivors = pool[0], pool[1:]
    ids = [f"order-{i:04d}" for i in range(N)]
    for at in range(0, N, 100):
        client.create_batch("ledger-flow", [{"id": i, "params": {"work": 0.03}} for i in ids[at:at + 100]])

    wait_until(lambda: sum(1 for e in ledger(project) if e["pid"] == victim.pid and e["ev"] == "end") >= 100,
               60, "the victim to finish some steps")
    victim.proc.send_signal(signal.SIGKILL)
    assert victim.proc.wait(10) == -signal.SIGKILL
    killed_at = time.time()
    committed, snapshot_at = committed_steps(client)
    assert len(committed) < N * len(STEPS), "the kill came too late: nothing left to take over"

    def done():
        for w in survivors:
            assert w.proc.poll() is None, f"worker {w.pid} exited:\n{w.output()}"
        counts = client.store.count_by_status("ledger-flow")
        assert not set(counts) - {"queued", "running", "waiting", "complete"}, counts
        return counts.get("complete", 0) == N
    wait_until(done, 90, f"all {N} instances to complete after the kill", interval=0.2)

    rows = {r.id: r for r in client.store.list_instances("ledger-flow", None, N + 10)}
    for i in ids:
        assert json.loads(rows[i].output) == {"steps": [f"{s}:{i}" for s in STEPS]}, (i, rows[i])

    by_step = executions(ledger(project), killed_pid=victim.pid, killed_at=killed_at)
    assert set(by_step) == {(i, s) for i in ids for s in STEPS}
    assert_no_concurrent_runs(by_step)
    rerun = {k: by_step[k] for k in committed if any(s > snapshot_at for s, _, _ in by_step[k])}
    assert not rerun, f"steps committed before the kill ran again: {rerun}"
    for key, runs in by_step.items():
        assert sum(1 for *_, p in runs if p != victim.pid) <= 1, f"{key} ran more than once after the kill: {runs}"

    per_pid = defaultdict(int)
    for runs in by_step.values():
        for *_, p in runs:
            per_pid[p] += 1
    assert set(per_pid) == {w.pid for w in pool}, f"every worker should have run steps: {dict(per_pid)}"

    orphans = {k[0] for k, runs in by_step.items() if k not in committed and any(p == victim.pid for *_, p in runs)}
    assert orphans, "the victim had no instance in flight when it was killed"
    takeover = max(min(s for k, runs in by_step.items() if k[0] == i for s, _, p in runs
                       if p != victim.pid and s > killed_at) - killed_at for i in orphans)
    assert takeover < LEASE + REAP + 1.0, \
        f"the dead worker's instances were taken over after {takeover:.2f}s (lease {LEASE}s)"
    client.close()
    for w in survivors:
        w.proc.send_signal(signal.SIGTERM)
    for w in survivors:
        assert w.proc.wait(15) == 0, w.output()
    print(f"\n{N} instances, 4 workers (one killed): takeover {takeover:.2f}s, "
          f"total {time.monotonic() - started:.1f}s, steps per worker {dict(per_pid)}")
