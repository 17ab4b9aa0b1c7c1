"""Engine semantics (SPEC §3) on a fake clock; every test runs twice: instances kept in memory,
and replay-always (evicted and replayed from the top after every step)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from harness import Harness, harness_store  # noqa: F401  (the fixture)

from wf import NonRetryableError, WorkflowEntrypoint, WorkflowTimeoutError
from wf.errors import ConflictError, NotFoundError

pytestmark = pytest.mark.usefixtures("harness_store")  # every test on SQLite and on PostgreSQL

CALLS: Counter = Counter()


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.clear()


@pytest.fixture(params=[False, True], ids=["in-memory", "replay-always"])
def replay(request):
    return request.param


def harness(tmp_path, replay, **classes):
    return Harness(tmp_path, {k.replace("_", "-"): v for k, v in classes.items()}, replay_always=replay)


async def wait_until(predicate, what: str, timeout: float = 20.0) -> None:
    """Wait (on the event loop) until `predicate()` holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


def attempt_starts(h, id, step=0):
    steps = h.describe(id)["steps"]
    return [a["start"] for a in steps[step]["attempts"]]


def gaps(times):
    return [round(b - a, 3) for a, b in zip(times, times[1:])]


# -- steps and results -------------------------------------------------------------------


class Basic(WorkflowEntrypoint):
    async def run(self, event, step):
        a = await step.do("a", lambda: CALLS.update(["a"]) or 1)

        async def b(ctx):
            CALLS["b"] += 1
            return {"a": a, "count": ctx.step.count, "attempt": ctx.attempt}

        bb = await step.do("b", b)
        loop = [await step.do("same", lambda i=i: CALLS.update(["same"]) or i) for i in range(3)]
        return {"a": a, "b": bb, "loop": loop, "payload": event.payload, "id": event["instance_id"]}


async def test_steps_run_once_and_results_replay(tmp_path, replay):
    async with harness(tmp_path, replay, basic=Basic) as h:
        status = await h.run("basic", {"k": 1}, id="i1")
    assert status == {
        "status": "complete",
        "error": None,
        "output": {"a": 1, "b": {"a": 1, "count": 1, "attempt": 1}, "loop": [0, 1, 2], "payload": {"k": 1}, "id": "i1"},
    }
    assert CALLS == {"a": 1, "b": 1, "same": 3}


