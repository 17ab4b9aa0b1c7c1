"""Retention: every runner deletes, in the background, the ended instances kept past their
retention (their own, or their workflow's `default_retention`), with their history."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .store.core import GC_BATCH

if TYPE_CHECKING:
    from .runner import Runner

log = logging.getLogger("wf.runner")


async def collect_expired(runner: Runner, now: float) -> bool:
    """Delete one batch of each workflow's instances kept past their retention (a transaction a
    batch, so a backlog never holds the store long); True if there may be more."""
    more = False
    for name, reg in runner.workflows.items():
        rows, woken = await runner.astore.call(runner.store_ops.delete_expired, name, *reg.retention, now, GC_BATCH)
        for seq in woken:
            runner.coord.notify(f"e:{seq}")
        if rows:
            log.info("deleted %d instance(s) of %s kept past their retention", len(rows), name)
        more = more or len(rows) == GC_BATCH
    return more
