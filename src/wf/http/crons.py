"""Cron `schedules`: `wf dev` creates an instance of a workflow at each time its cron matches.

Cloudflare's semantics: five fields (minute hour day-of-month month day-of-week) in UTC; when
both day fields are restricted a day matches if either does. The instance's event carries
`event.schedule = {"cron": ..., "scheduledTime": <ms since epoch>}` and its trigger source is
`cron`.

Each fire gets a deterministic instance id (`cron-<hash of workflow and cron>-<UTC minute>`),
so two processes firing the same minute make one instance. A schedule missed while `wf dev` was
down is fired once on start (the latest missed time), not once per miss; the last time each
schedule was handled is kept in `<state>/crons.json`. A schedule never seen before starts from
now (nothing is back-filled on a first start).
"""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ..errors import ConflictError, ValidationError

log = logging.getLogger("wf.crons")

_NAMES = {
    3: {
        n: i + 1
        for i, n in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])
    },
    4: {n: i for i, n in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])},
}
_BOUNDS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
_FIELDS = ["minute", "hour", "day of month", "month", "day of week"]
MAX_SLEEP = 30.0


class Cron:
    """A parsed five-field cron expression."""

    def __init__(self, text: str):
        self.text = text
        parts = text.split()
        if len(parts) != 5:
            raise ValidationError(
                f"cron {text!r} must have 5 fields, has {len(parts)}",
                'e.g. "*/5 * * * *" (minute hour day-of-month month day-of-week)',
            )
        self.sets = [self._field(p, i) for i, p in enumerate(parts)]
        if 7 in self.sets[4]:
            self.sets[4] = (self.sets[4] - {7}) | {0}
        self.dom_any, self.dow_any = parts[2] in ("*", "?"), parts[4] in ("*", "?")

    def _field(self, text: str, index: int) -> set[int]:
        low, high = _BOUNDS[index]
        values: set[int] = set()
        for item in text.lower().split(","):
            rng, _, step_text = item.partition("/")
            try:
                step = int(step_text) if step_text else 1
                if rng in ("*", "?"):
                    a, b = low, high
                elif "-" in rng:
                    a, b = (self._value(v, index) for v in rng.split("-", 1))
                else:
                    a = self._value(rng, index)
                    b = high if step_text else a
            except ValueError:
                raise ValidationError(
                    f"cron {self.text!r}: {_FIELDS[index]} field {text!r} is not valid",
                    "use numbers, *, ranges a-b, steps */n and lists a,b",
                ) from None
            if step < 1 or not (low <= a <= high and low <= b <= high) or a > b:
                raise ValidationError(
                    f"cron {self.text!r}: {_FIELDS[index]} field {text!r} is out of range",
                    f"{_FIELDS[index]} goes from {low} to {high}",
                )
            values.update(range(a, b + 1, step))
        return values

    @staticmethod
    def _value(text: str, index: int) -> int:
        names = _NAMES.get(index, {})
        return names[text] if text in names else int(text)

    def _day_matches(self, day: datetime) -> bool:
        if day.month not in self.sets[3]:
            return False
        dom = day.day in self.sets[2]
        dow = (day.weekday() + 1) % 7 in self.sets[4]
        if self.dom_any and self.dow_any:
            return True
        if self.dom_any:
            return dow
        if self.dow_any:
            return dom
        return dom or dow

    def next_after(self, ts: float) -> float | None:
        """The first matching minute strictly after `ts` (seconds since epoch), within 5 years."""
        start = datetime.fromtimestamp(ts, UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = start.replace(hour=0, minute=0)
        for _ in range(366 * 5):
            if self._day_matches(day):
                for hour in sorted(self.sets[1]):
                    for minute in sorted(self.sets[0]):
                        at = day.replace(hour=hour, minute=minute)
                        if at >= start:
                            return calendar.timegm(at.timetuple())
            day += timedelta(days=1)
        return None

    def latest_in(self, after: float, until: float) -> float | None:
        """The last matching minute in (after, until], or None."""
        end = datetime.fromtimestamp(until, UTC).replace(second=0, microsecond=0)
        day = end.replace(hour=0, minute=0)
        floor = datetime.fromtimestamp(after, UTC) - timedelta(days=1)
        while day >= floor:
            if self._day_matches(day):
                for hour in sorted(self.sets[1], reverse=True):
                    for minute in sorted(self.sets[0], reverse=True):
                        at = day.replace(hour=hour, minute=minute)
                        if at <= end:
                            t = calendar.timegm(at.timetuple())
                            return t if t > after else None
            day -= timedelta(days=1)
        return None


def instance_id(workflow: str, cron: str, at: float) -> str:
    digest = hashlib.sha1(f"{workflow}\n{cron}".encode()).hexdigest()[:10]
    return f"cron-{digest}-{datetime.fromtimestamp(at, UTC).strftime('%Y%m%dT%H%MZ')}"


class CronScheduler:
    """Fires every declared schedule through `create(workflow, id, trigger)` (a blocking call, run
    on the caller's executor by `call`)."""

    def __init__(
        self,
        config,
        call: Callable,
        create: Callable,
        now: Callable[[], float] = time.time,
        say: Callable[[str], None] | None = None,
    ):
        self.config, self.call, self.create, self.now = config, call, create, now
        self.say = say or (lambda m: log.info(m))
        self.entries = [(w.name, Cron(c)) for w in config.workflows for c in w.schedules]
        self.path = Path(config.state_dir) / "crons.json"
        self.marks: dict[str, float] = {}

    @staticmethod
    def key(workflow: str, cron: Cron) -> str:
        return f"{workflow}\t{cron.text}"

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
            self.marks = {k: float(v) for k, v in data.items()} if isinstance(data, dict) else {}
        except (OSError, ValueError, TypeError):
            self.marks = {}

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.marks, indent=1, sort_keys=True))
        os.replace(tmp, self.path)

    async def _fire(self, workflow: str, cron: Cron, at: float) -> None:
        trigger = {"source": "cron", "schedule": {"cron": cron.text, "scheduledTime": int(at * 1000)}}
        iid = instance_id(workflow, cron.text, at)
        try:
            await self.call(self.create, workflow, iid, trigger)
            self.say(f"cron {cron.text!r} fired {workflow}: instance {iid}")
        except ConflictError:  # another process fired this minute already
            pass
        except Exception as exc:  # keep the schedule alive; say why this one did not fire
            self.say(f"cron {cron.text!r} could not create an instance of {workflow}: {exc}")

    async def catch_up(self) -> None:
        """On start: fire each schedule's latest missed time once; remember now for the new ones."""
        self._load()
        now = self.now()
        for workflow, cron in self.entries:
            mark = self.marks.get(self.key(workflow, cron))
            if mark is not None:
                missed = cron.latest_in(mark, now)
                if missed is not None:
                    await self._fire(workflow, cron, missed)
            self.marks[self.key(workflow, cron)] = now
        if self.entries:
            await self.call(self._save)

    async def run(self) -> None:
        if not self.entries:
            return
        await self.catch_up()
        while True:
            now = self.now()
            due = [(cron.next_after(self.marks[self.key(w, cron)]), w, cron) for w, cron in self.entries]
            due = [d for d in due if d[0] is not None]
            if not due:
                return
            at = min(d[0] for d in due)
            if at > now:
                await asyncio.sleep(min(at - now, MAX_SLEEP))
                continue
            for _, workflow, cron in due:  # each due schedule fires once, for its latest due time
                key = self.key(workflow, cron)
                latest = cron.latest_in(self.marks[key], now)
                if latest is not None:
                    await self._fire(workflow, cron, latest)
                    self.marks[key] = now
            await self.call(self._save)
