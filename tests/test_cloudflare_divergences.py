"""Where `wf` behaved differently from Cloudflare (issue 17, divergences 1-9), each test named after
Cloudflare's behaviour and its source (workers-sdk's workflows-shared tests, miniflare's workflows
plugin tests, vitest-pool-workers' examples, Cloudflare's Python Workflows docs and SDK).

Tests that touch the store run on SQLite and on PostgreSQL (`harness_store`); those of the engine
also run replay-always (the instance evicted and replayed from the top after every step).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
from harness import Harness, harness_store  # noqa: F401  (the fixture)

from wf import NonRetryableError, WorkflowEntrypoint
from wf.errors import NotFoundError, ValidationError

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


# -- 6. a forced or real timeout's message starts with Cloudflare's wording ----------------


class Waits(WorkflowEntrypoint):
    async def run(self, event, step):
        try:
            await step.wait_for_event("approval", "approved", timeout="1 hour")
        except Exception as exc:  # as Cloudflare's docs catch it
            return {"name": type(exc).__name__, "message": str(exc)}


async def test_an_event_timeout_says_execution_timed_out(tmp_path, replay):
    async with harness(tmp_path, replay, waits=Waits) as h:
        status = await h.run("waits")
    assert status["output"]["name"] == "WorkflowTimeoutError"
    assert status["output"]["message"].startswith("Execution timed out after 3600000ms: wait_for_event 'approval'")


async def test_a_forced_event_timeout_says_execution_timed_out(tmp_path):
    async with Harness(tmp_path, {"waits": Waits}) as h:
        inst = h.introspect_instance("waits", "w1")
        inst.modify().force_event_timeout("approval").mock_event("approved", {"ok": True})
        h.create("waits", id="w1")
        await inst.wait_for_status("complete")
        out = await inst.get_output()
    assert out["message"].startswith("Execution timed out"), out


class Hangs(WorkflowEntrypoint):
    async def run(self, event, step):
        async def forever():
            import asyncio

            await asyncio.Event().wait()

        try:
            config = {"retries": {"limit": 0, "delay": 1}, "timeout": event.payload["timeout"]}
            await step.do("hang", forever, config=config)
        except Exception as exc:
            return str(exc)


# a timeout past the moment an attempt is marked started (50 ms), and one before it (its own timer)
@pytest.mark.parametrize("timeout, said", [("2 seconds", "2000ms"), (0.02, "20ms")])
async def test_a_step_timeout_says_execution_timed_out(tmp_path, replay, timeout, said):
    async with harness(tmp_path, replay, hangs=Hangs) as h:
        status = await h.run("hangs", {"timeout": timeout})
    assert status["output"].startswith(f"Execution timed out after {said}: step 'hang' attempt 1"), status


# -- 7. wf.testing refuses contradictory mocks, as introspectWorkflow's modifier does -------


async def test_mocking_an_error_after_the_result_is_refused(tmp_path):
    async with Harness(tmp_path, {"waits": Waits}) as h:
        m = h.introspect_instance("waits", "w1").modify().mock_step_result("charge", {"ok": True})
        with pytest.raises(ValidationError, match=r"^Trying to mock error on step 'charge' after mocking its result!$"):
            m.mock_step_error("charge", RuntimeError("down"))
        refused = r"^Trying to force timeout on step 'charge' after mocking its result!$"
        with pytest.raises(ValidationError, match=refused):
            m.force_step_timeout("charge")
        m.mock_step_error(("charge", 2), RuntimeError("down"))  # another step of that name is not contradicted


# -- 8. step.sleep_until accepts a naive datetime, as Cloudflare's Python SDK ---------------


class SleepsUntil(WorkflowEntrypoint):
    async def run(self, event, step):
        naive = datetime.fromtimestamp(event.payload["at"])  # local time, no tzinfo
        assert naive.tzinfo is None
        await step.sleep_until("nap", naive)
        await step.sleep_until("aware", datetime.fromtimestamp(event.payload["at"] + 60, UTC))
        await step.sleep_until("epoch", event.payload["at"] + 120)
        return "woke"


async def test_sleep_until_takes_a_naive_datetime_as_local_time(tmp_path, replay, monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")  # local time is not UTC here
    time.tzset()
    try:
        async with harness(tmp_path, replay, sleeps=SleepsUntil) as h:
            at = h.clock.now() + 3600
            status = await h.run("sleeps", {"at": at}, id="s1")
            steps = h.describe("s1")["steps"]
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert status["output"] == "woke", status
    assert [round(s["end"] - at) for s in steps] == [0, 60, 120]


# -- 5. step config is validated as Cloudflare validates it ---------------------------------


def configured(config):
    class Configured(WorkflowEntrypoint):
        async def run(self, event, step):
            def attempt(ctx):
                CALLS["attempts"] += 1
                SEEN.append(ctx.config)
                if ctx.attempt < 3:
                    raise ConnectionError("down")
                return "ok"

            return await step.do("charge", attempt, config=config)

    return Configured


@pytest.mark.parametrize(
    "retries, missing",
    [({"limit": 3}, "'delay'"), ({"delay": "1 second"}, "'limit'"), ({"backoff": "linear"}, "'limit' and no 'delay'")],
)
async def test_retries_without_limit_or_delay_is_refused_before_the_step_runs(tmp_path, replay, retries, missing):
    async with harness(tmp_path, replay, partial=configured({"retries": retries})) as h:
        status = await h.run("partial")
    assert status["status"] == "errored", status
    assert status["error"]["name"] == "ValidationError"
    assert f"retries of step 'charge' has no {missing}" in status["error"]["message"]
    assert CALLS["attempts"] == 0  # refused before the callback ran


async def test_only_a_step_without_retries_gets_the_defaults(tmp_path, replay):
    async with harness(tmp_path, replay, default=configured({"timeout": "1 minute"})) as h:
        status = await h.run("default", id="d1")
        starts = [a["start"] for a in h.describe("d1")["steps"][0]["attempts"]]
    assert status["output"] == "ok"
    assert SEEN[-1]["retries"] == {"limit": 5, "delay": "10 seconds", "backoff": "exponential"}
    assert [round(b - a) for a, b in zip(starts, starts[1:])] == [10, 20]


async def test_retries_without_a_backoff_wait_a_constant_delay(tmp_path, replay):
    config = {"retries": {"limit": 2, "delay": "7 seconds"}}
    async with harness(tmp_path, replay, constant=configured(config)) as h:
        status = await h.run("constant", id="c1")
        starts = [a["start"] for a in h.describe("c1")["steps"][0]["attempts"]]
    assert status["output"] == "ok"
    assert SEEN[-1]["retries"] == {"limit": 2, "delay": "7 seconds", "backoff": "constant"}
    assert [round(b - a) for a, b in zip(starts, starts[1:])] == [7, 7]


# -- 3. a decorated step never runs an attempt twice ----------------------------------------

ATTEMPTS: list = []


class DecoratedRetries(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do("flaky")  # the default retries: waits of 10, 20, 40, 80 and 160 seconds
        async def flaky(ctx):
            ATTEMPTS.append(ctx.attempt)
            if ctx.attempt < 6:
                raise ConnectionError(f"down ({ctx.attempt})")
            return "up"

        return await flaky()


async def test_a_decorated_step_never_runs_an_attempt_twice(tmp_path, replay, caplog):
    ATTEMPTS.clear()
    caplog.set_level(logging.ERROR, logger="asyncio")
    async with Harness(tmp_path, {"decorated": DecoratedRetries}, replay_always=replay, keep_warm=30.0) as h:
        status = await h.run("decorated", id="d1")
        await asyncio.sleep(0.05)  # an orphaned task would try again now
        attempts = [a["success"] for a in h.describe("d1")["steps"][0]["attempts"]]
    gc.collect()  # "Task exception was never retrieved" is logged when the task is collected
    assert status["output"] == "up", status
    assert ATTEMPTS == [1, 2, 3, 4, 5, 6]
    assert attempts == [False] * 5 + [True]
    assert "never retrieved" not in caplog.text


class GatherFails(WorkflowEntrypoint):
    async def run(self, event, step):
        def fails():
            deadline = time.monotonic() + 10
            while not ATTEMPTS and time.monotonic() < deadline:  # "slow" has made its attempt first
                time.sleep(0.005)
            raise NonRetryableError("no")

        def slow(ctx):
            ATTEMPTS.append(ctx.attempt)
            raise ConnectionError("down")

        retries = {"retries": {"limit": 5, "delay": "1 minute"}}
        await asyncio.gather(step.do("slow", slow, config=retries), step.do("fails", fails))


async def test_no_step_of_an_ended_instance_runs_on(tmp_path, replay):
    ATTEMPTS.clear()
    async with harness(tmp_path, replay, gather=GatherFails) as h:
        status = await h.run("gather")
        at_end = list(ATTEMPTS)
        await h.advance(3600)  # the retries of "slow" would all be due by now
    assert status["status"] == "errored" and status["error"]["name"] == "NonRetryableError", status
    assert ATTEMPTS == at_end  # nothing ran after the instance ended
    if not replay:  # replay-always ends it at the replay after "fails", when "slow" may be due again
        assert at_end == [1]


# -- 9. Cloudflare's Python DAG form ---------------------------------------------------------


def dag(concurrent: bool):
    class Dag(WorkflowEntrypoint):
        async def run(self, event, step):
            async def traced(name, value):
                SEEN.append(f"start {name}")
                for _ in range(3):
                    await asyncio.sleep(0)  # lets a concurrent sibling start meanwhile
                SEEN.append(f"end {name}")
                CALLS[name] += 1
                return value

            @step.do("dependency a")
            async def step_a():
                return await traced("a", 10)

            @step.do("dependency b")
            def step_b(ctx):
                CALLS["b"] += 1
                return {"b": 20, "attempt": ctx.attempt}

            @step.do("dependency c")
            async def step_c():
                return await traced("c", 30)

            @step.do("sum", depends=[step_a, step_b, step_c], concurrent=concurrent)
            async def total(ctx, a=0, b=None, c=0):
                return {"sum": a + b["b"] + c, "step": ctx.step.name}

            @step.do("again", depends=[step_c])  # a dependency already run gives its result again
            def again(c):
                return c

            return [await total(), await again()]

    return Dag


@pytest.mark.parametrize("concurrent", [True, False], ids=["concurrent", "sequential"])
async def test_a_dag_step_runs_its_dependencies_first_once_each_and_gets_their_results_in_order(
    tmp_path, replay, concurrent
):
    async with harness(tmp_path, replay, dag=dag(concurrent)) as h:
        status = await h.run("dag", id="g1")
        names = [s["name"] for s in h.describe("g1")["steps"]]
    assert status["output"] == [{"sum": 60, "step": "sum"}, 30], status
    assert CALLS == {"a": 1, "b": 1, "c": 1}
    assert names[-2:] == ["sum", "again"] and set(names[:3]) == {"dependency a", "dependency b", "dependency c"}
    if not replay:  # replay-always cuts a running sibling off at every commit: order says nothing there
        together = SEEN.index("start c") < SEEN.index("end a")
        assert together == concurrent, SEEN


class ImplicitDefaults(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do()
        async def step_1():
            CALLS["step_1"] += 1
            return {"foo": "foo"}

        @step.do()
        async def step_2():
            CALLS["step_2"] += 1
            return {"bar": "bar"}

        @step.do("step_4", concurrent=True)
        async def step_4(step_1, ctx, step_2):
            return [step_1["foo"], ctx.attempt, step_2["bar"]]

        @step.do("step_5")  # injection by name fills parameters that have defaults too
        async def step_5(ctx, step_1=(), step_2=(), unrelated="kept"):
            return step_1["foo"] + step_2["bar"] + f"-{ctx.step.name}-{unrelated}"

        return [await step_4(), await step_5()]


async def test_dependencies_by_parameter_name_also_fill_parameters_with_defaults(tmp_path, replay):
    async with harness(tmp_path, replay, implicit=ImplicitDefaults) as h:
        status = await h.run("implicit")
    assert status["output"] == [["foo", 1, "bar"], "foobar-step_5-kept"], status
    assert CALLS == {"step_1": 1, "step_2": 1}


class BadDepends(WorkflowEntrypoint):
    async def run(self, event, step):
        def plain():
            return 1

        @step.do("final", depends=[plain])
        def final(x):
            return x

        return await final()


async def test_depends_refuses_what_is_not_a_step(tmp_path):
    async with Harness(tmp_path, {"bad": BadDepends}) as h:
        status = await h.run("bad")
    assert status["status"] == "errored"
    assert "depends of step 'final' lists <function" in status["error"]["message"]
    assert "which is not a step" in status["error"]["message"]


# -- 1. an instance that deletes or terminates itself stops ---------------------------------


def ends_itself(how: str):
    class EndsItself(WorkflowEntrypoint):
        async def run(self, event, step):
            await step.do("before", lambda: CALLS.update(["before"]))
            me = await getattr(self.env, how.upper()).get(event.instance_id)
            await getattr(me, how)()
            CALLS["after the call"] += 1  # never reached, as on Cloudflare
            await step.do("after", lambda: CALLS.update(["after"]))
            return "carried on"

    return EndsItself


async def test_an_instance_that_terminates_itself_stops(tmp_path, replay):
    async with harness(tmp_path, replay, terminate=ends_itself("terminate")) as h:
        status = await h.run("terminate", id="t1")
        await h.settle()
        steps = [s["name"] for s in h.describe("t1")["steps"]]
    assert status == {"status": "terminated", "output": None, "error": None}
    assert steps == ["before"]
    assert CALLS == {"before": 1}


async def test_an_instance_that_deletes_itself_stops(tmp_path, replay):
    async with harness(tmp_path, replay, delete=ends_itself("delete")) as h:
        h.create("delete", id="d1")
        await h.settle()
        await h.advance(60)
        with pytest.raises(NotFoundError):
            h.client.status("d1")
    assert CALLS == {"before": 1}


class EndsAnother(WorkflowEntrypoint):
    async def run(self, event, step):
        other = await self.env.TERMINATE.get(event.payload["other"])
        await other.terminate()
        return "carried on"  # ending another instance is no reason to stop


async def test_an_instance_that_terminates_another_carries_on(tmp_path, replay):
    async with harness(tmp_path, replay, terminate=ends_itself("terminate"), other=EndsAnother) as h:
        h.create("terminate", id="victim")
        status = await h.run("other", {"other": "victim"})
    assert status["output"] == "carried on"


class TerminatesItselfInAStep(WorkflowEntrypoint):
    async def run(self, event, step):
        async def end_me():
            me = await self.env.IN_A_STEP.get(event.instance_id)
            await me.terminate()
            CALLS["rest of the step"] += 1

        await step.do("end me", end_me)
        CALLS["after the step"] += 1
        return "carried on"


async def test_an_instance_that_terminates_itself_from_a_step_stops(tmp_path, replay):
    async with harness(tmp_path, replay, in_a_step=TerminatesItselfInAStep) as h:
        status = await h.run("in-a-step", id="s1")
        await h.settle()
        steps = h.describe("s1")["steps"]
    assert status["status"] == "terminated", status
    assert CALLS == {}
    assert [len(s["attempts"]) for s in steps] in ([], [1])  # the attempt was cut off, never retried


class DependsIntoArgs(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do()
        def one():
            return 1

        @step.do()
        def two():
            return 2

        @step.do("all", depends=[one, two, one])
        def total(*results, ctx):
            return [*results, ctx.step.name]

        return await total()


async def test_depends_results_go_by_position_into_args(tmp_path):
    async with Harness(tmp_path, {"args": DependsIntoArgs}) as h:
        status = await h.run("args")
    assert status["output"] == [1, 2, 1, "all"], status
