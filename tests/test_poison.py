"""A step that kills its runner every time does not crash-loop forever: after WF_MAX_RECOVERY_ATTEMPTS
(here 5) lost runners with no progress the instance ends errored, and the steps before it are not
run again."""

from __future__ import annotations

import json

import pytest
from conftest import wait_until

from wf.client import Client
from wf.config import load_config

pytestmark = [pytest.mark.crash, pytest.mark.slow]

CODE = """
import os, signal
from pathlib import Path
from wf import WorkflowEntrypoint

LEDGER = Path(__file__).resolve().parent.parent / "ledger.txt"

class Poison(WorkflowEntrypoint):
    async def run(self, event, step):
        def ok():
            with open(LEDGER, "a") as f:
                f.write("ok\\n")
            return 1
        await step.do("fine", ok)
        def boom():
            with open(LEDGER, "a") as f:
                f.write("boom\\n")
            os.kill(os.getpid(), signal.SIGKILL)
        await step.do("boom", boom)
"""


def test_a_step_that_kills_its_runner_ends_the_instance_after_five_losses(tmp_path, wf_procs):
    project = tmp_path / "p"
    (project / "src").mkdir(parents=True)
    (project / "src" / "index.py").write_text(CODE)
    (project / "wrangler.jsonc").write_text(
        json.dumps(
            {
                "name": "poison",
                "main": "src/index.py",
                "workflows": [{"name": "poison", "binding": "POISON", "class_name": "Poison"}],
            }
        )
    )
    wf_procs.cli(project, "trigger", "poison", "--id", "p1")
    client = Client(load_config(project / "wrangler.jsonc"))
    for _ in range(7):
        worker = wf_procs.worker(project, env={"WF_MAX_RECOVERY_ATTEMPTS": "5"})
        wait_until(
            lambda: worker.proc.poll() is not None or client.status("p1")["status"] == "errored",  # noqa: B023
            20,
            "the worker to die or the instance to end",
        )
        if client.status("p1")["status"] == "errored":
            break
    status = client.status("p1")
    assert status["status"] == "errored"
    assert status["error"]["name"] == "WorkflowFatalError" and "died 5 times" in status["error"]["message"]
    ledger = (project / "ledger.txt").read_text().split()
    assert ledger == ["ok"] + ["boom"] * 5
    worker.stop()
