"""Instance statuses, declared once (Cloudflare's names)."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    ERRORED = "errored"
    TERMINATED = "terminated"
    COMPLETE = "complete"
    WAITING = "waiting"  # sleeping, in a retry delay, or waiting for an event or for another instance
    WAITING_FOR_PAUSE = "waitingForPause"  # a pause was asked for while a step runs
    UNKNOWN = "unknown"


STATUSES: tuple[str, ...] = tuple(s.value for s in Status)
TERMINAL = frozenset({Status.COMPLETE, Status.ERRORED, Status.TERMINATED})  # an instance that ended
ACTIVE = frozenset({Status.QUEUED, Status.RUNNING, Status.WAITING, Status.WAITING_FOR_PAUSE})
HOLDS_SLOT = frozenset({Status.RUNNING, Status.WAITING_FOR_PAUSE})  # counted by concurrency.limit
