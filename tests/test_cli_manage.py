"""The management commands: `wf instances list|describe`, `wf pause|resume|terminate|restart|delete`,
`wf workflows list|describe`.

Like tests/test_cli.py, every command runs in-process through `wf.cli.main` (the real error
boundary) with capsys; instances are executed with an in-process runner.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest
from test_cli import assert_clean_error, clean_env, wf  # noqa: F401  (shared fixtures)

from wf.client import Client
from wf.config import load_config
from wf.service import build_runner, run_until_done

DEADLINE = 20.0

CONFIG = """\
{
  "name": "manage-test",
  "main": "src/index.py",
  "workflows": [
    {"name": "echo", "binding": "ECHO", "class_name": "Echo"},
    {"name": "approve", "binding": "APPROVE", "class_name": "Approve"},
    {"name": "nap", "binding": "NAP", "class_name": "Nap"},
    {"name": "flaky", "binding": "FLAKY", "class_name": "Flaky"},
    {"name": "boom", "binding": "BOOM", "class_name": "Boom"},
  ],
}
"""

SOURCE = """\
from wf import WorkflowEntrypoint, NonRetryableError


class Echo(WorkflowEntrypoint):
    async def run(self, event, step):
        first = await step.do("first", lambda: event.payload)
        second = await step.do("second", lambda: {"again": first})
        return {"echo": second}


class Approve(WorkflowEntrypoint):
    async def run(self, event, step):
        ev = await step.wait_for_event("wait-for-approval", "approval", timeout="1 hour")
        return {"approved": ev.payload}


