"""An in-process runner on a fake clock, for the engine's semantic tests.

Time moves only when nothing else can: when the store has seen no write for a short moment,
the clock jumps to the next timer. A day-long sleep takes milliseconds.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from wf.client import Client
from wf.config import load_config
from wf.runtime.clock import FakeClock
from wf.service import build_runner

import pytest
from pgtest import Schema, require_base_url

TERMINAL = ("complete", "errored", "terminated")
STORE_URL: str | None = None  # the store every Harness uses; None: .wf/state.db (SQLite)


@pytest.fixture(params=["sqlite", "postgres"])
def harness_store(request):
    """Run a test once per store: SQLite, and PostgreSQL on a scratch schema (see pgtest.py)."""
    global STORE_URL
    if request.param == "sqlite":
        yield None
        return
    schema = Schema(require_base_url())
    STORE_URL = schema.url
    try:
        yield schema.url
    finally:
        STORE_URL = None
        schema.drop()


def write_project(root: Path, names: list[str], extra: dict | None = None) -> Path:
    workflows = [{"name": n, "binding": n.upper().replace("-", "_"), "class_name": "C" + n.replace("-", "_")}
                 for n in names]
    for w in workflows:
        w.update((extra or {}).get(w["name"], {}))
    root.mkdir(parents=True, exist_ok=True)
    (root / "wrangler.jsonc").write_text(json.dumps({"name": "t", "main": "src/index.py", "workflows": workflows}))
    return root / "wrangler.jsonc"


class Harness:
    def __init__(self, root: Path, classes: dict[str, type], replay_always: bool = False,
                 extra: dict | None = None, keep_warm: float = 60.0):
        self.config = load_config(write_project(root, list(classes), extra), store=STORE_URL)
        self.clock = FakeClock()
        self.classes = classes
        self.replay_always = replay_always
        self.keep_warm = keep_warm
        self.client = Client(self.config, clock=self.clock)
        self.runner = None

    async def __aenter__(self):
        self.runner = build_runner(self.config, self.classes, clock=self.clock, replay_always=self.replay_always,
                                   keep_warm=self.keep_warm, reap_interval=1e9)
        await self.runner.start()
        return self

    async def __aexit__(self, *exc):
        await self.runner.stop(grace=0.5)
        self.client.close()

    def create(self, workflow: str, params=None, id=None):
        return self.client.create(workflow, params, id)

    def _fingerprint(self):
        if hasattr(self.client.store, "activity"):
            return self.client.store.activity(), len(self.runner.astore._pending)
        row = self.client.store.conn.execute("SELECT max(updated_at), count(*) FROM instances").fetchone()
        steps = self.client.store.conn.execute("SELECT count(*), sum(attempts) FROM steps").fetchone()
        return row, steps, len(self.runner.astore._pending)

    async def settle(self, quiet: float = 0.02, timeout: float = 20.0) -> None:
        """Wait until nothing has changed for `quiet` seconds of real time."""
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.003)
            now = self._fingerprint()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
        raise AssertionError("the runner never settled")

    async def run_until(self, id: str, statuses=TERMINAL, timeout: float = 20.0, workflow: str | None = None) -> dict:
        """Drive the fake clock until instance `id` reaches one of `statuses`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await self.settle()
            status = self.client.status(id, workflow)
            if status["status"] in statuses:
                return status
            nxt = self.clock.next_timer()
            if nxt is None:
                raise AssertionError(f"instance {id} is stuck in {status['status']} with no timer pending")
            self.clock.set(nxt)
        raise AssertionError(f"instance {id} did not reach {statuses} in time: {self.client.status(id, workflow)}")

    async def run(self, workflow: str, params=None, id=None) -> dict:
        row = self.create(workflow, params, id)
        return await self.run_until(row.id)

    def describe(self, id: str) -> dict:
        return self.client.describe(id)
