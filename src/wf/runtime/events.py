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
from typing import NamedTuple


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


_INSTANCE = {e.value: e for e in InstanceEvent}


def instance_event(name: str) -> InstanceEvent | None:
    """The instance event called `name`, or None when the name is not one (a step kind's, perhaps)."""
    return _INSTANCE.get(name)
