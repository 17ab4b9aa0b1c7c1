"""Rollback handlers across real processes (issue 17, point 10): a `wf worker` SIGKILLed in the
middle of a rollback and restarted runs each handler to completion exactly once, on both stores;
`wf terminate --rollback` and the explorer API's `rollback: true` (through `wf dev`) run the
handlers before the instance ends terminated.

The project (tests/fixtures/sagaapp) has handlers that write to a ledger file named in the params;
the refund handler waits for a gate file (bounded), so the test can kill the worker while it runs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from conftest import wait_until
from devserver import API, DevProcesses
from pgtest import Schema, require_base_url

from wf.client import Client
from wf.config import load_config

pytestmark = [pytest.mark.slow]

SAGAAPP = Path(__file__).parent / "fixtures" / "sagaapp"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request):
    if request.param == "sqlite":
        yield None, {}
        return
    schema = Schema(require_base_url())
    yield schema.url, {"WF_LEASE": "1.0"}  # the restarted worker waits out the dead one's (short) lease
    schema.drop()


@pytest.fixture
def project(tmp_path) -> Path:
    return Path(shutil.copytree(SAGAAPP, tmp_path / "saga-shop", ignore=shutil.ignore_patterns(".wf", "__pycache__")))


@pytest.fixture
def client(project, store):
    c = Client(load_config(project / "wrangler.jsonc", store=store[0]))
    yield c
    c.close()


@pytest.fixture
def procs(wf_procs, store):
    wf_procs.store, wf_procs.env = store[0], dict(store[1])
    return wf_procs


def lines(ledger: Path) -> list[str]:
    return ledger.read_text().splitlines() if ledger.exists() else []


def ended(client, instance_id, worker):
    status = client.status(instance_id)
    if status["status"] in ("complete", "errored", "terminated"):
        return status
    assert worker.proc.poll() is None, f"the worker exited {worker.proc.returncode}:\n{worker.output()}"
    return None


def test_a_worker_killed_in_the_middle_of_a_rollback_runs_each_handler_exactly_once(project, client, procs, tmp_path):
    ledger, gate = tmp_path / "ledger.txt", tmp_path / "gate"
    row = client.create("transfer", {"ledger": str(ledger), "gate": str(gate)})
    worker = procs.worker(project)
    wait_until(lambda: "refund-started" in lines(ledger), 30, "the refund handler to start")
    worker.kill()  # SIGKILL, with the refund handler running

    assert lines(ledger) == ["reverse 40", "refund-started"]
    rollbacks = {s["name"]: s["status"] for s in client.describe(row.id)["steps"] if s["type"] == "rollback"}
    assert rollbacks["credit"] == "complete" and rollbacks.get("debit") != "complete"

    gate.touch()
    fresh = procs.worker(project)
    status = wait_until(lambda: ended(client, row.id, fresh), 60, "the instance to end after the restart")
    assert status["status"] == "errored"
    assert status["error"] == {"name": "NonRetryableError", "message": "the mail server refused the message"}
    assert status["rollback"] == {"outcome": "complete", "error": None}
    # reverse ran once and never again; refund was cut short once, then ran to its end once
    assert lines(ledger) == ["reverse 40", "refund-started", "refund-started", "refund 40"]
    wait_until(lambda: "rolled back: every handler ran" in fresh.output(), 10, "the worker to log the rollback")
    log = [h.type for h in client.history(instance=client.get(row.id)) if h.type.startswith("rollback_")]
    assert log.count("rollback_started") == 1 and log[-1] == "rollback_completed"
    assert log.count("rollback_step_completed") + log.count("rollback_step_ok") == 2


def test_wf_terminate_rollback_runs_the_handlers_then_terminates(project, client, procs, tmp_path):
    ledger = tmp_path / "ledger.txt"
    row = client.create("booking", {"ledger": str(ledger)})
    procs.worker(project)
    wait_until(lambda: client.status(row.id)["status"] == "waiting", 30, "the booking to wait for payment")

    done = procs.cli(project, "terminate", row.id, "--rollback")
    assert "is terminating: its rollback handlers run first" in done.stdout + done.stderr

    wait_until(lambda: client.status(row.id)["status"] == "terminated", 30, "the booking to be terminated")
    assert lines(ledger) == ["release 12A"]
    assert client.status(row.id) == {
        "status": "terminated",
        "output": None,
        "error": None,
        "rollback": {"outcome": "complete", "error": None},
    }
    shown = procs.cli(project, "instances", "describe", row.id).stdout
    assert "↩ complete: every handler ran" in shown and "↩ Rollback" in shown and "↩ Rolled back" in shown
    again = procs.cli(project, "terminate", row.id, "--rollback", check=False)
    assert again.returncode != 0 and "already terminated" in again.stderr and "Traceback" not in again.stderr


def test_the_explorer_api_terminates_with_rollback(project, tmp_path):
    ledger = tmp_path / "ledger.txt"
    devs = DevProcesses(tmp_path)
    client = Client(load_config(project / "wrangler.jsonc"))
    try:
        dev = devs.start(project).wait_ready()
        row = client.create("booking", {"ledger": str(ledger)})
        wait_until(lambda: client.status(row.id)["status"] == "waiting", 30, "the booking to wait for payment")
        url = f"{dev.url}{API}/workflows/booking/instances/{row.id}/status"
        answer = httpx.patch(url, json={"action": "terminate", "rollback": True}, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["success"] is True

        wait_until(lambda: client.status(row.id)["status"] == "terminated", 30, "the booking to be terminated")
        assert lines(ledger) == ["release 12A"]
        shown = httpx.get(f"{dev.url}{API}/workflows/booking/instances/{row.id}", timeout=10).json()["result"]
        assert [s["name"] for s in shown["steps"] if s["type"] == "rollback"] == ["reserve-1"]
        assert shown["status"] == "terminated" and shown["rollback"] == {"outcome": "complete", "error": None}
    finally:
        client.close()
        devs.cleanup()
