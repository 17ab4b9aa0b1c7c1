"""The event log's record, and the names of the events an instance writes about itself.

Every entry of an instance's log (what `wf tail` streams, shaped like Cloudflare's instance
events) is a `LogEvent`. Two families of names share the log:

- the instance's own events, named here once (`InstanceEvent`), written by the store and the
  runner: queued, started, paused, ..., a printed line (`log`), a lost runner;
- the events of a step kind (`step_started`, `sleep_completed`, ...), declared by the kind in
  its own module (runtime/steps) and looked up through the step registry.

A reader that meets a name neither family declares fails loudly (`UnknownKindError`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple

from .durations import iso_time

if TYPE_CHECKING:
    from .store.base import HistoryRow


class LogEvent(NamedTuple):
    """One entry of an instance's log, as written. A NamedTuple on purpose: stores unpack it by
    position, `(at, type, step, n, data)`, exactly as they did the plain tuples before it."""

    at: float
    type: str
    step: str | None = None
    n: int | None = None
    data: dict | None = None


class InstanceEvent(StrEnum):
    """An event about the instance as a whole, with what a reader makes of it: the instance's
    status after it (None: unchanged), whether it counts as progress for the poison-step guard
    (a restart starts afresh), and whether the instance has ended."""

    status: str | None
    progress: bool
    ends: bool

    def __new__(cls, value: str, status: str | None = None, progress: bool = False, ends: bool = False):
        member = str.__new__(cls, value)
        member._value_ = value
        member.status, member.progress, member.ends = status, progress, ends
        return member

    QUEUED = "workflow_queued", "queued"
    STARTED = "workflow_started", "running"
    COMPLETED = "workflow_completed", "complete", False, True
    ERRORED = "workflow_errored", "errored", False, True
    TERMINATED = "workflow_terminated", "terminated", False, True
    PAUSED = "workflow_paused", "paused"
    RESUMED = "workflow_resumed", "queued"
    RESTARTED = "workflow_restarted", "queued", True
    WAITING_FOR_PAUSE = "workflow_waiting_for_pause", "waitingForPause"
    # waiting again with no step event of its own: a replay found the wait it had been in (after a
    # resume, the claim made the queued instance running); readers that follow the log learn it here
    WAITING = "workflow_waiting", "waiting"
    EVENT_RECEIVED = "event_received"
    RUNNER_LOST = "runner_lost"
    LOG = "log"  # a line printed or logged by workflow code
    ROLLBACK_STARTED = "rollback_started"  # the first rollback handler starts (steps/rollback.py)
    ROLLBACK_COMPLETED = "rollback_completed"  # every handler ran, logged with the instance's end
    ROLLBACK_ERRORED = "rollback_errored"  # a handler failed for good: the rollback stopped there


_INSTANCE = {e.value: e for e in InstanceEvent}


def instance_event(name: str) -> InstanceEvent | None:
    """The instance event called `name`, or None when the name is not one (a step kind's, perhaps)."""
    return _INSTANCE.get(name)


def shape(
    type: str,
    at: float,
    instance_id: Any,
    workflow: Any,
    step: str | None,
    n: int | None,
    data: dict | None,
    iso: bool = True,
) -> dict:
    """Cloudflare's instance event shape, `{"type", "instanceId", "workflow", "timestamp", "stepName",
    "count", ...data}`, with every time (`timestamp`, `nextRetryAt`, `wakeAt`...) in ISO 8601 (the
    command line's and the HTTP API's JSON), or as epoch seconds (`iso=False`: the Python API's)."""
    when = iso_time if iso else (lambda ts: ts)
    out: dict[str, Any] = {"type": type, "instanceId": instance_id, "workflow": workflow, "timestamp": when(at)}
    if step is not None:
        out["stepName"], out["count"] = step, n
    for key, value in (data or {}).items():
        if value is None and key == "traceback":
            continue
        is_time = key.endswith("At") and isinstance(value, (int, float)) and not isinstance(value, bool)
        out.setdefault(key, when(value) if is_time else value)
    return out


ID_SLOTS = 16  # event ids per log entry: a compact entry stands for up to this many events


def event_id(seq: int, index: int = 0) -> int:
    """The `eventId` of the `index`-th event that log entry `seq` stands for: unique, increasing,
    so a subscription resumes after any event, even one in the middle of a compact entry."""
    if not 0 <= index < ID_SLOTS:
        raise ValueError(f"log entry {seq} stands for more than {ID_SLOTS} events")
    return seq * ID_SLOTS + index


def numbered(rows: list[HistoryRow]) -> list[tuple[HistoryRow, int]]:
    """Expanded log rows with the event ids they get (rows of one entry are adjacent)."""
    out: list[tuple[HistoryRow, int]] = []
    index = 0
    for i, row in enumerate(rows):
        index = index + 1 if i and rows[i - 1].seq == row.seq else 0
        out.append((row, event_id(row.seq, index)))
    return out


def event_json(h: HistoryRow, id: int | None = None, iso: bool = True) -> dict:
    """A log entry as `subscribe()` and `wf tail --json` give it: its type, its `eventId` (the
    cursor to resume after; `numbered` gives it), then Cloudflare's fields (times as `shape`)."""
    out = shape(h.type, h.at, h.instance_id, h.workflow, h.step, h.n, h.data, iso)
    return {"type": out.pop("type"), "eventId": event_id(h.seq) if id is None else id, **out}
