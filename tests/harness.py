"""The engine's semantic tests run on the public harness, `wf.testing.WorkflowTest` (a fake clock
that jumps to the next timer whenever the runner is idle), with the project written to
`tmp_path` so that step limits and the like come from a real wrangler.jsonc.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pgtest import Schema, require_base_url

from wf.config import load_config
from wf.testing import WorkflowTest

TERMINAL = ("complete", "errored", "terminated")
STORE_URL: str | None = None  # the store every Harness uses; None: .wf/state.db (SQLite)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
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
    workflows = [
        {"name": n, "binding": n.upper().replace("-", "_"), "class_name": "C" + n.replace("-", "_")} for n in names
    ]
    for w in workflows:
        w.update((extra or {}).get(w["name"], {}))
    root.mkdir(parents=True, exist_ok=True)
    (root / "wrangler.jsonc").write_text(json.dumps({"name": "t", "main": "src/index.py", "workflows": workflows}))
    return root / "wrangler.jsonc"


class Harness(WorkflowTest):
    def __init__(
        self,
        root: Path,
        classes: dict[str, type],
        replay_always: bool = False,
        extra: dict | None = None,
        keep_warm: float = 60.0,
        concurrency: int = 1000,
    ):
        config = load_config(write_project(root, list(classes), extra))
        super().__init__(
            classes,
            config=config,
            state_dir=config.state_dir,
            store=STORE_URL,
            replay_always=replay_always,
            keep_warm=keep_warm,
            timeout=20.0,
            patience=0.5,  # as wf.testing's default: on a loaded machine a quick step can take 50 ms
            concurrency=concurrency,
        )

    def create(self, workflow: str, params=None, id=None):
        """Synchronous, returning the store row (the semantic tests read `row.id`)."""
        return self.client.create(workflow, params, id)

    async def run(self, workflow: str, params=None, id=None) -> dict:
        row = self.create(workflow, params, id)
        return await self.run_until(row.id)

    def describe(self, id: str) -> dict:
        return self.client.describe(id)
