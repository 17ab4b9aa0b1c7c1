"""Real crashes: a `wf worker` subprocess SIGKILLs itself at a named crash point
(`WF_CRASH_AT=<point>:<step>`), then a fresh worker, started without it, finishes the work.

What must hold after the restart:
* every instance completes with the right output;
* a step whose result was committed never runs again (the stub's ledger counts the calls);
* a timer (sleep, retry delay, wait timeout) that fell due while no runner was alive fires
  once the new runner starts;
* an event sent while no runner was alive is delivered after the restart.

How soon after the restart is a latency figure, not a behaviour: bench/ measures it (`wf_bench.py
restart_overdue`, goal 1.5 s from the new worker's spawn), so that a busy machine cannot fail
these tests.

Every test runs on both stores (the `store` fixture): SQLite in the project folder, and
PostgreSQL in a scratch schema (WF_TEST_POSTGRES; skipped with the reason when unset) passed to
the subprocesses as WF_STORE, with a short lease. On SQLite the new worker knows the old one is
dead the instant its flock is gone; on PostgreSQL it waits for the dead worker's lease to run out.
"""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass, field

import pyjson5
import pytest
from conftest import wait_until
from pgtest import Schema, require_base_url

from wf.client import Client
from wf.config import load_config

pytestmark = [pytest.mark.crash, pytest.mark.slow]

TERMINAL = ("complete", "errored", "terminated")
PG_LEASE = 1.0  # WF_LEASE of the PostgreSQL workers: a dead worker's claims outlive it by at most this

APPROVAL_WORKFLOW = '''
"""Human in the loop: ask for approval, wait for the "approval" event, record the decision."""

from wf import WorkflowEntrypoint, WorkflowTimeoutError

from .order_processing import call


class ApprovalWorkflow(WorkflowEntrypoint):
    async def run(self, event, step):
        request = event.payload
        api, order_id = self.env.API_BASE, request["orderId"]

        async def request_approval():
            await call("POST", f"{api}/notifications/send", {"orderId": order_id, "message": "please approve"})
            return {"requested": True}

        await step.do("request-approval", request_approval)
        try:
            decision = await step.wait_for_event("wait-for-approval", "approval", timeout=request["timeout"])
        except WorkflowTimeoutError:
            return {"timedOut": True}

        async def record_decision():
            await call("POST", f"{api}/notifications/send",
                       {"orderId": order_id, "message": f"approved: {decision.payload['approved']}"})

        await step.do("record-decision", record_decision)
        return {"approved": decision.payload["approved"], "timedOut": False}
'''


# -- fixtures and helpers ------------------------------------------------------------------


@dataclass
class Store:
    name: str
    url: str | None  # None: the project's SQLite store
    env: dict = field(default_factory=dict)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request):
    if request.param == "sqlite":
        yield Store("sqlite", None)
        return
    schema = Schema(require_base_url())
    # the restarted worker waits out the dead one's lease (short here), then takes the instances over
    yield Store("postgres", schema.url, {"WF_LEASE": str(PG_LEASE)})
    schema.drop()


@pytest.fixture
def wf_procs(wf_procs, store):
    """conftest's wf_procs, every worker and command on this test's store."""
    wf_procs.store, wf_procs.env = store.url, dict(store.env)
    return wf_procs


@pytest.fixture
def project(shop_project):
    """The shop plus an approval workflow (for wait_for_event)."""
    (shop_project / "src" / "workflows" / "approval.py").write_text(APPROVAL_WORKFLOW)
    with open(shop_project / "src" / "index.py", "a") as index:
        index.write("from .workflows.approval import ApprovalWorkflow  # noqa: E402\n")
    config_path = shop_project / "wrangler.jsonc"
    config = pyjson5.loads(config_path.read_text())
    config["workflows"].append({"name": "approval", "binding": "APPROVALS", "class_name": "ApprovalWorkflow"})
    config_path.write_text(json.dumps(config, indent=2))
    return shop_project


@pytest.fixture
def client(project, store):
    c = Client(load_config(project / "wrangler.jsonc", store=store.url))
    assert c.store.kind == ("postgres" if store.name == "postgres" else "sqlite")
    yield c
    c.close()


def order(project, order_id: str, **changes) -> dict:
    return {**json.loads((project / "order.json").read_text()), "orderId": order_id, **changes}


def completed(order_id: str) -> dict:
    return {"status": "completed", "transactionId": f"TXN-{order_id}", "trackingNumber": f"TRK-{order_id}"}


def crash(wf_procs, project, crash_at: str) -> None:
    """Run a worker with WF_CRASH_AT until it kills itself; it must die by SIGKILL."""
    worker = wf_procs.worker(project, crash_at=crash_at)
    code = worker.wait_exit(timeout=30)
    assert code == -signal.SIGKILL, f"worker exited {code}, not by SIGKILL:\n{worker.output()}"


