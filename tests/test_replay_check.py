"""The replay check (`wf replay --check`, `Client.replay_check`): the current code replayed against stored
histories with no side effects. Five instances of one workflow are stopped at each point of its life
(queued; in a retry of its first step; asleep; waiting for an event after more steps; complete), then
each kind of code change is checked against all five: a rename, a step inserted before the sleep, two
steps reordered, a step removed, and a change of configs only (which must not diverge)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest
from harness import Harness, harness_store  # noqa: F401  (the fixture)
from test_cli import wf  # noqa: F401  (the CliRunner fixture)

from wf import WorkflowEntrypoint
from wf.client import Client
from wf.runtime.status import STATUSES
from wf.runtime.store.base import StepRow, StepWrite

pytestmark = pytest.mark.usefixtures("harness_store")  # on SQLite and on PostgreSQL

CALLS: Counter = Counter()  # step functions that ran (the check must run none)


def work(name: str, value=None, fail: bool = False):
    def fn():
        CALLS[name] += 1
        if fail:
            raise ValueError(f"{name} is down")
        return value if value is not None else name

    return fn


RETRY_A = {"retries": {"limit": 3, "delay": "1 hour", "backoff": "constant"}}


class V1(WorkflowEntrypoint):
    """The code the instances ran: A, sleep S, B, wait for event E, C."""

    async def run(self, event, step):
        await step.do("A", work("A", fail=bool(event.payload.get("fail"))), config=RETRY_A)
        await step.sleep("S", "1 hour")
        await step.do("B", work("B"))
        await step.wait_for_event("E", "go", timeout="1 day")
        await step.do("C", work("C"))
        return "done"


class Renamed(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.do("A", work("A"), config=RETRY_A)
        await step.sleep("S", "1 hour")
        await step.do("B-renamed", work("B"))
        await step.wait_for_event("E", "go", timeout="1 day")
        await step.do("C", work("C"))
        return "done"


class InsertedBeforeSleep(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.do("A", work("A"), config=RETRY_A)
        await step.do("X", work("X"))
        await step.sleep("S", "1 hour")
        await step.do("B", work("B"))
        await step.wait_for_event("E", "go", timeout="1 day")
        await step.do("C", work("C"))
        return "done"


class Reordered(WorkflowEntrypoint):
    """B and the wait for E swapped."""

    async def run(self, event, step):
        await step.do("A", work("A"), config=RETRY_A)
        await step.sleep("S", "1 hour")
        await step.wait_for_event("E", "go", timeout="1 day")
        await step.do("B", work("B"))
        await step.do("C", work("C"))
        return "done"


class Removed(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.do("A", work("A"), config=RETRY_A)
        await step.sleep("S", "1 hour")
        await step.wait_for_event("E", "go", timeout="1 day")
        await step.do("C", work("C"))
        return "done"


class ConfigOnly(WorkflowEntrypoint):
    """Same steps; other retries, timeouts, durations, and another return value."""

    async def run(self, event, step):
        config = {"retries": {"limit": 9, "delay": "5 seconds", "backoff": "linear"}, "timeout": "2 minutes"}
        await step.do("A", work("A"), config=config)
        await step.sleep("S", "3 hours")
        await step.do("B", work("B"), config={"retries": {"limit": 0, "delay": 1}})
        await step.wait_for_event("E", "go", timeout="2 days")
        await step.do("C", work("C"), config={"timeout": "1 second"})
        return "done, differently"


def step(type_: str, name: str) -> tuple[str, str]:
    return (type_, name)


M = ("matches", None, None)


def D(expected: tuple, got: tuple | None) -> tuple:  # noqa: N802 - a table entry: diverges
    return ("diverges", expected, got)


# instance -> verdict, (type, name) the history has next, (type, name) the code asked for
EXPECTED = {
    "Renamed": {
        "q": M,
        "r": M,
        "s": M,
        "e": D(step("step", "B"), step("step", "B-renamed")),
        "c": D(step("step", "B"), step("step", "B-renamed")),
    },
    "InsertedBeforeSleep": {
        "q": M,
        "r": M,
        "s": D(step("sleep", "S"), step("step", "X")),
        "e": D(step("sleep", "S"), step("step", "X")),
        "c": D(step("sleep", "S"), step("step", "X")),
    },
    "Reordered": {
        "q": M,
        "r": M,
        "s": M,
        "e": D(step("step", "B"), step("waitForEvent", "E")),
        "c": D(step("step", "B"), step("waitForEvent", "E")),
    },
    "Removed": {
        "q": M,
        "r": M,
        "s": M,
        "e": D(step("step", "B"), step("waitForEvent", "E")),
        "c": D(step("step", "B"), step("waitForEvent", "E")),
    },
    "ConfigOnly": {"q": M, "r": M, "s": M, "e": M, "c": M},
}
CHANGES = {c.__name__: c for c in (Renamed, InsertedBeforeSleep, Reordered, Removed, ConfigOnly)}


async def stop_instances_at_each_point(tmp_path) -> Harness:
    """Run V1 on a fake clock until: e waits for E, c completed, r waits to retry A, s sleeps in S;
    then q is created with no runner (queued). Returns the (closed) harness, for its config."""
    h = Harness(tmp_path, {"flow": V1})
    async with h:
        for id in ("e", "c"):
            h.create("flow", {}, id)
            await h.run_until(id, ("waiting",))  # asleep in S
            await h.advance(3601)  # past S and B, now waiting for E
            assert [s["name"] for s in h.describe(id)["steps"]][-1] == "E"
        h.client.send_event("c", "go")
        await h.run_until("c")
        h.create("flow", {"fail": True}, "r")
        await h.run_until("r", ("waiting",))
        h.create("flow", {}, "s")
        await h.run_until("s", ("waiting",))
    client = Client(h.config)
    client.create("flow", {}, "q")
    client.close()
    return h


def verdict_table(client: Client, cls: type) -> dict:
    table = {}
    for v in client.replay_check(statuses=STATUSES, classes={"flow": cls}):
        pick = (lambda s: (s["type"], s["name"]) if s else None) if v["verdict"] == "diverges" else (lambda s: None)
        table[v["id"]] = (v["verdict"], pick(v["expected"]), pick(v["got"]))
    return table


async def test_each_kind_of_change_gets_the_right_verdict_at_each_point(tmp_path):
    h = await stop_instances_at_each_point(tmp_path)
    client = Client(h.config)
    try:
        statuses = {i: client.status(i)["status"] for i in "qrsec"}
        assert statuses == {"q": "queued", "r": "waiting", "s": "waiting", "e": "waiting", "c": "complete"}
        CALLS.clear()
        found = {name: verdict_table(client, cls) for name, cls in CHANGES.items()}
        assert found == EXPECTED
        assert verdict_table(client, V1) == dict.fromkeys("qrsec", M)  # the code they ran matches itself
        assert CALLS == {}  # no step function ran: stored results were replayed
    finally:
        client.close()


async def test_a_verdict_says_where_the_instance_is_and_what_the_new_code_would_do(tmp_path):
    h = await stop_instances_at_each_point(tmp_path)
    client = Client(h.config)
    try:
        same = {v["id"]: v for v in client.replay_check(statuses=STATUSES, classes={"flow": V1})}
        inserted = {v["id"]: v for v in client.replay_check(classes={"flow": InsertedBeforeSleep})}
        renamed = {v["id"]: v for v in client.replay_check(id="e", classes={"flow": Renamed})}
    finally:
        client.close()
    at = {i: (v["at"] or {}).get("name") for i, v in same.items()}
    assert at == {"q": None, "r": "A", "s": "S", "e": "E", "c": None}
    assert [same[i]["replayed"] for i in "qrsec"] == [0, 0, 1, 3, 5]
    assert same["c"]["ends"] == {"status": "complete"}
    assert sorted(inserted) == ["e", "q", "r", "s"]  # by default: unfinished instances only
    assert (
        "a new step 'X' would run before sleep 'S', which this instance already began" in (inserted["s"]["consequence"])
    )
    assert "step 'B' (committed) would be skipped" in renamed["e"]["consequence"]
    assert renamed["e"]["got"] == {"kind": "do", "type": "step", "name": "B-renamed", "count": 1}


class Creates(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.do("A", work("A"), config=RETRY_A)
        await self.env.FLOW.create(params={})  # outside a step: every replay would create again
        await step.sleep("S", "1 hour")


async def test_side_effects_outside_steps_are_refused_and_unknown_kinds_reported(tmp_path):
    h = await stop_instances_at_each_point(tmp_path)
    client = Client(h.config)
    try:
        before = len(client.list("flow", limit=100))
        refused = {v["id"]: v for v in client.replay_check(classes={"flow": Creates})}
        assert len(client.list("flow", limit=100)) == before  # nothing was created
        store, now = client.store, client.now()
        [row] = store.claim("test", now, 30, 1, ["flow"])  # q: give it a step of a kind nobody registered
        odd = StepRow(pos=0, kind="checkpoint", name="mark", n=1, status="recorded")
        store.run_batch([lambda: store.commit_step("test", row.seq, row.gen, StepWrite(odd), now)])
        unknown = {v["id"]: v for v in client.replay_check(id="q", classes={"flow": V1})}
    finally:
        client.close()
    assert refused["s"]["verdict"] == "error"
    assert "run() used env.FLOW.create outside a step" in refused["s"]["consequence"]
    assert refused["r"]["verdict"] == "matches"  # stopped at A, where it is: it never got that far
    assert (
        unknown["q"]["verdict"] == "error" and "step kind 'checkpoint' is not registered" in unknown["q"]["consequence"]
    )


# -- the command -----------------------------------------------------------------------------


CHANGED_MAIN = """
from wf import WorkflowEntrypoint

