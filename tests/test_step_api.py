"""Cloudflare's 2026 step and instance APIs (issue 17, points 11, 12, 13, 16): a retry delay given as
a function, sensitive outputs, one step's full output, and the batch create / delete forms. The
engine tests run on the public harness (fake clock), on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json

import pytest
from harness import Harness, harness_store  # noqa: F401  (the fixture)

from wf import WorkflowEntrypoint

pytestmark = pytest.mark.usefixtures("harness_store")  # every test on SQLite and on PostgreSQL

ASKED: list = []


@pytest.fixture(autouse=True)
def _reset():
    ASKED.clear()


def gaps(times):
    return [round(b - a, 3) for a, b in zip(times, times[1:])]


# -- 11: retries.delay as a function -----------------------------------------------------------


def _by_error(arg):
    """Cloudflare's example: wait longer when the service says so, read from the error."""
    ASKED.append((arg.ctx.attempt, arg["error"].args[0], "delay" in arg.ctx.config["retries"]))
    return "30 seconds" if "rate" in str(arg.error) else 2


class DynamicDelay(WorkflowEntrypoint):
    async def run(self, event, step):
        def flaky(ctx):
            ASKED.append(("attempt", ctx.attempt, "delay" in ctx.config["retries"]))
            if ctx.attempt < 4:
                raise RuntimeError("rate limited" if ctx.attempt == 2 else "boom")
            return "ok"

        config = {"retries": {"limit": 5, "delay": _by_error, "backoff": event.payload["backoff"]}}
        return await step.do("flaky", flaky, config=config)


@pytest.mark.parametrize("backoff,expected", [("constant", [2, 30, 2]), ("exponential", [2, 60, 8])])
async def test_a_delay_function_is_asked_once_per_failed_attempt_and_its_answer_goes_through_the_backoff(
    tmp_path, backoff, expected
):
    async with Harness(tmp_path, {"dynamic": DynamicDelay}, replay_always=True) as h:
        status = await h.run("dynamic", {"backoff": backoff}, id="d")
        d = h.describe("d")
    assert status == {"status": "complete", "output": "ok", "error": None}
    starts = [a["start"] for a in d["steps"][0]["attempts"]]
    assert gaps(starts) == expected
    asked = [a for a in ASKED if a[0] != "attempt"]
    assert asked == [(1, "boom", False), (2, "rate limited", False), (3, "boom", False)]  # ctx.config omits delay
    assert all(a[2] is False for a in ASKED if a[0] == "attempt")
    assert d["steps"][0]["config"]["retries"]["delay"] == "[dynamic]"


class BadDelay(WorkflowEntrypoint):
    async def run(self, event, step):
        how = event.payload

        async def delay(arg):
            ASKED.append(arg.ctx.attempt)
            if how == "raise":
                raise ValueError("no idea")
            if how == "hang":
                await asyncio.sleep(3600)
            return "soon-ish"

        def always_fails():
            raise RuntimeError("down")

        try:
            await step.do("call", always_fails, config={"retries": {"limit": 3, "delay": delay}})
        except Exception as exc:
            return {"caught": {"name": getattr(exc, "name", type(exc).__name__), "message": str(exc)}}


@pytest.mark.parametrize(
    "how,reason",
    [
        ("raise", "threw an error: no idea"),
        ("hang", "did not return within 5 seconds"),
        ("bad", "returned an invalid delay value 'soon-ish'"),
    ],
)
async def test_a_delay_function_that_raises_hangs_or_answers_nonsense_fails_the_step_without_retries(
    tmp_path, how, reason
):
    async with Harness(tmp_path, {"bad-delay": BadDelay}) as h:
        status = await h.run("bad-delay", how, id="b")
        step = h.describe("b")["steps"][0]
    caught = status["output"]["caught"]
    assert caught["name"] == "NonRetryableDelayError"
    assert caught["message"].startswith(f'The delay function for step "call-1" {reason}')
    assert ASKED == [1]  # asked once, and no attempt after it
    assert step["status"] == "errored" and [a["success"] for a in step["attempts"]] == [False]
    assert step["attempts"][0]["error"] == {"name": "RuntimeError", "message": "down"}
    assert step["error"] == caught


# -- 12: sensitive outputs ---------------------------------------------------------------------


class Secret(WorkflowEntrypoint):
    async def run(self, event, step):
        token = await step.do("issue-token", lambda: {"token": "hunter2"}, config={"sensitive": "output"})
        shown = await step.do("use-token", lambda: f"used {token['token'][:2]}")
        return {"used": shown}


async def test_a_sensitive_output_reaches_the_workflow_but_every_view_shows_redacted(tmp_path):
    from wf.testing import WorkflowTest

    async with Harness(tmp_path, {"secret": Secret}, replay_always=True) as h:
        status = await h.run("secret", id="s")
        d = h.describe("s")
        log = [r.data for r in h.client.history(instance=h.client.get("s"))]
        introspected = WorkflowTest.get(h, "s")
        revealed = await introspected.wait_for_step_result("issue-token")
    assert status["output"] == {"used": "used hu"}  # the workflow saw the real value, on replay too
    secret, plain = d["steps"]
    assert secret["output"] == "[REDACTED]" and secret["config"]["sensitive"] == "output"
    assert plain["output"] == "used hu"
    assert "hunter2" not in json.dumps(log) and "[REDACTED]" in json.dumps(log)
    assert revealed == {"token": "hunter2"}  # wf.testing's waitForStepResult, as Cloudflare's, sees the value


async def test_sensitive_accepts_only_output(tmp_path):
    class Wrong(WorkflowEntrypoint):
        async def run(self, event, step):
            return await step.do("x", lambda: 1, config={"sensitive": "input"})

    async with Harness(tmp_path, {"wrong": Wrong}) as h:
        status = await h.run("wrong", id="w")
    assert status["status"] == "errored"
    assert "sensitive of step 'x' must be 'output', got 'input'" in status["error"]["message"]
