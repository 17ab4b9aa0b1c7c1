"""Changing a workflow's code under running instances, with real `wf worker` and `wf dev` processes:
`step.patched` keeps old instances on the old way and sends new ones the new way, through runner
restarts (SIGKILL); the replay check before a runner runs new code reports divergent instances and,
with WF_ON_DIVERGENCE=hold, pauses them; `step.deprecate_patch` lets the check find instances that
still went the old way; `wf dev --reload` runs the same check."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from conftest import wait_until
from devserver import DevProcesses
from harness import Harness, harness_store  # noqa: F401  (the fixture)

from wf import WorkflowEntrypoint
from wf.client import Client
from wf.config import load_config
from wf.service import check_code

HEAD = """
from wf import WorkflowEntrypoint


def record(ledger, iid, what):
    with open(ledger, "a") as f:
        f.write(f"{iid} {what}\\n")
    return what


class Orders(WorkflowEntrypoint):
    async def run(self, event, step):
        iid, ledger = event.instance_id, self.env.LEDGER
"""
TAIL = """
        await step.wait_for_event("approval", "approval", timeout="1 day")
        shipped = await step.do("ship", lambda: record(ledger, iid, "ship"))
        return [charged, shipped]
"""
V1 = (
    HEAD
    + """
        charged = await step.do("charge", lambda: record(ledger, iid, "charge"))
"""
    + TAIL
)
PATCHED = (
    HEAD
    + """
        if await step.patched("tax"):
            charged = await step.do("charge-with-tax", lambda: record(ledger, iid, "charge-with-tax"))
        else:
            charged = await step.do("charge", lambda: record(ledger, iid, "charge"))
"""
    + TAIL
)
UNPATCHED = (
    HEAD
    + """
        charged = await step.do("charge-with-tax", lambda: record(ledger, iid, "charge-with-tax"))
"""
    + TAIL
)
DEPRECATED = (
    HEAD
    + """
        await step.deprecate_patch("tax")
        charged = await step.do("charge-with-tax", lambda: record(ledger, iid, "charge-with-tax"))