class Flow(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.do("A", lambda: "A")
        await step.do("X", lambda: "X")
        print("replayed run() printed this")
        await step.sleep("S", "1 hour")
        return "done"
"""


def test_wf_replay_check_prints_verdicts_and_exits_1_on_divergence(tmp_path, wf):  # noqa: F811
    h = asyncio.run(stop_instances_at_each_point(tmp_path))
    config = json.loads(h.config.path.read_text())
    config["workflows"][0]["class_name"] = "Flow"
    h.config.path.write_text(json.dumps(config))
    (h.config.root / "src").mkdir(exist_ok=True)
    (h.config.root / "src" / "index.py").write_text(CHANGED_MAIN)
    args = ["-c", str(h.config.path)] + (["--store", h.config.store_url] if h.config.store_url else [])

    result = wf(*args, "replay", "--check", "--json")
    assert result.code == 1, result.err
    report = json.loads(result.out)  # printed lines of run() went to stderr, not into the JSON
    assert {k: report[k] for k in ("checked", "matches", "diverges", "error")} == {
        "checked": 4,
        "matches": 2,
        "diverges": 2,
        "error": 0,
    }
    assert {v["id"]: v["verdict"] for v in report["instances"]}["s"] == "diverges"

    human = wf(*args, "replay", "--check", "--status", "waiting", "flow")
    assert human.code == 1
    assert "❌ diverges" in human.out and "3 instance(s) checked: 1 match, 2 diverge" in human.out
    assert "step.patched" in human.err

    queued = wf(*args, "replay", "--check", "--status", "queued")
    assert queued.code == 0 and "1 instance(s) checked: 1 match, 0 diverge" in queued.out
    refused = wf(*args, "replay", "--check", "--status", "sleeping")
    assert refused.code == 2 and "status 'sleeping' is not an instance status" in refused.err
    assert wf(*args, "replay").code == 2  # --check is the only mode, and it says so
