"""Step kinds are objects in a registry: a kind declared in this file alone (`step.checkpoint`) runs,
replays, and shows in every reader (Client.describe, the explorer API, `wf instances describe`,
`wf tail --json`, the tail view, wf.testing) without a line of those modules knowing it; and a
stored kind, status or log event that no registered kind declares stops each reader, named."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from rich.console import Console
from test_cli import assert_clean_error, clean_env, wf  # noqa: F401  (shared fixtures)

from wf import WorkflowEntrypoint
from wf.cli.tail import TailModel
from wf.client import Client
from wf.config import load_config
from wf.errors import UnknownKindError, ValidationError
from wf.http import create_app
from wf.runtime import codec, steps
from wf.runtime.history import expand
from wf.runtime.steps import EventSpec, StepKind, StepStatus
from wf.runtime.store.base import StepRow, StepWrite
from wf.service import build_runner, run_until_done
from wf.testing import WorkflowTest, timeline

API = "/cdn-cgi/explorer/api"
DEADLINE = 20.0

# -- the toy kind: records a value once, returns the recorded value on every replay ------------


class CheckpointStatus(StepStatus):
    RECORDED = "recorded", "📌 Recorded"


class Checkpoint(StepKind):
    name = "checkpoint"
    display = "checkpoint"
    label = "📌 Checkpoint"
    icon = "#"
    methods = ("checkpoint",)
    Status = CheckpointStatus
    final = frozenset({CheckpointStatus.RECORDED})
    step_result = True
    events = (EventSpec("checkpoint_recorded", state="recorded", progress=True, ends=True, shows={"value": "value"}),)

    async def checkpoint(self, x, name: str, value):
        key, rec = x.lookup(self, name)
        if self.finished(rec):
            return self.replay(rec)
        now = x.clock.now()
        output = codec.encode(value, f"the value of checkpoint {name!r}")
        rec = x.new_step(key, status=CheckpointStatus.RECORDED.value, output=output, started_at=now, ended_at=now)
        event = self.log(rec, now, "checkpoint_recorded", {"value": value})
        await x.commit(StepWrite(rec, None, *x.instance_state(), events=[event]))
        x.after_step()
        return value

    def detail(self, view, now: float) -> str:
        return f"value {view.facts['value']!r}" if view.state == "recorded" else super().detail(view, now)


class Marks(WorkflowEntrypoint):
    """Checkpoints the number of times run() has been entered: a replayed checkpoint keeps the first."""

    runs = 0

    async def run(self, event, step):
        Marks.runs += 1
        first = await step.checkpoint("mark", Marks.runs)
        between = await step.do("between", lambda: first)
        second = await step.checkpoint("mark", Marks.runs)  # the second occurrence: a new step
        return {"first": first, "between": between, "second": second, "runs": Marks.runs}


@pytest.fixture
def toy():
    """The toy kind, registered for one test and gone afterwards."""
    steps.register(Checkpoint)
    Marks.runs = 0
    yield steps.kind("checkpoint")
    if "checkpoint" in steps.names():
        steps.unregister("checkpoint")


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "src" / "index.py").write_text("")  # the class comes from this test file, not from `main`
    (root / "wrangler.jsonc").write_text(
        json.dumps(
            {
                "name": "kinds",
                "main": "src/index.py",
                "workflows": [{"name": "marks", "binding": "MARKS", "class_name": "Marks"}],
            }
        )
    )
    monkeypatch.chdir(root)
    return root


def run_with_replay_always(root: Path, id: str) -> str:
    """Create instance `id` and run it to its end on a real runner that replays after every step."""
    config = load_config(root / "wrangler.jsonc", environ={})
    c = Client(config)
    try:
        seq = c.create("marks", None, id).seq
    finally:
        c.close()
    runner = build_runner(config, {"marks": Marks}, replay_always=True)
    return asyncio.run(asyncio.wait_for(run_until_done(runner, seq), DEADLINE))


def describe(root: Path, id: str) -> dict:
    c = Client(load_config(root / "wrangler.jsonc", environ={}))
    try:
        return c.describe(id)
    finally:
        c.close()


async def explorer_get(root: Path, path: str) -> httpx.Response:
    app = create_app(load_config(root / "wrangler.jsonc", environ={}), user_app=None)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as api:
        return await api.get(API + path)


def history(root: Path, id: str) -> list:
    c = Client(load_config(root / "wrangler.jsonc", environ={}))
    try:
        return c.store.history(instance=c.get(id).seq)
    finally:
        c.close()


# -- (a) a kind added through the registry alone ------------------------------------------------


async def test_the_toy_kind_runs_and_replays_under_wf_testing(toy):
    async with WorkflowTest({"marks": Marks}) as t:
        inst = await t.create("marks", id="once")
        assert await inst.wait_for_step_result("mark") == 1
        await inst.wait_for_status("complete")
        assert await inst.get_output() == {"first": 1, "between": 1, "second": 1, "runs": 1}  # kept warm: no replay
        assert await inst.steps() == [
            {"type": "checkpoint", "name": "mark", "count": 1, "status": "recorded", "attempts": []},
            {"type": "step", "name": "between", "count": 1, "status": "complete", "attempts": [True]},
            {"type": "checkpoint", "name": "mark", "count": 2, "status": "recorded", "attempts": []},
        ]
    Marks.runs = 0
    async with WorkflowTest({"marks": Marks}, replay_always=True) as t:
        status = await t.run("marks", id="replayed")
    # run() was entered 4 times (one per step, then to finish); each checkpoint kept the count it first saw
    assert status["output"] == {"first": 1, "between": 1, "second": 3, "runs": 4}


def test_the_toy_kind_on_a_real_runner_replaying_after_every_step(toy, project):
    assert run_with_replay_always(project, "m1") == "complete"
    d = describe(project, "m1")
    assert d["output"] == {"first": 1, "between": 1, "second": 3, "runs": 4}
    mark, between, again = d["steps"]
    assert {k: mark[k] for k in ("name", "count", "type", "status", "output", "error")} == {
        "name": "mark",
        "count": 1,
        "type": "checkpoint",
        "status": "recorded",
        "output": 1,
        "error": None,
    }
    assert mark["start"] == mark["end"] is not None
    assert (between["type"], between["output"]) == ("step", 1)
    assert (again["count"], again["output"]) == (2, 3)


async def test_the_explorer_api_shows_the_toy_kind_in_cloudflare_shape(toy, project):
    await asyncio.to_thread(run_with_replay_always, project, "m2")
    response = await explorer_get(project, "/workflows/marks/instances/m2")
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert result["status"] == "complete" and result["step_count"] == 3
    mark = result["steps"][0]
    assert mark == {
        "name": "mark-1",
        "start": mark["start"],
        "end": mark["end"],
        "finished": True,
        "type": "checkpoint",
        "error": None,
        "output": 1,
    }
    assert mark["start"].endswith("Z") and mark["end"] == mark["start"]
    assert result["steps"][1]["type"] == "step" and result["steps"][1]["output"] == 1


def test_wf_tail_json_and_the_tail_view_show_the_toy_kind(toy, project, wf):
    run_with_replay_always(project, "m3")
    r = wf("tail", "m3", "--json")
    assert r.code == 0, r
    events = [json.loads(line) for line in r.out.splitlines()]
    recorded = [e for e in events if e["type"] == "checkpoint_recorded"]
    assert [(e["stepName"], e["count"], e["value"]) for e in recorded] == [("mark", 1, 1), ("mark", 2, 3)]
    assert events[-1]["type"] == "workflow_completed"

    model = TailModel()
    for row in expand(history(project, "m3")):
        model.apply(row)
    [inst] = model.instances.values()
    assert inst.status == "complete"
    console = Console(width=100, record=True, color_system=None)
    console.print(model.render(now=0.0))
    text = console.export_text()
    assert "# mark " in text and "# mark #2" in text and "▸ between" in text
    assert "recorded" in text and "value 1" in text and "value 3" in text


def test_wf_instances_describe_shows_the_toy_kinds_label_status_and_output(toy, project, wf):
    run_with_replay_always(project, "m4")
    r = wf("instances", "describe", "m4")
    assert r.code == 0, r
    assert r.out.count("📌 Checkpoint") == 2 and r.out.count("📌 Recorded") == 2 and "🎯 Step" in r.out
    assert "Output:" in r.out


def test_restart_from_a_toy_step_reruns_from_it(toy, project, wf):
    run_with_replay_always(project, "m5")
    r = wf("restart", "m5", "--from-step", "mark", "--count", "2", "--type", "checkpoint")
    assert r.code == 0, r
    assert [(s["name"], s["count"]) for s in describe(project, "m5")["steps"]] == [("mark", 1), ("between", 1)]


def test_a_kind_that_reuses_a_name_or_an_event_is_refused_naming_it(toy):
    class Again(Checkpoint):
        name = "checkpoint-2"
        display = "checkpoint-2"
        methods = ("checkpoint",)

    with pytest.raises(ValidationError, match="method 'checkpoint'.*event 'checkpoint_recorded'"):
        steps.register(Again)

    class Shadow(StepKind):
        name, display, label, methods = "shadow", "shadow", "Shadow", ()
        Status, final = CheckpointStatus, frozenset()
        events = (EventSpec("step_started"), EventSpec("workflow_queued"))

    with pytest.raises(ValidationError, match="event 'step_started', event 'workflow_queued'"):
        steps.register(Shadow)
    assert steps.names() == ("do", "patch", "rollback", "sleep", "waitForEvent", "waitForInstance", "checkpoint")


async def test_a_step_method_no_kind_provides_is_an_attribute_error_naming_the_known_ones():
    class Typo(WorkflowEntrypoint):
        async def run(self, event, step):
            return await step.chekpoint("x", 1)

    async with WorkflowTest({"typo": Typo}) as t:
        status = await t.run("typo")
    assert status["status"] == "errored"
    assert "'chekpoint'" in status["error"]["message"] and "wait_for_event" in status["error"]["message"]


# -- (b) what no registered kind declares stops every reader ------------------------------------


def test_every_reader_fails_loudly_on_a_kind_this_process_has_not_registered(toy, project, wf):
    run_with_replay_always(project, "m6")
    steps.unregister("checkpoint")  # the instance's steps now come from a kind this process does not know

    with pytest.raises(UnknownKindError, match="step kind 'checkpoint' is not registered"):
        describe(project, "m6")

    response = asyncio.run(explorer_get(project, "/workflows/marks/instances/m6"))
    assert response.status_code == 500
    assert "Step kind 'checkpoint' is not registered" in response.json()["errors"][0]["message"]

    message = assert_clean_error(wf("instances", "describe", "m6"), "'checkpoint'", code=5)
    assert "not registered" in message
    message = assert_clean_error(wf("tail", "m6", "--json"), "'checkpoint_recorded'", code=5)
    assert "log event" in message

    rows = history(project, "m6")
    with pytest.raises(UnknownKindError, match="log event 'checkpoint_recorded'"):
        expand(rows)
    with pytest.raises(UnknownKindError, match="log event 'checkpoint_recorded'"):
        model = TailModel()
        for row in rows:
            model.apply(row)

    with pytest.raises(UnknownKindError, match="step type 'checkpoint'"):
        timeline([{"type": "checkpoint", "name": "mark", "count": 1, "status": "recorded"}])
    assert_clean_error(wf("restart", "m6", "--from-step", "mark", "--type", "checkpoint"), "'checkpoint'", code=2)


def test_a_status_the_kind_does_not_declare_fails_describe_naming_it(project, wf):
    c = Client(load_config(project / "wrangler.jsonc", environ={}))
    try:
        c.create("marks", None, "bad")
        store, now = c.store, c.now()
        [row] = store.claim("test", now, now + 30, 1, ["marks"])
        odd = StepRow(pos=0, kind="do", name="x", n=1, status="bogus")  # written by some other version
        store.run_batch([lambda: store.commit_step("test", row.seq, row.gen, StepWrite(odd), now)])
    finally:
        c.close()
    message = assert_clean_error(wf("instances", "describe", "bad"), "'bogus'", code=5)
    assert "step kind 'do'" in message
