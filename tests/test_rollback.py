"""Rollback handlers (saga), Cloudflare 2026-06 (issue 17, point 10).

A step registers a compensation; when the instance fails (or `terminate(rollback=True)`), the
handlers run newest step first, each durably and at most once, with their own retries and timeout;
the first that fails for good stops the rollback. These run the real runner on both stores
(SQLite, and PostgreSQL when WF_TEST_POSTGRES is set), also replaying after every step; the
SIGKILL, command-line, explorer API and wrangler tests are in test_rollback_processes.py.
"""

from __future__ import annotations

import pytest
from pgtest import Schema, require_base_url

from wf import NonRetryableError, WorkflowEntrypoint
from wf.client import Client
from wf.testing import WorkflowTest

CALLS: list = []


class SagaWorkflow(WorkflowEntrypoint):
    """Cloudflare's saga example: debit, credit, notify; notify fails for good."""

    async def run(self, event, step):
        amount = event.payload["amount"]

        async def refund(ctx, output, error):
            CALLS.append(
                ("refund", ctx.step.name, ctx.step.count, ctx.attempt, ctx.config["timeout"], output, str(error))
            )
            return {"refunded": output["debited"]}

        def reverse(arg):  # one argument: ctx, output and error by attribute or key
            CALLS.append(("reverse", arg.ctx.step.name, arg["output"], type(arg.error).__name__))

        await step.do("debit", lambda: {"debited": amount}, config={"timeout": "1 minute"}, rollback=refund)
        await step.do("credit", lambda: {"credited": amount}, rollback=reverse)
        if event.payload.get("fail", True):

            def notify():
                raise NonRetryableError("the mail server refused the message")

            await step.do("notify", notify)
        return "done"


class FailingUndoWorkflow(WorkflowEntrypoint):
    """The second handler to run fails for good: the rollback stops there."""

    async def run(self, event, step):
        def undo(name, fails=False, ok_after=None):
            def handler(ctx):
                CALLS.append(("undo", name, ctx.step.name))
                if fails:
                    raise NonRetryableError(f"cannot undo {name}")

            return handler

        def flaky_undo():
            n = 1 + sum(1 for c in CALLS if c[:2] == ("undo", "c"))
            CALLS.append(("undo", "c", n))
            if n == 1:
                raise RuntimeError("the first try fails")

        retry_fast = {"retries": {"limit": 2, "delay": "1 second", "backoff": "constant"}, "timeout": "5 seconds"}
        await step.do("a", lambda: 1, rollback=undo("a"))
        await step.do(
            "b", lambda: 2, rollback=undo("b", fails=True), rollback_config={"retries": {"limit": 0, "delay": 0}}
        )
        await step.do("c", lambda: 3, rollback=lambda: flaky_undo(), rollback_config=retry_fast)

        def boom():
            raise NonRetryableError("boom")

        await step.do("d", boom)


class WaitsWorkflow(WorkflowEntrypoint):
    """Registers a compensation, then waits for an event that never comes: terminate it."""

    async def run(self, event, step):
        def release(output):
            CALLS.append(("release", output))

        await step.do("reserve", lambda: {"seat": "12A"}, rollback=release)
        await step.wait_for_event("wait for payment", "paid", timeout="1 hour")
        await step.do("after the wait", lambda: CALLS.append(("never",)))


class PythonFormWorkflow(WorkflowEntrypoint):
    """Cloudflare's Python SDK form: @step.with_rollback, @fn.undo, step.rollback_all."""

    async def run(self, event, step):
        try:

            @step.with_rollback("create order")
            async def create_order():
                return {"id": "o-1"}

            @create_order.undo
            async def undo_create(err, order):
                CALLS.append(("undo create", order["id"], str(err)))

            await create_order()

            @step.with_rollback("charge", undo=lambda err, value: CALLS.append(("undo charge", value)))
            def charge():
                raise NonRetryableError("declined")

            await charge()
        except Exception as e:
            await step.rollback_all(e)
            raise


class SlowUndoWorkflow(WorkflowEntrypoint):
    """The undo fails once and retries an hour later: the instance waits in the middle of its rollback."""

    async def run(self, event, step):
        def undo():
            n = 1 + sum(1 for c in CALLS if c[0] == "slow undo")
            CALLS.append(("slow undo", n))
            if n == 1:
                raise RuntimeError("the ledger is locked")

        retry = {"retries": {"limit": 1, "delay": "1 hour", "backoff": "constant"}}
        await step.do("book", lambda: "booked", rollback=undo, rollback_config=retry)
        if event.payload.get("bad_handler"):
            await step.do("typo", lambda: 1, rollback="not a function")

        def fail():
            raise NonRetryableError("fail")

        await step.do("fail", fail)


WORKFLOWS = {
    "saga": SagaWorkflow,
    "failing-undo": FailingUndoWorkflow,
    "waits": WaitsWorkflow,
    "python-form": PythonFormWorkflow,
    "slow-undo": SlowUndoWorkflow,
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request):
    if request.param == "sqlite":
        yield None
        return
    schema = Schema(require_base_url())
    yield schema.url
    schema.drop()


