"""The project's workflows, tested offline in milliseconds with wf.testing.

A fake clock jumps over sleeps and waits; modifiers mock steps, errors and events, as
Cloudflare's introspectWorkflow does. Run: pytest
"""

import asyncio
import json
from pathlib import Path

from wf import NonRetryableError
from wf.testing import from_config

ROOT = Path(__file__).resolve().parent.parent
ORDER = json.loads((ROOT / "order.json").read_text())


def scenario(test):
    """Run `async def test(t)` against this project's workflows on a fresh temporary store."""

    async def main():
        async with from_config(ROOT / "wrangler.jsonc") as t:
            await test(t)

    asyncio.run(main())


def test_order_completes():
    async def test(t):
        inst = await t.create("order-processing", ORDER)
        await inst.wait_for_status("complete")
        assert await inst.get_output() == {
            "status": "completed",
            "transactionId": "txn-o-1001",
            "trackingNumber": "TRK-o-1001",
        }

    scenario(test)


def test_payment_fails_twice_then_succeeds():
    async def test(t):
        inst = t.introspect_instance("order-processing", "retry-1")
        inst.modify(lambda m: m.mock_step_error("process-payment", ConnectionError("bank down"), times=2))
        await t.create("order-processing", ORDER, id="retry-1")
        await inst.wait_for_status("complete")
        payment = [s for s in await inst.steps() if s["name"] == "process-payment"][0]
        assert payment["attempts"] == [False, False, True]

    scenario(test)


def test_a_shipment_that_fails_for_good_refunds_the_payment():
    async def test(t):
        inst = t.introspect_instance("order-processing", "refund-1")
        inst.modify(lambda m: m.mock_step_error("create-shipment", NonRetryableError("no courier")))
        await t.create("order-processing", ORDER, id="refund-1")
        await inst.wait_for_status("errored")
        assert (await inst.status())["rollback"] == {"outcome": "complete", "error": None}
        undone = [s for s in (await inst.describe())["steps"] if s["type"] == "rollback"]
        assert [(s["name"], s["output"]) for s in undone] == [("process-payment", {"refunded": "txn-o-1001"})]

    scenario(test)


def test_out_of_stock_cancels_the_order():
    async def test(t):
        inst = t.introspect_instance("order-processing", "oos-1")
        inst.modify(lambda m: m.mock_step_result("validate-inventory", False))
        await t.create("order-processing", ORDER, id="oos-1")
        await inst.wait_for_status("complete")
        assert await inst.get_output() == {"status": "cancelled", "reason": "out_of_stock"}

    scenario(test)


def test_approval_approved():
    async def test(t):
        inst = t.introspect_instance("approval", "ok-1")
        inst.modify(lambda m: m.mock_event("approval", {"approved": True, "by": "ann"}))
        await t.create("approval", {"approver": "ann"}, id="ok-1")
        await inst.wait_for_status("complete")
        assert await inst.get_output() == {"status": "approved", "by": "ann"}

    scenario(test)


def test_approval_times_out_after_24_hours():
    async def test(t):
        inst = await t.create("approval", {"approver": "ann"})
        await inst.wait_for_status("complete")  # the fake clock skips the 24 hours
        assert await inst.get_output() == {"status": "timed_out"}

    scenario(test)


def test_the_worker_starts_an_order_and_reads_its_status():
    async def test(t):
        answer = await t.fetch("/api/orders", json=ORDER)  # the Worker in src/index.py, with this test's bindings
        assert answer.status == 201
        order = t.get((await answer.json())["instanceId"])
        await order.wait_for_status("complete")
        status = await (await t.fetch(f"/api/workflows/{order.id}")).json()
        assert status["status"] == "complete" and status["output"]["trackingNumber"] == "TRK-o-1001"

    scenario(test)


def test_the_worker_answers_how_an_order_ended_from_its_event_subscription():
    async def test(t):
        order = await t.create("order-processing", ORDER, id="sub-1")
        await order.wait_for_status("complete")
        ended = await (await t.fetch("/api/workflows/sub-1/result")).json()
        assert ended["type"] == "workflow_completed" and ended["output"]["trackingNumber"] == "TRK-o-1001"
        events = [e["type"] async for e in order.subscribe()]  # the whole log, as subscribe() streams it
        assert events[0] == "workflow_queued" and events[-1] == "workflow_completed"

    scenario(test)