def step_of(client, instance_id: str, name: str) -> dict | None:
    return next((s for s in client.describe(instance_id)["steps"] if s["name"] == name), None)


def wait_past(epoch: float, what: str) -> None:
    """Wait (bounded) until the wall clock is past `epoch`: a deadline falling due during downtime."""
    assert epoch - time.time() < 10, f"{what} is unexpectedly far away"
    wait_until(lambda: time.time() > epoch + 0.05, 15, what)


def restart_and_finish(wf_procs, project, client, instance_id: str, timeout: float = 30) -> dict:
    """Start a fresh worker (no crash point); the instance's final status."""
    worker = wf_procs.worker(project)
    return wait_until(lambda: _ended(client, instance_id, worker), timeout, f"{instance_id} to end")


def _ended(client, instance_id: str, worker) -> dict | None:
    status = client.status(instance_id)
    if status["status"] in TERMINAL:
        return status
    if worker.proc.poll() is not None:
        raise AssertionError(f"the new worker exited {worker.proc.returncode}:\n{worker.output()}")
    return None


def assert_rest_once(stub, order_id: str, items: int = 2) -> None:
    """Inventory once per item, shipment and confirmation once each."""
    assert stub.count("inventory/check", order_id) == items
    assert stub.count("shipping/create", order_id) == 1
    assert stub.count("notifications/send", order_id) == 1


# -- step.do: killed around the commit ------------------------------------------------------


def test_killed_before_commit_reruns_the_attempt(project, stub_service, client, wf_procs):
    row = client.create("order-processing", order(project, "ORD-BC", fulfillment_delay="0.1 seconds"))
    crash(wf_procs, project, "before-commit:process-payment")

    assert stub_service.count("payments/charge", "ORD-BC") == 1  # the attempt ran...
    assert step_of(client, row.id, "validate-inventory")["status"] == "complete"
    payment = step_of(client, row.id, "process-payment")
    assert payment is None or payment["status"] != "complete"  # ...its result was lost

    status = restart_and_finish(wf_procs, project, client, row.id)
    assert status == {"status": "complete", "output": completed("ORD-BC"), "error": None}
    assert 1 <= stub_service.count("payments/charge", "ORD-BC") <= 2  # at least once, at most twice
    assert_rest_once(stub_service, "ORD-BC")  # validate-inventory was committed: not run again


def test_killed_after_commit_never_runs_the_step_again(project, stub_service, client, wf_procs):
    row = client.create("order-processing", order(project, "ORD-AC", fulfillment_delay="0.1 seconds"))
    crash(wf_procs, project, "after-commit:process-payment")

    assert step_of(client, row.id, "process-payment")["status"] == "complete"
    assert stub_service.count("shipping/create", "ORD-AC") == 0

    status = restart_and_finish(wf_procs, project, client, row.id)
    assert status == {"status": "complete", "output": completed("ORD-AC"), "error": None}
    assert stub_service.count("payments/charge", "ORD-AC") == 1
    assert_rest_once(stub_service, "ORD-AC")


# -- timers: sleep and retry delay ----------------------------------------------------------


def test_sleep_due_during_downtime_fires_at_restart(project, stub_service, client, wf_procs):
    row = client.create("order-processing", order(project, "ORD-SL", fulfillment_delay="1 second"))
    crash(wf_procs, project, "sleeping:wait-before-fulfillment")

    sleep = step_of(client, row.id, "wait-before-fulfillment")
    assert sleep["status"] == "waiting" and sleep["wake_at"] is not None
    assert client.status(row.id)["status"] == "waiting"
    wait_past(sleep["wake_at"], "the sleep to fall due with no runner alive")

    status = restart_and_finish(wf_procs, project, client, row.id)
    assert status == {"status": "complete", "output": completed("ORD-SL"), "error": None}
    assert stub_service.count("payments/charge", "ORD-SL") == 1
    assert_rest_once(stub_service, "ORD-SL")


def test_sleep_not_yet_due_keeps_its_wake_time_across_restart(project, stub_service, client, wf_procs):
    row = client.create("order-processing", order(project, "ORD-SL2", fulfillment_delay="2 seconds"))
    crash(wf_procs, project, "sleeping:wait-before-fulfillment")
    wake_at = step_of(client, row.id, "wait-before-fulfillment")["wake_at"]

    status = restart_and_finish(wf_procs, project, client, row.id)
    assert status["output"] == completed("ORD-SL2")
    started = [h.data["wakeAt"] for h in client.store.history(instance=row.seq) if h.type == "sleep_started"]
    assert started == [wake_at]  # the original deadline, not a sleep started again after the restart
    assert step_of(client, row.id, "wait-before-fulfillment")["end"] >= wake_at - 0.01  # and not cut short
    assert stub_service.count("payments/charge", "ORD-SL2") == 1


