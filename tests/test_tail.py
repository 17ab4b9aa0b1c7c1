"""`wf tail`: the JSON stream from a real worker, and the live view rendered to a fixed width."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import _wf_env, wait_until
from rich.console import Console

from wf.cli.tail import TailModel
from wf.runtime.store.base import HistoryRow

SNAPSHOTS = Path(__file__).parent / "snapshots"

WORKFLOW = """
import logging
from wf import WorkflowEntrypoint, WorkflowTimeoutError

class Approval(WorkflowEntrypoint):
    async def run(self, event, step):
        print("checking order", event.payload["order"])
        def flaky(ctx):
            logging.getLogger("shop").warning("attempt %d", ctx.attempt)
            if ctx.attempt < 2:
                raise RuntimeError("payment service busy")
            return {"paid": True}
        paid = await step.do("charge", flaky, config={"retries": {"limit": 2, "delay": 0.2}})
        await step.sleep("cool-off", 0.2)
        approval = await step.wait_for_event("approval", "approval", timeout="30 seconds")
        return {"paid": paid["paid"], "by": approval.payload["by"]}
"""


def make_project(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src" / "index.py").write_text(WORKFLOW)
    (root / "wrangler.jsonc").write_text(
        json.dumps(
            {
                "name": "tail",
                "main": "src/index.py",
                "workflows": [{"name": "approval", "binding": "APPROVAL", "class_name": "Approval"}],
            }
        )
    )
    return root


@pytest.mark.slow
def test_tail_json_streams_a_real_instance_and_ends_with_it(tmp_path, wf_procs):
    project = make_project(tmp_path / "p")
    wf_procs.cli(project, "trigger", "approval", '{"order": "o-1"}', "--id", "t-1")
    tail = subprocess.Popen(
        [sys.executable, "-m", "wf", "tail", "t-1", "--json"],
        cwd=project,
        env=_wf_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wf_procs.worker(project).wait_ready()
        wait_until(lambda: _waiting_for_event(project), 15, "the instance to wait for its event")
        wf_procs.cli(project, "send-event", "t-1", "--type", "approval", "--payload", '{"by": "ann"}')
        out, err = tail.communicate(timeout=15)
    finally:
        tail.kill()
    events = [json.loads(line) for line in out.splitlines()]
    assert tail.returncode == 0, err
    types = [e["type"] for e in events]
    assert types[0] == "workflow_queued" and types[-1] == "workflow_completed"
    for expected in (
        "workflow_started",
        "step_started",
        "attempt_errored",
        "attempt_completed",
        "step_completed",
        "sleep_started",
        "sleep_completed",
        "wait_started",
        "event_received",
        "wait_completed",
    ):
        assert expected in types, expected
    assert all(e["instanceId"] == "t-1" and e["workflow"] == "approval" and "timestamp" in e for e in events)
    retry = next(e for e in events if e["type"] == "attempt_errored")
    assert retry["stepName"] == "charge" and retry["attempt"] == 1 and retry["retryDelayMs"] == 200
    assert retry["error"] == {"name": "RuntimeError", "message": "payment service busy"}
    logs = [(e.get("stepName"), e["line"]) for e in events if e["type"] == "log"]
    assert (None, "checking order o-1") in logs
    assert ("charge", "WARNING shop: attempt 2") in logs
    assert events[-1]["output"] == {"paid": True, "by": "ann"}


def _waiting_for_event(project: Path) -> bool:
    from wf.client import Client
    from wf.config import load_config

    client = Client(load_config(project / "wrangler.jsonc"))
    try:
        steps = client.describe("t-1")["steps"]
        return any(s["type"] == "waitForEvent" and s["status"] == "waiting" for s in steps)
    finally:
        client.close()


T0 = 1_800_000_000.0


def history(*events):
    rows = []
    for i, (dt, type, step, n, data) in enumerate(events, 1):
        rows.append(HistoryRow(i, 1, "order-processing", "order-42", T0 + dt, type, step, n, data))
    return rows


def test_live_view_matches_the_snapshot():
    rows = history(
        (0.0, "workflow_queued", None, None, None),
        (0.1, "workflow_started", None, None, None),
        (0.1, "log", None, None, {"stream": "stdout", "line": "checking order 42"}),
        (0.1, "step_started", "validate", 1, {}),
        (0.1, "attempt_started", "validate", 1, {"attempt": 1}),
        (0.3, "attempt_completed", "validate", 1, {"attempt": 1}),
        (0.3, "step_completed", "validate", 1, {}),
        (0.3, "step_started", "charge", 1, {}),
        (0.3, "attempt_started", "charge", 1, {"attempt": 1}),
        (0.4, "log", "charge", 1, {"stream": "log", "line": "WARNING shop: card service busy"}),
        (
            0.5,
            "attempt_errored",
            "charge",
            1,
            {
                "attempt": 1,
                "retryDelayMs": 10000,
                "nextRetryAt": T0 + 10.5,
                "error": {"name": "RuntimeError", "message": "busy"},
            },
        ),
        (10.5, "attempt_started", "charge", 1, {"attempt": 2}),
        (10.6, "attempt_completed", "charge", 1, {"attempt": 2}),
        (10.6, "step_completed", "charge", 1, {}),
        (10.6, "sleep_started", "cool-off", 1, {"durationMs": 3600000, "wakeAt": T0 + 3610.6}),
    )
    model = TailModel()
    console = Console(width=100, record=True, color_system=None, legacy_windows=False)
    for row in rows[:11]:
        model.apply(row)
    console.print(model.render(T0 + 4.0))  # during the retry delay
    for row in rows[11:]:
        model.apply(row)
    console.print(model.render(T0 + 20.0))  # sleeping
    rendered = console.export_text()
    assert rendered == (SNAPSHOTS / "tail_view.txt").read_text()
    assert "retry in 6.5s  RuntimeError: busy" in rendered and "wakes in 59m50s" in rendered