@pytest.fixture(params=[False, True], ids=["in-memory", "replay-always"])
def replay_always(request):
    return request.param


@pytest.fixture(autouse=True)
def calls():
    CALLS.clear()
    yield CALLS


def history_types(t: WorkflowTest, inst) -> list[tuple]:
    row = t.client.get(inst.id)
    ends = ("workflow_errored", "workflow_terminated", "workflow_completed")
    return [(h.type, h.step) for h in t.client.history(instance=row) if h.type.startswith("rollback") or h.type in ends]


async def test_saga_compensates_newest_step_first_each_exactly_once(store, replay_always, calls):
    async with WorkflowTest(WORKFLOWS, store=store, replay_always=replay_always) as t:
        inst = await t.create("saga", {"amount": 30})
        await inst.wait_for_status("errored")
        assert calls == [
            ("reverse", "credit", {"credited": 30}, "NonRetryableError"),
            ("refund", "debit", 1, 1, "1 minute", {"debited": 30}, "the mail server refused the message"),
        ]
        status = await inst.status()
        assert status["error"] == {"name": "NonRetryableError", "message": "the mail server refused the message"}
        assert status["rollback"] == {"outcome": "complete", "error": None}

        rollbacks = [s for s in (await inst.describe())["steps"] if s["type"] == "rollback"]
        assert [(s["name"], s["status"]) for s in rollbacks] == [("credit", "complete"), ("debit", "complete")]
        assert rollbacks[1]["output"] == {"refunded": 30}
        log = history_types(t, inst)
        assert log[log.index(("rollback_started", None)) :] == [
            ("rollback_started", None),
            ("rollback_step_started", "credit"),
            ("rollback_attempt_started", "credit"),
            ("rollback_attempt_completed", "credit"),
            ("rollback_step_completed", "credit"),
            ("rollback_step_started", "debit"),
            ("rollback_attempt_started", "debit"),
            ("rollback_attempt_completed", "debit"),
            ("rollback_step_completed", "debit"),
            ("rollback_completed", None),
            ("workflow_errored", None),
        ]


async def test_an_instance_that_succeeds_runs_no_handler_and_its_status_has_no_rollback(store, calls):
    async with WorkflowTest(WORKFLOWS, store=store) as t:
        inst = await t.create("saga", {"amount": 5, "fail": False})
        await inst.wait_for_status("complete")
        assert calls == []
        assert await inst.status() == {"status": "complete", "output": "done", "error": None}


async def test_rollback_stops_at_the_first_handler_that_fails_for_good_and_records_it(store, replay_always, calls):
    async with WorkflowTest(WORKFLOWS, store=store, replay_always=replay_always) as t:
        inst = await t.create("failing-undo")
        await inst.wait_for_status("errored")
        # c's handler retries (rollback_config) and succeeds; b's fails for good; a's never runs
        assert calls == [("undo", "c", 1), ("undo", "c", 2), ("undo", "b", "b")]
        status = await inst.status()
        assert status["error"]["message"] == "boom"
        assert status["rollback"] == {
            "outcome": "failed",
            "error": {"name": "NonRetryableError", "message": "cannot undo b"},
        }
        described = {s["name"]: s for s in (await inst.describe())["steps"] if s["type"] == "rollback"}
        assert set(described) == {"c", "b"}
        assert [a["success"] for a in described["c"]["attempts"]] == [False, True]
        assert described["b"]["status"] == "errored"
        log = history_types(t, inst)
        assert ("rollback_errored", "b") in log and ("rollback_completed", None) not in log
        assert log[-1] == ("workflow_errored", None)


async def test_terminate_with_rollback_runs_the_handlers_before_terminated(store, calls):
    async with WorkflowTest(WORKFLOWS, store=store) as t:
        inst = await t.create("waits")
        await t.run_until(inst.id, ["waiting"])
        await inst.terminate(rollback=True)
        await inst.wait_for_status("terminated")
        assert calls == [("release", {"seat": "12A"})]
        status = await inst.status()
        assert status["rollback"] == {"outcome": "complete", "error": None}
        assert status["error"] is None
        log = history_types(t, inst)
        assert log[-3:] == [
            ("rollback_step_completed", "reserve"),
            ("rollback_completed", None),
            ("workflow_terminated", None),
        ]


async def test_terminate_without_rollback_runs_no_handler(store, calls):
    async with WorkflowTest(WORKFLOWS, store=store) as t:
        inst = await t.create("waits")
        await t.run_until(inst.id, ["waiting"])
        await inst.terminate()
        await inst.wait_for_status("terminated")
        await t.settle()
        assert calls == [] and "rollback" not in await inst.status()


async def test_cloudflares_python_form_undoes_only_the_steps_that_completed(store, replay_always, calls):
    async with WorkflowTest(WORKFLOWS, store=store, replay_always=replay_always) as t:
        inst = await t.create("python-form")
        await inst.wait_for_status("errored")
        assert calls == [("undo create", "o-1", "declined")]
        assert (await inst.status())["rollback"] == {"outcome": "complete", "error": None}


