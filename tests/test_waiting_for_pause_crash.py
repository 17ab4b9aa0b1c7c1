"""A runner restarting while an instance is `waitingForPause` pauses it without running its step
again (workers-sdk engine.test.ts): real `wf worker` subprocesses, a real SIGKILL mid-step, on
SQLite and on PostgreSQL. The step runs again only once the instance is resumed (at least once)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from conftest import wait_until
from pgtest import Schema, require_base_url

from wf.client import Client
from wf.config import load_config

pytestmark = [pytest.mark.crash, pytest.mark.slow]

WORKFLOW = """
import asyncio
from pathlib import Path

from wf import WorkflowEntrypoint


class Holds(WorkflowEntrypoint):
    async def run(self, event, step):
        here = Path(self.env.DIR)

        async def hold():
            with open(here / "runs.txt", "a") as runs:
                runs.write("run\\n")
            for _ in range(20 * 120):  # at most two minutes; the test lets it go (or kills it) long before
                if (here / "go").exists():
                    return "held"
                await asyncio.sleep(0.05)
            raise TimeoutError("never let go")

        return await step.do("hold", hold)
"""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request):
    if request.param == "sqlite":
        yield None
        return
    schema = Schema(require_base_url())
    yield schema.url
    schema.drop()


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "holds"
    (root / "src").mkdir(parents=True)
    (root / "src" / "index.py").write_text(WORKFLOW)
    config = {
        "name": "holds",
        "main": "src/index.py",
        "vars": {"DIR": str(root)},
        "workflows": [{"name": "holds", "binding": "HOLDS", "class_name": "Holds"}],
    }
    (root / "wrangler.jsonc").write_text(json.dumps(config))
    return root


def runs(project: Path) -> int:
    path = project / "runs.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_a_runner_restarting_while_an_instance_is_waiting_for_pause_pauses_it_without_rerunning_the_step(
    project, store_url, wf_procs
):
    wf_procs.store = store_url
    wf_procs.env = {"WF_LEASE": "1.0"} if store_url else {}  # a dead worker's claims outlive it by a second
    client = Client(load_config(project / "wrangler.jsonc", store=store_url))
    try:
        client.create("holds", None, "p1")
        first = wf_procs.worker(project).wait_ready()
        wait_until(lambda: runs(project) == 1, 30, "the step to start")
        assert client.pause("p1") == "waitingForPause"
        first.kill()
        assert first.proc.returncode == -signal.SIGKILL

        second = wf_procs.worker(project).wait_ready()
        wait_until(lambda: client.status("p1")["status"] == "paused", 30, "the restarted runner to pause p1")
        assert runs(project) == 1  # paused with no owner: the step was not run again, and cannot be now
        assert [s["status"] for s in client.describe("p1")["steps"]] in ([], ["running"])

        (project / "go").touch()
        client.resume("p1")
        wait_until(lambda: client.status("p1")["status"] == "complete", 30, "p1 to complete once resumed")
        assert client.status("p1")["output"] == "held"
        assert runs(project) == 2  # cut off by the kill, the step runs again once resumed (at least once)
        assert second.proc.poll() is None
    finally:
        client.close()
