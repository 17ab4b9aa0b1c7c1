"""Wiring: a runner for a project's config, with `self.env` bindings that share its store."""

from __future__ import annotations

import asyncio
from typing import Any

from .client import AsyncClient
from .config import Config
from .loader import load_workflow_classes
from .runtime.runner import Registered, Runner


def build_runner(
    config: Config, classes: dict[str, type] | None = None, *, crons: bool = True, **options: Any
) -> Runner:
    """A runner for every workflow the config declares (classes imported from `main` unless given).
    `crons=False`: it fires no schedules (a runner started only to finish one instance)."""
    classes = classes if classes is not None else load_workflow_classes(config)
    registered = {
        w.name: Registered(classes[w.name], w.step_limit, w.concurrency_limit, w.schedules if crons else ())
        for w in config.workflows
    }
    runner = Runner(registered, config.state_dir, settings=config.settings, store_url=config.store_url, **options)
    runner.env = AsyncClient(config, clock=runner.clock, astore=runner.astore).env()
    return runner


async def run_until_done(runner: Runner, seq: int, on_tick=None, poll: float = 0.05) -> str:
    """Run `runner` until instance `seq` is complete, errored or terminated; return that status."""
    await runner.start()
    try:
        while True:
            row = await runner.astore.call(runner.store_ops.get_by_seq, seq)
            if row is None:
                return "unknown"
            if on_tick is not None:
                on_tick(row)
            if row.status in ("complete", "errored", "terminated"):
                return row.status
            await asyncio.sleep(poll)
    finally:
        await runner.stop()
