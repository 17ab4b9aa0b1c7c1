"""The real wrangler CLI (npm, pinned) drives `wf dev` with `--local --port P`, unchanged.

wrangler is installed once into a cache folder by tests/install_wrangler.sh (.ci/run does it
first; this test runs it when wrangler is missing). If it cannot be installed the test FAILS
with the reason: a skipped compatibility test would hide a broken promise.

wrangler runs offline: metrics off, the npm update check pre-answered, in an empty folder (it
must not read the Python project's wrangler.jsonc).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from devserver import DevProcesses, copy_devapp, wait_for

from wf.client import Client
from wf.config import load_config

pytestmark = [pytest.mark.slow]

VERSION = "4.86.0"
INSTALLER = Path(__file__).parent / "install_wrangler.sh"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="session")
def wrangler_bin() -> str:
    try:
        done = subprocess.run(
            ["bash", str(INSTALLER)],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "WF_WRANGLER_VERSION": VERSION},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"cannot install wrangler@{VERSION} with npm ({exc}); run tests/install_wrangler.sh")
    if done.returncode != 0:
        pytest.fail(
            f"cannot install wrangler@{VERSION} with npm (tests/install_wrangler.sh exited "
            f"{done.returncode}):\n{done.stderr[-3000:]}"
        )
    path = done.stdout.strip().splitlines()[-1]
    assert os.access(path, os.X_OK), f"installer printed {path!r}, which is not an executable"
    return path


class Wrangler:
    """The wrangler CLI, offline; in an empty folder unless `cwd` (a project) is given."""

    def __init__(self, binary: str, home: Path, port: int = 8787, cwd: Path | None = None):
        self.binary, self.port, self.cwd = binary, port, cwd or home / "cwd"
        tmp = home / "tmp"
        (tmp / "update-check").mkdir(parents=True)
        (tmp / "xdg-config").mkdir()
        self.cwd.mkdir(exist_ok=True)
        (tmp / "update-check" / "wrangler-latest.json").write_text(
            json.dumps({"latest": VERSION, "lastUpdate": 9999999999999})
        )
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDFLARE_", "WRANGLER_"))}
        self.env.update(
            WRANGLER_SEND_METRICS="false",
            CI="1",
            CLOUDFLARE_CF_FETCH_ENABLED="false",
            TMPDIR=str(tmp),
            XDG_CONFIG_HOME=str(tmp / "xdg-config"),
            WRANGLER_LOG_PATH=str(home / "logs"),
            NO_COLOR="1",
            FORCE_COLOR="0",
        )

    def run(self, *args: str, ok: bool = True) -> str:
        return self.command("workflows", *args, "--local", "--port", str(self.port), ok=ok)

    def command(self, *args: str, ok: bool = True) -> str:
        done = subprocess.run(
            [self.binary, *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        out = ANSI.sub("", done.stdout + done.stderr)
        if ok:
            assert done.returncode == 0, f"wrangler {' '.join(args)} exited {done.returncode}:\n{out}"
        else:
            assert done.returncode != 0, f"wrangler {' '.join(args)} should have failed:\n{out}"
        return out


def has(out: str, *patterns: str) -> None:
    for pattern in patterns:
        assert re.search(pattern, out), f"{pattern!r} not in:\n{out}"


def test_wrangler_cli_drives_wf_dev(tmp_path, wrangler_bin):
    project = copy_devapp(tmp_path / "devapp")
    client = Client(load_config(project / "wrangler.jsonc"))
    devs = DevProcesses(tmp_path)
    try:
        dev = devs.start(project).wait_ready()
        w = Wrangler(wrangler_bin, tmp_path / "wrangler", dev.port)
        status = lambda iid, wf: client.get(iid, wf).status  # noqa: E731

        out = w.run("list")
        has(
            out,
            f"wrangler {re.escape(VERSION)}",
            "Showing 3 workflows from local dev session:",
            r"│ order-processing\s+│ devapp\s+│ OrderWorkflow",
            r"│ quick\s+│ devapp\s+│ QuickWorkflow",
        )

        has(
            w.run("describe", "quick"),
            r"Name:\s+quick",
            r"Script Name:\s+devapp",
            r"Class Name:\s+QuickWorkflow",
            "Instance Status Counts:",
            r"complete:\s+0",
            r"waitingForPause:\s+0",
        )

        has(
            w.run("trigger", "quick", '{"n": 4}', "--id", "q1"),
            '🚀 Workflow instance "q1" has been triggered successfully',
        )
        wait_for(lambda: status("q1", "quick") == "complete", 10, "q1 to complete")
        has(w.run("instances", "list", "quick"), "Showing 1 instance from page 1:", r"│ q1\s+│", "✅ Completed")
        has(w.run("instances", "list", "quick", "--status", "errored"), 'There are no instances in workflow "quick"')
        has(
            w.run("instances", "describe", "quick", "q1"),
            "Describing latest instance:",
            r"Instance Id:\s+q1",
            r"Status:\s+✅ Completed",
            r"Last Successful Step:\s+double-1",
            r"Name:\s+double-1",
            r"Type:\s+🎯 Step",
            r"Success:\s+✅ Yes",
            r"Output:\s+8",
            "✅ Success",
        )

        has(
            w.run("trigger", "order-processing", '{"orderId": "o1"}', "--id", "o1"),
            '🚀 Workflow instance "o1" has been triggered successfully',
        )
        wait_for(lambda: status("o1", "order-processing") == "waiting", 10, "o1 to wait for its event")
        has(
            w.run("instances", "pause", "order-processing", "o1"),
            '⏸️ The instance "o1" from order-processing was paused successfully',
        )
        wait_for(lambda: status("o1", "order-processing") == "paused", 10, "o1 to pause")
        has(
            w.run("instances", "resume", "order-processing", "o1"),
            '🔄 The instance "o1" from order-processing was resumed successfully',
        )
        wait_for(lambda: status("o1", "order-processing") == "waiting", 10, "o1 to wait again")
        has(
            w.run("instances", "send-event", "order-processing", "o1", "--type", "approval", "--payload", '{"ok":1}'),
            '📤 The event with type "approval" and payload "{"ok":1}" was sent to the instance "o1" '
            "from order-processing",
        )
        wait_for(lambda: status("o1", "order-processing") == "complete", 10, "o1 to complete")
        assert json.loads(client.get("o1", "order-processing").output)["approved"] == {"ok": 1}
        has(
            w.run("instances", "describe", "order-processing"),
            'Latest instance is "o1"',
            r"Instance Id:\s+o1",
            r"Name:\s+await-approval-1",
            r"Type:\s+👀 Waiting for event",
            r'Output:\s+\{"type":"approval","payload":\{"ok":1\}',
            r"Name:\s+ship-1",
        )

        has(
            w.run("instances", "restart", "order-processing", "o1"),
            '🥷 The instance "o1" from order-processing was restarted successfully',
        )
        wait_for(lambda: status("o1", "order-processing") == "waiting", 10, "o1 to run again and wait")
        has(
            w.run("instances", "terminate", "order-processing", "latest"),
            'Latest instance is "o1"',
            '🥷 The instance "o1" from order-processing was terminated successfully',
        )
        assert status("o1", "order-processing") == "terminated"

        has(
            w.run("instances", "terminate", "order-processing", "o1", ok=False),
            r"Local API error: Cannot terminate instance 'o1'",
        )
        has(
            w.run("instances", "describe", "quick", "nope", ok=False),
            r"Local API error: Workflow instance 'nope' not found\.",
        )
        has(w.run("describe", "nonexistent-wf", ok=False), r"Local API error: Workflow 'nonexistent-wf' not found\.")
        has(w.run("trigger", "quick", "--id", "bad id", ok=False), r"Local API error: Instance id 'bad id' is invalid")

        has(w.run("delete", "quick"), '✅ Workflow "quick" instances removed successfully from local dev session.')
        assert client.list("quick") == []
        has(w.run("instances", "list", "quick"), 'There are no instances in workflow "quick"')
        assert dev.stop() == 0
    finally:
        client.close()
        devs.cleanup()


# ---------------------------------------------------------------- inside a scaffolded project (issue 15)


def scaffold(tmp_path: Path, template: str) -> Path:
    from wf.cli import main

    try:
        main(["init", str(tmp_path / template), "--template", template])
    except SystemExit as exc:
        assert not exc.code, f"wf init --template {template} failed"
    return tmp_path / template


@pytest.mark.parametrize("template", ["cloudflare", "default"])
def test_wrangler_deploy_dry_run_accepts_what_wf_init_writes(tmp_path, wrangler_bin, template):
    """--dry-run bundles and checks the config and modules and stops before any upload: it needs
    no network and no Cloudflare account (the offline env of `Wrangler` proves it)."""
    project = scaffold(tmp_path, template)
    w = Wrangler(wrangler_bin, tmp_path / "wrangler", cwd=project)
    out = w.command("deploy", "--dry-run", "--outdir", str(tmp_path / "bundle"))
    has(out, f"wrangler {re.escape(VERSION)}", "--dry-run: exiting now.")
    if template == "cloudflare":
        has(out, r"env\.MY_WORKFLOW \(MyWorkflow\)\s+Workflow")
        assert (tmp_path / "bundle" / "entry.py").is_file()
    else:
        has(out, r"env\.ORDERS \(OrderWorkflow\)\s+Workflow", r"env\.APPROVALS \(ApprovalWorkflow\)\s+Workflow")
        has(out, r"workflows/order_processing\.py\s+│ python", r"workflows/approval\.py\s+│ python")
        assert (tmp_path / "bundle" / "index.py").is_file()
    assert "ERROR" not in out and "python_workers" not in out


def test_wrangler_workflows_local_commands_work_inside_a_scaffolded_project(tmp_path, wrangler_bin):
    """Run from the project's folder, wrangler reads its wrangler.jsonc first (before wf init gave it
    the python_workers flag, every command stopped there); then it drives wf dev."""
    project = scaffold(tmp_path, "default")
    client = Client(load_config(project / "wrangler.jsonc"))
    devs = DevProcesses(tmp_path)
    try:
        dev = devs.start(project).wait_ready()
        w = Wrangler(wrangler_bin, tmp_path / "wrangler", dev.port, cwd=project)
        status = lambda iid, wf: client.get(iid, wf).status  # noqa: E731
        has(w.run("list"), "Showing 2 workflows from local dev session:", r"│ order-processing\s+│", r"│ approval\s+│")
        has(w.run("describe", "approval"), r"Name:\s+approval", r"Class Name:\s+ApprovalWorkflow")
        has(w.run("trigger", "approval", '{"approver": "ann"}', "--id", "a1"), '"a1" has been triggered')
        wait_for(lambda: status("a1", "approval") == "waiting", 10, "a1 to wait for its approval")
        has(w.run("instances", "list", "approval"), r"│ a1\s+│")
        has(w.run("instances", "pause", "approval", "a1"), "was paused successfully")
        wait_for(lambda: status("a1", "approval") == "paused", 10, "a1 to pause")
        has(w.run("instances", "resume", "approval", "a1"), "was resumed successfully")
        wait_for(lambda: status("a1", "approval") == "waiting", 10, "a1 to wait again")
        payload = '{"approved": true, "by": "ann"}'
        has(w.run("instances", "send-event", "approval", "a1", "--type", "approval", "--payload", payload), "was sent")
        wait_for(lambda: status("a1", "approval") == "complete", 10, "a1 to complete")
        has(w.run("instances", "describe", "approval", "a1"), r"Status:\s+✅ Completed", r"Name:\s+record-decision-1")
        has(w.run("instances", "restart", "approval", "a1"), "was restarted successfully")
        wait_for(lambda: status("a1", "approval") == "waiting", 10, "a1 to run again and wait")
        has(w.run("instances", "terminate", "approval", "a1"), "was terminated successfully")
        assert status("a1", "approval") == "terminated"
        has(w.run("delete", "approval"), "instances removed successfully")
        assert dev.stop() == 0
    finally:
        client.close()
        devs.cleanup()


# ---------------------------------------------------------------- terminate --rollback (wrangler 4.110, Node 22)

ROLLBACK_INSTALLER = Path(__file__).parent / "install_wrangler_node22.sh"
SAGAAPP = Path(__file__).parent / "fixtures" / "sagaapp"


@pytest.fixture(scope="session")
def wrangler_with_rollback() -> tuple[str, str]:
    """(the folder of Node 22's `node`, wrangler 4.110's binary): `--rollback` came after the pinned 4.86,
    with wranglers that need Node 22; both come from npm (tests/install_wrangler_node22.sh)."""
    try:
        done = subprocess.run(["bash", str(ROLLBACK_INSTALLER)], capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"cannot install wrangler and Node 22 with npm ({exc}); run {ROLLBACK_INSTALLER.name}")
    if done.returncode != 0:
        pytest.fail(f"{ROLLBACK_INSTALLER.name} exited {done.returncode}:\n{done.stderr[-3000:]}")
    node_dir, binary = done.stdout.strip().splitlines()[-2:]
    assert os.access(binary, os.X_OK) and os.access(Path(node_dir) / "node", os.X_OK), done.stdout
    return node_dir, binary


def test_wrangler_terminate_rollback_runs_the_rollback_handlers(tmp_path, wrangler_with_rollback):
    """`wrangler workflows instances terminate ID --rollback --local` against wf dev: the handlers run,
    then the instance ends terminated (Cloudflare's workflows-shared 0.12, July 2026)."""
    node_dir, binary = wrangler_with_rollback
    ignore = shutil.ignore_patterns(".wf", "__pycache__")
    project = Path(shutil.copytree(SAGAAPP, tmp_path / "saga-shop", ignore=ignore))
    ledger = tmp_path / "ledger.txt"
    client = Client(load_config(project / "wrangler.jsonc"))
    devs = DevProcesses(tmp_path)
    try:
        dev = devs.start(project).wait_ready()
        w = Wrangler(binary, tmp_path / "wrangler", dev.port)
        w.env["PATH"] = f"{node_dir}{os.pathsep}{w.env.get('PATH', '')}"
        client.create("booking", {"ledger": str(ledger)}, "b1")
        wait_for(lambda: client.get("b1", "booking").status == "waiting", 15, "b1 to wait for its payment")

        out = w.run("instances", "terminate", "booking", "b1", "--rollback")
        has(out, "wrangler 4.110.0", '🥷 The instance "b1" from booking was terminated successfully')
        wait_for(lambda: client.get("b1", "booking").status == "terminated", 15, "b1 to end terminated")
        assert ledger.read_text().splitlines() == ["release 12A"]  # the handler ran, once
        assert client.status("b1", "booking")["rollback"] == {"outcome": "complete", "error": None}
        has(w.run("instances", "describe", "booking", "b1"), r"Status:\s+🚫 Terminated", r"reserve-1")
        assert dev.stop() == 0
    finally:
        client.close()
        devs.cleanup()
