"""wf.testing (SPEC §8): every modifier and observer, the pytest plugin, harness vs real runner,
a project through its wrangler.jsonc, and the README's example."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

import wf.testing
from wf import NonRetryableError, WorkflowEntrypoint, WorkflowTimeoutError
from wf.config import load_config
from wf.service import build_runner, run_until_done
from wf.testing import WorkflowTest, WorkflowTestError, from_config, timeline

ROOT = Path(__file__).resolve().parent.parent
CALLS: Counter = Counter()


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.clear()


def test_public_names():
    assert wf.testing.__all__ == [
        "WorkflowTest",
        "from_config",
        "WorkflowIntrospector",
        "InstanceIntrospector",
        "Modifier",
        "WorkflowTestError",
        "timeline",
    ]
    for name in wf.testing.__all__:
        assert getattr(wf.testing, name).__doc__, f"wf.testing.{name} has no docstring"


# -- the workflow under test -------------------------------------------------------------


def charge(amount):
    CALLS["charge"] += 1
    return {"receipt": f"r-{amount}"}


class Order(WorkflowEntrypoint):
    """Charges (with retries), sleeps, then waits for approval; durations come from the payload."""

    async def run(self, event, step):
        p = event.payload
        quote = await step.do("quote", lambda: {"amount": p["amount"]})
        paid = await step.do(
            "charge",
            lambda: charge(quote["amount"]),
            config={"retries": {"limit": 3, "delay": p.get("delay", "1 minute")}},
        )
        await step.sleep("cool-off", p.get("nap", "1 day"))
        try:
            decision = await step.wait_for_event("approval", "approval", timeout=p.get("wait", "24 hours"))
        except WorkflowTimeoutError:
            return {"status": "expired", "receipt": paid["receipt"]}
        return {"status": "approved" if decision.payload["ok"] else "rejected", "receipt": paid["receipt"]}


class Loop(WorkflowEntrypoint):
    async def run(self, event, step):
        out = []
        for i in range(3):
            out.append(await step.do("item", lambda i=i: CALLS.update(["item"]) or i))
            await step.sleep("pause", "1 hour")
        return out


def order_test(**options):
    return WorkflowTest({"order": Order, "loop": Loop}, **options)


# -- modifiers ---------------------------------------------------------------------------


async def test_mock_step_result_skips_the_function_but_records_the_attempt():
    async with order_test() as t:
        inst = t.introspect_instance("order", "o1")
        inst.modify(lambda m: m.mock_step_result("charge", {"receipt": "mocked"}).mock_event("approval", {"ok": True}))
        await t.create("order", {"amount": 5}, id="o1")
        await inst.wait_for_status("complete")
        assert await inst.get_output() == {"status": "approved", "receipt": "mocked"}
        assert CALLS["charge"] == 0
        assert (await inst.steps())[1] == {
            "type": "step",
            "name": "charge",
            "count": 1,
            "status": "complete",
            "attempts": [True],
        }
        with pytest.raises(Exception, match="already has a mocked result"):
            inst.modify().mock_step_result("charge", 1)


async def test_mock_step_error_on_every_attempt():
    async with order_test() as t:
        inst = t.introspect_instance("order", "o1")
        inst.modify().mock_step_error("charge", RuntimeError("card declined"))
        await t.create("order", {"amount": 5}, id="o1")
        with pytest.raises(RuntimeError, match="card declined"):
            await inst.wait_for_step_result("charge")
        await inst.wait_for_status("errored")
        assert await inst.get_error() == {"name": "RuntimeError", "message": "card declined"}
        assert (await inst.steps())[1]["attempts"] == [False] * 4  # limit 3: four attempts
        assert CALLS["charge"] == 0


async def test_fail_twice_then_succeed_with_a_mocked_result():
    async with order_test() as t:
        with t.introspect("order") as intro:
            intro.modify_all(
                lambda m: (
                    m.mock_step_error("charge", ConnectionError("down"), times=2)
                    .mock_step_result("charge", {"receipt": "third time"})
                    .mock_event("approval", {"ok": True})
                )
            )
            await t.create("order", {"amount": 5})
            [inst] = await intro.get()
            assert await inst.wait_for_step_result("charge") == {"receipt": "third time"}
            await inst.wait_for_status("complete")
    assert CALLS["charge"] == 0


async def test_fail_twice_then_the_real_function_runs():
    async with order_test() as t:
        inst = t.introspect_instance("order", "o1")
        inst.modify().mock_step_error("charge", RuntimeError("flaky"), times=1).force_step_timeout(
            "charge", times=1
        ).mock_event("approval", {"ok": False})
        await t.create("order", {"amount": 7}, id="o1")
        assert await inst.wait_for_step_result("charge") == {"receipt": "r-7"}
        await inst.wait_for_status("complete")
        assert await inst.get_output() == {"status": "rejected", "receipt": "r-7"}
        attempts = (await inst.describe())["steps"][1]["attempts"]
    assert [a["error"] and a["error"]["name"] for a in attempts] == ["RuntimeError", "WorkflowTimeoutError", None]
    assert "timed out" in attempts[1]["error"]["message"]
    assert CALLS["charge"] == 1


async def test_force_step_timeout_on_every_attempt():
    async with order_test() as t:
        inst = t.introspect_instance("order", "o1")
        inst.modify().force_step_timeout("quote")
        await t.create("order", {"amount": 1}, id="o1")
        with pytest.raises(WorkflowTimeoutError, match="attempt 6 timed out after 10 minutes"):
            await inst.wait_for_step_result("quote")
        await inst.wait_for_status("errored")


async def test_nonretryable_mocked_error_ends_the_step_at_once():
    async with order_test() as t:
        inst = t.introspect_instance("order", "o1")
        inst.modify().mock_step_error("charge", NonRetryableError("fraud"))
        await t.create("order", {"amount": 1}, id="o1")
        await inst.wait_for_status("errored")
        assert (await inst.steps())[1]["attempts"] == [False]


async def test_disable_sleeps_all_or_by_name_and_index():
    async with order_test() as t:
        start = t.clock.now()
        every = t.introspect_instance("loop", "all")
        every.modify().disable_sleeps()
        await t.create("loop", id="all")
        await every.wait_for_status("complete")
        assert t.clock.now() == start
        second = t.introspect_instance("loop", "second")
        second.modify().disable_sleeps([{"name": "pause", "index": 2}])
        await t.create("loop", id="second")
        await second.wait_for_status("complete")
        assert t.clock.now() - start == 2 * 3600  # the first and third pauses slept
        assert await second.get_output() == [0, 1, 2]


async def test_disable_retry_delays_keeps_every_attempt():
    async with order_test() as t:
        inst = t.introspect_instance("order", "o1")
        inst.modify().mock_step_error("charge", RuntimeError("x"), times=3).disable_retry_delays(
            ["charge"]
        ).disable_sleeps().mock_event("approval", {"ok": True})
        start = t.clock.now()
        await t.create("order", {"amount": 2, "delay": "1 hour"}, id="o1")
        await inst.wait_for_status("complete")
        attempts = (await inst.describe())["steps"][1]["attempts"]
        assert [a["success"] for a in attempts] == [False, False, False, True]
        assert {a["start"] for a in attempts} == {start}


async def test_mock_event_is_delivered_and_survives_restart():
    async with order_test() as t:
        inst = t.introspect_instance("order", "o1")
        inst.modify().disable_sleeps().mock_event("approval", {"ok": True})
        await t.create("order", {"amount": 3}, id="o1")
        await inst.wait_for_status("complete")
        await inst.restart()
        await inst.wait_for_status("complete")
        assert await inst.get_output() == {"status": "approved", "receipt": "r-3"}


async def test_force_event_timeout_wins_over_a_sent_event():
    async with order_test() as t:
        inst = t.introspect_instance("order", "o1")
        inst.modify().force_event_timeout("approval")
        await t.create("order", {"amount": 3}, id="o1")
        await inst.send_event("approval", {"ok": True})
        start = t.clock.now()
        await inst.wait_for_status("complete")
        assert await inst.get_output() == {"status": "expired", "receipt": "r-3"}
        assert t.clock.now() - start == 86400  # the day's sleep; no 24-hour wait
        assert (await inst.describe())["steps"][3]["error"]["name"] == "WorkflowTimeoutError"


# -- observers ---------------------------------------------------------------------------


async def test_wait_for_status_rejects_another_terminal_state_and_resolves_at_once_when_there():
    async with order_test() as t:
        inst = await t.create("order", {"amount": 1, "wait": "1 hour"})
        await inst.wait_for_status("waiting")
        with pytest.raises(WorkflowTestError, match="ended 'complete', not 'errored'"):
            await inst.wait_for_status("errored")
        await inst.wait_for_status("complete")
        assert await inst.get_output() == {"status": "expired", "receipt": "r-1"}
        with pytest.raises(WorkflowTestError, match='must be "errored"'):
            await inst.get_error()


async def test_wait_for_step_result_by_index_and_output_before_the_end():
    async with order_test() as t:
        inst = await t.create("loop")
        assert await inst.wait_for_step_result("item", index=2) == 1
        assert (await inst.status())["status"] != "complete"
        with pytest.raises(WorkflowTestError, match='must be "complete"'):
            await inst.get_output()
        with pytest.raises(WorkflowTestError, match="without a result of step 'item' \\(index 4\\)"):
            await inst.wait_for_step_result("item", index=4)


async def test_introspect_captures_only_instances_created_afterwards():
    async with order_test() as t:
        before = await t.create("loop")
        await before.wait_for_step_result("item")
        with t.introspect("loop") as intro:
            intro.modify_all(lambda m: m.disable_sleeps())
            with pytest.raises(Exception, match="already being introspected"):
                t.introspect("loop")
            made = [await t.create("loop", id=f"n{i}") for i in range(2)]
            for inst in made:
                await inst.wait_for_status("complete")
            assert sorted(i.id for i in await intro.get()) == ["n0", "n1"]
        t.introspect("loop").dispose()  # the first session is over


async def test_a_day_of_sleep_and_a_day_of_waiting_pass_on_the_fake_clock():
    """Two days of workflow time; how little real time they take is bench/'s figure 10d (goal 1 s)."""
    async with order_test() as t:
        start = t.clock.now()
        inst = await t.create("order", {"amount": 9})
        await inst.wait_for_status("complete")
        assert await inst.get_output() == {"status": "expired", "receipt": "r-9"}
        assert t.clock.now() - start == 2 * 86400


