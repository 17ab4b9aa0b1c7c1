"""`step.wait_for_instance` (and `step.create_and_wait`): a durable wait for another instance to end.

The semantics on a fake clock (both stores; kept in memory and replayed after every step); the store's
part (an end wakes its waiters in the same transaction, and says so in its notes); how describe, the
explorer API, `wf tail` and the web UI show the kind; and real `wf worker` processes: a parent waiting
on a child survives a SIGKILL of the runner while the child runs, and is woken by the child's end
through the runners' notes (no poll could explain it: see the test)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
import pytest
from conftest import wait_until
from harness import Harness, harness_store  # noqa: F401  (the fixture)
from rich.console import Console
from test_cli import wf  # noqa: F401  (the CliRunner fixture)
from test_store_conformance import T0, backend, batch, create, step, store  # noqa: F401  (fixtures)

from wf import WorkflowEntrypoint, WorkflowTimeoutError
from wf.cli.tail import TailModel
from wf.client import Client
from wf.config import load_config
from wf.http import create_app
from wf.runtime.history import expand
from wf.runtime.store.base import Failed, StepWrite
from wf.testing import WorkflowTest

# -- the semantics ------------------------------------------------------------------------------


class Child(WorkflowEntrypoint):
    async def run(self, event, step):
        go = await step.wait_for_event("go", "go", timeout="1 day")
        if go.payload == "break":
            raise ValueError("the child broke")
        return {"got": go.payload}


class Parent(WorkflowEntrypoint):
    async def run(self, event, step):
        p = event.payload
        target = self.env.CHILD if p.get("by") == "binding" else "child"
        try:
            return await step.wait_for_instance("child", target, p["child"], timeout=p.get("timeout", "2 days"))
        except WorkflowTimeoutError as exc:
            return {"timed out": str(exc)}


class Quick(WorkflowEntrypoint):
    async def run(self, event, step):
        return await step.do("double", lambda: event.payload["n"] * 2)


class Spawner(WorkflowEntrypoint):
    async def run(self, event, step):
        return await step.create_and_wait("spawn", self.env.QUICK, {"n": event.payload["n"]}, timeout="1 hour")


@pytest.fixture(params=[False, True], ids=["in-memory", "replay-always"])
def replay(request):
    return request.param


def family(tmp_path, replay, **more) -> Harness:
    classes = {"child": Child, "parent": Parent, "quick": Quick, "spawner": Spawner, **more}
    return Harness(tmp_path, classes, replay_always=replay)


@pytest.mark.usefixtures("harness_store")
async def test_the_parent_gets_the_childs_status_when_it_ends(tmp_path, replay):
    async with family(tmp_path, replay) as h:
        h.create("child", None, "ok")
        h.create("child", None, "broken")
        h.create("parent", {"child": "ok", "by": "binding"}, "p-ok")
        h.create("parent", {"child": "broken"}, "p-broken")
        for id in ("p-ok", "p-broken"):
            assert (await h.run_until(id, ("waiting",)))["status"] == "waiting"
        h.client.send_event("ok", "go", {"n": 1})
        h.client.send_event("broken", "go", "break")
        ok, broken = await h.run_until("p-ok"), await h.run_until("p-broken")
    assert ok["output"] == {"status": "complete", "output": {"got": {"n": 1}}, "error": None}
    assert broken["output"] == {
        "status": "errored",
        "output": None,
        "error": {"name": "ValueError", "message": "the child broke"},
    }


@pytest.mark.usefixtures("harness_store")
async def test_a_client_ending_the_child_wakes_the_parent(tmp_path, replay):
    async with family(tmp_path, replay) as h:
        for id in ("stopped", "removed"):
            h.create("child", None, id)
            h.create("parent", {"child": id}, f"p-{id}")
            await h.run_until(f"p-{id}", ("waiting",))
        h.client.terminate("stopped")
        h.client.delete("removed")
        stopped, removed = await h.run_until("p-stopped"), await h.run_until("p-removed")
    assert stopped["output"] == {"status": "terminated", "output": None, "error": None}
    assert removed["status"] == "errored"
    assert removed["error"] == {
        "name": "NotFoundError",
        "message": "wait_for_instance 'child': instance 'removed' of workflow 'child' was deleted while it waited",
    }


@pytest.mark.usefixtures("harness_store")
async def test_an_ended_child_answers_at_once_and_a_missing_one_is_a_clear_error(tmp_path, replay):
    async with family(tmp_path, replay) as h:
        h.create("child", None, "done")
        h.client.send_event("done", "go", 8)  # kept until its wait takes it
        assert (await h.run_until("done"))["status"] == "complete"
        early = await h.run("parent", {"child": "done"}, "p-early")
        missing = await h.run("parent", {"child": "nobody"}, "p-missing")
        itself = await h.run("parent", {"child": "p-itself"}, "p-itself")
        [wait] = h.describe("p-missing")["steps"]
    assert early["output"] == {"status": "complete", "output": {"got": 8}, "error": None}
    assert missing["error"] == {
        "name": "NotFoundError",
        "message": "wait_for_instance 'child': instance 'nobody' of workflow 'child' does not exist",
    }
    assert (wait["type"], wait["status"], wait["error"]["name"]) == ("waitForInstance", "errored", "NotFoundError")
    assert itself["status"] == "errored"  # its own id names the workflow 'child' here, which has no such instance
    assert "does not exist" in itself["error"]["message"]


@pytest.mark.usefixtures("harness_store")
async def test_a_wait_that_times_out_raises_workflow_timeout_error(tmp_path, replay):
    async with family(tmp_path, replay) as h:
        h.create("child", None, "slow")
        status = await h.run("parent", {"child": "slow", "timeout": "1 hour"}, "p-slow")
        [wait] = h.describe("p-slow")["steps"]
        assert h.client.status("slow")["status"] == "waiting"  # the child goes on: only the wait ended
    assert status["output"] == {
        "timed out": "wait_for_instance 'child' timed out: instance 'slow' of workflow 'child' did not end in time"
    }
    assert wait["end"] - wait["start"] == 3600 and wait["error"]["name"] == "WorkflowTimeoutError"


class Narcissus(WorkflowEntrypoint):
    async def run(self, event, step):
        return await step.wait_for_instance("me", "narcissus", event.instance_id)


async def test_an_instance_cannot_wait_for_itself(tmp_path):
    async with Harness(tmp_path, {"narcissus": Narcissus}) as h:
        status = await h.run("narcissus", None, "n1")
    assert status["error"] == {
        "name": "ValidationError",
        "message": "wait_for_instance 'me': instance 'n1' cannot wait for itself",
    }


@pytest.mark.usefixtures("harness_store")
async def test_create_and_wait_makes_the_child_once_and_returns_its_status(tmp_path, replay):
    async with family(tmp_path, replay) as h:
        status = await h.run("spawner", {"n": 21}, "s1")
        children = h.client.list("quick")
        steps = [(s["type"], s["name"]) for s in h.describe("s1")["steps"]]
    assert status["output"] == {"status": "complete", "output": 42, "error": None}
    assert len(children) == 1  # replayed (or not), the create step made one instance
    assert steps == [("step", "spawn"), ("waitForInstance", "spawn")]


# -- the store: an end wakes its waiters in its own transaction -----------------------------------


def waiting_on(store, target_id: str):
    """A waiter instance claimed by runner r1, its step 0 registered on `target_id`, then released
    as waiting until far away (as a runner suspends it). Returns (waiter row, target row)."""
    [waiter] = create(store, f"waiter-{target_id}")
    [target] = create(store, target_id, now=T0 + 0.5)
    [claimed] = store.claim("r1", T0, 30, 1, ["w"])
    assert claimed.seq == waiter.seq
    found = batch(store, lambda: store.watch_instance("r1", waiter.seq, claimed.gen, 0, "w", target_id))
    assert found == (target.seq, "queued", None, None)
    wait = step(0, "child", status="waiting", kind="waitForInstance", output=None, wake_at=T0 + 999)
    write = StepWrite(wait, None, "waiting", T0 + 999)
    batch(store, lambda: store.commit_step("r1", waiter.seq, claimed.gen, write, T0))
    assert batch(store, lambda: store.suspend("r1", waiter.seq, claimed.gen, T0 + 999, [], T0 + 1))
    return store.get_by_seq(waiter.seq), target


def test_terminating_or_deleting_the_target_makes_its_waiter_due_at_once(store):
    waiter, target = waiting_on(store, "t1")
    assert store.next_wake(["w"]) == T0 + 0.5  # the target is queued; the waiter sleeps till T0 + 999
    assert store.terminate(target.seq, T0 + 5) == [waiter.seq]
    assert store.get_by_seq(waiter.seq).wake_at == T0 + 5
    assert store.with_pending_events([waiter.seq]) == [waiter.seq]  # what a lost note would have said

    other, gone = waiting_on(store, "t2")
    assert store.delete(gone.seq, T0 + 6) == [other.seq]
    assert store.get_by_seq(other.seq).wake_at == T0 + 6


def test_a_runner_finishing_the_target_wakes_the_waiter_in_the_same_commit(store):
    waiter, target = waiting_on(store, "t1")
    [mine] = [r for r in store.claim("r2", T0 + 2, 30, 5, ["w"]) if r.seq == target.seq]
    assert batch(store, lambda: store.finish_instance("r2", target.seq, mine.gen, "complete", "7", None, T0 + 3))
    assert store.get_by_seq(waiter.seq).wake_at == T0 + 3


def test_a_suspending_waiter_whose_target_ended_meanwhile_is_due_at_once(store):
    waiter, target = waiting_on(store, "t1")
    [again] = [r for r in store.claim("r1", T0 + 1000, 30, 5, ["w"]) if r.seq == waiter.seq]
    store.terminate(target.seq, T0 + 1001)  # while r1 holds the waiter in memory
    assert batch(store, lambda: store.suspend("r1", waiter.seq, again.gen, T0 + 5000, [], T0 + 1002))
    assert store.get_by_seq(waiter.seq).wake_at == T0 + 1002


def test_a_wait_is_forgotten_when_its_step_ends_or_its_instance_restarts(store):
    waiter, target = waiting_on(store, "t1")
    store.restart(waiter.seq, T0 + 2)
    assert store.terminate(target.seq, T0 + 3) == []  # the restarted waiter no longer waits for it

    waiter, target = waiting_on(store, "t2")
    [again] = [r for r in store.claim("r1", T0 + 1000, 30, 5, ["w"]) if r.seq == waiter.seq]
    done = step(0, "child", status="complete", kind="waitForInstance", output='{"status":"complete"}')
    batch(store, lambda: store.commit_wait_end("r1", waiter.seq, again.gen, StepWrite(done), T0 + 1001))
    assert store.terminate(target.seq, T0 + 1002) == []

    waiter, target = waiting_on(store, "t3")
    store.terminate(waiter.seq, T0 + 3)  # a waiter that ends (however) no longer waits
    assert store.terminate(target.seq, T0 + 4) == []


def test_a_runner_store_on_sqlite_hands_over_the_notes_of_what_committed(tmp_path):
    from wf.runtime.store import open_store

    s = open_store(tmp_path, f"sqlite:///{tmp_path / 'state.db'}")
    try:
        heard: list[list[str]] = []
        s.hear_notes(heard.append)
        waiter, target = waiting_on(s, "t1")
        heard.clear()
        s.terminate(target.seq, T0 + 5)
        assert heard == [[f"c:{target.seq}", f"e:{waiter.seq}"]]

        def fails_after_noting():
            s.db.notify("never")
            raise RuntimeError("undone")

        results = s.run_batch([lambda: s.db.notify("kept"), fails_after_noting])
        assert isinstance(results[1], Failed)
        assert heard[-1] == ["kept"]  # the failed op's note went with its writes
    finally:
        s.close()


# -- how the readers show it --------------------------------------------------------------------

FAMILY_MAIN = """
from wf import WorkflowEntrypoint


