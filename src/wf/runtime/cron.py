"""Cron `schedules`: every runner fires them, and the store makes each tick fire once.

A workflow's `schedules` are cron expressions in UTC, read by `cronsim`: five fields (minute
hour day-of-month month day-of-week, as Cloudflare takes them, with names, ranges, steps, `L`,
`W` and `#`), or six with a leading seconds field (a wf extension, handy for tests; Cloudflare
refuses it). When both day fields are restricted, a day matches if either does.

Each tick creates one instance: its id is deterministic (`cron-<hash of workflow and
cron>-<UTC time of the tick>`), its trigger is `{"source": "cron", "schedule": {"cron",
"scheduledTime"}}` and its event carries `event.schedule`. The last fired tick of each
(workflow, cron) lives in the store; a runner fires tick T with one transaction that moves
that mark forward only if it is older than T and creates the instance, so any number of
runners sharing a store (several `wf worker` on one SQLite file, or on many machines over one
PostgreSQL database) fire each tick exactly once.

Missed ticks: a schedule seen for the first time starts from then (nothing is back-filled);
ticks missed while no runner ran fire once, for the latest of them, when a runner starts;
a runner held up past several ticks likewise fires only the latest.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from cronsim import CronSim, CronSimError

if TYPE_CHECKING:
    from .clock import Clock
    from .store.aio import AsyncStore
    from .store.base import InstanceRow
    from .store.core import SQLStore as Store

log = logging.getLogger("wf.cron")
Schedule = tuple[str, str]  # (workflow, cron expression)


def _sim(cron: str, at: datetime, reverse: bool = False) -> CronSim:
    # Quartz's "?" (no specific value) reads as "*": cronsim then ANDs the other day field alone
    return CronSim(cron.replace("?", "*"), at, reverse=reverse)


def check(cron: str) -> str | None:
    """Why `cron` is not a usable expression (None when it is)."""
    fields = len(cron.split())
    if fields not in (5, 6):
        return f"it has {fields} field{'s' * (fields != 1)}, not 5 (or 6 with seconds first)"
    try:
        _sim(cron, datetime.now(UTC))
    except CronSimError as exc:
        return f"{str(exc).lower()} field" if str(exc).startswith("Bad ") else str(exc)
    return None


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(math.floor(ts), UTC)


def next_tick(cron: str, after: float) -> float | None:
    """The first tick strictly after `after` (seconds since the epoch); None if there is none."""
    try:
        return next(_sim(cron, _at(after))).timestamp()
    except (StopIteration, OverflowError, ValueError):  # past year 9999
        return None


def latest_tick(cron: str, after: float, until: float) -> float | None:
    """The last tick in (after, until], or None."""
    first = next_tick(cron, after)
    if first is None or first > until:
        return None
    # reverse iteration steps back one second before it looks: start a second past `until`
    return next(_sim(cron, _at(until) + timedelta(seconds=1), reverse=True)).timestamp()


def instance_id(workflow: str, cron: str, tick: float) -> str:
    digest = hashlib.sha1(f"{workflow}\n{cron}".encode()).hexdigest()[:10]
    stamp = "%Y%m%dT%H%M%SZ" if len(cron.split()) == 6 else "%Y%m%dT%H%MZ"
    return f"cron-{digest}-{datetime.fromtimestamp(tick, UTC).strftime(stamp)}"


def new_instance(workflow: str, cron: str, tick: float) -> dict:
    """The instance a tick creates, as `Store.create_instances` takes it."""
    schedule = {"cron": cron, "scheduledTime": int(round(tick * 1000))}
    return {
        "workflow": workflow,
        "id": instance_id(workflow, cron, tick),
        "params": "{}",
        "trigger": {"source": "cron", "schedule": schedule},
    }


class CronScheduler:
    """The schedules of one runner. The runner's claim loop calls `fire_due()` each time round and
    sleeps no later than the time it returns; times come from the runner's clock, so a fake clock
    (wf.testing) drives schedules too."""

    def __init__(self, schedules: list[Schedule], astore: AsyncStore, clock: Clock):
        self.schedules = list(dict.fromkeys(schedules))
        self.astore, self.clock = astore, clock
        self.marks: dict[Schedule, float] | None = None  # last tick handled here (fired here or elsewhere)
        self.next_due = -math.inf

    async def fire_due(self) -> float:
        """Fire every schedule whose tick has come (its latest tick only); return the next tick time."""
        if not self.schedules:
            return math.inf
        now = self.clock.now()
        if self.marks is None:
            self.marks = await self.astore.call(self._store().cron_marks, self.schedules, now)
        elif now < self.next_due:
            return self.next_due
        for key in self.schedules:
            tick = latest_tick(key[1], self.marks[key], now)
            if tick is not None:
                await self._fire(key, tick, now)
                self.marks[key] = tick
        upcoming = (next_tick(cron, self.marks[(workflow, cron)]) for workflow, cron in self.schedules)
        self.next_due = min((t for t in upcoming if t is not None), default=math.inf)
        return self.next_due

    def _store(self) -> Store:
        if self.astore.store is None:
            raise RuntimeError("the runner's store is not open: start the runner first")
        return self.astore.store

    async def _fire(self, key: Schedule, tick: float, now: float) -> InstanceRow | None:
        workflow, cron = key
        item = new_instance(workflow, cron, tick)
        call = asyncio.ensure_future(self.astore.call(self._store().fire_cron, workflow, cron, tick, item, now))
        try:
            row = await asyncio.shield(call)
        except asyncio.CancelledError:
            # stopping while the store fires the tick: it may commit all the same, and a tick that
            # fired is always said (the log is how an operator counts them)
            row = await call
            self._said(cron, workflow, row)
            raise
        self._said(cron, workflow, row)
        return row

    @staticmethod
    def _said(cron: str, workflow: str, row: InstanceRow | None) -> None:
        if row is not None:  # None: another runner fired this tick first
            log.info("cron %r fired %s: instance %s", cron, workflow, row.id)
