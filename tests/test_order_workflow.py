"""The seed's order workflow, end to end against a stub of its external services.

Every external call lands in the stub's ledger file, so "exactly once per order" is checked
on what the services actually saw, whichever process made the call.
"""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from wf.client import Client
from wf.config import load_config
from wf.service import build_runner, run_until_done

ENDPOINTS = ("inventory/check", "payments/charge", "shipping/create", "notifications/send")


def read_order(project, **changes) -> dict:
    return {**json.loads((project / "order.json").read_text()), **changes}


def completed(order_id: str) -> dict:
    return {"status": "completed", "transactionId": f"TXN-{order_id}", "trackingNumber": f"TRK-{order_id}"}


def run_in_process(config, seq: int, timeout: float = 30.0) -> str:
    async def go():
        return await asyncio.wait_for(run_until_done(build_runner(config), seq), timeout)

    return asyncio.run(go())


async def run_all_in_process(config, seqs: list[int], timeout: float = 30.0) -> list[str]:
    """One in-process runner until every instance in `seqs` has ended; their final statuses."""
    runner = build_runner(config)
    await runner.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            rows = [await runner.astore.call(runner.store_ops.get_by_seq, s) for s in seqs]
            if all(r.status in ("complete", "errored", "terminated") for r in rows):
                return [r.status for r in rows]
            assert loop.time() < deadline, f"instances still running: {[r.status for r in rows]}"
            await asyncio.sleep(0.05)
    finally:
        await runner.stop()


def assert_called_once_each(stub, order: dict) -> None:
    """Inventory once per item; payment, shipment and confirmation once; nothing else."""
    oid = order["orderId"]
    checked = sorted(c["path"].rsplit("/", 1)[-1] for c in stub.calls("inventory/check", oid))
    assert checked == sorted(i["productId"] for i in order["items"])
    assert {e: stub.count(e, oid) for e in ENDPOINTS[1:]} == {e: 1 for e in ENDPOINTS[1:]}
    assert all(c["status"] == 200 for c in stub.calls(order_id=oid))


@pytest.fixture
def config(shop_project):
    return load_config(shop_project / "wrangler.jsonc")


@pytest.fixture
def client(config):
    c = Client(config)
    yield c
    c.close()


@pytest.mark.slow
def test_orders_complete_in_process_each_call_once(shop_project, stub_service, config, client):
    orders = [read_order(shop_project, orderId=f"ORD-{n}") for n in range(3)]
    rows = [client.create("order-processing", o) for o in orders]
    assert asyncio.run(run_all_in_process(config, [r.seq for r in rows])) == ["complete"] * 3

    for row, order in zip(rows, orders):
        assert client.status(row.id) == {"status": "complete", "output": completed(order["orderId"]), "error": None}
        assert_called_once_each(stub_service, order)
    assert {c["pid"] for c in stub_service.calls()} == {os.getpid()}


@pytest.mark.slow
def test_sleep_is_taken_and_steps_recorded_in_order(shop_project, config, client):
    row = client.create("order-processing", read_order(shop_project))
    assert run_in_process(config, row.seq) == "complete"

    steps = client.describe(row.id)["steps"]
    assert [(s["name"], s["type"], s["status"]) for s in steps] == [
        ("validate-inventory", "step", "complete"),
        ("process-payment", "step", "complete"),
        ("wait-before-fulfillment", "sleep", "complete"),
        ("create-shipment", "step", "complete"),
        ("send-confirmation", "step", "complete"),
    ]
    sleep = steps[2]
    assert sleep["end"] - sleep["start"] >= 1.0  # order.json: "fulfillment_delay": "1 second"
    assert steps[3]["start"] >= sleep["end"]


@pytest.mark.slow
def test_trigger_wait_subprocess(shop_project, stub_service, wf_procs):
    result = wf_procs.cli(shop_project, "trigger", "order-processing", "--params", "order.json", "--wait", "--json")
    data = json.loads(result.stdout)
    assert data["status"] == "complete", result.stderr
    assert data["output"] == completed("ORD-1001")
    assert data["error"] is None

    status = json.loads(wf_procs.cli(shop_project, "status", data["id"], "--json").stdout)
    assert status == {"status": "complete", "output": completed("ORD-1001"), "error": None}
    assert_called_once_each(stub_service, read_order(shop_project))
    pids = {c["pid"] for c in stub_service.calls()}
    assert len(pids) == 1 and os.getpid() not in pids  # all made by the `wf trigger --wait` process


def test_out_of_stock_branch(shop_project, stub_service, config, client):
    order = read_order(
        shop_project,
        orderId="ORD-OOS",
        items=[{"productId": "SKU-1", "quantity": 1}, {"productId": "SKU-OOS", "quantity": 1}],
    )
    row = client.create("order-processing", order)
    assert run_in_process(config, row.seq) == "complete"

    assert client.status(row.id)["output"] == {"status": "cancelled", "reason": "out_of_stock"}
    assert stub_service.count("inventory/check", "ORD-OOS") == 2
    assert stub_service.count("notifications/send", "ORD-OOS") == 1
    assert stub_service.count("payments/charge") == stub_service.count("shipping/create") == 0
    names = [s["name"] for s in client.describe(row.id)["steps"]]
    assert names == ["validate-inventory", "notify-out-of-stock"]


def test_payment_fails_twice_then_succeeds(shop_project, stub_service, config, client):
    order = read_order(
        shop_project, orderId="ORD-FLAKY", payment_retry_delay="0.2 seconds", fulfillment_delay="0.1 seconds"
    )
    stub_service.fail_payments(2, "ORD-FLAKY")
    row = client.create("order-processing", order)
    assert run_in_process(config, row.seq) == "complete"

    assert client.status(row.id) == {"status": "complete", "output": completed("ORD-FLAKY"), "error": None}
    assert [c["status"] for c in stub_service.calls("payments/charge", "ORD-FLAKY")] == [503, 503, 200]
    for endpoint in ("shipping/create", "notifications/send"):
        assert stub_service.count(endpoint, "ORD-FLAKY") == 1

    payment = next(s for s in client.describe(row.id)["steps"] if s["name"] == "process-payment")
    attempts = payment["attempts"]
    assert [a["success"] for a in attempts] == [False, False, True]
    assert "503" in attempts[0]["error"]["message"]
    # exponential backoff from 0.2 s: 0.2 s after attempt 1, 0.4 s after attempt 2
    assert attempts[1]["start"] - attempts[0]["end"] >= 0.2 - 0.01
    assert attempts[2]["start"] - attempts[1]["end"] >= 0.4 - 0.01


def test_payment_that_keeps_failing_errors_the_instance(shop_project, stub_service, config, client):
    order = read_order(shop_project, orderId="ORD-DOWN", payment_retry_delay="0.05 seconds")
    stub_service.fail_payments(10, "ORD-DOWN")
    row = client.create("order-processing", order)
    assert run_in_process(config, row.seq) == "errored"

    status = client.status(row.id)
    assert status["status"] == "errored" and status["output"] is None
    assert status["error"]["name"] == "HTTPStatusError" and "503" in status["error"]["message"]
    assert stub_service.count("payments/charge", "ORD-DOWN") == 4  # limit 3 retries: 4 attempts
    assert stub_service.count("shipping/create", "ORD-DOWN") == 0