class Child(WorkflowEntrypoint):
    async def run(self, event, step):
        go = await step.wait_for_event("go", "go", timeout="1 day")
        return {"got": go.payload}


class Parent(WorkflowEntrypoint):
    async def run(self, event, step):
        return await step.wait_for_instance("wait-for-child", self.env.CHILD, event.payload["child"], timeout="2 hours")
"""


@pytest.fixture
def shown(tmp_path, monkeypatch):
    """A project whose parent p1 waits for child c1 (stopped there), then a copy where it ended."""
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "src" / "index.py").write_text(FAMILY_MAIN)
    workflows = [
        {"name": "child", "binding": "CHILD", "class_name": "Child"},
        {"name": "parent", "binding": "PARENT", "class_name": "Parent"},
    ]
    (root / "wrangler.jsonc").write_text(json.dumps({"name": "fam", "main": "src/index.py", "workflows": workflows}))
    monkeypatch.chdir(root)
    config = load_config(root / "wrangler.jsonc", environ={})

    async def until_waiting():
        async with WorkflowTest(config=config, state_dir=root / ".wf") as t:
            await t.create("child", None, "c1")
            await t.create("parent", {"child": "c1"}, "p1")
            await t.run_until("p1", ("waiting",))

    asyncio.run(until_waiting())
    return root, config


async def finish(root: Path, config) -> None:
    async with WorkflowTest(config=config, state_dir=root / ".wf") as t:
        await t.get("c1").send_event("go", "yes")
        await t.run_until("p1")


def test_describe_and_wf_instances_describe_show_the_wait_and_its_result(shown, wf):  # noqa: F811
    root, config = shown
    c = Client(config)
    try:
        [waiting] = c.describe("p1")["steps"]
        assert waiting["type"] == "waitForInstance" and waiting["status"] == "waiting"
        assert waiting["instance"] == {"workflow": "child", "id": "c1"}
        assert waiting["timeout_at"] == waiting["start"] + 7200
        r = wf("instances", "describe", "p1")
        assert "🔗 Waiting for instance" in r.out and "c1 (child)" in r.out and "Times Out At" in r.out
        asyncio.run(finish(root, config))
        [done] = c.describe("p1")["steps"]
        assert done["output"] == {"status": "complete", "output": {"got": "yes"}, "error": None}
        r = wf("instances", "describe", "p1")
        assert "Result:" in r.out and '"got": "yes"' in r.out
    finally:
        c.close()


async def test_the_explorer_api_and_the_web_ui_show_the_wait(shown):
    root, config = shown
    transport = httpx.ASGITransport(app=create_app(config, user_app=None))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as api:
        [step] = (await api.get("/cdn-cgi/explorer/api/workflows/parent/instances/p1")).json()["result"]["steps"]
        html = (await api.get("/cdn-cgi/explorer/workflows/parent/p1")).text
        assert step == {
            "name": "wait-for-child-1",
            "start": step["start"],
            "end": None,
            "finished": False,
            "type": "waitForInstance",
            "error": None,
            "output": None,
            "instance": {"workflow": "child", "id": "c1"},
        }
        assert re.findall(r'data-step="([^"]+)"', html) == ["waitForInstance:wait-for-child:1"]
        assert "waiting for instance c1 (child) to end; times out at" in html
        await finish(root, config)
        [step] = (await api.get("/cdn-cgi/explorer/api/workflows/parent/instances/p1")).json()["result"]["steps"]
        html = (await api.get("/cdn-cgi/explorer/workflows/parent/p1")).text
    assert step["finished"] is True and step["end"] is not None
    assert step["output"] == {"status": "complete", "output": {"got": "yes"}, "error": None}
    assert "waited for instance c1 (child)" in html


def test_wf_tail_shows_the_wait_and_what_ended_it(shown, wf):  # noqa: F811
    root, config = shown
    c = Client(config)
    try:
        model = TailModel()
        rows = expand(c.history(instance=c.get("p1")))
        for row in rows:
            model.apply(row)
        console = Console(width=120, record=True, color_system=None)
        console.print(model.render(now=rows[-1].at))
        text = console.export_text()
        assert "& wait-for-child" in text and "waiting for c1 (child), times out in 2h" in text
        asyncio.run(finish(root, config))
    finally:
        c.close()
    events = [json.loads(line) for line in wf("tail", "p1", "--json").out.splitlines()]
    mine = [(e["type"], e.get("instance") or e.get("status")) for e in events if e["type"].startswith("instance_wait")]
    assert mine == [("instance_wait_started", "c1"), ("instance_wait_completed", "complete")]


# -- real runners: SIGKILL while the child runs; woken by the child's end ----------------------

PROCESS_MAIN = """
import asyncio
import os

