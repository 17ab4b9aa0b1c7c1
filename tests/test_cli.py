"""The command line: `wf worker`, `wf trigger`, `wf status`, `wf send-event` and the global options.

Most tests call `wf.cli.main([...])` in-process, through the real error boundary, and read
stdout/stderr with capsys. The subprocess tests run `python -m wf`, the installed `wf` script
and a `wf worker` that is stopped with SIGTERM and SIGINT.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from wf.cli import main as wf_main
from wf.client import Client
from wf.config import load_config
from wf.runtime.presence import live_runners
from wf.runtime.store import db_path
from wf.service import build_runner, run_until_done

WF_SCRIPT = Path(sys.executable).parent / "wf"
DEADLINE = 20.0

CONFIG = """\
{
  // a project for the CLI tests
  "name": "cli-test",
  "main": "src/index.py",
  "workflows": [
    {"name": "echo", "binding": "ECHO", "class_name": "Echo"},
    {"name": "approve", "binding": "APPROVE", "class_name": "Approve"},
    {"name": "boom", "binding": "BOOM", "class_name": "Boom"},
  ],
  "env": {
    "staging": {
      "workflows": [{"name": "echo-staging", "binding": "ECHO", "class_name": "Echo"}],
    },
  },
}
"""

SOURCE = """\
from wf import WorkflowEntrypoint, NonRetryableError


class Echo(WorkflowEntrypoint):
    async def run(self, event, step):
        seen = await step.do("echo", lambda: event.payload)
        return {"echo": seen}


class Approve(WorkflowEntrypoint):
    async def run(self, event, step):
        ev = await step.wait_for_event("wait-for-approval", "approval", timeout="1 minute")
        return {"approved": ev.payload, "type": ev.type}


class Boom(WorkflowEntrypoint):
    async def run(self, event, step):
        def fail():
            raise NonRetryableError("kaboom")
        await step.do("fail", fail)
