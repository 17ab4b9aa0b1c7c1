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
    def __init__(self, binary: str, home: Path, port: int):
        self.binary, self.port, self.cwd = binary, port, home / "cwd"
        tmp = home / "tmp"
        (tmp / "update-check").mkdir(parents=True)
        (tmp / "xdg-config").mkdir()
        self.cwd.mkdir()
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
        done = subprocess.run(
            [self.binary, "workflows", *args, "--local", "--port", str(self.port)],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        out = ANSI.sub("", done.stdout + done.stderr)
        if ok:
            assert done.returncode == 0, f"wrangler workflows {' '.join(args)} exited {done.returncode}:\n{out}"
        else:
            assert done.returncode != 0, f"wrangler workflows {' '.join(args)} should have failed:\n{out}"
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
