"""Cloudflare's published Python Workflows examples run under wf with no edit (issue 15).

tests/fixtures/cfexamples is a Python Worker project as Cloudflare lays one out (`src/entry.py`,
`python_workers` + `python_workflows` flags, sibling modules imported absolutely, Cloudflare's
imports only): the getting-started PythonWorkflowStarter, the "Python Workers API" snippets (first
step, sleep, sleep_until, wait_for_event, error handling, NonRetryableError, step config), the DAG
page (with `depends`) and its parameter-name form, the rollback saga, the bindings page's payload
Workflow, and a `Default` Worker whose fetch drives them through `self.env` in Cloudflare's shape
(create with `to_js(..., dict_converter=Object.fromEntries)`, create_batch, get, status,
send_event, lifecycle). tests/fixtures/cfonfetch is the bindings page's older `on_fetch(request,
env)` form. Here they run under wf.testing (fake clock) and, marked slow, under `wf dev`.

The saga runs on wf's rollback step kind (runtime/steps/rollback.py), the DAG on `depends`.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import pytest
from devserver import DevProcesses, wait_for

from wf.testing import from_config

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLES = FIXTURES / "cfexamples" / "wrangler.jsonc"


def examples(**options):
    """The examples project on a fake clock that starts now: `sleep_until(datetime.now() + ...)` is ahead."""
    return from_config(EXAMPLES, start_time=time.time(), **options)


async def finished(t, workflow: str, params=None, status: str = "complete"):
    inst = await t.create(workflow, params)
    await inst.wait_for_status(status)
    return inst


# ---------------------------------------------------------------- the Workflows, under wf.testing


async def test_getting_started_workflow_runs_its_two_decorated_steps_in_order():
    async with examples() as t:
        inst = await finished(t, "workflows-demo")
        steps = (await inst.describe())["steps"]
        assert [(s["name"], s["output"]) for s in steps] == [("step1", "one"), ("step2", "two")]
        assert await inst.get_output() is None


async def test_first_step_snippet_returns_hello_world():
    async with examples() as t:
        inst = await finished(t, "first-step")
        assert await inst.wait_for_step_result("my first step") == "Hello World!"


async def test_sleep_snippet_sleeps_ten_seconds():
    async with examples() as t:
        inst = await finished(t, "sleeper")
        [nap] = (await inst.describe())["steps"]
        assert (nap["type"], nap["name"], await inst.get_output()) == ("sleep", "my-sleep-step", "rested")
        assert nap["end"] - nap["start"] == pytest.approx(10, abs=0.5)


async def test_sleep_until_snippet_takes_a_naive_datetime_as_cloudflare_does():
    async with examples() as t:
        inst = await finished(t, "sleep-until")
        assert await inst.get_output() == "woke"


async def test_wait_for_event_snippet_gets_the_event_sent_to_the_instance():
    async with examples() as t:
        inst = await t.create("waiter")
        await inst.wait_for_status("waiting")
        await inst.send_event("my-event-type", {"approved": True})
        await inst.wait_for_status("complete")
        assert await inst.get_output() == {"type": "my-event-type", "payload": {"approved": True}}


async def test_error_handling_snippet_catches_the_steps_typeerror_after_its_retries():
    async with examples() as t:
        inst = await finished(t, "error-handling")
        assert await inst.get_output() == "caught TypeError: Intentional error in my_failing"
        [failing] = await inst.steps()
        assert failing["attempts"] == [False, False, False]  # limit 2: three attempts


async def test_non_retryable_error_from_workers_workflows_stops_at_the_first_attempt():
    async with examples() as t:
        inst = await finished(t, "non-retryable", {}, status="errored")
        assert await inst.get_error() == {"name": "NonRetryableError", "message": "an order needs an orderId"}
        [validate] = await inst.steps()
        assert validate["attempts"] == [False]


async def test_step_config_snippet_binds_the_steps_retry_policy():
    async with examples() as t:
        inst = await finished(t, "step-config")
        assert await inst.get_output() == {"attempt": 1, "limit": 1}


async def test_dag_by_parameter_name_runs_both_dependencies_then_adds_them():
    async with examples() as t:
        inst = await finished(t, "dag-by-name")
        assert await inst.get_output() == 30
        assert {s["name"] for s in await inst.steps()} == {"step_a", "step_b", "my_final_step"}


async def test_dag_with_depends_runs_both_dependencies_then_adds_them():
    async with examples() as t:
        inst = await finished(t, "dag")
        assert await inst.get_output() == 30


async def test_rollback_saga_undoes_completed_steps_in_reverse_order():
    async with examples() as t:
        params = {"user_id": "u1", "total": 12, "card": "declined"}
        inst = await finished(t, "saga", params, status="errored")
        assert (await inst.get_error())["message"] == "the card was declined"
        outputs = [s["output"] for s in (await inst.describe())["steps"] if s.get("output")]
        assert outputs[-1] == {"deleted": "order-u1"}  # the order was created, then undone


async def test_rollback_saga_without_a_failure_confirms_the_order():
    async with examples() as t:
        inst = await finished(t, "saga", {"user_id": "u2", "total": 3})
        assert await inst.get_output() == {"confirmed": "order-u2"}


# ---------------------------------------------------------------- the Worker, under wf.testing


async def test_default_workers_fetch_creates_and_reads_instances_through_cloudflare_shaped_bindings():
    async with examples() as t:
        hello = await t.fetch("/")
        assert (hello.status, await hello.text()) == (200, "Hello world!")
        [starter] = t.client.list("workflows-demo")

        made = await t.fetch("/create/PAYLOAD", json={"id": "p-1", "params": {"order": 7}})
        assert (made.status, await made.json()) == (201, {"id": "p-1"})
        await t.get("p-1").wait_for_status("complete")
        status = await (await t.fetch("/status/PAYLOAD/p-1")).json()
        assert status["status"] == "complete" and status.output == {"payload": {"order": 7}, "instanceId": "p-1"}

        made = await t.fetch("/create-kw/PAYLOAD", json={"id": "p-kw", "params": {"by": "keywords"}})
        assert (await made.json()) == {"id": "p-kw"}
        await t.get("p-kw").wait_for_status("complete")
        assert (await t.get("p-kw").get_output())["payload"] == {"by": "keywords"}

        batch = [{"id": f"b-{i}", "params": {"hello": f"world-{i}"}} for i in range(3)]
        made = await t.fetch("/batch/PAYLOAD", json=batch)
        assert (await made.json()) == {"ids": ["b-0", "b-1", "b-2"]}
        for i in range(3):
            await t.get(f"b-{i}").wait_for_status("complete")
            assert (await t.get(f"b-{i}").get_output())["payload"] == {"hello": f"world-{i}"}
        await t.get(starter.id).wait_for_status("complete")


async def test_worker_sends_events_and_drives_the_lifecycle():
    async with examples() as t:
        await t.fetch("/create/WAITER", json={"id": "w-1"})
        waiter = t.get("w-1")
        await waiter.wait_for_status("waiting")
        for action, status in (("pause", "paused"), ("resume", "waiting")):
            assert (await (await t.fetch(f"/{action}/WAITER/w-1", method="POST")).json())["done"] == action
            await waiter.wait_for_status(status)
        sent = await t.fetch("/event/WAITER/w-1", json={"type": "my-event-type", "payload": {"n": 1}})
        assert sent.status == 200
        await waiter.wait_for_status("complete")
        assert await waiter.get_output() == {"type": "my-event-type", "payload": {"n": 1}}

        await t.fetch("/create/WAITER", json={"id": "w-2"})
        await t.get("w-2").wait_for_status("waiting")
        await t.fetch("/terminate/WAITER/w-2", method="POST")
        await t.get("w-2").wait_for_status("terminated")
        await t.fetch("/restart/WAITER/w-2", method="POST")
        await t.get("w-2").wait_for_status("waiting")


async def test_worker_reads_vars_from_self_env_and_a_failing_handler_answers_500(capsys):
    async with examples() as t:
        assert await (await t.fetch("/vars")).text() == "Hello from vars"
        broken = await t.fetch("/status/NO_SUCH_BINDING/x")
        assert broken.status == 500
        assert "AttributeError" in await broken.text() and "NO_SUCH_BINDING" in capsys.readouterr().err


async def test_on_fetch_handler_of_the_bindings_page_creates_with_to_js_options():
    async with from_config(FIXTURES / "cfonfetch" / "wrangler.toml") as t:
        answer = await t.fetch("/")
        body = await answer.json()
        assert body["status"] == "success"
        inst = t.get(body["id"])
        await inst.wait_for_status("complete")
        assert await inst.get_output() == {"foo": "bar"}


# ---------------------------------------------------------------- under wf dev (a subprocess)


@pytest.mark.slow
def test_wf_dev_serves_the_examples_worker_end_to_end(tmp_path):
    project = tmp_path / "cfexamples"
    shutil.copytree(FIXTURES / "cfexamples", project)
    devs = DevProcesses(tmp_path)
    try:
        dev = devs.start(project).wait_ready()
        dev.wait_output("ready on")
        assert "the Worker src/entry.py:Default" in dev.output()
        assert "wf ignores observability" in dev.output()  # a key wrangler takes, meaningless locally
        url = dev.url
        get = lambda path: httpx.get(url + path, timeout=10)  # noqa: E731
        post = lambda path, body=None: httpx.post(url + path, json=body, timeout=10)  # noqa: E731

        assert get("/").text == "Hello world!"
        assert post("/create/PAYLOAD", {"id": "p1", "params": {"x": 1}}).json() == {"id": "p1"}

        def complete(binding: str, iid: str) -> dict:
            done = lambda: (s := get(f"/status/{binding}/{iid}").json())["status"] == "complete" and s  # noqa: E731
            return wait_for(done, 20, iid)

        status = complete("PAYLOAD", "p1")
        assert status["output"] == {"payload": {"x": 1}, "instanceId": "p1"}

        assert post("/batch/FIRST_STEP", [{"id": "f1"}, {"id": "f2"}]).json() == {"ids": ["f1", "f2"]}
        for iid in ("f1", "f2"):
            done = wait_for(
                lambda i=iid: (s := get(f"/status/FIRST_STEP/{i}").json())["status"] == "complete" and s, 15, iid
            )
            assert done["output"] == "Hello World!"

        post("/create/WAITER", {"id": "w1"})
        wait_for(lambda: get("/status/WAITER/w1").json()["status"] == "waiting", 15, "w1 to wait")
        post("/event/WAITER/w1", {"type": "my-event-type", "payload": {"ok": True}})
        assert complete("WAITER", "w1")["output"] == {"type": "my-event-type", "payload": {"ok": True}}

        post("/create/ERRORS", {"id": "e1"})  # three attempts one second apart, on the real clock
        assert complete("ERRORS", "e1")["output"] == "caught TypeError: Intentional error in my_failing"
        assert dev.stop() == 0
    finally:
        devs.cleanup()