"""


def make_project(root: Path) -> Path:
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "wrangler.jsonc").write_text(CONFIG)
    (root / "src" / "index.py").write_text(SOURCE)
    return root


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("WF_STORE", "WF_VERBOSE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = make_project(tmp_path / "proj")
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def wf(capsys, monkeypatch):
    """Run `wf ARGS...` in-process through `wf.cli.main`; returns Result(code, out, err)."""

    def run(*args: str, stdin: str | None = None) -> Result:
        capsys.readouterr()
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = 0
        try:
            wf_main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def client(root: Path, **kwargs) -> Client:
    return Client(load_config(root / "wrangler.jsonc", environ={}, **kwargs))


class _closing:
    def __init__(self, c):
        self.c = c

    def __enter__(self):
        return self.c

    def __exit__(self, *exc):
        self.c.close()


def assert_clean_error(r: Result, *named: str, code: int | None = None) -> str:
    """Non-zero exit, one `error:` sentence naming every value in `named`, a hint, no traceback."""
    assert r.code != 0, r
    if code is not None:
        assert r.code == code, r
    assert "Traceback" not in r.out + r.err
    assert r.out == "", f"stdout should stay empty on error: {r.out!r}"
    lines = r.err.strip().splitlines()
    if lines and lines[-1].startswith("{"):  # with --json the error is one JSON object on stderr
        error = json.loads(lines[-1])["error"]
        assert error["exit_code"] == r.code and len(error["hint"]) > 3, error
        lines[-1:] = [f"error: {error['message']}", f"hint: {error['hint']}"]
    errors = [line for line in lines if line.startswith("error: ")]
    hints = [line for line in lines if line.startswith("hint: ")]
    assert len(errors) == 1 and len(hints) == 1, r.err
    assert lines[-2:] == [errors[0], hints[0]], r.err
    message = errors[0][len("error: ") :]
    for value in named:
        assert value in message, f"{value!r} not named in {message!r}"
    assert len(hints[0]) > len("hint: ") + 3
    return message


# ---------------------------------------------------------------- trigger


def test_trigger_prints_the_id_and_says_no_runner_is_active(project, wf):
    r = wf("trigger", "echo", '{"a": 1}')
    assert r.code == 0, r
    instance_id = r.out.strip()
    assert r.out == instance_id + "\n"
    uuid.UUID(instance_id)  # a random UUID by default
    assert "no runner is active" in r.err
    assert "wf worker" in r.err and "--wait" in r.err
    assert instance_id in r.err
    with _closing(client(project)) as c:
        assert c.status(instance_id) == {"status": "queued", "output": None, "error": None}
        assert c.describe(instance_id)["params"] == {"a": 1}


def test_trigger_json_prints_only_the_id_object(project, wf):
    r = wf("trigger", "echo", "--json", "--id", "j-1")
    assert r.code == 0, r
    assert json.loads(r.out) == {"id": "j-1"}
    assert "no runner is active" in r.err  # chatter goes to stderr, stdout stays data


def test_trigger_with_id(project, wf):
    r = wf("trigger", "echo", "--id", "order_42-a")
    assert r.code == 0 and r.out.strip() == "order_42-a"
    with _closing(client(project)) as c:
        assert c.get("order_42-a").workflow == "echo"


def test_trigger_without_params_gives_an_empty_object(project, wf):
    wf("trigger", "echo", "--id", "np")
    with _closing(client(project)) as c:
        assert c.describe("np")["params"] == {}


@pytest.mark.parametrize(
    "name, text",
    [
        ("order.json", '{"item": "book", "qty": 2}'),
        ("order.yaml", "item: book\nqty: 2\n"),
        ("order.yml", "{item: book, qty: 2}\n"),
    ],
)
def test_trigger_params_file(project, wf, name, text):
    (project / name).write_text(text)
    r = wf("trigger", "echo", "--params", name, "--id", "pf")
    assert r.code == 0, r
    with _closing(client(project)) as c:
        assert c.describe("pf")["params"] == {"item": "book", "qty": 2}


@pytest.mark.parametrize("text", ['{"item": "book", "qty": 2}', "item: book\nqty: 2\n"])
def test_trigger_params_from_stdin(project, wf, text):
    r = wf("trigger", "echo", "--params", "-", "--id", "stdin", stdin=text)
    assert r.code == 0, r
    with _closing(client(project)) as c:
        assert c.describe("stdin")["params"] == {"item": "book", "qty": 2}


def test_trigger_wait_runs_in_process_to_completion(project, wf):
    r = wf("trigger", "echo", '{"name": "b"}', "--wait", "--id", "w1")
    assert r.code == 0, r
    assert r.out == "w1\n"
    assert "complete" in r.err and '"echo": {"name": "b"}' in r.err
    assert "running w1 here" in r.err
    s = wf("status", "w1")
    assert json.loads(s.out) == {"status": "complete", "output": {"echo": {"name": "b"}}, "error": None}


def test_trigger_wait_json(project, wf):
    r = wf("trigger", "echo", "[1, 2]", "--wait", "--json", "--id", "wj")
    assert r.code == 0, r
    assert json.loads(r.out) == {"id": "wj", "status": "complete", "output": {"echo": [1, 2]}, "error": None}


def test_trigger_wait_exits_1_when_the_instance_errors(project, wf):
    r = wf("trigger", "boom", "--wait", "--id", "b1")
    assert r.code == 1, r
    assert r.out == "b1\n"
    assert "errored" in r.err and "kaboom" in r.err
    assert "Traceback" not in r.err
    s = wf("status", "b1")
    assert json.loads(s.out) == {
        "status": "errored",
        "output": None,
        "error": {"name": "NonRetryableError", "message": "kaboom"},
    }


# ---------------------------------------------------------------- status


def test_status_prints_exactly_the_status_shape(project, wf):
    wf("trigger", "echo", '{"x": 1}', "--id", "s1")
    for args in (
        ("status", "s1"),
        ("status", "s1", "--json"),
        ("status", "latest"),
        ("status", "s1", "--workflow", "echo"),
    ):
        r = wf(*args)
        assert r.code == 0, r
        assert json.loads(r.out) == {"status": "queued", "output": None, "error": None}, args
    wf("trigger", "echo", '{"x": 2}', "--id", "s2", "--wait")
    latest = json.loads(wf("status", "latest").out)
    assert latest == {"status": "complete", "output": {"echo": {"x": 2}}, "error": None}
    assert list(latest) == ["status", "output", "error"]


# ---------------------------------------------------------------- send-event


def _run_until_waiting(root: Path, instance_id: str) -> None:
    """Run an in-process runner until the instance waits for its event, then stop the runner."""
    cfg = load_config(root / "wrangler.jsonc", environ={})

    async def drive():
        runner = build_runner(cfg)
        await runner.start()
        try:
            deadline = time.monotonic() + DEADLINE
            while time.monotonic() < deadline:
                row = await runner.astore.call(runner.store_ops.get_instance, None, instance_id)
                if row.status == "waiting":
                    return
                await asyncio.sleep(0.02)
            raise AssertionError(f"{instance_id} never reached waiting")
        finally:
            await runner.stop()

    asyncio.run(drive())


def _run_to_end(root: Path, instance_id: str) -> str:
    cfg = load_config(root / "wrangler.jsonc", environ={})
    with _closing(Client(cfg)) as c:
        seq = c.get(instance_id).seq
    return asyncio.run(asyncio.wait_for(run_until_done(build_runner(cfg), seq), DEADLINE))


@pytest.mark.parametrize("how", ["payload", "payload-file-json", "payload-file-yaml", "payload-stdin"])
def test_send_event_delivers_to_a_waiting_instance(project, wf, how):
    assert wf("trigger", "approve", "--id", "ap").code == 0
    _run_until_waiting(project, "ap")
    assert json.loads(wf("status", "ap").out)["status"] == "waiting"
    stdin = None
    if how == "payload":
        extra = ["--payload", '{"by": "ann"}']
    elif how == "payload-file-json":
        (project / "ev.json").write_text('{"by": "ann"}')
        extra = ["--payload-file", "ev.json"]
    elif how == "payload-file-yaml":
        (project / "ev.yaml").write_text("by: ann\n")
        extra = ["--payload-file", "ev.yaml"]
    else:
        extra, stdin = ["--payload-file", "-"], '{"by": "ann"}'
    r = wf("send-event", "ap", "--type", "approval", *extra, stdin=stdin)
    assert r.code == 0, r
    assert r.out == ""
    assert "approval" in r.err and "ap" in r.err
    assert _run_to_end(project, "ap") == "complete"
    assert json.loads(wf("status", "ap").out) == {
        "status": "complete",
        "output": {"approved": {"by": "ann"}, "type": "approval"},
        "error": None,
    }


def test_send_event_before_the_wait_is_kept_and_json_output(project, wf):
    wf("trigger", "approve", "--id", "early")
    r = wf("send-event", "latest", "--type", "approval", "--payload", "true", "--json")
    assert r.code == 0, r
    assert json.loads(r.out) == {"id": "early", "type": "approval", "sent": True}
    assert _run_to_end(project, "early") == "complete"
    assert json.loads(wf("status", "early").out)["output"] == {"approved": True, "type": "approval"}


# ---------------------------------------------------------------- error paths


def _big_payload(root: Path) -> None:
    (root / "big.json").write_text(json.dumps({"blob": "x" * (1024 * 1024 + 1)}))


def _queued(root: Path, instance_id: str = "q1") -> None:
    with _closing(client(root)) as c:
        c.create("approve", None, instance_id)


def _done(root: Path, instance_id: str = "done1") -> None:
    with _closing(client(root)) as c:
        row = c.create("echo", {"n": 1}, instance_id)
    cfg = load_config(root / "wrangler.jsonc", environ={})
    asyncio.run(asyncio.wait_for(run_until_done(build_runner(cfg), row.seq), DEADLINE))


def _broken_syntax(root: Path) -> None:
    (root / "wrangler.jsonc").write_text(
        '{\n  "main": "src/index.py",\n  "workflows": [ {"name": "a" "binding": "A"} ]\n}\n'
    )


def _broken_field(root: Path) -> None:
    (root / "wrangler.jsonc").write_text(
        '{\n  "main": "src/index.py",\n  "workflows": [\n    {"name": "has space", "binding": "A", '
        '"class_name": "Echo"}\n  ]\n}\n'
    )


def _broken_source(root: Path) -> None:
    (root / "src" / "index.py").write_text("class Echo(:\n    pass\n")


def _garbage_db(root: Path) -> None:
    db = root / ".wf" / "state.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(b"garbage, not sqlite\x00\xff" * 300)


def _no_config(root: Path) -> None:
    (root / "wrangler.jsonc").unlink()


ERRORS = {
    # name: (setup, args, exit code, values the error must name)
    "unknown workflow": (None, ["trigger", "nope"], 3, ["'nope'"]),
    "bad id": (None, ["trigger", "echo", "--id", "bad id"], 2, ["'bad id'"]),
    "bad id leading dash": (None, ["trigger", "echo", "--id=-dash"], 2, ["'-dash'"]),
    "id too long": (None, ["trigger", "echo", "--id", "i" * 101], 2, ["'" + "i" * 101 + "'"]),
    "duplicate id": (lambda r: _queued(r, "dup"), ["trigger", "approve", "--id", "dup"], 4, ["'dup'", "'approve'"]),
    "unknown instance": (None, ["status", "ghost-1"], 3, ["'ghost-1'"]),
    "no instances for latest": (None, ["status", "latest"], 3, ["no instances"]),
    "send-event unknown instance": (None, ["send-event", "ghost-2", "--type", "x"], 3, ["'ghost-2'"]),
    "invalid JSON params": (None, ["trigger", "echo", "{bad"], 2, ["'{bad'", "not valid JSON"]),
    "params and params file": (
        lambda r: (r / "p.json").write_text("{}"),
        ["trigger", "echo", "{}", "--params", "p.json"],
        2,
        ["params"],
    ),
    "missing params file": (None, ["trigger", "echo", "--params", "missing.json"], 2, ["'missing.json'"]),
    "YAML syntax error": (
        lambda r: (r / "bad.yaml").write_text("a: [1, 2\nb: {\n"),
        ["trigger", "echo", "--params", "bad.yaml"],
        2,
        ["bad.yaml", "YAML", "line"],
    ),
    "JSON file syntax error": (
        lambda r: (r / "bad.json").write_text('{"a": 1,,}'),
        ["trigger", "echo", "--params", "bad.json"],
        2,
        ["bad.json", "line 1"],
    ),
    "NaN in params": (None, ["trigger", "echo", '{"x": NaN}'], 2, ["nan"]),
    "bad event type": (_queued, ["send-event", "q1", "--type", "bad type"], 2, ["'bad type'"]),
    "event type too long": (_queued, ["send-event", "q1", "--type", "t" * 101], 2, ["'" + "t" * 101 + "'"]),
    "invalid JSON payload": (_queued, ["send-event", "q1", "--payload", "{x"], 2, ["'{x'"]),
    "payload too large": (
        lambda r: (_queued(r), _big_payload(r)),
        ["send-event", "q1", "--type", "go", "--payload-file", "big.json"],
        2,
        ["'go'", "1 MiB", "bytes"],
    ),
    "event to a finished instance": (_done, ["send-event", "done1", "--type", "go"], 4, ["'done1'", "complete"]),
    "no config found": (_no_config, ["status", "latest"], 2, ["No wrangler.jsonc", "any parent"]),
    "config file given does not exist": (
        None,
        ["-c", "nowhere/wrangler.jsonc", "status", "latest"],
        2,
        ["nowhere/wrangler.jsonc"],
    ),
    "broken config syntax": (_broken_syntax, ["trigger", "echo"], 2, ["wrangler.jsonc:3:", "Syntax error"]),
    "broken config field": (
        _broken_field,
        ["trigger", "echo"],
        2,
        ["wrangler.jsonc:4:", '"has space"', "workflows[0].name"],
    ),
    "unknown env": (None, ["--env", "prod", "trigger", "echo"], 2, ["'prod'"]),
    "workflow only in another env": (None, ["--env", "staging", "trigger", "echo"], 3, ["'echo'"]),
    "broken workflow source": (_broken_source, ["trigger", "echo", "--wait"], 2, ["index.py:1", "syntax error"]),
    "corrupt database": (_garbage_db, ["status", "latest"], 5, ["state.db"]),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_error_is_one_sentence_with_a_hint_and_no_traceback(project, wf, case):
    setup, args, code, named = ERRORS[case]
    if setup is not None:
        setup(project)
    r = wf(*args)
    assert_clean_error(r, *named, code=code)


@pytest.mark.parametrize(
    "case", ["unknown workflow", "invalid JSON params", "broken config syntax", "corrupt database", "bad event type"]
)
def test_verbose_shows_the_traceback(project, wf, case):
    setup, args, code, named = ERRORS[case]
    if setup is not None:
        setup(project)
    r = wf("--verbose", *args)
    assert r.code == code
    assert "Traceback (most recent call last)" in r.err
    assert r.err.strip().splitlines()[-2].startswith("error: ")
    # and the next run without --verbose is quiet again
    r = wf(*args)
    assert "Traceback" not in r.err


def test_wf_verbose_env_var_shows_the_traceback(project, wf, monkeypatch):
    monkeypatch.setenv("WF_VERBOSE", "1")
    r = wf("trigger", "nope")
    assert r.code == 3 and "Traceback" in r.err


def test_nothing_created_by_a_failed_trigger(project, wf):
    for args in (
        ["trigger", "echo", "{bad"],
        ["trigger", "echo", "--id", "bad id"],
        ["trigger", "echo", "--params", "missing.json"],
    ):
        assert wf(*args).code != 0
    assert wf("status", "latest").code == 3  # still no instances at all


def test_usage_error_exits_2_without_traceback(project, wf):
    r = wf("trigger")
    assert r.code == 2
    assert "Traceback" not in r.out + r.err
    assert "Missing argument" in r.err


# ---------------------------------------------------------------- global options


def test_config_option_from_another_directory(project, wf, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for option in (str(project / "wrangler.jsonc"), str(project)):
        r = wf("-c", option, "trigger", "echo", "--id", f"c-{len(option)}", "--wait")
        assert r.code == 0, r
    r = wf("--config", str(project / "wrangler.jsonc"), "status", "latest")
    assert json.loads(r.out)["status"] == "complete"
    assert (project / ".wf" / "state.db").is_file()  # state lives beside the config, not in cwd
    assert not (elsewhere / ".wf").exists()


def test_config_found_from_a_subdirectory(project, wf, monkeypatch):
    sub = project / "src"
    monkeypatch.chdir(sub)
    assert wf("trigger", "echo", "--id", "from-sub").code == 0
    assert not (sub / ".wf").exists()
    with _closing(client(project)) as c:
        assert c.get("from-sub")


def test_env_option_selects_the_env_section(project, wf):
    r = wf("--env", "staging", "trigger", "echo-staging", '{"s": 1}', "--wait", "--id", "st")
    assert r.code == 0, r
    r = wf("-e", "staging", "status", "st")
    assert json.loads(r.out) == {"status": "complete", "output": {"echo": {"s": 1}}, "error": None}
    assert_clean_error(wf("trigger", "echo-staging"), "'echo-staging'", code=3)


def test_persist_to_keeps_state_in_another_folder(project, wf):
    r = wf("--persist-to", "other-state", "trigger", "echo", "--id", "p1")
    assert r.code == 0, r
    assert (project / "other-state" / "state.db").is_file()
    assert not db_path(project / ".wf").exists()
    assert_clean_error(wf("status", "p1"), "'p1'", code=3)
    r = wf("--persist-to", "other-state", "status", "p1")
    assert json.loads(r.out)["status"] == "queued"
    r = wf("--persist-to", "other-state", "trigger", "echo", "--id", "p2", "--wait")
    assert r.code == 0, r
    assert json.loads(wf("--persist-to", "other-state", "status", "p2").out)["status"] == "complete"


def test_store_option_with_a_sqlite_url(project, wf, tmp_path):
    url = f"sqlite:///{tmp_path / 'url-state.db'}"
    assert wf("--store", url, "trigger", "echo", "--id", "u1").code == 0
    assert (tmp_path / "url-state.db").is_file()
    assert json.loads(wf("--store", url, "status", "u1").out)["status"] == "queued"
    assert_clean_error(wf("--store", "redis://x", "status", "u1"), "'redis://x'", code=5)


# ---------------------------------------------------------------- subprocesses


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("WF_STORE", "WF_VERBOSE")}
    env["NO_COLOR"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_python_dash_m_wf_help():
    r = subprocess.run([sys.executable, "-m", "wf", "--help"], capture_output=True, text=True, timeout=60, env=_env())
    assert r.returncode == 0, r.stderr
    for command in ("worker", "trigger", "status", "send-event"):
        assert command in r.stdout


@pytest.mark.slow
def test_installed_script_trigger_wait(tmp_path):
    assert WF_SCRIPT.is_file(), f"{WF_SCRIPT} is not installed"
    root = make_project(tmp_path / "p")
    r = subprocess.run(
        [str(WF_SCRIPT), "trigger", "echo", '{"via": "script"}', "--wait"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert r.returncode == 0, r.stderr
    instance_id = r.stdout.strip()
    uuid.UUID(instance_id)
    r = subprocess.run(
        [str(WF_SCRIPT), "status", instance_id], cwd=root, capture_output=True, text=True, timeout=60, env=_env()
    )
    assert json.loads(r.stdout) == {"status": "complete", "output": {"echo": {"via": "script"}}, "error": None}


@pytest.mark.slow
def test_installed_script_error_has_no_traceback(tmp_path):
    root = make_project(tmp_path / "p")
    r = subprocess.run(
        [str(WF_SCRIPT), "trigger", "boom", "--wait"], cwd=root, capture_output=True, text=True, timeout=60, env=_env()
    )
    assert r.returncode == 1 and "kaboom" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([str(WF_SCRIPT), "worker"], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=_env())
    assert r.returncode == 2
    assert r.stderr.startswith("error: No wrangler.jsonc") and "hint: " in r.stderr
    assert "Traceback" not in r.stderr


class Worker:
    """A `wf worker` subprocess with its output in files (no pipe to fill up)."""

    def __init__(self, root: Path, *args: str):
        self.root = root
        self.out_path, self.err_path = root / "worker.out", root / "worker.err"
        self._out, self._err = open(self.out_path, "wb"), open(self.err_path, "wb")
        self.proc = subprocess.Popen(
            [str(WF_SCRIPT), "worker", *args], cwd=root, stdout=self._out, stderr=self._err, env=_env()
        )

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = DEADLINE) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.stderr:
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}: {self.stderr}")
            time.sleep(0.02)
        raise AssertionError(f"worker never printed {text!r}: {self.stderr}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._out.close()
        self._err.close()


@pytest.fixture
def worker_factory():
    made: list[Worker] = []

    def start(root: Path, *args: str) -> Worker:
        w = Worker(root, *args)
        made.append(w)
        return w

    yield start
    for w in made:
        w.close()


def _status_until(wf, instance_id: str, wanted: str) -> dict:
    deadline = time.monotonic() + DEADLINE
    status = None
    while time.monotonic() < deadline:
        r = wf("status", instance_id)
        status = json.loads(r.out) if r.code == 0 else r.err  # the instance may not exist yet
        if isinstance(status, dict) and status["status"] == wanted:
            return status
        time.sleep(0.03)
    raise AssertionError(f"{instance_id} stayed {status}")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_worker_runs_instances_and_stops_cleanly(project, wf, worker_factory, sig):
    queued_before = wf("trigger", "echo", '{"early": true}', "--id", "before").out.strip()
    w = worker_factory(project)
    w.wait_for_output("ready")
    state_dir = project / ".wf"
    assert len(live_runners(state_dir)) == 1

    # picks up what was queued before it started
    assert _status_until(wf, queued_before, "complete")["output"] == {"echo": {"early": True}}

    # a trigger while it runs: no "no runner" note, the worker runs it
    r = wf("trigger", "approve", "--id", "live")
    assert r.code == 0 and "no runner is active" not in r.err
    _status_until(wf, "live", "waiting")
    assert wf("send-event", "live", "--type", "approval", "--payload", '{"ok": 1}').code == 0
    assert _status_until(wf, "live", "complete")["output"] == {"approved": {"ok": 1}, "type": "approval"}

    # --wait with a runner alive waits for the worker rather than running here
    r = wf("trigger", "echo", '"hi"', "--wait", "--id", "via-worker")
    assert r.code == 0, r
    assert "running via-worker here" not in r.err

    # an instance left waiting when the worker stops is released, not lost
    wf("trigger", "approve", "--id", "parked")
    _status_until(wf, "parked", "waiting")

    w.proc.send_signal(sig)
    code = w.proc.wait(timeout=DEADLINE)
    assert code in (0, 128 + sig, -sig), (code, w.stderr)
    assert "Traceback" not in w.stderr
    assert "stopping" in w.stderr

    assert live_runners(state_dir) == []
    assert list((state_dir / "runners").glob("*.lock")) == []
    r = wf("trigger", "echo", "--id", "after")
    assert "no runner is active" in r.err
    with _closing(client(project)) as c:
        assert [r.id for r in c.list(limit=1000) if r.owner is not None] == []  # every claim was released
        assert c.status("parked")["status"] == "waiting"

    # the parked instance resumes under the next runner when its event arrives
    assert wf("send-event", "parked", "--type", "approval", "--payload", "2").code == 0
    assert _run_to_end(project, "parked") == "complete"
    assert json.loads(wf("status", "parked").out)["output"] == {"approved": 2, "type": "approval"}


def test_trigger_wait_with_broken_code_creates_no_instance(project, wf):
    _broken_source(project)
    assert_clean_error(wf("trigger", "echo", "--wait", "--id", "never"), "index.py:1", code=2)
    (project / "src" / "index.py").write_text(SOURCE)
    assert_clean_error(wf("status", "never"), "'never'", code=3)


@pytest.mark.slow
def test_event_sent_after_a_worker_is_killed_reaches_the_next_runner(project, wf, worker_factory):
    w = worker_factory(project)
    w.wait_for_output("ready")
    wf("trigger", "approve", "--id", "orphan")
    _status_until(wf, "orphan", "waiting")
    w.proc.kill()
    w.proc.wait(timeout=DEADLINE)
    # the dead worker still owns the instance in the store; the event must still wake it
    assert wf("send-event", "orphan", "--type", "approval", "--payload", '"late"').code == 0
    assert _run_to_end(project, "orphan") == "complete"
    # the event's payload, not the wait's 1-minute timeout, ended the wait
    assert json.loads(wf("status", "orphan").out)["output"] == {"approved": "late", "type": "approval"}


@pytest.mark.slow
def test_trigger_wait_finishes_the_instance_itself_when_the_worker_dies(project, wf, worker_factory):
    w = worker_factory(project)
    w.wait_for_output("ready")
    waiter = subprocess.Popen(
        [str(WF_SCRIPT), "trigger", "approve", "--id", "tw", "--wait"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        _status_until(wf, "tw", "waiting")
        w.proc.kill()
        w.proc.wait(timeout=DEADLINE)
        assert wf("send-event", "tw", "--type", "approval", "--payload", "1").code == 0
        out, err = waiter.communicate(timeout=DEADLINE)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.communicate(timeout=10)
    assert waiter.returncode == 0, err
    assert out.strip() == "tw"
    assert json.loads(wf("status", "tw").out)["output"] == {"approved": 1, "type": "approval"}