"""
    + TAIL
)


def make_project(root: Path, code: str) -> Path:
    (root / "src").mkdir(parents=True)
    config = {
        "name": "shop",
        "main": "src/index.py",
        "vars": {"LEDGER": str(root / "ledger.txt")},
        "workflows": [{"name": "orders", "binding": "ORDERS", "class_name": "Orders"}],
    }
    (root / "wrangler.jsonc").write_text(json.dumps(config))
    (root / "src" / "index.py").write_text(code)
    return root


def ledger(root: Path) -> Counter:
    path = root / "ledger.txt"
    return Counter(path.read_text().splitlines()) if path.exists() else Counter()


@pytest.fixture
def shop(tmp_path):
    root = make_project(tmp_path / "shop", V1)
    client = Client(load_config(root / "wrangler.jsonc", environ={}))
    yield root, client
    client.close()


def status(client: Client, id: str) -> str:
    return client.status(id)["status"]


def wait_status(client: Client, id: str, wanted: str, timeout: float = 20.0) -> None:
    wait_until(lambda: status(client, id) == wanted, timeout, f"instance {id} to be {wanted}")


@pytest.mark.slow
@pytest.mark.crash
def test_a_patched_workflow_keeps_old_instances_on_the_old_way_through_restarts(shop, wf_procs):
    root, client = shop
    first = wf_procs.worker(root).wait_ready()
    wf_procs.cli(root, "trigger", "orders", "--id", "old")
    wait_status(client, "old", "waiting")  # charged, waiting for approval
    first.kill()

    (root / "src" / "index.py").write_text(PATCHED)
    second = wf_procs.worker(root).wait_ready()
    assert "WARNING" not in second.output()  # the patch keeps "old" replayable: nothing to report
    wf_procs.cli(root, "trigger", "orders", "--id", "new")
    wait_status(client, "new", "waiting")
    second.kill()  # again: the new instance's patch decision must come back from its history

    third = wf_procs.worker(root).wait_ready()
    for id in ("old", "new"):
        wf_procs.cli(root, "send-event", id, "--type", "approval")
    for id in ("old", "new"):
        wait_status(client, id, "complete")
    assert client.status("old")["output"] == ["charge", "ship"]
    assert client.status("new")["output"] == ["charge-with-tax", "ship"]
    assert ledger(root) == {"old charge": 1, "old ship": 1, "new charge-with-tax": 1, "new ship": 1}
    steps = {id: [(s["type"], s["name"]) for s in client.describe(id)["steps"]] for id in ("old", "new")}
    assert steps["old"] == [("step", "charge"), ("waitForEvent", "approval"), ("step", "ship")]
    assert steps["new"] == [
        ("patch", "tax"),
        ("step", "charge-with-tax"),
        ("waitForEvent", "approval"),
        ("step", "ship"),
    ]
    third.stop()

    # later: only the new way is left in the code; the check finds the instance that went the old way
    (root / "src" / "index.py").write_text(DEPRECATED)
    report = json.loads(wf_procs.cli(root, "replay", "--check", "--status", "complete", "--json", check=False).stdout)
    verdicts = {v["id"]: v for v in report["instances"]}
    assert verdicts["new"]["verdict"] == "matches"
    assert verdicts["old"]["verdict"] == "diverges"
    assert "went past patch 'tax' the old way" in verdicts["old"]["consequence"]


@pytest.mark.slow
def test_a_worker_holds_instances_its_new_code_would_break_and_runs_them_once_fixed(shop, wf_procs):
    root, client = shop
    first = wf_procs.worker(root).wait_ready()
    wf_procs.cli(root, "trigger", "orders", "--id", "old")
    wait_status(client, "old", "waiting")
    first.stop()

    (root / "src" / "index.py").write_text(UNPATCHED)  # renames the committed step: "old" would charge again
    held = wf_procs.worker(root, env={"WF_ON_DIVERGENCE": "hold"}).wait_ready()
    out = held.output()
    assert "WARNING: replay check: the code changed, and 1 of 1 unfinished instance(s) do not replay on it" in out
    assert "old (orders, waiting): diverges: the history has step 'charge' next, the code asks for step " in out
    assert "1 of them are held (paused)" in out
    assert status(client, "old") == "paused"
    [paused] = [h for h in client.history(instance=client.get("old")) if h.type == "workflow_paused"]
    assert paused.data["heldBy"] == "replay check"
    wf_procs.cli(root, "send-event", "old", "--type", "approval")  # kept while it is held
    held.stop()
    assert ledger(root) == {"old charge": 1}

    (root / "src" / "index.py").write_text(PATCHED)
    fixed = wf_procs.worker(root, env={"WF_ON_DIVERGENCE": "hold"}).wait_ready()
    assert "WARNING" not in fixed.output()
    wf_procs.cli(root, "resume", "old")
    wait_status(client, "old", "complete")
    assert client.status("old")["output"] == ["charge", "ship"]
    assert ledger(root) == {"old charge": 1, "old ship": 1}
    fixed.stop()


@pytest.mark.slow
def test_wf_dev_reload_reports_instances_the_new_code_diverges_from(shop, tmp_path, wf_procs):
    root, client = shop
    devs = DevProcesses(tmp_path)
    try:
        dev = devs.start(root, ["--reload"]).wait_ready()
        wf_procs.cli(root, "trigger", "orders", "--id", "old")
        wait_status(client, "old", "waiting")
        (root / "src" / "index.py").write_text(UNPATCHED)
        dev.wait_output("reloaded", 15)
        dev.wait_output("WARNING: replay check", 5)
        assert "old (orders, waiting): diverges" in dev.output()
        assert "will run on the new code anyway (set WF_ON_DIVERGENCE=hold" in dev.output()
        (root / "src" / "index.py").write_text(PATCHED)
        dev.wait_output("replay cleanly on it", 15)
        assert status(client, "old") == "waiting"
        dev.stop()
    finally:
        devs.cleanup()


# -- the check before a runner runs code, in process -----------------------------------------------


def fresh_classes(config) -> dict:
    """The workflow classes imported again from the project's files (as `wf dev --reload` does)."""
    import sys

    from wf.loader import PACKAGE_PREFIX, load_workflow_classes

    for name in [n for n in sys.modules if n.startswith(PACKAGE_PREFIX)]:
        del sys.modules[name]
    return load_workflow_classes(config)


