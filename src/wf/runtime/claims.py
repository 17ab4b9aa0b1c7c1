"""A SQLite runner's claim: claim due instances and read what each needs to run, in one round
trip, on the event loop's thread when the store has nothing else to do and its write lock is free
(no hop to the store thread), else on the store thread. PostgreSQL workers use the store's
`claim_runs` instead (one transaction, its reads sent before its commit)."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import TYPE_CHECKING

from . import steps
from .store.base import Failed

if TYPE_CHECKING:
    from .runner import Runner

LOOK_AGAIN = 0.1  # seconds: after a failed look ahead, when the claim loop looks again


async def claim_work(runner: Runner, now: float, free: int, names: list, caps: dict) -> tuple[list, dict, float | None]:
    """`claim_and_load` on the loop's thread when the store is alone and its write lock free
    (no hop to the store thread), else on the store thread."""
    if runner.astore.alone(asyncio.get_running_loop()):
        done = claim_and_load(runner, now, free, names, caps, here=True)
        if done is not None:
            return done
    return await runner.astore.call(claim_and_load, runner, now, free, names, caps)


def claim_and_load(
    runner: Runner, now: float, free: int, names: list, caps: dict, here: bool = False
) -> tuple[list, dict, float | None] | None:
    """On the store's thread, one round trip: claim up to `free` due instances, read the run of
    each (its steps and losses), and, if fewer than `free` were due, when the next one is. A claim
    acknowledges nothing, so its commit is not synced on its own (Ops.unacknowledged). Only
    the claim may fail the call: a claimed instance whose run cannot be read here is read
    again by its execution, and a failed look ahead makes the loop look again soon. `here`: in
    a transaction begun only if the write lock is free now; None (nothing done) if it is not."""
    store = runner.store_ops
    due: float | None = None
    if store.commits_in_place and not caps:  # SQLite: a read first, so that no claim locks for nothing
        due = store.next_wake(names, caps, runner.only)
        if due is None or due > now:
            return [], {}, due
        due = None
    claim = partial(store.claim, runner.owner, now, runner.lease, free, names, caps, runner.only)
    with store.unacknowledged():  # the instance's first step commit syncs the claim with it
        if not here:
            rows = claim()
        else:
            done = store.run_batch_now([claim])
            if done is None:
                return None
            if isinstance(done[0], Failed):
                raise done[0].exc
            rows = done[0]
    loaded: dict[int, tuple] = {}
    try:
        progress = steps.progress_events()
        for row in rows:
            loaded[row.seq] = store.load_run(row.seq, progress)
        if len(rows) < free:
            due = store.next_wake(names, caps, runner.only)
    except Exception:
        due = now + LOOK_AGAIN
    return rows, loaded, due