def test_terminate_rollback_must_be_a_boolean(tmp_path):
    t = WorkflowTest(WORKFLOWS)
    client: Client = t.client
    row = client.create("waits", None)
    with pytest.raises(Exception, match="rollback must be true or false, got 'yes'"):
        client.terminate(row.id, rollback="yes")  # type: ignore[arg-type]
    assert client.status(row.id)["status"] == "queued"
    t.close_sync()


async def test_a_rollback_retry_waits_durably_and_the_replay_check_matches_there(store, calls):
    async with WorkflowTest(WORKFLOWS, store=store) as t:
        inst = await t.create("slow-undo", {})
        await t.run_until(inst.id, ["waiting"])
        assert calls == [("slow undo", 1)]
        assert (await inst.status())["status"] == "waiting"  # an hour before the retry
        [verdict] = t.client.replay_check(id=inst.id, classes=WORKFLOWS)
        assert verdict["verdict"] == "matches", verdict
        assert (verdict["at"]["type"], verdict["at"]["name"]) == ("rollback", "book")
        await inst.wait_for_status("errored")  # the fake clock jumps the hour
        assert calls == [("slow undo", 1), ("slow undo", 2)]
        assert (await inst.status())["rollback"] == {"outcome": "complete", "error": None}


async def test_a_rollback_that_is_not_a_function_fails_the_instance_naming_it(store, calls):
    async with WorkflowTest(WORKFLOWS, store=store) as t:
        inst = await t.create("slow-undo", {"bad_handler": True})
        await inst.wait_for_status("errored")
        error = (await inst.status())["error"]
        assert error["message"] == "rollback of step 'typo' must be a function, got 'not a function'"


async def test_wf_testing_mocks_of_a_step_leave_its_handler_real_and_retry_delays_can_be_disabled(calls):
    async with WorkflowTest(WORKFLOWS) as t:
        with t.introspect("saga") as intro:
            intro.modify_all(lambda m: m.mock_step_result("debit", {"debited": 7}).disable_retry_delays())
            inst = await t.create("saga", {"amount": 30})
            await inst.wait_for_status("errored")
        assert [c[0] for c in calls] == ["reverse", "refund"]
        assert calls[1][5] == {"debited": 7}  # the handler ran for real, on the mocked output

        with t.introspect("slow-undo") as intro:
            intro.modify_all(lambda m: m.disable_retry_delays())
            slow = await t.create("slow-undo", {})
            await slow.wait_for_status("errored")
        [undo] = [s for s in (await slow.describe())["steps"] if s["type"] == "rollback"]
        first, second = undo["attempts"]
        assert second["start"] - first["end"] < 60  # not the hour rollback_config asks for


async def test_the_bindings_terminate_with_rollback_in_python_and_cloudflares_shapes(calls):
    from wf.cloudflare.bindings import WorkflowBinding

    async with WorkflowTest(WORKFLOWS) as t:
        plain = await t.env.WAITS.create(id="plain")
        shaped = await WorkflowBinding(t.env.WAITS).create({"id": "shaped"})
        await t.run_until("plain", ["waiting"])
        await t.run_until("shaped", ["waiting"])
        await plain.terminate(rollback=True)  # wf's binding
        await shaped.terminate({"rollback": True})  # Cloudflare's terminate({rollback: true})
        await t.get("plain").wait_for_status("terminated")
        await t.get("shaped").wait_for_status("terminated")
        assert calls == [("release", {"seat": "12A"}), ("release", {"seat": "12A"})]
        with pytest.raises(Exception, match="terminate\\(\\) options have unknown key 'rollbak'"):
            await shaped.terminate({"rollbak": True})


async def test_wf_tail_shows_each_handlers_run_beside_the_step_it_undoes(calls):
    from wf.cli.tail import TailModel

    async with WorkflowTest(WORKFLOWS) as t:
        inst = await t.create("saga", {"amount": 30})
        await inst.wait_for_status("errored")
        model = TailModel()
        for row in t.client.history(instance=t.client.get(inst.id)):
            model.apply(row)
        [view] = model.instances.values()
        shown = [(s.kind.name, s.name, s.state) for s in view.steps.values()]
        assert shown == [
            ("do", "debit", "complete"),
            ("do", "credit", "complete"),
            ("do", "notify", "errored"),
            ("rollback", "credit", "complete"),
            ("rollback", "debit", "complete"),
        ]
        assert view.status == "errored"


async def test_pause_and_resume_in_the_middle_of_a_rollback(store, calls):
    async with WorkflowTest(WORKFLOWS, store=store) as t:
        inst = await t.create("slow-undo", {})
        await t.run_until(inst.id, ["waiting"])  # the undo failed once; its retry is an hour away
        await inst.pause()
        await inst.wait_for_status("paused")
        await inst.resume()
        await inst.wait_for_status("errored")
        assert calls == [("slow undo", 1), ("slow undo", 2)]  # resumed where it stood: no handler ran again
        assert (await inst.status())["rollback"] == {"outcome": "complete", "error": None}