# -- harness vs a real runner ------------------------------------------------------------

FLAKY: Counter = Counter()


def flaky_charge(amount):
    FLAKY["n"] += 1
    if FLAKY["n"] <= 2:
        raise RuntimeError(f"failure {FLAKY['n']}")
    return {"receipt": f"r-{amount}"}


class Flaky(Order):
    async def run(self, event, step):
        p = event.payload
        paid = await step.do(
            "charge",
            lambda: flaky_charge(p["amount"]),
            config={"retries": {"limit": 3, "delay": p["delay"], "backoff": "constant"}},
        )
        await step.sleep("cool-off", p["nap"])
        decision = await step.wait_for_event("approval", "approval", timeout=p["wait"])
        return {"receipt": paid["receipt"], "ok": decision.payload["ok"]}


def write_flaky_project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "wrangler.jsonc").write_text(
        '{"name": "p", "main": "src/index.py", "workflows": '
        '[{"name": "flaky", "binding": "FLAKY", "class_name": "Flaky"}]}'
    )
    return root / "wrangler.jsonc"


async def test_harness_and_real_runner_give_the_same_output_and_timeline(tmp_path):
    params = {"amount": 4, "delay": 0.05, "nap": 0.1, "wait": 5}
    FLAKY.clear()
    async with WorkflowTest({"flaky": Flaky}) as t:
        inst = await t.create("flaky", params, id="same")
        await inst.wait_for_status("waiting")
        await inst.send_event("approval", {"ok": True})
        await inst.wait_for_status("complete")
        fake = await inst.describe()

    FLAKY.clear()
    config = load_config(write_flaky_project(tmp_path / "real"))
    runner = build_runner(config, {"flaky": Flaky}, reap_interval=0.2)  # SystemClock
    from wf.client import Client

    client = Client(config)
    try:
        row = client.create("flaky", params, id="same")

        def on_tick(r):
            if r.status == "waiting" and not client.store.events(r.seq):
                client.send_event("same", "approval", {"ok": True})

        assert await asyncio.wait_for(run_until_done(runner, row.seq, on_tick), 20) == "complete"
        real = client.describe("same")
    finally:
        client.close()
    assert fake["output"] == real["output"] == {"receipt": "r-4", "ok": True}
    assert (
        timeline(fake["steps"])
        == timeline(real["steps"])
        == [
            {"type": "step", "name": "charge", "count": 1, "status": "complete", "attempts": [False, False, True]},
            {"type": "sleep", "name": "cool-off", "count": 1, "status": "complete", "attempts": []},
            {"type": "waitForEvent", "name": "approval", "count": 1, "status": "complete", "attempts": []},
        ]
    )