class Decorated(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do("first")
        async def first():
            CALLS["first"] += 1
            return 1

        @step.do()
        async def dep_1():
            CALLS["dep_1"] += 1
            return "d1"

        @step.do()
        def dep_2(ctx):
            CALLS["dep_2"] += 1
            return f"d2-{ctx.attempt}"

        @step.do(concurrent=True)
        async def final(dep_1, dep_2, ctx):
            return [dep_1, dep_2, ctx.step.name]

        return [await first(), await final(), await dep_1()]


async def test_decorator_form_with_dependency_injection(tmp_path, replay):
    async with harness(tmp_path, replay, decorated=Decorated) as h:
        status = await h.run("decorated")
    assert status["output"] == [1, ["d1", "d2-1", "final"], "d1"]
    assert CALLS == {"first": 1, "dep_1": 1, "dep_2": 1}


# -- retries -----------------------------------------------------------------------------


def flaky(name, fail_times, config):
    class Flaky(WorkflowEntrypoint):
        async def run(self, event, step):
            def attempt(ctx):
                CALLS[name] += 1
                if ctx.attempt <= fail_times:
                    raise RuntimeError(f"failure #{ctx.attempt}")
                return ctx.attempt

            return await step.do(name, attempt, config=config)

    return Flaky


@pytest.mark.parametrize(
    "backoff,expected", [("constant", [10, 10, 10]), ("linear", [10, 20, 30]), ("exponential", [10, 20, 40])]
)
async def test_backoff_delays(tmp_path, replay, backoff, expected):
    cls = flaky("pay", 99, {"retries": {"limit": 3, "delay": "10 seconds", "backoff": backoff}})
    async with harness(tmp_path, replay, flaky=cls) as h:
        status = await h.run("flaky", id="f")
        starts = attempt_starts(h, "f")
    assert status["status"] == "errored"
    assert status["error"] == {"name": "RuntimeError", "message": "failure #4"}
    assert CALLS["pay"] == 4
    assert gaps(starts) == expected


async def test_default_retry_config_is_five_retries_exponential_from_10s(tmp_path, replay):
    async with harness(tmp_path, replay, flaky=flaky("x", 99, None)) as h:
        status = await h.run("flaky", id="d")
        starts = attempt_starts(h, "d")
        config = h.describe("d")["steps"][0]["config"]
    assert status["status"] == "errored" and CALLS["x"] == 6
    assert gaps(starts) == [10, 20, 40, 80, 160]
    assert config == {"retries": {"limit": 5, "delay": "10 seconds", "backoff": "exponential"}, "timeout": "10 minutes"}


async def test_fail_twice_then_succeed(tmp_path, replay):
    cls = flaky("pay", 2, {"retries": {"limit": 3, "delay": 1, "backoff": "constant"}})
    async with harness(tmp_path, replay, flaky=cls) as h:
        status = await h.run("flaky", id="s")
        attempts = h.describe("s")["steps"][0]["attempts"]
    assert status == {"status": "complete", "output": 3, "error": None}
    assert [a["success"] for a in attempts] == [False, False, True]
    assert attempts[0]["error"] == {"name": "RuntimeError", "message": "failure #1"}


class Fatal(WorkflowEntrypoint):
    async def run(self, event, step):
        def boom():
            CALLS["boom"] += 1
            raise NonRetryableError("card declined")

        await step.do("charge", boom)


async def test_nonretryable_error_ends_the_step_after_one_attempt(tmp_path, replay):
    async with harness(tmp_path, replay, fatal=Fatal) as h:
        status = await h.run("fatal")
    assert status["status"] == "errored"
    assert status["error"] == {"name": "NonRetryableError", "message": "card declined"}
    assert CALLS["boom"] == 1


class Caught(WorkflowEntrypoint):
    async def run(self, event, step):
        def fail():
            CALLS["fail"] += 1
            raise ValueError("no stock")

        try:
            await step.do("reserve", fail, config={"retries": {"limit": 1, "delay": "1 second"}})
        except ValueError as exc:
            caught = str(exc)
        after = await step.do("after", lambda: "went on")
        return {"caught": caught, "after": after}


async def test_caught_step_error_lets_run_go_on(tmp_path, replay):
    async with harness(tmp_path, replay, caught=Caught) as h:
        status = await h.run("caught")
    assert status["output"] == {"caught": "no stock", "after": "went on"}
    assert CALLS["fail"] == 2


class Slow(WorkflowEntrypoint):
    async def run(self, event, step):
        async def hang_async():
            CALLS["async"] += 1
            await asyncio.Event().wait()

        def hang_sync():
            CALLS["sync"] += 1
            RELEASE.wait(30)  # hangs past its timeout whatever the machine's load; freed when the test ends

        out = {}
        for name, fn in (("async", hang_async), ("sync", hang_sync)):
            try:
                await step.do(name, fn, config={"timeout": "5 seconds", "retries": {"limit": 1, "delay": 0}})
            except WorkflowTimeoutError as exc:
                out[name] = str(exc)
        return out


RELEASE = threading.Event()


async def test_attempt_timeout_async_and_sync(tmp_path, replay):
    RELEASE.clear()
    async with harness(tmp_path, replay, slow=Slow) as h:
        try:
            status = await h.run("slow", id="t")
            steps = h.describe("t")["steps"]
        finally:
            RELEASE.set()  # the sync attempts' threads, abandoned at their timeouts, may end now
    assert status["status"] == "complete"
    assert "timed out after 5 seconds" in status["output"]["async"]
    assert "timed out after 5 seconds" in status["output"]["sync"]
    assert CALLS == {"async": 2, "sync": 2}
    assert [a["error"]["name"] for a in steps[0]["attempts"]] == ["WorkflowTimeoutError"] * 2


# -- sleeps ------------------------------------------------------------------------------


class Sleeper(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.sleep("a day", "1 day")
        await step.sleep("seconds", 30)
        await step.sleep("delta", timedelta(minutes=2))
        await step.sleep_until("until", event.payload["until"])
        return "awake"


async def test_sleeps_wake_on_time(tmp_path, replay):
    async with harness(tmp_path, replay, sleeper=Sleeper) as h:
        t0 = h.clock.now()
        until = t0 + 86400 + 30 + 120 + 3600
        status = await h.run("sleeper", {"until": until}, id="z")
        steps = h.describe("z")["steps"]
    assert status["output"] == "awake"
    ends = [s["end"] for s in steps]
    assert round(ends[0] - t0) == 86400
    assert round(ends[1] - ends[0]) == 30
    assert round(ends[2] - ends[1]) == 120
    assert round(ends[3]) == round(until)


async def test_waiting_status_while_sleeping(tmp_path, replay):
    async with harness(tmp_path, replay, sleeper=Sleeper) as h:
        h.create("sleeper", {"until": h.clock.now() + 10 * 86400}, id="w")
        await h.settle()
        assert h.client.status("w")["status"] == "waiting"


# -- events ------------------------------------------------------------------------------


class Approval(WorkflowEntrypoint):
    async def run(self, event, step):
        if event.payload.get("nap"):
            await step.sleep("nap", "1 hour")
        try:
            ev = await step.wait_for_event("approval", "approval", timeout="1 day")
        except WorkflowTimeoutError as exc:
            return {"timedOut": str(exc)}
        return {"approved": ev.payload, "type": ev.type}


async def test_event_sent_during_the_wait(tmp_path, replay):
    async with harness(tmp_path, replay, approval=Approval) as h:
        h.create("approval", {}, id="e1")
        await h.run_until("e1", ("waiting",))
        h.client.send_event("e1", "approval", {"by": "ann"})
        status = await h.run_until("e1")
    assert status["output"] == {"approved": {"by": "ann"}, "type": "approval"}


async def test_event_sent_before_the_wait_is_kept(tmp_path, replay):
    async with harness(tmp_path, replay, approval=Approval) as h:
        h.create("approval", {"nap": True}, id="e2")
        await h.settle()
        h.client.send_event("e2", "other", {"ignored": True})
        h.client.send_event("e2", "approval", {"early": True})
        status = await h.run_until("e2")
    assert status["output"] == {"approved": {"early": True}, "type": "approval"}


async def test_no_event_times_out_catchably(tmp_path, replay):
    async with harness(tmp_path, replay, approval=Approval) as h:
        t0 = h.clock.now()
        status = await h.run("approval", {}, id="e3")
        end = h.describe("e3")["steps"][0]["end"]
    assert "timed out" in status["output"]["timedOut"]
    assert round(end - t0) == 86400


class TwoWaits(WorkflowEntrypoint):
    async def run(self, event, step):
        a = await step.wait_for_event("first", "a")
        b = await step.wait_for_event("second", "b")
        x1 = await step.wait_for_event("fifo-1", "x")
        x2 = await step.wait_for_event("fifo-2", "x")
        anything = await step.wait_for_event("any")
        return [a.payload, b.payload, x1.payload, x2.payload, [anything.type, anything.payload]]


async def test_two_types_fifo_and_untyped_wait(tmp_path, replay):
    async with harness(tmp_path, replay, two_waits=TwoWaits) as h:
        h.create("two-waits", id="tw")
        await h.settle()
        for type, payload in (("b", "B"), ("x", 1), ("x", 2), ("a", "A"), ("zzz", "Z")):
            h.client.send_event("tw", type, payload)
        status = await h.run_until("tw")
    assert status["output"] == ["A", "B", 1, 2, ["zzz", "Z"]]


# -- lifecycle ---------------------------------------------------------------------------


class Counting(WorkflowEntrypoint):
    async def run(self, event, step):
        one = await step.do("one", lambda: CALLS.update(["one"]) or 1)
        await step.sleep("nap", "1 hour")
        two = await step.do("two", lambda: CALLS.update(["two"]) or 2)
        return one + two


async def test_terminate_then_restart_from_scratch(tmp_path, replay):
    async with harness(tmp_path, replay, counting=Counting) as h:
        h.create("counting", id="c")
        await h.run_until("c", ("waiting",))
        h.client.terminate("c")
        await h.settle()
        assert h.client.status("c")["status"] == "terminated"
        with pytest.raises(ConflictError, match="already terminated"):
            h.client.terminate("c")
        h.client.restart("c")
        status = await h.run_until("c")
    assert status["output"] == 3
    assert CALLS == {"one": 2, "two": 1}


async def test_restart_from_a_step_keeps_earlier_results(tmp_path, replay):
    async with harness(tmp_path, replay, counting=Counting) as h:
        await h.run("counting", id="r")
        h.client.restart("r", from_step="two")
        status = await h.run_until("r")
        with pytest.raises(NotFoundError, match="'nope'"):
            h.client.restart("r", from_step="nope")
    assert status["output"] == 3
    assert CALLS == {"one": 1, "two": 2}


async def test_pause_and_resume_shift_the_timer(tmp_path, replay):
    async with harness(tmp_path, replay, counting=Counting) as h:
        t0 = h.clock.now()
        h.create("counting", id="p")
        await h.run_until("p", ("waiting",))
        h.client.pause("p")
        await h.settle()
        assert h.client.status("p")["status"] == "paused"
        h.clock.advance(1800)
        h.client.resume("p")
        status = await h.run_until("p")
        nap = h.describe("p")["steps"][1]
    assert status["output"] == 3
    assert round(nap["end"] - t0) == 3600 + 1800


class Busy(WorkflowEntrypoint):
    async def run(self, event, step):
        async def slow():
            BUSY["started"].set()
            await BUSY["finish"].wait()  # the test pauses the instance while this step runs
            CALLS["slow"] += 1
            return "done"

        first = await step.do("slow", slow)
        second = await step.do("next", lambda: CALLS.update(["next"]) or "next")
        return [first, second]


BUSY: dict = {}


async def test_pause_during_a_step_finishes_it_then_pauses(tmp_path, replay):
    BUSY.update(started=asyncio.Event(), finish=asyncio.Event())
    async with harness(tmp_path, replay, busy=Busy) as h:
        h.create("busy", id="b")
        await asyncio.wait_for(BUSY["started"].wait(), 20)
        assert h.client.pause("b") == "waitingForPause"
        BUSY["finish"].set()
        await h.run_until("b", ("paused",))
        assert CALLS == {"slow": 1}
        h.client.resume("b")
        status = await h.run_until("b")
    assert status["output"] == ["done", "next"]
    assert CALLS == {"slow": 1, "next": 1}


async def test_create_existing_id_fails_and_batch_skips_it(tmp_path, replay):
    async with harness(tmp_path, replay, counting=Counting) as h:
        h.create("counting", {"first": True}, id="dup")
        with pytest.raises(ConflictError, match="'dup' already exists"):
            h.create("counting", {"second": True}, id="dup")
        made = h.client.create_batch("counting", [{"id": "dup"}, {"id": "new", "params": {"n": 1}}])
        assert [r.id for r in made] == ["new"]
        assert h.client.describe("dup")["params"] == {"first": True}


async def test_delete_removes_the_instance(tmp_path, replay):
    async with harness(tmp_path, replay, counting=Counting) as h:
        h.create("counting", id="gone")
        await h.run_until("gone", ("waiting",))
        h.client.delete("gone")
        await h.settle()
        with pytest.raises(NotFoundError):
            h.client.status("gone")
        assert CALLS["two"] == 0


class Parent(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.do("spawn", lambda: None)
        inst = await self.env.COUNTING.create(params={}, id="child-1")
        return {"child": inst.id, "var": self.env.get("MISSING", "default")}


async def test_env_bindings_start_other_workflows(tmp_path, replay):
    async with harness(tmp_path, replay, parent=Parent, counting=Counting) as h:
        status = await h.run("parent", id="par")
        child = await h.run_until("child-1")
    assert status["output"] == {"child": "child-1", "var": "default"}
    assert child["output"] == 3


class Limited(WorkflowEntrypoint):
    async def run(self, event, step):
        for i in range(5):
            await step.do(f"s{i}", lambda: i)  # noqa: B023 - awaited before i changes


async def test_step_limit_from_config(tmp_path, replay):
    h = Harness(tmp_path, {"limited": Limited}, replay_always=replay, extra={"limited": {"limits": {"steps": 3}}})
    async with h:
        status = await h.run("limited")
    assert status["status"] == "errored"
    assert status["error"]["name"] == "WorkflowFatalError"
    assert "limit of 3 steps" in status["error"]["message"]


class Aware(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.sleep_until("later", datetime.now(UTC) - timedelta(days=1))


async def test_sleep_until_the_past_is_an_error(tmp_path, replay):
    async with harness(tmp_path, replay, aware=Aware) as h:
        status = await h.run("aware")
    assert status["status"] == "errored"
    assert "in the past" in status["error"]["message"]


RUNS: Counter = Counter()


class Napper(WorkflowEntrypoint):
    async def run(self, event, step):
        RUNS[event.instance_id] += 1
        await step.do("before", lambda: 1)
        await step.sleep("nap", event.payload["nap"])
        return await step.do("after", lambda: 2)


@pytest.mark.parametrize("nap,keep_warm,runs", [(30, 60.0, 1), (3600, 60.0, 2)])
async def test_short_waits_stay_in_memory_long_ones_are_evicted(tmp_path, nap, keep_warm, runs):
    RUNS.clear()
    async with Harness(tmp_path, {"napper": Napper}, keep_warm=keep_warm) as h:
        status = await h.run("napper", {"nap": nap}, id="n")
    assert status["output"] == 2
    assert RUNS["n"] == runs  # run() entered once: no replay from the top after a short sleep


GATE: dict = {}


class Gated(WorkflowEntrypoint):
    async def run(self, event, step):
        async def hold():
            CALLS["started"] += 1
            CALLS["peak"] = max(CALLS["peak"], CALLS["started"] - CALLS["done"])
            await GATE["open"].wait()
            CALLS["done"] += 1
            return event.instance_id

        return await step.do("hold", hold)


class Sentinel(WorkflowEntrypoint):
    async def run(self, event, step):
        return await step.do("one", lambda: 1)


async def test_concurrency_limit_keeps_excess_instances_queued(tmp_path, replay):
    GATE["open"] = asyncio.Event()
    classes = {"gated": Gated, "sentinel": Sentinel}
    h = Harness(tmp_path, classes, replay_always=replay, extra={"gated": {"concurrency": {"limit": 2}}})
    async with h:
        for i in range(5):
            h.create("gated", id=f"g{i}")
        # an uncapped instance created after them has run: the runner has claimed since all five
        # were due, so any it was going to start beyond the limit would be running now
        h.create("sentinel", id="s")
        await wait_until(lambda: h.client.status("s")["status"] == "complete", "the sentinel to complete")
        await wait_until(lambda: CALLS["started"] >= 2, "two instances to start")
        statuses = sorted(h.client.status(f"g{i}")["status"] for i in range(5))
        assert statuses == ["queued", "queued", "queued", "running", "running"]
        assert CALLS["started"] == 2
        GATE["open"].set()
        for i in range(5):
            assert (await h.run_until(f"g{i}"))["output"] == f"g{i}"
    assert CALLS["peak"] <= 2 and CALLS["done"] == 5


class Waiter(WorkflowEntrypoint):
    async def run(self, event, step):
        ev = await step.wait_for_event("go", "go", timeout="1 day")
        return ev.payload


async def test_a_full_runner_makes_room_by_suspending_waiting_instances(tmp_path, replay):
    """--concurrency counts instances held in memory; waiting ones give way to due work."""
    h = Harness(tmp_path, {"waiter": Waiter}, replay_always=replay, concurrency=2)
    async with h:
        for i in range(6):
            h.create("waiter", id=f"w{i}")
        for i in range(6):
            await h.run_until(f"w{i}", ("waiting",))
        for i in range(6):
            h.client.send_event(f"w{i}", "go", i)
        for i in range(6):
            assert (await h.run_until(f"w{i}"))["output"] == i
