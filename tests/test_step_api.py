"""Cloudflare's 2026 step and instance APIs (issue 17, points 11, 12, 13, 16): a retry delay given as
a function, sensitive outputs, one step's full output, and the batch create / delete forms. The
engine tests run on the public harness (fake clock), on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

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
    return "30 seconds" if "rate" in str(arg.error) else timedelta(seconds=2)  # or a number of seconds


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


class AskedOnce(WorkflowEntrypoint):
    async def run(self, event, step):
        def delay(arg):
            ASKED.append(arg.ctx.attempt)
            return "1 hour"

        def flaky(ctx):
            if ctx.attempt == 1:
                raise RuntimeError("first fails")
            return ctx.attempt

        return await step.do("s", flaky, config={"retries": {"limit": 2, "delay": delay}})


async def test_what_a_delay_function_answered_is_stored_and_never_asked_again_after_a_restart(tmp_path):
    async with Harness(tmp_path, {"asked-once": AskedOnce}) as first:
        first.create("asked-once", id="a")
        await first.run_until("a", ["waiting"])
        retry_at = first.describe("a")["steps"][0]["next_retry"]
    async with Harness(tmp_path, {"asked-once": AskedOnce}) as second:  # a new runner on the same store
        status = await second.run_until("a")
        attempts = second.describe("a")["steps"][0]["attempts"]
    assert status["output"] == 2 and ASKED == [1]
    assert attempts[1]["start"] >= retry_at == attempts[0]["end"] + 3600


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


# -- 13: one step's full output ------------------------------------------------------------------

BIG = {"rows": ["x" * 100] * 50}  # longer than the event log's preview: the log keeps its size only


class Report(WorkflowEntrypoint):
    async def run(self, event, step):
        def flaky(ctx):
            if ctx.attempt == 1:
                raise RuntimeError("first try fails")
            return BIG

        big = await step.do("build", flaky, config={"retries": {"limit": 2, "delay": 1}})
        await step.do("secret", lambda: "hunter2", config={"sensitive": "output"})
        for i in range(2):
            await step.do("page", lambda i=i: {"page": i})
        approval = await step.wait_for_event("approval", "approve", timeout="1 hour")
        return {"rows": len(big["rows"]), "by": approval.payload["by"]}


def _project(tmp_path, store, main: str = ""):
    """The harness's project, for `wf dev`'s app and the CLI (its `main` as given: no app in it)."""
    from wf.config import load_config

    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / "src" / "index.py").write_text(main)
    return load_config(tmp_path / "wrangler.jsonc", store=store, environ={})


async def _report_waiting_then_done(h):
    h.create("report", id="r")
    for _ in range(20):  # past the retry wait (also "waiting") to the wait for the event
        await h.run_until("r", ["waiting"])
        if any(s["name"] == "approval" for s in h.describe("r")["steps"]):
            break
        await h.advance(1)
    waiting = h.client.step_output("r", "approval", type="waitForEvent")
    h.client.send_event("r", "approve", {"by": "ada"})
    await h.run_until("r")
    return waiting


async def test_the_full_output_of_a_step_is_its_untruncated_value_by_name_count_type_and_attempt(tmp_path):
    async with Harness(tmp_path, {"report": Report}) as h:
        waiting = await _report_waiting_then_done(h)
        out = h.client.step_output
        assert out("r", "build") == {"status": "complete", "error": None, "output": BIG}
        assert out("r", "build", attempt=1) == {
            "status": "errored",
            "error": {"name": "RuntimeError", "message": "first try fails"},
            "output": None,
        }
        assert out("r", "build", attempt=2)["output"] == BIG
        assert out("r", "secret")["output"] == "[REDACTED]"
        assert out("r", "page", count=2)["output"] == {"page": 1}
        assert waiting == {"status": "waiting", "error": None, "output": None, "event_type": "approve"}
        assert out("r", "approval", type="waitForEvent") == {
            "status": "complete",
            "error": None,
            "output": {"by": "ada"},
            "event_type": "approve",
        }
        from wf.errors import NotFoundError, ValidationError

        with pytest.raises(NotFoundError, match="no step step 'page' #3"):
            out("r", "page", count=3)
        with pytest.raises(NotFoundError, match="has no attempt 3"):
            out("r", "build", attempt=3)
        with pytest.raises(ValidationError, match="step type 'nope' is not one of"):
            out("r", "build", type="nope")


async def test_the_explorer_api_serves_a_steps_full_output_as_cloudflares_step_route(tmp_path, harness_store):
    import httpx
    from devserver import API

    from wf.http import create_app

    async with Harness(tmp_path, {"report": Report}) as h:
        await _report_waiting_then_done(h)
    app = create_app(_project(tmp_path, harness_store))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as api:
        base = API + "/workflows/report/instances/r/step"
        got = (await api.get(base, params={"name": "build-1", "type": "step"})).json()
        assert got["success"] is True and got["result"] == {"status": "complete", "error": None, "output": BIG}
        first = (await api.get(base, params={"name": "build-1", "type": "step", "attempt": 1})).json()["result"]
        assert first["status"] == "errored" and first["error"]["message"] == "first try fails"
        page = (await api.get(base, params={"name": "page-2", "type": "step"})).json()["result"]
        assert page["output"] == {"page": 1}
        secret = (await api.get(base, params={"name": "secret-1", "type": "step"})).json()["result"]
        assert secret["output"] == "[REDACTED]"
        event = (await api.get(base, params={"name": "approval-1", "type": "waitForEvent"})).json()["result"]
        assert event["output"] == {"by": "ada"} and event["event_type"] == "approve"
        missing = await api.get(base, params={"name": "page-3", "type": "step"})
        assert missing.status_code == 404 and "no step step 'page' #3" in missing.json()["errors"][0]["message"]
        no_counter = await api.get(base, params={"name": "page", "type": "step"})
        assert no_counter.status_code == 400 and "with its counter" in no_counter.json()["errors"][0]["message"]
        # describe's step list shows the sensitive output redacted too
        steps = (await api.get(API + "/workflows/report/instances/r")).json()["result"]["steps"]
        assert {s["name"]: s.get("output") for s in steps}["secret-1"] == "[REDACTED]"
        page = await api.get("/cdn-cgi/explorer/workflows/report/r")  # the web UI's instance page
        assert page.status_code == 200 and "[REDACTED]" in page.text and "hunter2" not in page.text


async def test_wf_instances_step_output_prints_the_full_output(tmp_path, harness_store, monkeypatch, capsys):
    from wf.cli import main

    async with Harness(tmp_path, {"report": Report}) as h:
        await _report_waiting_then_done(h)
    monkeypatch.chdir(tmp_path)
    if harness_store:
        monkeypatch.setenv("WF_STORE", harness_store)

    def wf(*args):
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = wf("instances", "step-output", "r", "build")
    assert code == 0 and json.loads(out) == BIG
    code, out, _ = wf("instances", "step-output", "r", "page", "--count", "2", "--json")
    assert code == 0 and json.loads(out) == {"status": "complete", "error": None, "output": {"page": 1}}
    code, out, err = wf("instances", "step-output", "r", "build", "--attempt", "1")
    assert code == 1 and out == "" and "errored: RuntimeError: first try fails" in err
    code, out, err = wf("instances", "step-output", "r", "page", "--count", "9")
    assert code != 0 and "no step step 'page' #9" in err and "Traceback" not in err
    code, out, _ = wf("instances", "step-output", "r", "secret")
    assert code == 0 and json.loads(out) == "[REDACTED]"
    for command in (("tail", "r", "--json"), ("instances", "describe", "r", "--json", "--full")):
        code, out, _ = wf(*command)
        assert code == 0 and "[REDACTED]" in out and "hunter2" not in out, command


# -- 16: batch create and delete, as Cloudflare has them now ------------------------------------


class Quick(WorkflowEntrypoint):
    async def run(self, event, step):
        return event.payload


async def test_create_batch_by_count_or_instances_reports_each_entry_left_out_by_its_index(tmp_path):
    from wf.env import sync_env

    async with Harness(tmp_path, {"quick": Quick}) as h:
        env = sync_env(h.client)
        h.create("quick", id="taken")
        by_count = env.QUICK.create_batch({"count": 3, "params": {"report": "daily"}})
        assert len(by_count["created"]) == 3 and by_count["errors"] == []
        assert len({i.id for i in by_count["created"]}) == 3
        assert all(h.client.describe(i.id)["params"] == {"report": "daily"} for i in by_count["created"])
        made = env.QUICK.create_batch(
            {"instances": [{"id": "o-1", "params": {"n": 1}}, {"id": "taken"}, {"id": "o-1"}, {"id": "o-2"}]}
        )
        assert [i.id for i in made["created"]] == ["o-1", "o-2"]
        assert made["errors"] == [
            {"index": 1, "id": "taken", "code": 10405, "message": "workflows.api.error.instance.already_exists"},
            {"index": 2, "id": "o-1", "code": 10415, "message": "workflows.api.error.instance.duplicate_in_batch"},
        ]
        assert [i.id for i in env.QUICK.create_batch([{"id": "o-2"}, {"id": "o-3"}])] == ["o-3"]  # the list form
        from wf.errors import ValidationError

        for bad, says in [
            ({"count": 0}, "count 0 must be a positive integer"),
            ({"count": 101}, "a batch of 101 instances is not allowed"),
            ({"instances": []}, "a batch of 0 instances is not allowed"),
            ({"count": 1, "instances": []}, "either count or instances"),
            ({"instances": [{"id": "bad id"}]}, "instance id 'bad id' is invalid"),
            ({"instances": [{"id": "x", "param": {}}]}, "a batch entry must be an object of id and params"),
        ]:
            with pytest.raises(ValidationError, match=says):
                env.QUICK.create_batch(bad)
        assert h.client.list("quick", limit=100).__len__() == 7  # nothing more was created by the refusals


async def test_delete_batch_deletes_each_id_once_and_reports_every_id_given_in_order(tmp_path):
    from wf.env import sync_env

    async with Harness(tmp_path, {"quick": Quick}) as h:
        env = sync_env(h.client)
        for i in ("a", "b", "c"):
            h.create("quick", id=i)
        result = env.QUICK.delete_batch(["a", "zz", "a", "b", "zz"])
        missing = {"id": "zz", "code": 10400, "message": "workflows.api.error.instance.not_found"}
        assert result == {"deleted": [{"id": "a"}, {"id": "a"}, {"id": "b"}], "errors": [missing, missing]}
        assert [r.id for r in h.client.list("quick")] == ["c"]
        assert env.QUICK.delete_batch({"instances": ["c"]}) == {"deleted": [{"id": "c"}], "errors": []}
        from wf.errors import ValidationError

        with pytest.raises(ValidationError, match="instance id 'no good' is invalid"):
            env.QUICK.delete_batch(["x", "no good"])
        with pytest.raises(ValidationError, match="a batch of 0 instance ids"):
            env.QUICK.delete_batch([])
        with pytest.raises(ValidationError, match="a batch of 101 instance ids"):
            env.QUICK.delete_batch([f"i{n}" for n in range(101)])


QUICK_MAIN = """\
from wf import WorkflowEntrypoint


