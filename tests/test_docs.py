"""The README is part of the product: its commands exist and its quickstart works."""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from wf.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def command_paths(group=None, prefix=()):
    group = group or typer.main.get_command(app)
    for name, cmd in group.commands.items():
        if getattr(cmd, "hidden", False):
            continue
        if hasattr(cmd, "commands"):
            yield from command_paths(cmd, prefix + (name,))
        else:
            yield prefix + (name,)


def test_every_command_is_in_the_readme_and_has_help_with_an_example():
    paths = list(command_paths())
    assert len(paths) >= 10
    for path in paths:
        words = " ".join(path)
        assert f"wf {words}" in README or (len(path) == 1 and re.search(rf"`wf [^`]*\b{words}\b", README)), (
            f"`wf {words}` is not documented in README.md"
        )
        cmd = typer.main.get_command(app)
        for part in path:
            cmd = cmd.commands[part]
        assert cmd.help and "Example:" in cmd.help, f"`wf {words}` has no help text with an example"


def test_readme_starts_with_the_two_fresh_machine_commands():
    block = README.split("```bash", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2
    assert "wf init" in commands[0] and "--wait" in commands[0]
    assert "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1].strip() in ci, ".ci/run must run exactly the README's test command"


@pytest.mark.slow
def test_readme_quickstart_runs(tmp_path):
    """The first command, after its install part (this test already runs in an installed venv)."""
    block = README.split("```bash", 1)[1].split("```", 1)[0]
    first = [line for line in block.splitlines() if line.strip() and not line.startswith("#")][0]
    after_install = first.split("&& ", 2)[2]  # drop `python3 -m venv .venv && .venv/bin/pip install ...`
    bin_dir = Path(sys.executable).parent
    script = re.sub(r"(\.\./)?\.venv/bin/", f"{bin_dir}/", after_install)
    env = {k: v for k, v in os.environ.items() if k not in ("WF_STORE", "WF_CRASH_AT")}
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert "complete:" in result.stderr and "TRK-o-1001" in result.stderr


# ---------------------------------------------------------------- every code example runs as written

FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
T_CRON = 1_796_005_200.0  # 2026-11-30T02:20:00Z: the 03:00 tick is 40 minutes away


def examples(lang: str | None = None) -> list[str]:
    return [body for kind, body in FENCE.findall(README) if lang is None or kind == lang]


def example(lang: str, containing: str) -> str:
    [found] = [body for body in examples(lang) if containing in body]
    return found


# each README example and the test that runs it: a new example with no test here fails the first test
EXERCISED = {
    ("bash", "python3 -m venv .venv"): "test_readme_quickstart_runs, and the fresh-clone run before release",
    ("python", "class OrderWorkflow"): "test_the_workflow_and_config_examples_run",
    ("jsonc", '"name": "shop"'): "test_the_workflow_and_config_examples_run",
    ("python", "wf.connect()"): "test_the_python_api_example_runs",
    ("python", "inst.subscribe(types="): "test_the_subscribe_example_follows_an_instance_to_its_end",
    ("text", "POST /api/orders 201"): "test_the_runner_log_example_is_what_the_runner_prints",
    ("python", "from wf.testing import WorkflowTest"): "test_the_testing_example_runs_under_plain_pytest",
    ("jsonc", '"name": "reports"'): "test_the_cron_example_fires_on_the_fake_clock",
    ("python", "class NightlyReport"): "test_the_cron_example_fires_on_the_fake_clock",
    ("bash", "WF_STORE=postgresql"): "test_the_command_lines_of_the_bash_examples_parse",
    ("bash", 'pytest -q -m "not slow"'): "test_the_command_lines_of_the_bash_examples_parse",
    ("text", "$ wf replay --check"): "test_the_changing_code_examples_check_and_branch_as_the_readme_says",
    ("python", 'await step.do("ship", ship)\nawait step.wait_for_event'): (
        "test_the_changing_code_examples_check_and_branch_as_the_readme_says"
    ),
    ("python", 'if await step.patched("send-shipment")'): (
        "test_the_changing_code_examples_check_and_branch_as_the_readme_says"
    ),
    ("python", 'await step.deprecate_patch("send-shipment")'): (
        "test_the_changing_code_examples_check_and_branch_as_the_readme_says"
    ),
    ("python", "class TokenWorkflow"): "test_the_delay_function_and_sensitive_example_runs",
    ("python", "class TransferWorkflow"): "test_the_rollback_example_undoes_credit_then_debit",
}


def test_every_code_example_in_the_readme_is_run_by_a_test():
    for lang, body in FENCE.findall(README):
        owners = [test for (kind, marker), test in EXERCISED.items() if kind == lang and marker in body]
        assert len(owners) == 1, f"README example has {len(owners)} tests here:\n```{lang}\n{body}```"


def write_shop(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src" / "index.py").write_text(example("python", "class OrderWorkflow"))
    (root / "wrangler.jsonc").write_text(example("jsonc", '"name": "shop"'))
    return root


def run_wf(*args: str) -> tuple[int, str, str]:
    """`wf ARGS` in-process through its console entry point: (exit code, stdout, stderr)."""
    import contextlib
    import io

    from wf.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0
    return code, out.getvalue(), err.getvalue()


async def test_the_workflow_and_config_examples_run(tmp_path, monkeypatch):
    from wf.testing import from_config

    project = write_shop(tmp_path / "shop")
    monkeypatch.chdir(project)
    code, out, _ = run_wf("check")
    assert code == 0 and "✓ order-processing" in out, out
    async with from_config(project / "wrangler.jsonc") as t:
        with t.introspect("order-processing") as intro:
            intro.modify_all(lambda m: m.mock_event("approval", {"approved": True}))
            inst = await t.create("order-processing", {"orderId": "o-1", "items": [{"qty": 1}]})
            await inst.wait_for_status("complete")  # the 5 s sleep passes on the fake clock
            assert await inst.get_output() == {"status": "completed", "transactionId": "txn-o-1", "tracking": "T-1"}


@pytest.mark.slow
def test_the_python_api_example_runs(tmp_path):
    project = write_shop(tmp_path / "shop")
    (project / "example.py").write_text(example("python", "wf.connect()"))
    env = {k: v for k, v in os.environ.items() if k not in ("WF_STORE", "WF_CRASH_AT")}
    result = subprocess.run(
        [sys.executable, "example.py"], cwd=project, capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "{'status': 'queued', 'output': None, 'error': None}",
        "{'status': 'queued', 'output': None, 'error': None}",
    ]


@pytest.mark.slow
def test_the_subscribe_example_follows_an_instance_to_its_end(tmp_path):
    project = tmp_path / "shop"
    (project / "src").mkdir(parents=True)
    (project / "src" / "index.py").write_text(
        "from wf import WorkflowEntrypoint\n\n\n"
        "class OrderWorkflow(WorkflowEntrypoint):\n"
        "    async def run(self, event, step):\n"
        "        await step.do('charge', lambda: 'charged')\n"
        "        await step.do('ship', lambda: 'shipped')\n"
        "        return 'done'\n"
    )
    (project / "wrangler.jsonc").write_text(example("jsonc", '"name": "shop"'))
    (project / "example.py").write_text(example("python", "inst.subscribe(types="))
    env = {k: v for k, v in os.environ.items() if k not in ("WF_STORE", "WF_CRASH_AT")}
    wf = [sys.executable, "-m", "wf"]
    subprocess.run([*wf, "trigger", "order-processing", "--id", "o-1", "--wait"], cwd=project, env=env, check=True)
    result = subprocess.run(
        [sys.executable, "example.py"], cwd=project, capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["step_completed charge", "step_completed ship", "workflow_completed None"]


def test_the_runner_log_example_is_what_the_runner_prints():
    from datetime import datetime

    from wf.cli.runlog import HumanLines
    from wf.runtime.events import LogEvent

    sample = example("text", "POST /api/orders 201").splitlines()
    failed = next(i for i, line in enumerate(sample) if "attempt 1 failed" in line)
    at = datetime.strptime("2026-11-30 " + sample[failed].split()[0], "%Y-%m-%d %H:%M:%S.%f").timestamp()
    trace = "Traceback (most recent call last):\n" + "\n".join(line[4:] for line in sample[failed + 1 :]) + "\n"
    data = {
        "attempt": 1,
        "error": {"name": "ConnectionError", "message": "bank down"},
        "nextRetryAt": at + 4.569 + 0.431,
        "traceback": trace,
    }
    record = logging.LogRecord("wf.events", logging.WARNING, __file__, 1, "", (), None)
    record.wf_event = {
        "id": "order-17",
        "workflow": "order-processing",
        "event": LogEvent(at, "attempt_errored", "process-payment", 1, data),
    }
    assert HumanLines(colour=False).format(record).splitlines() == sample[failed:]


def test_the_testing_example_runs_under_plain_pytest(tmp_path):
    """As written, under pytest-asyncio's default (strict) mode and with no async plugin at all."""
    (tmp_path / "test_approval.py").write_text(example("python", "from wf.testing import WorkflowTest"))
    for plugin_args in (["-o", "asyncio_mode=strict"], ["-p", "no:asyncio"]):
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin_args, "test_approval.py"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0 and "2 passed" in result.stdout, result.stdout + result.stderr


async def test_the_cron_example_fires_on_the_fake_clock(tmp_path, monkeypatch):
    from wf.testing import from_config

    project = tmp_path / "reports"
    (project / "src").mkdir(parents=True)
    (project / "src" / "index.py").write_text(example("python", "class NightlyReport"))
    (project / "wrangler.jsonc").write_text(example("jsonc", '"name": "reports"'))
    monkeypatch.chdir(project)
    code, out, _ = run_wf("check")
    assert code == 0 and "schedule '0 3 * * *': next at" in out and "schedule '30 12 * * MON-FRI'" in out, out
    async with from_config(project / "wrangler.jsonc", start_time=T_CRON) as t:
        await t.advance(30 * 60)  # 02:50: nothing yet
        assert t.client.list("nightly-report") == []
        await t.advance(15 * 60)  # 03:05: the 03:00 tick fired
        [row] = t.client.list("nightly-report")
        final = await t.run_until(row.id, workflow="nightly-report")
    assert final["output"] == {"cron": "0 3 * * *", "orders": 42}


def test_the_command_lines_of_the_bash_examples_parse():
    """Each `wf ...` line of the bash examples names real commands and options; each pip install
    names this repository's extras; each pytest -m names registered markers."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = set(project["project"]["optional-dependencies"])
    markers = {m.split(":")[0] for m in project["tool"]["pytest"]["ini_options"]["markers"]}
    for body in examples("bash"):
        for line in body.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("wf "):  # parsed as wf parses it (an unknown command or option fails), then --help
                code, out, err = run_wf(*shlex.split(line)[1:], "--help")
                assert code == 0 and "Usage:" in out, f"{line}: {err}"
            for extra in re.findall(r"pip install [^\n]*?\[(\w+)\]", line):
                assert extra in extras, f"{line}: no extra {extra!r}"
            assert "pip install wf" not in line and "'wf[" not in line, f"{line}: PyPI's `wf` is another project"
            for marker in re.findall(r'-m "([^"]+)"', line):
                assert set(re.findall(r"\w+", marker)) - {"not", "and", "or"} <= markers, line


# ---------------------------------------------------------------- changing code under running instances

ORDERS_CONFIG = json.dumps(
    {
        "name": "shop",
        "main": "src/index.py",
        "workflows": [{"name": "orders", "binding": "ORDERS", "class_name": "Orders"}],
    }
)
SHIPPED: list[str] = []  # the orders whose shipment a step function sent


def orders_module(snippet: str) -> str:
    """A README fragment of `run()` as a whole project file (charge and ship record what they did)."""
    body = "".join(f"        {line}\n" if line.strip() else "\n" for line in snippet.splitlines())
    return (
        "from test_docs import SHIPPED\n"
        "from wf import WorkflowEntrypoint\n\n\n"
        "class Orders(WorkflowEntrypoint):\n"
        "    async def run(self, event, step):\n"
        "        order = event.payload['orderId']\n"
        "        charge = lambda: f'charged {order}'\n"
        "        ship = lambda: SHIPPED.append(order) or f'shipped {order}'\n"
        f"{body}"
        "        return 'done'\n"
    )


def load_orders(project: Path, snippet: str) -> type:
    from wf.loader import package_for

    source = orders_module(snippet)
    (project / "src" / "index.py").write_text(source)
    sys.modules.pop(f"{package_for(project / 'src')}.index", None)  # `wf` runs in-process here: import it anew
    namespace: dict = {}
    exec(compile(source, str(project / "src" / "index.py"), "exec"), namespace)
    return namespace["Orders"]


async def test_the_changing_code_examples_check_and_branch_as_the_readme_says(tmp_path, monkeypatch):
    from wf.config import load_config
    from wf.testing import WorkflowTest

    project = tmp_path / "shop"
    (project / "src").mkdir(parents=True)
    (project / "wrangler.jsonc").write_text(ORDERS_CONFIG)
    monkeypatch.chdir(project)
    original = example("python", 'await step.do("ship", ship)\nawait step.wait_for_event')
    patched = example("python", 'if await step.patched("send-shipment")')
    deprecated = example("python", 'await step.deprecate_patch("send-shipment")')
    config = load_config(project / "wrangler.jsonc")
    SHIPPED.clear()

    # o-17 ran the original code past `ship` and waits for `delivered`; o-18 is asleep in `cool-off`
    async with WorkflowTest({"orders": load_orders(project, original)}, config=config, state_dir=config.state_dir) as t:
        t.client.create("orders", {"orderId": "o-17"}, "o-17")
        await t.run_until("o-17", ("waiting",))
        await t.advance(7 * 86400 + 1)
        assert t.client.describe("o-17")["steps"][-1]["name"] == "delivered"
        t.client.create("orders", {"orderId": "o-18"}, "o-18")
        await t.run_until("o-18", ("waiting",))
        now = t.clock.now()
    assert SHIPPED == ["o-17"]

    # the outright rename: the README's table, line for line
    load_orders(project, original.replace('"ship", ship', '"send-shipment", ship'))
    code, out, err = run_wf("replay", "--check")
    assert code == 1, err
    shown = example("text", "$ wf replay --check").split("\n", 1)[1]
    assert " ".join(out.split()) == " ".join(shown.split()), out  # the same table (a narrow one wraps its cells)

    # both ways kept: every instance matches; then each goes its own way
    patched_cls = load_orders(project, patched)
    code, out, err = run_wf("replay", "--check", "--json")
    assert code == 0 and {v["id"]: v["verdict"] for v in json.loads(out)["instances"]} == {
        "o-17": "matches",
        "o-18": "matches",
    }, out
    async with WorkflowTest({"orders": patched_cls}, config=config, state_dir=config.state_dir, start_time=now) as t:
        await t.advance(7 * 86400 + 1)  # o-18 wakes from cool-off on the new code
        assert [s["name"] for s in t.client.describe("o-18")["steps"]][2:4] == ["send-shipment", "send-shipment"]
        t.client.send_event("o-17", "delivered", {})
        t.client.send_event("o-18", "delivered", {})
        assert (await t.run_until("o-17"))["status"] == "complete"
        assert (await t.run_until("o-18"))["status"] == "complete"
        assert "ship" in [s["name"] for s in t.client.describe("o-17")["steps"]]
        t.client.create(
            "orders", {"orderId": "o-19"}, "o-19"
        )  # went past the mark the old way: kept for the last check
        o19 = await t.run_until("o-19", ("waiting",))
        assert o19["status"] == "waiting"
    assert SHIPPED == ["o-17", "o-18"]  # o-17's shipment was replayed, not sent again

    # the new way alone: an instance that went the old way is reported
    lines = patched.splitlines()  # the `if` and its two branches, replaced by the README's new way alone
    start = next(i for i, line in enumerate(lines) if line.startswith("if await step.patched"))
    new_way = "\n".join(lines[:start] + deprecated.splitlines() + lines[start + 4 :])
    assert "else" not in new_way and new_way.endswith(
        'await step.wait_for_event("delivered", "delivered", timeout="30 days")'
    )
    load_orders(project, new_way)
    code, out, err = run_wf("replay", "--check", "--json", "--status", "complete,waiting")
    verdicts = {v["id"]: v for v in json.loads(out)["instances"]}
    assert code == 1 and verdicts["o-17"]["verdict"] == "diverges", out
    assert "went past patch 'send-shipment' the old way" in verdicts["o-17"]["consequence"]
    assert verdicts["o-18"]["verdict"] == "matches" and verdicts["o-19"]["verdict"] == "matches", out


async def test_the_delay_function_and_sensitive_example_runs(tmp_path):
    from wf.testing import WorkflowTest

    namespace: dict = {}
    exec(compile(example("python", "class TokenWorkflow"), "README.md", "exec"), namespace)
    async with WorkflowTest({"tokens": namespace["TokenWorkflow"]}) as t:
        final = await t.run("tokens", id="t-1")
        issue = (await t.get("t-1").describe())["steps"][0]
    assert final == {"status": "complete", "output": {"authorized": True}, "error": None}
    assert issue["output"] == "[REDACTED]" and issue["config"]["retries"]["delay"] == "[dynamic]"
    first, second = issue["attempts"]
    assert round(second["start"] - first["end"], 3) == 3  # the wait the delay function read from the error


async def test_the_rollback_example_undoes_credit_then_debit(capsys):
    from wf.testing import WorkflowTest

    scope: dict = {}
    exec(compile(example("python", "class TransferWorkflow"), "README.md", "exec"), scope)
    async with WorkflowTest({"transfer": scope["TransferWorkflow"]}) as t:
        inst = await t.create("transfer", {"amount": 40})
        await inst.wait_for_status("errored")
        status = await inst.status()
        assert status["error"] == {"name": "NonRetryableError", "message": "the mail server refused the message"}
        assert status["rollback"] == {"outcome": "complete", "error": None}
        undone = [s for s in (await inst.describe())["steps"] if s["type"] == "rollback"]
        assert [s["name"] for s in undone] == ["credit", "debit"]  # newest step first
        because = "the mail server refused the message"
        assert undone[1]["output"] == {"refunded": 40, "step": "debit", "because": because}
        assert undone[1]["config"]["timeout"] == "2 minutes"
    assert "reversing the credit of 40" in capsys.readouterr().out