def test_the_start_check_runs_once_per_code_and_holds_only_when_told(shop, monkeypatch):
    """`check_code` (what `wf worker` and `wf dev` call): it replays only when the code differs from
    the code last checked; divergent instances are reported each time until resolved, and held only
    with WF_ON_DIVERGENCE=hold."""
    import asyncio

    from wf.testing import WorkflowTest

    root, client = shop
    config = load_config(root / "wrangler.jsonc", environ={})

    async def until_waiting():
        async with WorkflowTest(config=config, state_dir=root / ".wf") as t:
            await t.create("orders", None, "old")
            await t.run_until("old", ("waiting",))

    asyncio.run(until_waiting())
    said: list[str] = []
    v1 = fresh_classes(config)
    assert [v["verdict"] for v in check_code(config, v1, said.append)] == ["matches"]
    assert check_code(config, v1, said.append) == []  # the same code: nothing to replay
    assert said == ["replay check: the code changed; the 1 unfinished instance(s) replay cleanly on it"]

    (root / "src" / "index.py").write_text(UNPATCHED)
    v2 = fresh_classes(config)
    said.clear()
    assert [v["verdict"] for v in check_code(config, v2, said.append)] == ["diverges"]
    assert "will run on the new code anyway" in said[-1] and status(client, "old") == "waiting"
    assert [v["verdict"] for v in check_code(config, v2, said.append)] == ["diverges"]  # said again: unresolved

    held = load_config(root / "wrangler.jsonc", environ={"WF_ON_DIVERGENCE": "hold"})
    check_code(held, v2, said.append)
    assert status(client, "old") == "paused"
    assert check_code(held, v2, said.append) == []  # resolved (held): not checked again for this code


# -- step.patched on a fake clock ----------------------------------------------------------------


class Before(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.do("charge", lambda: "charge")
        await step.wait_for_event("approval", "approval", timeout="1 day")
        return "before"


class After(WorkflowEntrypoint):
    async def run(self, event, step):
        new = await step.patched("tax")
        again = await step.patched("tax")  # decided once per run: the same answer, no second mark
        charged = await step.do("charge-with-tax" if new else "charge", lambda: "charge-with-tax")
        await step.wait_for_event("approval", "approval", timeout="1 day")
        return {"new": new, "again": again, "charged": charged}


class Careless(WorkflowEntrypoint):
    async def run(self, event, step):
        if step.patched("tax"):  # not awaited: refused, rather than always true
            return "new"
        return "old"


@pytest.mark.usefixtures("harness_store")
@pytest.mark.parametrize("replay", [False, True], ids=["in-memory", "replay-always"])
async def test_patched_is_false_where_the_history_went_on_without_it_and_recorded_where_true(tmp_path, replay):
    async with Harness(tmp_path, {"orders": Before}) as h:
        h.create("orders", None, "old")
        await h.run_until("old", ("waiting",))
    async with Harness(tmp_path, {"orders": After}, replay_always=replay) as h:
        h.create("orders", None, "new")
        for id in ("old", "new"):
            h.client.send_event(id, "approval")
        old, new = await h.run_until("old"), await h.run_until("new")
        marks = {id: [s["name"] for s in h.describe(id)["steps"] if s["type"] == "patch"] for id in ("old", "new")}
    assert old["output"] == {"new": False, "again": False, "charged": "charge"}  # the stored result, replayed
    assert new["output"] == {"new": True, "again": True, "charged": "charge-with-tax"}
    assert marks == {"old": [], "new": ["tax"]}


async def test_patched_used_without_await_is_a_clear_error(tmp_path):
    async with Harness(tmp_path, {"careless": Careless}) as h:
        status = await h.run("careless")
    assert status["error"] == {
        "name": "TypeError",
        "message": "step.patched('tax') must be awaited: write `if await step.patched('tax'):`",
    }
