"""What a runner tells its operator: one log record per instance event it writes.

The runner and the engine call `report(row, events)` with the event log entries they have just
committed. The notable ones (an instance started, a step attempt failed and when it is retried,
a sleep, a wait, an event taken or timed out, a rollback's start, failed handler attempts and
end, the instance's end)
become records of the `wf.events` logger at INFO (WARNING for failures), each carrying the
entry as `record.wf_event`. `wf worker` and `wf dev` format them for people or as JSON
(cli/runlog.py); elsewhere (wf.testing, a user's own process) nothing is printed unless the
`wf.events` logger is set up, and the check below keeps that free.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .events import LogEvent

log = logging.getLogger("wf.events")

# the entries worth a line; a step that simply starts or succeeds is not (`wf tail` shows those)
SHOWN = frozenset(
    {
        "workflow_started",
        "workflow_completed",
        "workflow_errored",
        "workflow_paused",
        "attempt_errored",
        "sleep_started",
        "wait_started",
        "wait_completed",
        "wait_timed_out",
        "rollback_started",
        "rollback_attempt_errored",
        "rollback_completed",
        "rollback_errored",
    }
)  # not "log": a line the workflow printed is on the runner's stdout/stderr already, as printed
FAILURES = frozenset(
    {"attempt_errored", "workflow_errored", "wait_timed_out", "rollback_attempt_errored", "rollback_errored"}
)


def enabled() -> bool:
    """Is anyone listening? (Building an entry to report may cost more than this question.)"""
    return log.isEnabledFor(logging.INFO)


def report(row: Any, events: Iterable) -> None:
    """Log the notable entries of `events` (LogEvent records) about instance `row`."""
    if not enabled():
        return
    for event in events:
        if event.type not in SHOWN:
            continue
        level = logging.WARNING if event.type in FAILURES else logging.INFO
        step = f" step {event.step!r}" if event.step else ""
        log.log(
            level,
            "%s %s%s",
            row.id,
            event.type,
            step,
            extra={"wf_event": {"id": row.id, "workflow": row.workflow, "event": event}},
        )


def ended_event(
    status: str, output: str | None, error: dict | None, now: float, traceback: str | None = None
) -> LogEvent:
    """The log entry the store wrote for an instance's end, to report it."""
    from .events import InstanceEvent, LogEvent
    from .status import Status
    from .store.base import from_json

    if status == Status.COMPLETE:
        return LogEvent(now, InstanceEvent.COMPLETED.value, data={"output": from_json(output)})
    return LogEvent(now, f"workflow_{status}", data={"error": error, "traceback": traceback})
