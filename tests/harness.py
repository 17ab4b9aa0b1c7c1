"""The engine's semantic tests run on the public harness, `wf.testing.WorkflowTest`, with the
project written to `tmp_path` (so step limits and the like come from a real wrangler.jsonc)."""

from __future__ import annotations

import json
from pathlib import Path

from wf.config import load_config
from wf.runtime.store.base import TERMINAL
from wf.testing import WorkflowTest


def write_project(root: Path, names: list[str], extra: dict | None = None) -> Path:
    workflows = [{"name": n, "binding": n.upper().replace("-", "_"), "class_name": "C" + n.replace("-", "_")}
                 for n in names]
    for w in workflows:
        w.update((extra or {}).get(w["name"], {}))
    root.mkdir(parents=True, exist_ok=True)
    (root / "wrangler.jsonc").write_text(json.dumps({"name": "t", "main": "src/index.py", "workflows": workflows}))
    return root / "wrangler.jsonc"


class Harness(WorkflowTest):
    def __init__(self, root: Path, classes: dict[str, type], replay_always: bool = False,
                 extra: dict | None = None, keep_warm: float = 60.0):
        config = load_config(write_project(root, list(classes), extra))
        super().__init__(classes, config=config, state_dir=config.state_dir, replay_always=replay_always,
                         keep_warm=keep_warm, timeout=20.0)

    def create(self, workflow: str, params=None, id=None):
        """Synchronous, returning the store row (the semantic tests look at `row.id`)."""
        return self.client.create(workflow, params, id)

    async def run(self, workflow: str, params=None, id=None) -> dict:
        row = self.create(workflow, params, id)
        return await self.run_until(row.id)

    def describe(self, id: str) -> dict:
        return self.client.describe(id)


__all__ = ["Harness", "write_project", "TERMINAL"]
