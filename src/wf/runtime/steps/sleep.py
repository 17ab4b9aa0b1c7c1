"""`step.sleep` and `step.sleep_until`: a durable timer. The wake time is committed first; the
instance may then leave memory and is replayed when the time comes, on any runner."""

from __future__ import annotations

from collections.abc import Callable

from ...errors import ValidationError
from ..crash import crash_point
from ..durations import MAX_SLEEP, format_duration, parse_duration, parse_instant
from ..store.base import StepWrite
from . import register
from .kind import EventSpec, StepKind, StepStatus, Wake

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (which `wf status` would pay for)
if TYPE_CHECKING:
    from typing import Any

    from ..engine import Execution


class SleepStatus(StepStatus):
    WAITING = "waiting", "⏰ Waiting"
    COMPLETE = "complete", "✅ Success"


@register
class Sleep(StepKind):
    name = "sleep"
    display = "sleep"
    label = "💤 Sleeping"
    icon = "z"
    times = ("start", "end", "wake_at")
    methods = ("sleep", "sleep_until")
    Status = SleepStatus
    final = frozenset({SleepStatus.COMPLETE})
    wakes = frozenset({Wake.TIMER})
    events = (
        EventSpec("sleep_started", state="sleeping", waits=True, shows={"wake_at": "wakeAt"}),
        EventSpec("sleep_completed", state="complete", progress=True, ends=True),
    )

    # -- the WorkflowStep methods ------------------------------------------------------------

    async def sleep(self, x: Execution, name: str, duration: Any) -> None:
        seconds = parse_duration(duration, f"duration of sleep {name!r}")
        if seconds > MAX_SLEEP:
            raise ValidationError(f"sleep {name!r} of {duration!r} is longer than 365 days", "sleep at most 365 days")
        await self.run(x, name, lambda now: now + seconds)

    async def sleep_until(self, x: Execution, name: str, when: Any) -> None:
        target = parse_instant(when, f"time of sleep_until {name!r}")

        def wake_at(now: float) -> float:
            if target < now:
                raise ValidationError(
                    f"sleep_until {name!r} was given a time in the past ({when!r})", "pass a time in the future"
                )
            if target - now > MAX_SLEEP:
                raise ValidationError(
                    f"sleep_until {name!r} was given {when!r}, more than 365 days away", "sleep at most 365 days"
                )
            return target

        await self.run(x, name, wake_at)

    # -- running -----------------------------------------------------------------------------

    async def run(self, x: Execution, name: str, wake_at: Callable[[float], float]) -> None:
        key, rec = x.lookup(self, name)
        if self.finished(rec):
            return self.replay(rec)
        now = x.clock.now()
        if rec is None:
            wake = wake_at(now)
            if x.mods is not None:
                wake = x.mods.sleep_wake(key, now, wake)
            rec = x.new_step(key, status=SleepStatus.WAITING.value, started_at=now, wake_at=wake)
            status, instance_wake = x.instance_state(wake)
            data = {"durationMs": round((wake - now) * 1000), "wakeAt": wake}
            await x.commit(
                StepWrite(rec, None, status, instance_wake, events=[self.log(rec, now, "sleep_started", data)])
            )
        elif rec.wake_at > now:
            await x.hold_waiting(rec)
        crash_point("sleeping", rec.name)
        due = rec.wake_at if rec.wake_at is not None else x.clock.now()  # a sleep always has one
        if due > x.clock.now():
            await x.wait(self, due)
        rec.status, rec.ended_at = SleepStatus.COMPLETE.value, x.clock.now()
        events = [self.log(rec, rec.ended_at, "sleep_completed")]
        await x.commit(StepWrite(rec, None, *x.instance_state(), events=events))
        x.after_step()

    # -- describe ----------------------------------------------------------------------------

    def details(self, s) -> dict:
        return {"wake_at": s.wake_at if s.status == SleepStatus.WAITING else None}

    def human(self, d: dict) -> list[tuple[str, str, Any]]:
        return [("Wakes At", "when", d["wake_at"])] if d.get("wake_at") else []

    def detail(self, view: Any, now: float) -> str:
        wake_at = view.facts.get("wake_at")
        if view.state == "sleeping" and wake_at:
            return f"wakes in {format_duration(max(0.0, wake_at - now))}"
        return super().detail(view, now)