# -- a project through its wrangler.jsonc, and the pytest plugin ---------------------------

PROJECT_CODE = """
from wf import WorkflowEntrypoint


class Greeter(WorkflowEntrypoint):
    async def run(self, event, step):
        name = await step.do("lookup", lambda: event.payload["name"])
        await step.sleep("think", "7 days")
        reply = await step.wait_for_event("reply", "reply", timeout="24 hours")
        return {"greeting": f"{self.env.GREETING}, {name}", "reply": reply.payload}
"""


def write_project(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src" / "index.py").write_text(PROJECT_CODE)
    (root / "wrangler.jsonc").write_text(
        textwrap.dedent("""\
        {
          "name": "greet",
          "main": "src/index.py",
          "vars": {"GREETING": "Hello"},  // a comment, and a trailing comma
          "workflows": [{"name": "greeter", "binding": "GREETER", "class_name": "Greeter"},],
        }""")
    )
    return root / "wrangler.jsonc"


async def test_from_config_runs_a_project_on_a_temporary_store(tmp_path):
    path = write_project(tmp_path / "greet")
    async with from_config(path) as t:
        assert t.config.state_dir != path.parent / ".wf"
        inst = await t.env.GREETER.create(params={"name": "Ada"}, id="g1")
        probe = t.get("g1")
        probe.modify().mock_event("reply", {"text": "hi"})
        await probe.wait_for_status("complete")
        assert await probe.get_output() == {"greeting": "Hello, Ada", "reply": {"text": "hi"}}
        assert (await inst.status())["status"] == "complete"
    assert not (path.parent / ".wf").exists()


PLUGIN_TESTS = """
import asyncio


async def test_async_with_the_project_fixture(wf_test):
    inst = await wf_test.create("greeter", {"name": "Bo"})
    await inst.wait_for_step_result("lookup")
    await inst.send_event("reply", {"text": "yo"})
    await inst.wait_for_status("complete")
    assert (await inst.get_output())["greeting"] == "Hello, Bo"


def test_sync_with_the_factory(wf_test_factory):
    t = wf_test_factory(config="wrangler.jsonc")

    async def scenario():
        inst = await t.create("greeter", {"name": "Cy"})
        inst.modify().mock_event("reply", {})
        await inst.wait_for_status("complete")
        return await inst.get_output()
    assert asyncio.run(scenario())["greeting"] == "Hello, Cy"
"""


@pytest.mark.parametrize(
    "plugins", [["-o", "asyncio_mode=auto"], ["-p", "no:asyncio"]], ids=["pytest-asyncio", "without-pytest-asyncio"]
)
@pytest.mark.slow
def test_the_pytest_plugin_in_a_user_project(tmp_path, plugins):
    root = tmp_path / "greet"
    write_project(root)
    (root / "tests").mkdir()
    (root / "tests" / "test_greeter.py").write_text(PLUGIN_TESTS)
    (root / "pytest.ini").write_text("[pytest]\n")
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugins]
    if "no:asyncio" in plugins:
        args += ["-k", "factory"]
    result = subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ("1 passed" if "no:asyncio" in plugins else "2 passed") in result.stdout, result.stdout


# -- the README's example ----------------------------------------------------------------


def readme_example() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Testing your workflows", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)[0]


def test_the_readme_example_runs():
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(readme_example(), "README.md#testing-your-workflows", "exec"), namespace)
    tests = [fn for name, fn in namespace.items() if name.startswith("test_")]
    assert len(tests) >= 2
    for fn in tests:
        asyncio.run(fn())
