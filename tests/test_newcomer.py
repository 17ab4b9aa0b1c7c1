"""A newcomer's first hour (issue 18, points 5-12): the package's name, the scaffold, `wf check`,
`send-event --type`, `trigger --wait` running only its own instance, terminal views that keep
ids whole, the command line's conventions, and cron schedules in the README."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
from importlib import metadata
from pathlib import Path

import pytest
from rich.console import Console
from test_cli import WF_SCRIPT, Result

import wf as wf_package
from wf.cli.tail import TailModel
from wf.client import Client
from wf.config import load_config
from wf.runtime.store.base import HistoryRow

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
TEMPLATE_README = (ROOT / "src" / "wf" / "templates" / "default" / "README.md").read_text()

SOURCE = """\
from wf import WorkflowEntrypoint


class Echo(WorkflowEntrypoint):
    async def run(self, event, step):
        return await step.do("echo", lambda: event.payload)


class Approve(WorkflowEntrypoint):
    async def run(self, event, step):
        got = await step.wait_for_event("wait-for-approval", "approval", timeout="1 hour")
        return {"type": got.type, "payload": got.payload}
"""
WORKFLOWS = [
    {"name": "echo", "binding": "ECHO", "class_name": "Echo"},
    {"name": "approve", "binding": "APPROVE", "class_name": "Approve"},
]


def write_project(root: Path, workflows=None, source: str = SOURCE, text: str | None = None) -> Path:
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "src" / "index.py").write_text(source)
    config = {"name": "newcomer", "main": "src/index.py", "workflows": workflows or WORKFLOWS}
    (root / "wrangler.jsonc").write_text(text if text is not None else json.dumps(config, indent=2))
    return root


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = write_project(tmp_path / "proj")
    monkeypatch.chdir(root)
    for name in ("WF_STORE", "WF_VERBOSE", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    return root


@pytest.fixture
def wf(capsys):
    from wf.cli import main

    def run(*args: str) -> Result:
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


def run_script(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """The installed `wf` console script, as a user runs it."""
    base = {k: v for k, v in os.environ.items() if k not in ("WF_STORE", "NO_COLOR")}
    return subprocess.run(
        [str(WF_SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=60, env={**base, **(env or {})}
    )


# ---------------------------------------------------------------- 5. the distribution's name


def test_the_distribution_is_wf_workflows_and_every_install_line_names_it_or_this_repository():
    assert metadata.version("wf-workflows") == wf_package.__version__
    assert "wf" in {ep.name for ep in metadata.entry_points(group="console_scripts") if ep.value == "wf.cli:main"}
    for text, where in ((README, "README.md"), (TEMPLATE_README, "the scaffold's README")):
        for line in re.findall(r"pip install[^\n`]*", text):
            assert not re.search(r"pip install (-U )?['\"]?wf(\[|['\"]?\s|$)", line), f"{where}: {line}"
        assert "pypi.org/project/wf" not in text, where
    assert "wf-workflows" in README and "wf-workflows" in TEMPLATE_README


def test_wf_version_says_the_installed_version(tmp_path):
    result = run_script("--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout == f"wf {metadata.version('wf-workflows')}\n"


# ---------------------------------------------------------------- 6. the scaffold


def test_the_readme_scaffold_folder_is_ignored_by_git():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    result = subprocess.run(["git", "check-ignore", "-q", "demo/wrangler.jsonc"], cwd=ROOT)
    assert result.returncode == 0, "the README's `wf init demo` would leave demo/ untracked"


def test_wf_init_says_how_to_run_the_project_without_an_activated_venv(tmp_path):
    env = {"PATH": "/usr/bin:/bin"}  # this venv is not active: `wf` is not on PATH
    result = run_script("init", "demo", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    [hint] = [line for line in result.stderr.splitlines() if line.startswith("next: ")]
    command = hint.removeprefix("next: ")
    assert str(WF_SCRIPT) in command or "../" in command, command
    ran = subprocess.run(
        ["bash", "-c", command.replace(" --wait", " --wait --json")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
    assert ran.returncode == 0 and json.loads(ran.stdout)["status"] == "complete", ran.stderr
    active = run_script("init", "shop", cwd=tmp_path, env={"PATH": f"{WF_SCRIPT.parent}:/usr/bin:/bin"})
    assert "next: cd shop && wf trigger order-processing" in active.stderr


def test_the_scaffolds_readme_says_how_to_install_pytest_and_where_wf_comes_from():
    assert "pip install pytest" in TEMPLATE_README and "python -m pytest" in TEMPLATE_README
    assert "activate" in TEMPLATE_README


def test_the_template_app_answers_400_to_a_body_that_is_not_a_json_object(tmp_path, wf):
    from wf.testing import from_config

    assert wf("init", str(tmp_path / "shop")).code == 0

    async def post(body: bytes) -> tuple[int, dict]:
        async with from_config(tmp_path / "shop" / "wrangler.jsonc") as t:  # the template's Worker, as wf dev serves it
            answer = await t.fetch("/api/orders", method="POST", body=body)
            return answer.status, await answer.json()

    for body in (b"not json", b"\xff\xfe", b"[1, 2]"):
        status, answer = asyncio.run(post(body))
        assert status == 400, (body, answer)
        assert "JSON object" in answer["error"]


# ---------------------------------------------------------------- 7. wf check


def test_wf_check_names_misspelt_keys_with_the_key_meant_and_where(tmp_path, wf, monkeypatch):
    text = """{
  "name": "typos",
  "main": "src/index.py",
  "workflows": [
    { "name": "echo", "binding": "ECHO", "class_name": "Echo",
      "limts": { "steps": 10 }, "schedule": "* * * * *" },
  ],
  "kv_namespaces": [],
}"""
    root = write_project(tmp_path / "typos", text=text)
    monkeypatch.chdir(root)
    r = wf("check")
    assert r.code == 0, r  # warnings alone do not fail
    assert 'wrangler.jsonc:6:7: unknown key workflows[0].limts (did you mean "limits"?)' in r.out
    assert 'wrangler.jsonc:6:33: unknown key workflows[0].schedule (did you mean "schedules"?)' in r.out
    assert "note: " in r.out and "kv_namespaces is a wrangler setting wf does not use" in r.out
    report = json.loads(wf("check", "--json").out)
    assert report["ok"] is True
    assert [p["hint"] for p in report["problems"] if p["level"] == "warning"] == [
        'rename it to "limits"',
        'rename it to "schedules"',
    ]
    # every other command that reads the config warns too, on stderr
    listed = wf("workflows", "list", "--json")
    assert listed.code == 0 and json.loads(listed.out)[0]["name"] == "echo"
    assert "warning: " in listed.err and '(did you mean "limits"?)' in listed.err
    assert '(did you mean "schedules"?)' in wf("status", "latest").err  # the fast path as well


@pytest.mark.parametrize(
    "breakage, named",
    [
        (lambda root: (root / "src" / "index.py").write_text(SOURCE.replace("class Echo", "class Echoo")), "'Echo'"),
        (lambda root: (root / "src" / "index.py").unlink(), "does not exist"),
        (lambda root: (root / "src" / "index.py").write_text(SOURCE + "\ndef broken(:\n"), "syntax error at"),
    ],
    ids=["wrong-class-name", "missing-main", "syntax-error"],
)
def test_wf_check_fails_before_anything_is_queued(project, wf, breakage, named):
    breakage(project)
    r = wf("check")
    assert r.code == 2 and named in r.out, r
    assert "not ok: 1 error(s)" in r.out
    report = json.loads(wf("check", "--json").out)
    assert report["ok"] is False and [p["level"] for p in report["problems"]] == ["error"]
    assert named in report["problems"][0]["message"] and report["problems"][0]["hint"]
    assert wf("trigger", "echo", "{}").code == 2  # and trigger refuses too, queuing nothing
    c = client(project)
    try:
        assert c.list() == []
    finally:
        c.close()


def test_wf_check_lists_each_schedule_with_its_next_tick_and_flags_a_binding_that_hides_a_var(
    tmp_path, wf, monkeypatch
):
    workflows = [{**WORKFLOWS[0], "schedules": ["*/5 * * * *"]}]
    root = write_project(tmp_path / "cron", workflows)
    config = json.loads((root / "wrangler.jsonc").read_text())
    config["vars"] = {"ECHO": "shadowed"}
    (root / "wrangler.jsonc").write_text(json.dumps(config))
    monkeypatch.chdir(root)
    report = json.loads(wf("check", "--json").out)
    [schedule] = report["workflows"][0]["schedules"]
    assert schedule["cron"] == "*/5 * * * *"
    next_tick = time.mktime(time.strptime(schedule["next"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert 0 < next_tick - time.time() <= 300 + 5 and int(next_tick) % 300 == 0
    [problem] = report["problems"]
    assert problem["level"] == "warning" and "binding 'ECHO'" in problem["message"]


# ---------------------------------------------------------------- 8. send-event needs --type


def test_send_event_without_type_uses_the_one_type_awaited_and_says_so(project, wf):
    from wf.service import build_runner

    c = client(project)
    c.create("approve", {}, "a2")

    async def until_waiting():  # a runner in this process takes the instance to its wait
        runner = build_runner(c.config, crons=False)
        await runner.start()
        try:
            while c.get("a2").status != "waiting":  # noqa: ASYNC110 - the store offers no event for it
                await asyncio.sleep(0.01)
        finally:
            await runner.stop()

    try:
        asyncio.run(until_waiting())
        r = wf("send-event", "a2", "--payload", '{"ok": true}')
        assert r.code == 0, r
        assert "waits for 'approval', so the event is of that type" in r.err
        [event] = c.events("a2")
        assert event["type"] == "approval" and event["payload"] == {"ok": True}
    finally:
        c.close()


def test_send_event_without_type_to_an_instance_not_waiting_is_a_usage_error(project, wf):
    c = client(project)
    try:
        c.create("echo", {}, "e1")
    finally:
        c.close()
    r = wf("send-event", "e1")
    assert r.code == 2 and r.out == ""
    assert r.err.splitlines() == [
        "error: send-event needs --type: it is not waiting for an event now",
        "hint: e.g. wf send-event e1 --type approval",
    ]


def test_describe_shows_the_events_no_step_has_taken(project, wf):
    c = client(project)
    try:
        c.create("echo", {}, "e2")
        c.send_event("e2", "approval", {"early": True})
    finally:
        c.close()
    human = wf("instances", "describe", "e2").out
    assert "Pending Events:" in human and "Events not taken by any step (1):" in human
    assert "approval  sent" in human and '{"early": true}' in human
    data = json.loads(wf("instances", "describe", "e2", "--json").out)
    [event] = data["events"]
    assert event["type"] == "approval" and event["consumed"] is False and event["created"].endswith("Z")


# ---------------------------------------------------------------- 9. trigger --wait runs only its own


def test_trigger_wait_without_a_runner_runs_only_the_instance_it_created(project, wf):
    for i in range(3):
        assert wf("trigger", "echo", json.dumps({"n": i}), "--id", f"queued-{i}").code == 0
    r = wf("trigger", "echo", '{"mine": true}', "--id", "mine", "--wait", "--json")
    assert r.code == 0 and json.loads(r.out)["output"] == {"mine": True}
    c = client(project)
    try:
        assert {row.id: row.status for row in c.list()} == {
            "mine": "complete",
            "queued-0": "queued",
            "queued-1": "queued",
            "queued-2": "queued",
        }
    finally:
        c.close()


# ---------------------------------------------------------------- 10. terminal views


def test_instances_list_never_cuts_an_id_however_narrow_the_terminal(project, wf, monkeypatch):
    ids = ["x" * 70 + "-end", "5f2c0d7e-9a1b-4c3d-8e7f-0123456789ab"]
    c = client(project)
    try:
        for id in ids:
            c.create("echo", {}, id)
    finally:
        c.close()
    for columns in ("200", "80", "40"):
        monkeypatch.setenv("COLUMNS", columns)
        out = wf("instances", "list").out
        for id in ids:
            assert id in out.replace("\n", "") and "…" not in out, (columns, out)
        if columns == "80":
            assert out.splitlines()[0] == ids[1] and "echo" in out.splitlines()[1]  # one instance, two lines


T0 = 1_800_000_000.0


def row(seq: int, instance: int, id: str, dt: float, type: str, step=None, data=None) -> HistoryRow:
    return HistoryRow(seq, instance, "orders", id, T0 + dt, type, step, 1 if step else None, data)


def test_tail_keeps_instances_in_order_and_the_latest_activity_on_screen():
    model = TailModel()
    rows = [row(i + 1, i + 1, f"order-{i}", i, "workflow_started") for i in range(6)]
    rows += [row(7, 1, "order-0", 10, "sleep_started", "nap", {"durationMs": 1000, "wakeAt": T0 + 11})]
    for h in rows:
        model.apply(h)
    console = Console(width=100, height=8, record=True, color_system=None)
    console.print(model.render(T0 + 10, 8, console))
    screen = console.export_text()
    assert "order-0" in screen and "order-5" in screen  # the latest activity, and the newest instance
    assert screen.index("order-0") < screen.index("order-5")  # in the order first seen, not moved
    assert "more instance(s) not shown" in screen
    assert len(screen.splitlines()) <= 8


def test_tail_shows_a_long_error_whole_and_the_error_of_an_instance_with_no_step():
    model = TailModel()
    message = "the card processor refused the charge because the account is frozen until further notice"
    model.apply(row(1, 1, "order-9", 0, "workflow_started"))
    model.apply(
        row(2, 1, "order-9", 1, "workflow_errored", None, {"error": {"name": "ValueError", "message": message}})
    )
    console = Console(width=140, record=True, color_system=None)
    console.print(model.render(T0 + 2))
    screen = console.export_text()
    assert f"ValueError: {message}" in screen  # on one line, not wrapped at 40 characters


# ---------------------------------------------------------------- 11. conventions


def test_help_has_no_type_artefacts(tmp_path):
    for args in (["--help"], ["trigger", "--help"], ["instances", "list", "--help"], ["worker", "--help"]):
        result = run_script(*args, cwd=tmp_path, env={"COLUMNS": "120"})
        assert result.returncode == 0, result.stderr
        for artefact in ("<bool>", "<str>", "<int>", "[[", "{workflow}"):
            assert artefact not in result.stdout, (args, artefact)
    usage = run_script("trigger", "--help", cwd=tmp_path, env={"COLUMNS": "120"}).stdout
    assert "Usage: wf trigger [OPTIONS] WORKFLOW [PARAMS_JSON]" in usage


def test_shell_completion_is_offered_and_completes_commands(tmp_path):
    # from a bash, as a user types it: typer finds the shell among the process's parents (with
    # shellingham installed it takes no shell name), and a test runner's parents may have none
    base = {k: v for k, v in os.environ.items() if k not in ("WF_STORE", "NO_COLOR")}
    script = subprocess.run(
        ["bash", "-c", f"'{WF_SCRIPT}' --show-completion; exit $?"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, "SHELL": "/bin/bash"},
    )
    assert script.returncode == 0 and "_WF_COMPLETE" in script.stdout, script.stderr
    env = {"_WF_COMPLETE": "complete_bash", "COMP_WORDS": "wf inst", "COMP_CWORD": "1"}
    completed = run_script(cwd=tmp_path, env=env)
    assert "instances" in completed.stdout.split()


def test_usage_errors_are_said_like_every_other_error(tmp_path):
    for args, message in (
        (["instances", "list", "--bogus"], "error: No such option: --bogus"),
        (["trigger"], "error: Missing argument 'WORKFLOW'"),
    ):
        result = run_script(*args, cwd=tmp_path)
        assert result.returncode == 2 and result.stdout == ""
        lines = result.stderr.splitlines()
        assert lines[0].startswith(message) and lines[1].startswith("hint: see `wf "), result.stderr
        assert "╭" not in result.stderr  # not typer's box


def test_with_json_errors_are_json_on_stderr(tmp_path):
    result = run_script("status", "nope", "--json", cwd=tmp_path)
    error = json.loads(result.stderr)["error"]
    assert result.returncode == error["exit_code"] == 2 and error["name"] == "ConfigError"
    assert result.stdout == "" and error["hint"]
    usage = run_script("instances", "list", "--bogus", "--json", cwd=tmp_path)
    assert json.loads(usage.stderr)["error"]["name"] == "UsageError" and usage.returncode == 2


def test_json_output_times_are_iso_8601(project, wf):
    assert wf("trigger", "echo", "{}", "--id", "t1", "--wait").code == 0
    iso = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
    [listed] = json.loads(wf("instances", "list", "--json").out)
    assert iso.fullmatch(listed["created"])
    described = json.loads(wf("instances", "describe", "t1", "--json").out)
    times = [described["created"], described["start"], described["end"]]
    times += [described["steps"][0][k] for k in ("start", "end")]
    times += [described["steps"][0]["attempts"][0][k] for k in ("start", "end")]
    assert all(iso.fullmatch(t) for t in times), times
    events = [json.loads(line) for line in wf("tail", "t1", "--json").out.splitlines()]
    assert all(iso.fullmatch(e["timestamp"]) for e in events)
    c = client(project)
    try:  # the Python API keeps epoch seconds
        assert isinstance(c.describe("t1")["created"], float)
    finally:
        c.close()


def test_instances_list_pages_reverses_and_filters_by_time(project, wf):
    c = client(project)
    try:
        for i in range(5):
            c.create("echo", {}, f"i{i}")
        stamps = [c.get(f"i{i}").created_at for i in range(5)]
    finally:
        c.close()

    def ids(*args):
        r = wf("instances", "list", "--json", *args)
        assert r.code == 0, r
        return [x["id"] for x in json.loads(r.out)]

    assert ids("--per-page", "2") == ["i4", "i3"]
    assert ids("--per-page", "2", "--page", "2") == ["i2", "i1"]
    assert ids("--per-page", "2", "--page", "2", "--reverse") == ["i1", "i2"]
    assert ids("--limit", "1") == ["i4"]
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(stamps[2])) + f".{int(stamps[2] % 1 * 1e6):06d}"
    assert ids("--since", since) == ["i4", "i3", "i2"]
    assert ids("--until", since) == ["i1", "i0"]
    assert ids("--since", "1 hour") == ["i4", "i3", "i2", "i1", "i0"]
    assert ids("--until", "1 hour") == []
    empty = wf("instances", "list", "--page", "9")
    assert empty.code == 0 and "No instances found on page 9" in empty.err
    bad = wf("instances", "list", "--since", "yesterday-ish")
    assert bad.code == 2 and "--since 'yesterday-ish' is neither a time nor an age" in bad.err


def test_exit_codes_are_documented():
    table = README.split("Exit codes:", 1)[1].strip().split("\n\n", 1)[0]
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", table, re.M)}
    from wf import errors

    used = {cls.exit_code for cls in vars(errors).values() if isinstance(cls, type) and hasattr(cls, "exit_code")}
    assert used | {0, 1, 130} <= documented


# ---------------------------------------------------------------- 12. cron schedules in the README


def test_cron_schedules_are_documented_in_the_readme():
    section = README.split("## Cron schedules", 1)[1].split("\n## ", 1)[0]
    assert '"schedules": [' in section and "event.schedule" in section and "wf worker" in section
    # the example runs: tests/test_docs.py::test_the_cron_example_fires_on_the_fake_clock
