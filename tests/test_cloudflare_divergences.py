"""Where `wf` behaved differently from Cloudflare (issue 17, divergences 1-9), each test named after
Cloudflare's behaviour and its source (workers-sdk's workflows-shared tests, miniflare's workflows
plugin tests, vitest-pool-workers' examples, Cloudflare's Python Workflows docs and SDK).

Tests that touch the store run on SQLite and on PostgreSQL (`harness_store`); those of the engine
also run replay-always (the instance evicted and replayed from the top after every step).
"""

from __future__ import annotations

from collections import Counter

import pytest
from harness import Harness, harness_store  # noqa: F401  (the fixture)

from wf import WorkflowEntrypoint

pytestmark = pytest.mark.usefixtures("harness_store")

CALLS: Counter = Counter()
SEEN: list = []


@pytest.fixture(autouse=True)
def _reset():
    CALLS.clear()
    SEEN.clear()


@pytest.fixture(params=[False, True], ids=["in-memory", "replay-always"])
def replay(request):
    return request.param


def harness(tmp_path, replay, **classes):
    return Harness(tmp_path, {k.replace("_", "-"): v for k, v in classes.items()}, replay_always=replay)


# -- 2. run() may return the event it received ---------------------------------------------


class ReturnsEvents(WorkflowEntrypoint):
    async def run(self, event, step):
        got = await step.wait_for_event("approval", "approved")
        kept = await step.do("keep the event", lambda: got)  # a step may return it too
        return {"trigger": event, "event": got, "kept": kept}


async def test_run_may_return_the_event_it_received(tmp_path, replay):
    async with harness(tmp_path, replay, events=ReturnsEvents) as h:
        row = h.create("events", {"order": 7}, id="ev")
        await h.run_until("ev", ["waiting"])
        h.client.send_event("ev", "approved", {"ok": True})
        status = await h.run_until("ev")
    assert status["status"] == "complete", status
    out = status["output"]
    assert out["event"]["payload"] == {"ok": True} and out["event"]["type"] == "approved"
    assert set(out["event"]) == {"payload", "type", "timestamp"}
    assert out["event"]["timestamp"].endswith("Z")  # as JSON writes a JavaScript Date
    assert out["kept"] == out["event"]
    assert out["trigger"]["payload"] == {"order": 7} and out["trigger"]["instanceId"] == row.id