class Nap(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.do("before", lambda: 1)
        await step.sleep("nap", "1 hour")
        return "rested"


class Flaky(WorkflowEntrypoint):
    async def run(self, event, step):
        def fail():
            raise ValueError("try again later")
        await step.do("flaky", fail, config={"retries": {"limit": 3, "delay": "1 hour"}})


class Boom(WorkflowEntrypoint):
    async def run(self, event, step):
        def fail():
            raise NonRetryableError("kaboom")
        await step.do("fail", fail)
"""

STATUS_COUNTS = ["complete", "errored", "paused", "queued", "running", "terminated", "waiting", "waitingForPause"]


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "wrangler.jsonc").write_text(CONFIG)
    (root / "src" / "index.py").write_text(SOURCE)
    monkeypatch.chdir(root)
    return root


def _config(root: Path):
    return load_config(root / "wrangler.jsonc", environ={})


def create(root: Path, workflow: str, id: str, params=None) -> None:
    c = Client(_config(root))
    try:
        c.create(workflow, params, id)
    finally:
        c.close()


def run_to_end(root: Path, id: str, workflow: str | None = None) -> str:
    cfg = _config(root)
    c = Client(cfg)
    try:
        seq = c.get(id, workflow).seq
    finally:
        c.close()
    return asyncio.run(asyncio.wait_for(run_until_done(build_runner(cfg), seq), DEADLINE))


def run_until(root: Path, id: str, predicate) -> None:
    """Run an in-process runner until `predicate(describe(id))` holds, then stop it."""
    cfg = _config(root)

    async def drive():
        runner = build_runner(cfg)
        await runner.start()
        try:
            deadline = time.monotonic() + DEADLINE
            while time.monotonic() < deadline:
                c = Client(cfg)
                try:
                    if predicate(c.describe(id)):
                        return
                finally:
                    c.close()
                await asyncio.sleep(0.02)
            raise AssertionError(f"{id} never reached the expected state")
        finally:
            await runner.stop()

    asyncio.run(drive())


# ---------------------------------------------------------------- instances list


def test_instances_list_table_newest_first_with_wrangler_labels(project, wf):
    create(project, "echo", "e1", {"n": 1})
    run_to_end(project, "e1")
    create(project, "boom", "b1")  # newest first: by creation time, then by creation order
    run_to_end(project, "b1")
    create(project, "approve", "a1")
    r = wf("instances", "list")
    assert r.code == 0, r
    for header in ("Instance ID", "Workflow", "Created", "Status"):
        assert header in r.out
    assert "✅ Completed" in r.out and "❌ Errored" in r.out and "⌛ Queued" in r.out
    assert r.out.index("a1") < r.out.index("b1") < r.out.index("e1")
    assert "\x1b[" not in r.out  # no colour when NO_COLOR / not a TTY


def test_instances_list_filters_and_json_shape(project, wf):
    create(project, "echo", "e0")
    run_to_end(project, "e0")  # a runner runs every queued instance: finish e0 before creating the rest
    for i in (1, 2):
        create(project, "echo", f"e{i}")
    create(project, "approve", "a1")
    r = wf("instances", "list", "--json")
    assert r.code == 0, r
    rows = json.loads(r.out)
    assert [row["id"] for row in rows] == ["a1", "e2", "e1", "e0"]
    assert all(set(row) == {"id", "workflow", "status", "created"} for row in rows)
    assert rows[-1]["status"] == "complete" and rows[-1]["workflow"] == "echo"
    assert [x["id"] for x in json.loads(wf("instances", "list", "echo", "--json").out)] == ["e2", "e1", "e0"]
    assert [x["id"] for x in json.loads(wf("instances", "list", "--status", "complete", "--json").out)] == ["e0"]
    assert [x["id"] for x in json.loads(wf("instances", "list", "--limit", "2", "--json").out)] == ["a1", "e2"]
    r = wf("instances", "list", "echo", "--status", "queued", "--limit", "1")
    assert r.code == 0 and "e2" in r.out and "e1" not in r.out


def test_instances_list_empty(project, wf):
    r = wf("instances", "list", "nap")
    assert r.code == 0 and r.out == ""
    assert 'There are no instances in workflow "nap"' in r.err and "wf trigger nap" in r.err
    assert json.loads(wf("instances", "list", "--json").out) == []


# ---------------------------------------------------------------- instances describe


def test_describe_completed_instance_timeline(project, wf):
    create(project, "echo", "d1", {"hello": "world"})
    run_to_end(project, "d1")
    r = wf("instances", "describe", "d1")
    assert r.code == 0, r
    for text in (
        "Workflow Name:",
        "echo",
        "Instance Id:",
        "d1",
        "✅ Completed",
        "Duration:",
        "Steps (2):",
        "first",
        "second",
        "🎯 Step",
        "✅ Success",
        '{"hello": "world"}',
        '{"again": {"hello": "world"}}',
        "Attempt",
    ):
        assert text in r.out, text
    assert r.out.index("first") < r.out.index("second")


def _epoch(iso: str) -> float:
    from datetime import datetime

    assert iso.endswith("Z"), iso
    return datetime.fromisoformat(iso).timestamp()


def test_describe_json_is_the_client_describe_with_iso_times(project, wf):
    create(project, "echo", "d2", {"x": 1})
    run_to_end(project, "d2")
    r = wf("instances", "describe", "d2", "--json")
    assert r.code == 0, r
    data = json.loads(r.out)
    c = Client(_config(project))
    try:
        expected = json.loads(json.dumps(c.describe("d2"), default=str))
    finally:
        c.close()
    # the Python API keeps epoch seconds; the command line's JSON writes the same times in ISO 8601
    times = [(data, expected, ("created", "start", "end"))]
    times += [(s, e, ("start", "end")) for s, e in zip(data["steps"], expected["steps"])]
    times += [
        (a, b, ("start", "end"))
        for s, e in zip(data["steps"], expected["steps"])
        for a, b in zip(s["attempts"], e["attempts"])
    ]
    for shown, kept, keys in times:
        for key in keys:
            assert abs(_epoch(shown.pop(key)) - kept.pop(key)) < 0.001, key
    assert data.pop("events") == []
    assert data == expected
    assert data["status"] == "complete" and [s["name"] for s in data["steps"]] == ["first", "second"]
    assert data["steps"][0]["attempts"][0]["success"] is True


def test_describe_latest_and_workflow_scope(project, wf):
    create(project, "echo", "old")
    create(project, "approve", "new")
    assert json.loads(wf("instances", "describe", "latest", "--json").out)["id"] == "new"
    assert json.loads(wf("instances", "describe", "latest", "--workflow", "echo", "--json").out)["id"] == "old"
    r = wf("instances", "describe", "latest")
    assert r.code == 0 and "new" in r.out and "Steps: none yet" in r.out


def test_describe_truncates_long_outputs_unless_full(project, wf):
    create(project, "echo", "big", {"blob": "y" * 2000})
    run_to_end(project, "big")
    r = wf("instances", "describe", "big")
    assert r.code == 0, r
    assert "output truncated" in r.out and "y" * 2000 not in r.out.replace("\n", "")
    r = wf("instances", "describe", "big", "--full")
    assert "output truncated" not in r.out and "y" * 2000 in r.out.replace("\n", "")


def test_describe_shows_retry_errors_and_next_retry(project, wf):
    create(project, "flaky", "f1")
    run_until(project, "f1", lambda d: d["steps"] and d["steps"][0]["status"] == "retrying")
    r = wf("instances", "describe", "f1")
    assert r.code == 0, r
    assert "Retries At:" in r.out and "(in " in r.out
    assert "ValueError: try again later" in r.out and "❌ Error" in r.out
    step = json.loads(wf("instances", "describe", "f1", "--json").out)["steps"][0]
    assert step["next_retry"] is not None and step["attempts"][0]["error"]["message"] == "try again later"


def test_describe_shows_sleep_wake_time_and_awaited_event(project, wf):
    create(project, "nap", "n1")
    run_until(project, "n1", lambda d: d["status"] == "waiting")
    r = wf("instances", "describe", "n1")
    assert r.code == 0, r
    assert "💤 Sleeping" in r.out and "Wakes At:" in r.out and "⏰ Waiting" in r.out
    create(project, "approve", "w1")
    run_until(project, "w1", lambda d: d["status"] == "waiting")
    r = wf("instances", "describe", "w1")
    assert "👀 Waiting for event" in r.out and "Event Type:" in r.out and "approval" in r.out
    assert "Times Out At:" in r.out


def test_describe_errored_instance_shows_the_error(project, wf):
    create(project, "boom", "b1")
    run_to_end(project, "b1")
    r = wf("instances", "describe", "b1")
    assert "❌ Errored" in r.out and "NonRetryableError: kaboom" in r.out


# ---------------------------------------------------------------- lifecycle


def test_pause_resume_messages_and_json(project, wf):
    create(project, "approve", "p1")
    r = wf("pause", "p1")
    assert r.code == 0, r
    assert r.out == ""
    assert '⏸️ The instance "p1" from approve was paused successfully' in r.err
    r = wf("resume", "p1", "--json")
    assert r.code == 0, r
    assert json.loads(r.out) == {"id": "p1", "workflow": "approve", "status": "queued"}
    r = wf("pause", "latest", "--json")
    assert json.loads(r.out) == {"id": "p1", "workflow": "approve", "status": "paused"}
    r = wf("resume", "p1")
    assert '🔄 The instance "p1" from approve was resumed successfully' in r.err
    assert "no runner is active" in r.err


def test_pause_a_waiting_instance_then_resume_and_finish(project, wf):
    create(project, "approve", "pw")
    run_until(project, "pw", lambda d: d["status"] == "waiting")
    assert wf("pause", "pw").code == 0
    assert json.loads(wf("status", "pw").out)["status"] == "paused"
    assert wf("resume", "pw").code == 0
    assert wf("send-event", "pw", "--type", "approval", "--payload", "1").code == 0
    assert run_to_end(project, "pw") == "complete"


def test_terminate(project, wf):
    create(project, "approve", "t1")
    r = wf("terminate", "t1")
    assert r.code == 0, r
    assert '🥷 The instance "t1" from approve was terminated successfully' in r.err
    create(project, "approve", "t2")
    r = wf("terminate", "t2", "--workflow", "approve", "--json")
    assert json.loads(r.out) == {"id": "t2", "workflow": "approve", "status": "terminated"}
    assert json.loads(wf("status", "t2").out)["status"] == "terminated"


def test_restart_from_the_beginning_and_from_a_step(project, wf):
    create(project, "echo", "r1", {"v": 1})
    run_to_end(project, "r1")
    r = wf("restart", "r1")
    assert r.code == 0, r
    assert '🥷 The instance "r1" from echo was restarted successfully' in r.err
    assert json.loads(wf("instances", "describe", "r1", "--json").out)["steps"] == []
    assert run_to_end(project, "r1") == "complete"
    r = wf("restart", "r1", "--from-step", "second", "--json")
    assert r.code == 0, r
    assert json.loads(r.out) == {"id": "r1", "workflow": "echo", "status": "queued"}
    steps = json.loads(wf("instances", "describe", "r1", "--json").out)["steps"]
    assert [s["name"] for s in steps] == ["first"]  # kept; "second" will re-run
    assert run_to_end(project, "r1") == "complete"
    r = wf("restart", "r1", "--from-step", "first", "--count", "1", "--type", "do")
    assert r.code == 0 and "from step 'first'" in r.err


def test_restart_from_a_sleep_step(project, wf):
    create(project, "nap", "rs")
    run_until(project, "rs", lambda d: d["status"] == "waiting")
    r = wf("restart", "rs", "--from-step", "nap", "--type", "sleep")
    assert r.code == 0, r
    steps = json.loads(wf("instances", "describe", "rs", "--json").out)["steps"]
    assert [s["name"] for s in steps] == ["before"]


def test_delete(project, wf):
    create(project, "echo", "x1")
    create(project, "echo", "x2")
    r = wf("delete", "x1")
    assert r.code == 0, r
    assert '"x1" from echo was deleted successfully' in r.err
    r = wf("delete", "latest", "--json")
    assert json.loads(r.out) == {"id": "x2", "workflow": "echo", "status": "deleted"}
    assert json.loads(wf("instances", "list", "--json").out) == []


def test_ambiguous_id_needs_workflow(project, wf):
    create(project, "echo", "same")
    create(project, "approve", "same")
    assert_clean_error(wf("pause", "same"), "'same'", "approve", "echo", code=4)
    r = wf("pause", "same", "--workflow", "approve", "--json")
    assert json.loads(r.out) == {"id": "same", "workflow": "approve", "status": "paused"}
    assert json.loads(wf("status", "same", "--workflow", "echo").out)["status"] == "queued"


# ---------------------------------------------------------------- workflows


def test_workflows_list(project, wf):
    r = wf("workflows", "list")
    assert r.code == 0, r
    for text in ("Name", "Binding", "Class name", "echo", "ECHO", "Echo", "flaky", "FLAKY", "Flaky"):
        assert text in r.out
    data = json.loads(wf("workflows", "list", "--json").out)
    assert data[0] == {"name": "echo", "binding": "ECHO", "class_name": "Echo"}
    assert [w["name"] for w in data] == ["echo", "approve", "nap", "flaky", "boom"]


def test_workflows_describe_counts_every_status(project, wf):
    create(project, "echo", "c1")
    run_to_end(project, "c1")
    create(project, "echo", "c2")
    create(project, "echo", "c3")
    wf("terminate", "c3")
    r = wf("workflows", "describe", "echo", "--json")
    assert r.code == 0, r
    data = json.loads(r.out)
    assert data["name"] == "echo" and data["binding"] == "ECHO" and data["class_name"] == "Echo"
    assert list(data["instances"]) == STATUS_COUNTS
    assert data["instances"]["complete"] == 1 and data["instances"]["queued"] == 1
    assert data["instances"]["terminated"] == 1 and data["instances"]["errored"] == 0
    r = wf("workflows", "describe", "echo")
    assert r.code == 0, r
    assert "Instance Status Counts:" in r.out and "✅ Completed" in r.out and "⏱️ Waiting for Pause" in r.out
    assert "Class Name:" in r.out and "Echo" in r.out


# ---------------------------------------------------------------- help and docstrings


@pytest.mark.parametrize(
    "args",
    [
        ["instances", "list"],
        ["instances", "describe"],
        ["pause"],
        ["resume"],
        ["terminate"],
        ["restart"],
        ["delete"],
        ["workflows", "list"],
        ["workflows", "describe"],
    ],
)
def test_every_command_has_help_with_an_example(project, wf, args):
    r = wf(*args, "--help")
    assert r.code == 0, r
    assert "Example:" in r.out


def test_manage_commands_do_not_import_rich_for_status_json(project):
    import subprocess

    heavy = ("rich", "typer", "asyncio", "pydantic", "starlette", "httpx", "wf.runtime.engine", "wf.runtime.runner")
    code = (
        "import sys; from wf.cli import main\n"
        "try:\n    main(['status', 'latest', '--json'])\nexcept SystemExit:\n    pass\n"
        f"print('LOADED', sorted({{m.split('.')[0] if not m.startswith('wf') else m for m in sys.modules}}"
        f" & set({heavy!r})), file=sys.stderr)"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=60)
    assert "LOADED []" in r.stderr, r.stderr  # `wf status --json` imports only what it needs


# ---------------------------------------------------------------- errors


def _finished(root: Path) -> None:
    create(root, "echo", "fin")
    run_to_end(root, "fin")


ERRORS = {
    "describe unknown id": (None, ["instances", "describe", "ghost"], 3, ["'ghost'"]),
    "describe latest with no instances": (None, ["instances", "describe", "latest"], 3, ["no instances"]),
    "pause unknown id": (None, ["pause", "ghost"], 3, ["'ghost'"]),
    "resume unknown id": (None, ["resume", "ghost"], 3, ["'ghost'"]),
    "terminate unknown id": (None, ["terminate", "ghost"], 3, ["'ghost'"]),
    "restart unknown id": (None, ["restart", "ghost"], 3, ["'ghost'"]),
    "delete unknown id": (None, ["delete", "ghost"], 3, ["'ghost'"]),
    "list unknown workflow": (None, ["instances", "list", "nope"], 3, ["'nope'"]),
    "describe with unknown workflow": (None, ["instances", "describe", "latest", "--workflow", "nope"], 3, ["'nope'"]),
    "pause with unknown workflow": (None, ["pause", "x", "--workflow", "nope"], 3, ["'nope'"]),
    "workflows describe unknown": (None, ["workflows", "describe", "nope"], 3, ["'nope'"]),
    "bad --status": (None, ["instances", "list", "--status", "done"], 2, ["'done'"]),
    "bad --limit": (None, ["instances", "list", "--limit", "0"], 2, ["0"]),
    "bad --type": (_finished, ["restart", "fin", "--from-step", "first", "--type", "step"], 2, ["'step'"]),
    "--type without --from-step": (_finished, ["restart", "fin", "--type", "do"], 2, ["--from-step"]),
    "bad --count": (_finished, ["restart", "fin", "--from-step", "first", "--count", "0"], 2, ["0"]),
    "restart from a missing step": (_finished, ["restart", "fin", "--from-step", "nope"], 3, ["'nope'"]),
    "restart from a step of another type": (
        _finished,
        ["restart", "fin", "--from-step", "first", "--type", "sleep"],
        3,
        ["'first'"],
    ),
    "terminate a finished instance": (_finished, ["terminate", "fin"], 4, ["'fin'", "complete"]),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_error_is_one_sentence_with_a_hint(project, wf, case):
    setup, args, code, named = ERRORS[case]
    if setup is not None:
        setup(project)
    assert_clean_error(wf(*args), *named, code=code)


def test_bad_type_is_rejected_before_touching_the_instance(project, wf):
    _finished(project)
    wf("restart", "fin", "--from-step", "first", "--type", "bogus")
    assert json.loads(wf("status", "fin").out)["status"] == "complete"