class Cquick(WorkflowEntrypoint):
    async def run(self, event, step):
        return event.payload
"""


async def test_batch_routes_of_the_explorer_api_and_wf_delete_with_several_ids(
    tmp_path, harness_store, monkeypatch, capsys
):
    import httpx
    from devserver import API

    from wf.cli import main
    from wf.http import create_app

    async with Harness(tmp_path, {"quick": Quick}) as h:
        h.create("quick", id="taken")
    app = create_app(_project(tmp_path, harness_store, QUICK_MAIN))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as api:
        base = API + "/workflows/quick/instances/batch"
        made = (await api.post(base, json={"instances": [{"id": "h1"}, {"id": "taken"}, {"id": "h2"}]})).json()
        assert made["result"]["created"] == [{"id": "h1"}, {"id": "h2"}]
        assert [(e["index"], e["code"]) for e in made["result"]["errors"]] == [(1, 10405)]
        listed = (await api.post(base, json=[{"id": "h3"}, {"id": "h1"}])).json()["result"]
        assert listed == [{"id": "h3"}]
        counted = (await api.post(base, json={"count": 2, "params": {"x": 1}})).json()["result"]
        assert len(counted["created"]) == 2
        refused = await api.post(base, json={"count": 0})
        assert refused.status_code == 400 and "Count 0 must be a positive integer" in refused.text
        gone = (await api.post(base + "/delete", json={"instances": ["h1", "nope", "h1"]})).json()["result"]
        assert gone == {
            "deleted": [{"id": "h1"}, {"id": "h1"}],
            "errors": [{"id": "nope", "code": 10400, "message": "workflows.api.error.instance.not_found"}],
        }
    monkeypatch.chdir(tmp_path)
    if harness_store:
        monkeypatch.setenv("WF_STORE", harness_store)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["delete", "h2", "h3", "ghost", "--workflow", "quick"])
    out = capsys.readouterr()
    assert exit_.value.code == 1
    assert 'Deleted workflow instances from \'quick\': "h2", "h3"' in out.err
    assert "Failed to delete 1 workflow instance(s):\n  - ghost: workflows.api.error.instance.not_found" in out.err
    try:
        main(["delete", "taken", "--json"])
    except SystemExit as exc:
        assert not exc.code
    assert json.loads(capsys.readouterr().out)["status"] == "deleted"

    # wf trigger --count: createBatch({count, params}) from the command line
    try:
        main(["trigger", "quick", '{"batch": 1}', "--count", "3"])
    except SystemExit as exc:
        assert not exc.code
    ids = capsys.readouterr().out.split()
    assert len(set(ids)) == 3
    with pytest.raises(SystemExit) as refused:
        main(["trigger", "quick", "--count", "2", "--id", "x"])
    assert refused.value.code == 2 and "--count creates instances with generated ids" in capsys.readouterr().err


async def test_a_workers_binding_takes_cloudflares_batch_objects_built_with_to_js(tmp_path):
    from wf.cloudflare.bindings import WorkerEnv
    from wf.cloudflare.ffi import Object, to_js

    async with Harness(tmp_path, {"quick": Quick}) as h:
        env = WorkerEnv(h.env)
        h.create("quick", id="old")
        made = await env.QUICK.createBatch(
            to_js({"instances": [{"id": "w1", "params": {"n": 1}}, {"id": "old"}]}, dict_converter=Object.fromEntries)
        )
        assert [i.id for i in made["created"]] == ["w1"] and made["errors"][0]["index"] == 1
        counted = await env.QUICK.create_batch(to_js({"count": 2}, dict_converter=Object.fromEntries))
        assert len(counted["created"]) == 2
        gone = await env.QUICK.deleteBatch(to_js({"instances": ["w1", "w1", "x"]}, dict_converter=Object.fromEntries))
        assert gone["deleted"] == [{"id": "w1"}, {"id": "w1"}] and [e["id"] for e in gone["errors"]] == ["x"]
        assert (await env.QUICK.delete_batch(["old"]))["deleted"] == [{"id": "old"}]
