"""The read commands start fast (issue 16): what they import, and that their faster output is the same.

`wf status ID --json`, `wf instances list`, `wf instances describe` and `wf workflows list` are
answered without typer (cli/fast.py), and their human output without rich when stdout is no
terminal (cli/plain.py). Start-up time is machine-dependent, so these tests guard the cause
instead: the modules a real `wf` process loads, checked after it ran. And since plain.py lays
out tables itself, its output is compared with rich's for every shape describe and list print.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from test_cli import clean_env, wf  # noqa: F401  (shared fixtures)
from test_cli_manage import CONFIG, SOURCE, create, run_to_end, run_until

from wf.client import Client
from wf.config import load_config

# modules no read command may load: the typer app, rich, the engine's asyncio, and the stdlib
# modules that cost the most to import (dataclasses brings inspect and ast; pyjson5 brings decimal)
HEAVY = {
    "typer",
    "click",
    "rich",
    "pydantic",
    "asyncio",
    "dataclasses",
    "inspect",
    "ast",
    "pyjson5",
    "decimal",
    "tomllib",
    "socket",
    "psycopg",
    "psycopg_pool",
    "httpx",
    "starlette",
    "wf.runtime.engine",
    "wf.runtime.runner",
    "importlib.resources",
    "importlib.metadata",
}

PROBE = """\
import sys
from wf.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert not exc.code, exc.code
loaded = {m for m in sys.modules if m in HEAVY or m.split(".")[0] in HEAVY}
print("LOADED", sorted(loaded), file=sys.stderr)
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "wrangler.jsonc").write_text(CONFIG)
    (root / "src" / "index.py").write_text(SOURCE)
    monkeypatch.chdir(root)
    return root


def _loaded(root: Path, *args: str) -> tuple[list[str], str]:
    code = f"HEAVY = {sorted(HEAVY)!r}\n" + PROBE
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # pytest sets it; a script's shell does not
    r = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=root, env=env, capture_output=True, text=True, timeout=60
    )  # stdout is a pipe: no terminal, as for a script
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stderr.splitlines() if x.startswith("LOADED "))
    return eval(line.removeprefix("LOADED ")), r.stdout  # a list literal printed by the probe


@pytest.mark.parametrize(
    "args",
    [
        ("status", "e1", "--json"),
        ("status", "latest"),
        ("instances", "list"),
        ("instances", "list", "--json"),
        ("instances", "list", "echo", "--status", "complete", "--per-page=5"),
        ("instances", "describe", "e1"),
        ("instances", "describe", "e1", "--json", "--full"),
        ("workflows", "list"),
        ("workflows", "list", "--json"),
    ],
)
def test_read_commands_load_no_heavy_module(project, args):
    create(project, "echo", "e1", {"n": 1})
    run_to_end(project, "e1")
    loaded, out = _loaded(project, *args)
    assert loaded == [], f"`wf {' '.join(args)}` imported {loaded}"
    assert out.strip()  # and answered


