"""Failures you can see (issue 18, points 1-4): a traceback per failed attempt with the user's file
and line, in `wf instances describe` (and --json), `wf tail` (view and --json), the explorer API
and the runner's log; error names that are the exception's class before and after replay; the
runner's one line per instance event (human, JSON, quiet) and `wf dev`'s request log; and
`trigger --wait` saying what happens while it waits."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import httpx
import pytest
from conftest import wait_until
from devserver import WfDev
from rich.console import Console

from wf import WorkflowEntrypoint
from wf.cli.tail import TailModel
from wf.client import Client
from wf.config import load_config
from wf.testing import WorkflowTest

SOURCE = """\
from wf import WorkflowEntrypoint


def lookup(order):
    return order.get("id")


class Charge(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.do("charge", lambda: lookup([1, 2]), config={"retries": {"limit": 1, "delay": 0.05}})


class Early(WorkflowEntrypoint):
    async def run(self, event, step):
        check(event.payload)


class Patient(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.sleep("nap", 0.05)
        got = await step.wait_for_event("approval", "approval", timeout="1 minute")
        return {"by": got.payload["by"]}
"""
LOOKUP_LINE = 'index.py", line 5, in lookup'
CHECK_LINE = 'index.py", line 15, in run'


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "src" / "index.py").write_text(SOURCE)
    workflows = [
        {"name": "charge", "binding": "CHARGE", "class_name": "Charge"},
        {"name": "early", "binding": "EARLY", "class_name": "Early"},
        {"name": "patient", "binding": "PATIENT", "class_name": "Patient"},
    ]
    (root / "wrangler.jsonc").write_text(json.dumps({"name": "fail", "main": "src/index.py", "workflows": workflows}))
    monkeypatch.chdir(root)
    for name in ("WF_STORE", "WF_VERBOSE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    return root


@pytest.fixture
def wf(capsys):
    from test_cli import Result

    from wf.cli import main

    def run(*args: str):
        capsys.readouterr()
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


def client(root: Path) -> Client:
    return Client(load_config(root / "wrangler.jsonc", environ={}))


# ---------------------------------------------------------------- 1. a traceback per failed attempt


def test_each_failed_attempt_keeps_its_traceback_with_the_users_file_and_line(project, wf):
    r = wf("trigger", "charge", "--id", "c1", "--wait")
    assert r.code == 1 and "AttributeError" in r.err, r

    data = json.loads(wf("instances", "describe", "c1", "--json").out)
    attempts = data["steps"][0]["attempts"]
    assert [a["success"] for a in attempts] == [False, False]
    for a in attempts:
        assert LOOKUP_LINE in a["traceback"] and 'return order.get("id")' in a["traceback"]
        assert a["traceback"].rstrip().splitlines()[-2] == "AttributeError: 'list' object has no attribute 'get'"
        assert "wf/runtime" not in a["traceback"]  # wf's own frames are counted, not shown
        assert "frames of wf, asyncio and its thread pool left out" in a["traceback"]

    human = wf("instances", "describe", "c1").out
    assert "Attempt 1 traceback:" in human and "Attempt 2 traceback:" in human
    assert LOOKUP_LINE in human

    c = client(project)
    try:  # the Python API has it too, and the explorer API as the error's stack
        assert LOOKUP_LINE in c.describe("c1")["steps"][0]["attempts"][0]["traceback"]
    finally:
        c.close()


def test_the_explorer_api_gives_a_failed_attempts_traceback_as_the_errors_stack(project, wf):
    from wf.http.app import create_app

    assert wf("trigger", "charge", "--id", "c2", "--wait").code == 1

    async def fetch():
        app = create_app(load_config(project / "wrangler.jsonc", environ={}))
        await app.explorer.aclient.open()
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
                return await http.get("/cdn-cgi/explorer/api/workflows/charge/instances/c2")
        finally:
            await app.explorer.aclient.close()

    found = asyncio.run(fetch())
    [step] = found.json()["result"]["steps"]
    error = step["attempts"][0]["error"]
    assert error["name"] == "AttributeError" and error["message"] == "'list' object has no attribute 'get'"
    assert LOOKUP_LINE in error["stack"]


def test_the_traceback_is_bounded_and_starts_at_the_users_frames():
    from wf.runtime.tracebacks import MAX_CHARS, format_traceback

    def deep(n):
        if n == 0:
            raise ValueError("x" * 20_000)  # a message longer than the bound
        return deep(n - 1)

    try:
        deep(50)
    except ValueError as exc:
        text = format_traceback(exc)
    assert text is not None and len(text) <= MAX_CHARS + 100
    assert text.startswith("[the first ") and text.rstrip().endswith("x")


def test_wf_tail_shows_the_traceback_and_the_error_of_an_instance_that_failed_before_any_step(project, wf):
    assert wf("trigger", "charge", "--id", "c3", "--wait").code == 1
    assert wf("trigger", "early", "--id", "e1", "--wait").code == 1
    events = [json.loads(line) for line in wf("tail", "c3", "--json").out.splitlines()]
    failed = [e for e in events if e["type"] == "attempt_errored"]
    assert len(failed) == 2 and all(LOOKUP_LINE in e["traceback"] for e in failed)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", failed[0]["nextRetryAt"])  # ISO 8601
    [ended] = [e for e in json.loads("[" + ",".join(wf("tail", "e1", "--json").out.splitlines()) + "]")[-1:]]
    assert ended["type"] == "workflow_errored" and CHECK_LINE in ended["traceback"]

    c = client(project)
    try:
        model = TailModel()
        for h in c.history(0, limit=1000):
            model.apply(h)
    finally:
        c.close()
    console = Console(width=300, record=True, color_system=None)  # wide enough for the tmp path
    console.print(model.render(time.time()))
    view = console.export_text()
    assert "e1  early  errored" in view and "NameError: name 'check' is not defined" in view
    assert CHECK_LINE in view  # its traceback, though no step ran


# ---------------------------------------------------------------- 2. error names


class Names(WorkflowEntrypoint):
    async def run(self, event, step):
        never = {"retries": {"limit": 0, "delay": 1}}
        caught = {}
        failing = {
            "attr": lambda: [].get("x"),
            "name": lambda: undefined_name,  # noqa: F821 - the NameError under test
            "import": lambda: __import__("no_such_module_for_wf_tests"),
            "key": lambda: {}["missing"],
            "connection": lambda: (_ for _ in ()).throw(ConnectionError("bank down")),
        }
        for name, fn in failing.items():
            try:
                await step.do(name, fn, config=never)
            except (AttributeError, NameError, ImportError, KeyError, ConnectionError) as exc:
                caught[name] = [type(exc).__name__, str(exc)]
        await step.sleep("between", 1)
        await step.do("record", lambda: caught)
        await step.do("final", lambda: [].get("y"), config=never)


@pytest.mark.parametrize("replay_always", [False, True], ids=["first-run", "replay-always"])
async def test_error_names_are_the_exception_class_before_and_after_replay(replay_always):
    async with WorkflowTest({"names": Names}, replay_always=replay_always) as t:
        inst = await t.create("names", {})
        await inst.wait_for_status("errored")
        error = await inst.get_error()
        steps = {s["name"]: s for s in (await inst.describe())["steps"]}
    assert error == {"name": "AttributeError", "message": "'list' object has no attribute 'get'"}
    names = {name: steps[name]["error"]["name"] for name in ("attr", "name", "import", "key", "connection")}
    assert names == {
        "attr": "AttributeError",
        "name": "NameError",
        "import": "ModuleNotFoundError",
        "key": "KeyError",
        "connection": "ConnectionError",
    }
    # run() caught each as its own built-in class, with its own message, whether it ran or replayed
    assert steps["record"]["output"] == {
        "attr": ["AttributeError", "'list' object has no attribute 'get'"],
        "name": ["NameError", "name 'undefined_name' is not defined"],
        "import": ["ModuleNotFoundError", "No module named 'no_such_module_for_wf_tests'"],
        "key": ["KeyError", "'missing'"],
        "connection": ["ConnectionError", "bank down"],
    }


# ---------------------------------------------------------------- 3. the runner's log


@pytest.mark.slow
def test_wf_worker_logs_one_line_per_instance_event_with_the_traceback(project, wf_procs):
    worker = wf_procs.worker(project).wait_ready()
    for workflow, id in (("charge", "c4"), ("early", "e2"), ("patient", "p1")):
        wf_procs.cli(project, "trigger", workflow, "--id", id)
    wait_until(lambda: "waiting for 'approval'" in worker.output(), 15, "the wait to be logged")
    wf_procs.cli(project, "send-event", "p1", "--type", "approval", "--payload", '{"by": "ann"}')
    wait_until(lambda: worker.output().count(" completed: ") == 1, 15, "p1 to complete")
    wait_until(lambda: worker.output().count(" errored: ") == 2, 15, "c4 and e2 to error")
    log = worker.output()
    assert "\x1b[" not in log  # not a terminal: no colour
    for line in (
        "c4  charge  started",
        "c4  charge  step 'charge' attempt 1 failed: AttributeError: 'list' object has no attribute 'get'; retry in",
        "c4  charge  step 'charge' attempt 2 failed: AttributeError: 'list' object has no attribute 'get'; "
        "no retries left",
        "c4  charge  errored: AttributeError: 'list' object has no attribute 'get'",
        "e2  early  errored: NameError: name 'check' is not defined",
        "p1  patient  step 'nap' sleeping",
        "p1  patient  step 'approval' waiting for 'approval' until",
        "p1  patient  step 'approval' took an event",
        'p1  patient  completed: {"by": "ann"}',
    ):
        assert line in log, f"{line!r} not in the worker's log:\n{log}"
    assert log.count(LOOKUP_LINE) >= 2 and CHECK_LINE in log  # the user's file and line, under the failure
    assert "Traceback (most recent call last)" not in log  # no crash of wf's own
    worker.stop()

    json_worker = wf_procs.worker(project, args=["--log-format", "json"]).wait_ready()
    wf_procs.cli(project, "trigger", "charge", "--id", "c5")
    wait_until(lambda: '"workflow_errored"' in json_worker.output(), 15, "c5 to error")
    json_worker.stop()
    records = [json.loads(line) for line in json_worker.output().splitlines()]  # every line is JSON
    assert any(r["type"] == "message" and "ready" in r["message"] for r in records)
    types = [r["type"] for r in records if r.get("instanceId") == "c5"]
    assert types == ["workflow_started", "attempt_errored", "attempt_errored", "workflow_errored"], records
    failed = next(r for r in records if r["type"] == "attempt_errored")
    assert failed["level"] == "warning" and failed["stepName"] == "charge" and LOOKUP_LINE in failed["traceback"]
    assert failed["error"]["name"] == "AttributeError" and failed["nextRetryAt"].endswith("Z")

    quiet = wf_procs.worker(project, args=["--quiet"]).wait_ready()
    wf_procs.cli(project, "trigger", "early", "--id", "e3")
    wait_until(lambda: _status(project, "e3") == "errored", 15, "e3 to error")
    quiet.stop()
    said = quiet.output()
    assert "ready" in said and not re.search(r"\be3\b", said), said  # (the runner's random id may hold "e3")


def _status(project: Path, id: str) -> str:
    c = client(project)
    try:
        return c.get(id).status
    finally:
        c.close()


@pytest.mark.slow
def test_wf_dev_logs_http_requests_and_instance_events(tmp_path):
    project = tmp_path / "proj"
    (project / "src").mkdir(parents=True)
    (project / "src" / "index.py").write_text(SOURCE)
    (project / "wrangler.jsonc").write_text(
        json.dumps(
            {
                "name": "d",
                "main": "src/index.py",
                "workflows": [{"name": "early", "binding": "E", "class_name": "Early"}],
            }
        )
    )
    dev = WfDev(project, tmp_path / "dev.log").wait_ready()
    try:
        api = dev.url + "/cdn-cgi/explorer/api/workflows/early/instances"
        assert httpx.post(api, json={"id": "d1"}).status_code in (200, 201)
        assert httpx.get(dev.url + "/cdn-cgi/explorer/api/workflows/nope").status_code == 404
        dev.wait_output("d1  early  errored: NameError")
        dev.wait_output("GET /cdn-cgi/explorer/api/workflows/nope 404")
    finally:
        dev.stop()
    log = dev.output()
    assert re.search(
        r"\d\d:\d\d:\d\d\.\d{3}  POST /cdn-cgi/explorer/api/workflows/early/instances 20[01] [\d.]+ ms", log
    )
    assert CHECK_LINE in log


# ---------------------------------------------------------------- 4. trigger --wait while it waits


def test_trigger_wait_says_each_failed_attempt_and_when_it_is_retried(project, wf):
    r = wf("trigger", "charge", "--id", "c6", "--wait")
    assert r.code == 1 and r.out == "c6\n"
    lines = r.err.splitlines()
    first = next(i for i, line in enumerate(lines) if "attempt 1 failed" in line)
    assert (
        "step 'charge' attempt 1 failed: AttributeError: 'list' object has no attribute 'get'; retry in" in lines[first]
    )
    assert any(LOOKUP_LINE in line for line in lines[first:])
    assert any("step 'charge' attempt 2 failed" in line and "no retries left" in line for line in lines)
    assert lines[-1].startswith("errored: ")


def test_trigger_wait_json_keeps_stdout_for_the_result(project, wf):
    r = wf("trigger", "charge", "--id", "c7", "--wait", "--json")
    assert r.code == 1
    assert json.loads(r.out)["error"]["name"] == "AttributeError"
    assert "attempt 1 failed" not in r.err  # --json: no progress chatter


def test_the_spinner_line_names_the_step_attempt_and_retry_countdown(project, wf):
    from wf.cli.waiting import Progress

    assert wf("trigger", "charge", "--id", "c8", "--wait").code == 1
    c = client(project)
    try:
        row = c.get("c8")
        progress = Progress(c, row, quiet=False)
        history = c.history(0, instance=row)
        retry = next(h for h in history if h.type == "attempt_errored")
        for h in history[: history.index(retry) + 1]:
            progress.follow(h)
    finally:
        c.close()
    retry_at = retry.data["nextRetryAt"]
    state = progress.state("waiting")
    assert state.startswith("c8: waiting · step 'charge' attempt 1 · retry in ")
    assert retry_at > retry.at
