"""`step.wait_for_event`: take the oldest unconsumed event of a type (or of any type), or time out.

Events sent before the wait is reached are kept and delivered. The wait is recorded with its
timeout before the instance may leave memory; a sent event, or the timeout, wakes it. Taking
an event and completing the step are one commit, so two waits never take the same event.
"""

from __future__ import annotations

from collections.abc import Callable

from ...errors import ConflictError, ValidationError, rebuild_error
from .. import codec
from ..crash import crash_point
from ..durations import MAX_SLEEP, format_duration, parse_duration, timed_out
from ..entrypoint import StepEvent
from ..store.base import EventRow, StepRow, StepWrite
from ..validate import check_event_type
from . import register
from .kind import EventSpec, StepKind, StepStatus, Wake, error_line

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (which `wf status` would pay for)
if TYPE_CHECKING:
    from typing import Any

    from ..engine import Execution


class WaitStatus(StepStatus):
    WAITING = "waiting", "⏰ Waiting"
    COMPLETE = "complete", "✅ Success"
    ERRORED = "errored", "❌ Error"


@register
class WaitForEvent(StepKind):
    name = "waitForEvent"
    display = "waitForEvent"
    label = "👀 Waiting for event"
    icon = "?"
    times = ("start", "end", "timeout_at")
    methods = ("wait_for_event",)
    Status = WaitStatus
    final = frozenset({WaitStatus.COMPLETE, WaitStatus.ERRORED})
    wakes = frozenset({Wake.TIMER, Wake.EVENT})  # the timeout, or an event sent to the instance
    events = (
        EventSpec(
            "wait_started", state="waiting", waits=True, shows={"event_type": "eventType", "wake_at": "timeoutAt"}
        ),
        EventSpec("wait_completed", state="complete", progress=True, ends=True),
        EventSpec("wait_timed_out", state="timed out", progress=True, ends=True),
    )

    # -- the WorkflowStep method -------------------------------------------------------------

    async def wait_for_event(
        self,
        x: Execution,
        name: str,
        event_type: str | None = None,
        *,
        type: str | None = None,
        timeout: Any = "24 hours",
    ) -> StepEvent:
        event_type = event_type if event_type is not None else type
        if event_type is not None:
            check_event_type(event_type)
        seconds = parse_duration(timeout, f"timeout of wait_for_event {name!r}")
        if seconds > MAX_SLEEP:
            raise ValidationError(
                f"timeout of wait_for_event {name!r} is longer than 365 days", "wait at most 365 days"
            )
        key, rec = x.lookup(self, name)
        if self.finished(rec):
            return self.replay(rec)
        recorded = rec is not None
        if rec is None:
            now = x.clock.now()
            rec = x.new_step(
                key, status=WaitStatus.WAITING.value, started_at=now, wake_at=now + seconds, event_type=event_type
            )
            if x.mods is not None and x.mods.event_timeout(key):
                rec.wake_at = now
        return await self._await(x, rec, event_type, recorded, seconds)

    def result(self, value: Any) -> StepEvent:
        return StepEvent(value["type"], value["payload"], value["timestamp"])

    # -- running -----------------------------------------------------------------------------

    async def _await(
        self, x: Execution, rec: StepRow, event_type: str | None, recorded: bool, timeout: float
    ) -> StepEvent:
        while True:
            seen = x.poke_count
            event = await self._next_event(x, rec, event_type)
            now = x.clock.now()
            if event is not None:
                taken = await self._take(x, rec, event, recorded, now)
                if taken is not None:
                    return taken
                continue  # another wait took it first; look again
            if now >= rec.wake_at:
                await self._time_out(x, rec, event_type, recorded, now, timeout)
            if x.poke_count != seen:
                continue
            if not recorded:
                status, wake = x.instance_state(rec.wake_at)
                await x.commit(StepWrite(rec, None, status, wake, events=self._started(rec, False, now)))
                recorded = True
                crash_point("waiting", rec.name)
                if x.poke_count != seen:
                    continue
            elif x.active_attempts == 0 and not x.deadlines:
                await x.hold_waiting(rec)
            await x.wait(self, rec.wake_at or now, event_type)

    def _next_event(self, x: Execution, rec: StepRow, event_type: str | None):
        if x.mods is not None:
            return x.mods.next_event(x, rec.key, event_type)
        return x.store_call(x.host.store_ops.next_event, x.seq, event_type)

    async def _take(self, x: Execution, rec: StepRow, event: EventRow, recorded: bool, now: float) -> Any:
        """Complete the wait with `event`; None when another wait committed it first."""
        output = '{"type":%s,"payload":%s,"timestamp":%r}' % (  # noqa: UP031 - JSON built from JSON parts
            codec.encode(event.type, "event type"),
            event.payload or "null",
            event.created_at,
        )
        timeout_at = rec.wake_at
        rec.status, rec.output, rec.ended_at, rec.wake_at = WaitStatus.COMPLETE.value, output, now, None
        events = self._started(rec, recorded, now) + [self.log(rec, now, "wait_completed", {"eventType": event.type})]
        try:
            await x.commit(StepWrite(rec, None, *x.instance_state(), consume_event=event.seq, events=events))
        except ConflictError:  # another wait took the event first; keep waiting
            rec.status, rec.output, rec.ended_at, rec.wake_at = WaitStatus.WAITING.value, None, None, timeout_at
            return None
        x.after_step()
        return self.result(codec.decode(output))

    async def _time_out(
        self, x: Execution, rec: StepRow, event_type: str | None, recorded: bool, now: float, timeout: float
    ):
        what = repr(event_type) + " " if event_type else ""
        info = {
            "name": "WorkflowTimeoutError",
            "message": f"{timed_out(timeout)}: wait_for_event {rec.name!r} got no {what}event in time",
        }
        rec.status, rec.error, rec.ended_at, rec.wake_at = WaitStatus.ERRORED.value, info, now, None
        events = self._started(rec, recorded, now) + [self.log(rec, now, "wait_timed_out", {"error": info})]
        await x.commit(StepWrite(rec, None, *x.instance_state(), events=events))
        x.after_step()
        raise rebuild_error(info)

    def _started(self, rec: StepRow, recorded: bool, now: float) -> list:
        if recorded:
            return []
        data = {"eventType": rec.event_type, "timeoutAt": rec.wake_at}
        return [self.log(rec, rec.started_at or now, "wait_started", data)]

    # -- describe ----------------------------------------------------------------------------

    def details(self, s: StepRow) -> dict:
        return {
            "event_type": s.event_type,
            "output": codec.decode(s.output),
            "error": s.error,
            "timeout_at": s.wake_at if s.status == WaitStatus.WAITING else None,
        }

    def full_output(self, d: dict, attempt: int | None = None) -> dict:
        """The event's payload as the output (Cloudflare's), and the type waited for."""
        out = super().full_output(d, attempt)
        event = out["output"]
        if isinstance(event, dict) and "payload" in event:
            out["output"] = event["payload"]
        return {**out, "event_type": d.get("event_type")}

    def cloudflare(self, d: dict, iso: Callable) -> dict:
        out = super().cloudflare(d, iso)
        output = out["output"]
        if isinstance(output, dict) and isinstance(output.get("timestamp"), (int, float)):
            out["output"] = {**output, "timestamp": iso(output["timestamp"])}
        return out

    def with_times(self, d: dict, iso: Callable) -> dict:
        out = super().with_times(d, iso)
        output = out.get("output")
        if isinstance(output, dict) and isinstance(output.get("timestamp"), (int, float)):
            out["output"] = {**output, "timestamp": iso(output["timestamp"])}  # the event's, not user data
        return out

    def human(self, d: dict) -> list[tuple[str, str, Any]]:
        fields = [("Event Type", "text", d.get("event_type") or "-")]
        if d.get("timeout_at"):
            fields.append(("Times Out At", "when", d["timeout_at"]))
        if d["status"] == WaitStatus.COMPLETE:
            fields.append(("Event", "json", d.get("output")))
        if d.get("error"):
            fields.append(("Error", "error", d["error"]))
        return fields

    # -- wf tail -----------------------------------------------------------------------------

    def detail(self, view: Any, now: float) -> str:
        if view.state == "waiting":
            event_type, timeout_at = view.facts.get("event_type"), view.facts.get("wake_at")
            kind = f"event {event_type!r}" if event_type else "any event"
            return f"waiting for {kind}, times out in {format_duration(max(0.0, (timeout_at or now) - now))}"
        if view.state == "timed out":
            return error_line(view.error).strip()
        return super().detail(view, now)