def test_a_command_the_fast_path_does_not_take_still_works(project):
    """`--help` and unknown options go to the typer app, which loads typer (and says it as before)."""
    r = subprocess.run(
        [sys.executable, "-m", "wf", "instances", "list", "--no-such-option"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "no-such-option" in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------- plain output is rich's output


def _shapes(root: Path) -> None:
    """Instances in every state describe and list show: complete (params long enough to be cut,
    and wider than the console), waiting for an event with one sent that no step took, sleeping,
    retrying after failed attempts (tracebacks), errored, queued, and non-ASCII text."""
    create(root, "echo", "e1", {"n": 1})
    create(root, "echo", "long", {"text": "x" * 700})
    create(root, "echo", "wide", {"text": "y" * 230})
    create(root, "echo", "uni", {"name": "Zoë ünïcode 名前"})
    for id in ("e1", "long", "wide", "uni"):
        run_to_end(root, id)
    create(root, "boom", "b1")
    run_to_end(root, "b1")
    create(root, "flaky", "f1")
    run_until(root, "f1", lambda d: len(d["steps"]) and len(d["steps"][0].get("attempts") or []) >= 1)
    create(root, "nap", "n1")
    run_until(root, "n1", lambda d: d["status"] == "waiting")
    create(root, "approve", "a1")
    run_until(root, "a1", lambda d: d["status"] == "waiting")
    c = Client(load_config(root / "wrangler.jsonc", environ={}))
    try:
        c.send_event("a1", "other", {"k": "v"})
    finally:
        c.close()
    create(root, "echo", "q1")  # stays queued


COMMANDS = [
    ("instances", "list"),
    ("instances", "list", "--reverse"),
    ("workflows", "list"),
    ("workflows", "describe", "echo"),
    *(("instances", "describe", id) for id in ("e1", "long", "wide", "uni", "b1", "f1", "n1", "a1", "q1")),
    ("instances", "describe", "long", "--full"),
    ("instances", "describe", "f1", "--full"),
]


@pytest.mark.parametrize("columns", [None, "70", "300"])
def test_plain_output_is_what_rich_writes(project, wf, monkeypatch, columns):
    from wf.cli import plain, views

    _shapes(project)
    now = time.time()
    monkeypatch.setattr(views, "time", types.SimpleNamespace(time=lambda: now))  # "so far" the same in both
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)  # (pytest sets it) rich's width is then 200
    else:
        monkeypatch.setenv("COLUMNS", columns)
    plain_written = {args: wf(*args) for args in COMMANDS}
    monkeypatch.setattr(plain, "console", lambda rich_console: rich_console())  # rich writes all of it
    for args in COMMANDS:
        r = wf(*args)
        assert r.code == 0, r
        assert plain_written[args].out == r.out, f"`wf {' '.join(args)}` (COLUMNS={columns}) differs from rich's"
        assert plain_written[args].err == r.err


def test_plain_writes_the_usual_output_itself(project, wf, monkeypatch):
    """The common shapes (ASCII, fitting the width) are written by plain.py, not handed to rich."""
    from wf.cli import plain

    create(project, "echo", "e1", {"n": 1})
    run_to_end(project, "e1")
    create(project, "flaky", "f1")
    run_until(project, "f1", lambda d: len(d["steps"]) and len(d["steps"][0].get("attempts") or []) >= 1)

    def no_rich():
        raise AssertionError("handed to rich")

    monkeypatch.setattr(plain, "console", lambda rich_console: plain.Console(200, no_rich))
    for args in [("instances", "list"), ("workflows", "list"), ("instances", "describe", "e1")]:
        r = wf(*args)
        assert r.code == 0, r
        assert "e1" in r.out or "echo" in r.out


def test_label_widths_are_richs():
    """plain.WIDTHS says how many cells rich gives each character of wf's labels."""
    from rich.cells import cell_len

    from wf.cli import plain, views
    from wf.runtime import steps

    labels = [*views.STATUS_LABEL.values(), "🔄 Working", "✅ Success", "❌ Error", "↩ complete", "❌ failed: "]
    labels += [k.label for k in (steps.kind(n) for n in steps.names())]
    labels += [s.label for n in steps.names() for s in steps.kind(n).Status]
    for label in labels:
        assert plain.width(label) == cell_len(label), label
    assert plain.width("Zoë") is None  # a character plain.py does not know: rich lays it out


def test_status_json_through_the_fast_path_is_the_status_shape(project):
    create(project, "echo", "e1", {"n": 1})
    run_to_end(project, "e1")
    r = subprocess.run(
        [sys.executable, "-m", "wf", "status", "e1", "--json"], cwd=project, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"status": "complete", "output": {"echo": {"again": {"n": 1}}}, "error": None}


@pytest.mark.parametrize(
    "args",
    [
        ("instances", "list"),
        ("instances", "list", "--json"),
        ("instances", "describe", "e1"),
        ("instances", "describe", "e1", "--json"),
        ("workflows", "list"),
        ("workflows", "list", "--json"),
    ],
)
def test_a_reader_that_has_gone_ends_the_command_quietly(project, args):
    """`wf instances list | head`: as through typer (click, rich), exit 1 and not a word."""
    create(project, "echo", "e1", {"n": 1})
    run_to_end(project, "e1")
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line
    try:
        r = subprocess.run(
            [sys.executable, "-m", "wf", *args],
            cwd=project,
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write)
    assert (r.returncode, r.stderr) == (1, "")


def test_the_fast_path_knows_each_command_as_typer_does():
    """fast.COMMANDS spells each read command's options, arguments and defaults as the typer app
    declares them: a changed default or a renamed option there must change here too (an option
    only typer knows is fine: such a command line goes to typer)."""
    import typer

    from wf.cli import app, fast

    root = typer.main.get_command(app)
    for words, spec in fast.COMMANDS.items():
        command = root
        for word in words:
            command = command.commands[word]  # type: ignore[attr-defined]
        options = {o: p for p in command.params if p.param_type_name == "option" for o in p.opts}
        arguments = [p for p in command.params if p.param_type_name == "argument"]
        for opt, (name, _) in spec.values.items():
            assert opt in options and options[opt].name == name and not options[opt].is_flag, (words, opt)
        for opt, name in spec.flags.items():
            assert opt in options and options[opt].name == name and options[opt].is_flag, (words, opt)
        assert tuple(a.name for a in arguments) == spec.arguments, words
        assert spec.required == sum(a.required for a in arguments), words
        for p in command.params:
            if p.name in spec.defaults:
                assert p.default == spec.defaults[p.name], (words, p.name)
    globals_ = {o: p for p in root.params if p.param_type_name == "option" for o in p.opts}
    for opt, name in {**fast.GLOBAL_VALUES, **fast.GLOBAL_FLAGS}.items():
        assert opt in globals_ and globals_[opt].name == name, opt


def test_the_client_names_the_rollback_kind_as_its_module_does():
    """Client.status asks the store for rollback runs by name before loading the step kinds."""
    from wf.client import ROLLBACK_KIND
    from wf.runtime.steps.rollback import Rollback

    assert ROLLBACK_KIND == Rollback.name


WORKER_PROBE = """\
import os, signal, sys

class Watch:  # stop the worker (as Ctrl-C would) once it says it is ready
    def __init__(self, inner):
        self.inner = inner
    def write(self, text):
        if "ready:" in text:
            os.kill(os.getpid(), signal.SIGTERM)
        return self.inner.write(text)
    def __getattr__(self, name):
        return getattr(self.inner, name)

sys.stderr = Watch(sys.stderr)
from wf.cli import main
main(sys.argv[1:])
loaded = {m for m in sys.modules if m.split(".")[0] in ("typer", "click", "pydantic", "rich")}
print("LOADED", sorted(loaded), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [("worker",), ("worker", "--concurrency", "5", "-q", "--lease=3")])
def test_a_worker_starts_and_stops_without_typer(project, args):
    """A worker restarted after a crash runs again as soon as Python and the engine are loaded:
    a plain `wf worker` command line (with an instance queued for it) never loads typer (nor click,
    pydantic or rich) on its way to ready and back out."""
    create(project, "echo", "w1", {"n": 1})
    r = subprocess.run(
        [sys.executable, "-c", WORKER_PROBE, *args], cwd=project, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert "ready:" in r.stderr and "stopping" in r.stderr, r.stderr
    line = next(x for x in r.stderr.splitlines() if x.startswith("LOADED "))
    assert eval(line.removeprefix("LOADED ")) == [], r.stderr


@pytest.mark.parametrize(
    "args, said",
    [
        (
            ("worker", "--concurrency", "0"),
            "Invalid value for '--concurrency': Input should be greater than or equal to 1",
        ),
        (("worker", "--lease", "0.1"), "Invalid value for '--lease': Input should be greater than or equal to 0.5"),
        (("worker", "--lease", "nan"), "Invalid value for '--lease'"),
        (("worker", "--concurrency", "many"), "Invalid value for '--concurrency': Input should be a valid integer"),
        (("worker", "--no-such-option"), "No such option: --no-such-option"),
        (("worker", "--log-format", "xml"), "--log-format 'xml' is not known"),
    ],
)
def test_a_worker_command_line_the_fast_path_refuses_is_said_as_typer_says_it(project, args, said):
    r = subprocess.run([sys.executable, "-m", "wf", *args], cwd=project, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert said in r.stderr and "Traceback" not in r.stderr, r.stderr