def test_retry_delay_due_during_downtime_fires_at_restart(project, stub_service, client, wf_procs):
    stub_service.fail_payments(1, "ORD-RD")
    row = client.create(
        "order-processing", order(project, "ORD-RD", payment_retry_delay="1 second", fulfillment_delay="0.1 seconds")
    )
    crash(wf_procs, project, "retry-delay:process-payment")

    payment = step_of(client, row.id, "process-payment")
    assert payment["status"] == "retrying" and len(payment["attempts"]) == 1
    assert client.status(row.id)["status"] == "waiting"
    wait_past(payment["next_retry"], "the retry delay to pass with no runner alive")

    status = restart_and_finish(wf_procs, project, client, row.id)
    assert status == {"status": "complete", "output": completed("ORD-RD"), "error": None}
    assert [c["status"] for c in stub_service.calls("payments/charge", "ORD-RD")] == [503, 200]
    assert [a["success"] for a in step_of(client, row.id, "process-payment")["attempts"]] == [False, True]
    assert_rest_once(stub_service, "ORD-RD")


# -- wait_for_event -------------------------------------------------------------------------


def test_event_sent_while_no_runner_alive_is_delivered_after_restart(project, stub_service, client, wf_procs):
    row = client.create("approval", {"orderId": "APR-EV", "timeout": "1 hour"})
    crash(wf_procs, project, "waiting:wait-for-approval")
    assert client.status(row.id)["status"] == "waiting"
    assert step_of(client, row.id, "wait-for-approval")["status"] == "waiting"

    sent = wf_procs.cli(
        project, "send-event", row.id, "--type", "approval", "--payload", '{"approved": true}', "--json"
    )
    assert json.loads(sent.stdout)["sent"] is True

    status = restart_and_finish(wf_procs, project, client, row.id)
    assert status == {"status": "complete", "output": {"approved": True, "timedOut": False}, "error": None}
    messages = [c for c in stub_service.calls("notifications/send", "APR-EV")]
    assert len(messages) == 2  # request-approval (before the crash, not again) and record-decision


def test_event_wait_timeout_due_during_downtime(project, stub_service, client, wf_procs):
    row = client.create("approval", {"orderId": "APR-TO", "timeout": "1 second"})
    crash(wf_procs, project, "waiting:wait-for-approval")
    wait = step_of(client, row.id, "wait-for-approval")
    assert wait["status"] == "waiting"
    wait_past(wait["timeout_at"], "the wait's timeout to pass with no runner alive")

    status = restart_and_finish(wf_procs, project, client, row.id)
    assert status == {"status": "complete", "output": {"timedOut": True}, "error": None}
    wait = step_of(client, row.id, "wait-for-approval")
    assert wait["status"] == "errored" and wait["error"]["name"] == "WorkflowTimeoutError"
    assert stub_service.count("notifications/send", "APR-TO") == 1  # request-approval ran once


# -- a retry delay given as a function ------------------------------------------------------

DYNAMIC_DELAY_WORKFLOW = '''
"""A step whose retry delay is a function; each time it is asked is written down."""

from pathlib import Path

from wf import WorkflowEntrypoint

ASKED = Path(__file__).resolve().parents[2] / "delay-asked.txt"


def one_second(arg):
    with open(ASKED, "a") as asked:
        asked.write(f"{arg.ctx.attempt}: {arg.error}\\n")
    return 1


class DynamicDelayWorkflow(WorkflowEntrypoint):
    async def run(self, event, step):
        def flaky(ctx):
            if ctx.attempt == 1:
                raise RuntimeError("first attempt fails")
            return ctx.attempt

        return await step.do("flaky", flaky, config={"retries": {"limit": 2, "delay": one_second}})
'''


def test_killed_in_a_retry_delay_the_delay_function_is_not_asked_again(project, store, wf_procs):
    """Cloudflare journals what the delay function answered: a restart waits for the stored retry
    time and never asks the function again for the same failure."""
    (project / "src" / "workflows" / "dynamic_delay.py").write_text(DYNAMIC_DELAY_WORKFLOW)
    with open(project / "src" / "index.py", "a") as index:
        index.write("from .workflows.dynamic_delay import DynamicDelayWorkflow  # noqa: E402\n")
    config_path = project / "wrangler.jsonc"
    config = pyjson5.loads(config_path.read_text())
    config["workflows"].append({"name": "dynamic-delay", "binding": "DYN", "class_name": "DynamicDelayWorkflow"})
    config_path.write_text(json.dumps(config, indent=2))
    c = Client(load_config(config_path, store=store.url))
    try:
        row = c.create("dynamic-delay", {})
        crash(wf_procs, project, "retry-delay:flaky")
        asked = project / "delay-asked.txt"
        assert asked.read_text().splitlines() == ["1: first attempt fails"]
        assert step_of(c, row.id, "flaky")["status"] == "retrying"

        status = restart_and_finish(wf_procs, project, c, row.id)
        assert status == {"status": "complete", "output": 2, "error": None}
        assert asked.read_text().splitlines() == ["1: first attempt fails"]  # not asked again after the restart
    finally:
        c.close()