from wf import WorkflowEntrypoint


class Child(WorkflowEntrypoint):
    async def run(self, event, step):
        gate = f"{self.env.GATES}/{event.instance_id}"

        async def work():
            while not os.path.exists(gate):  # the test opens the gate when it wants the child to end
                await asyncio.sleep(0.01)
            return "worked"

        return await step.do("work", work, config={"timeout": "1 hour", "retries": {"limit": 5, "delay": "1 second"}})


class Parent(WorkflowEntrypoint):
    async def run(self, event, step):
        return await step.wait_for_instance("wait", "child", event.payload["child"], timeout="1 hour")
"""


def process_project(root: Path) -> Path:
    """Three configs over one project and one store: both workflows, parents only, children only."""
    (root / "src").mkdir(parents=True)
    (root / "gates").mkdir()
    (root / "src" / "index.py").write_text(PROCESS_MAIN)
    child = {"name": "child", "binding": "CHILD", "class_name": "Child"}
    parent = {"name": "parent", "binding": "PARENT", "class_name": "Parent"}
    for name, workflows in (("both", [child, parent]), ("parents", [parent]), ("children", [child])):
        config = {"name": "fam", "main": "src/index.py", "vars": {"GATES": str(root / "gates")}, "workflows": workflows}
        (root / f"{name}.jsonc").write_text(json.dumps(config))
    return root


def attempts_started(c: Client, id: str) -> int:
    return sum(1 for h in c.history(instance=c.get(id)) if h.type == "attempt_started")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def process_store(request):
    if request.param == "sqlite":
        yield None
        return
    from pgtest import Schema, require_base_url

    schema = Schema(require_base_url())
    yield schema.url
    schema.drop()


@pytest.mark.slow
@pytest.mark.crash
def test_a_waiting_parent_survives_sigkill_and_wakes_by_the_childs_end(tmp_path, wf_procs, process_store):
    root = process_project(tmp_path / "fam")
    wf_procs.store = process_store
    wf_procs.env = {"WF_LEASE": "1"}  # PostgreSQL: a killed worker's claims free up after a second
    c = Client(load_config(root / "both.jsonc", environ={}, store=process_store))
    try:
        first = wf_procs.worker(root, globals=["-c", "both.jsonc"]).wait_ready()
        wf_procs.cli(root, "-c", "both.jsonc", "trigger", "child", "--id", "c1")
        wf_procs.cli(root, "-c", "both.jsonc", "trigger", "parent", '{"child": "c1"}', "--id", "p1")
        wait_until(lambda: c.status("p1")["status"] == "waiting" and attempts_started(c, "c1") == 1, 20, "p1 waiting")
        first.kill()  # while the child's step runs
        if process_store:
            wait_until(lambda: not c.runner_alive(), 20, "the killed worker's lease to run out")

        # Two workers, one per workflow, that look for a dead runner's work only when they start and
        # never after (--reap-interval 3600): the parent's own timer is an hour away too. So nothing but
        # the child's end, told to the parents' worker by a note, can wake p1 before the test gives up.
        never = ["--reap-interval", "3600"]
        parents = wf_procs.worker(root, globals=["-c", "parents.jsonc"], args=never).wait_ready()
        children = wf_procs.worker(root, globals=["-c", "children.jsonc"], args=never).wait_ready()
        wait_until(lambda: attempts_started(c, "c1") == 2, 20, "the children's worker to take c1 over")
        assert c.status("p1")["status"] == "waiting"
        (root / "gates" / "c1").touch()
        wait_until(lambda: c.status("p1")["status"] == "complete", 20, "p1 to be woken by c1's end")
        assert c.status("p1")["output"] == {"status": "complete", "output": "worked", "error": None}

        # a parent held in memory by its worker is poked by the same note
        wf_procs.cli(root, "-c", "both.jsonc", "trigger", "child", "--id", "c2")
        wf_procs.cli(root, "-c", "both.jsonc", "trigger", "parent", '{"child": "c2"}', "--id", "p2")
        wait_until(lambda: c.status("p2")["status"] == "waiting" and attempts_started(c, "c2") == 1, 20, "p2 waiting")
        (root / "gates" / "c2").touch()
        wait_until(lambda: c.status("p2")["status"] == "complete", 20, "p2 to be woken by c2's end")
        ended = {h.type: h.at for h in c.history(instance=c.get("c2")) if h.type == "workflow_completed"}
        woke = {h.type: h.at for h in c.history(instance=c.get("p2")) if h.type == "instance_wait_completed"}
        assert woke["instance_wait_completed"] >= ended["workflow_completed"]
        for worker in (parents, children):
            assert "Traceback" not in worker.output()
    finally:
        c.close()
