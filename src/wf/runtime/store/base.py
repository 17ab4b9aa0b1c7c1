"""The store contract: rows the engine reads and the operations it writes.

Every backend (SQLite here, PostgreSQL later) implements `Store`. Times are epoch seconds
passed in by the caller; a store never reads the clock itself. JSON columns travel as text
so that a value is serialized once, where it is validated.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

ACTIVE = ("queued", "running", "waiting", "waitingForPause")
TERMINAL = ("complete", "errored", "terminated")
STATUSES = ("queued", "running", "paused", "errored", "terminated", "complete", "waiting", "waitingForPause", "unknown")


@dataclass
class InstanceRow:
    seq: int
    workflow: str
    id: str
    params: str  # JSON text
    status: str
    output: str | None = None  # JSON text
    error: dict | None = None
    created_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    wake_at: float | None = None
    owner: str | None = None
    gen: int = 0
    paused_at: float | None = None
    trigger: dict | None = None


@dataclass
class AttemptRow:
    attempt: int
    started_at: float
    ended_at: float | None
    error: dict | None  # None when it succeeded


@dataclass
class StepRow:
    """One step of one run, identified by (kind, name, n). `kind` is a registered step kind's
    stored name (`do`, `sleep`, `waitForEvent`, ...); `status` is one of that kind's statuses,
    declared with the kind (wf.runtime.steps)."""

    pos: int
    kind: str
    name: str
    n: int
    status: str
    output: str | None = None  # JSON text
    error: dict | None = None
    attempts: int = 0
    config: dict | None = None
    started_at: float | None = None
    ended_at: float | None = None
    wake_at: float | None = None
    event_type: str | None = None
    attempt_log: list[AttemptRow] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.kind, self.name, self.n)


@dataclass
class EventRow:
    seq: int
    type: str
    payload: str | None  # JSON text
    created_at: float


@dataclass
class StepWrite:
    """What the engine commits for one step transition, fenced by (owner, gen)."""

    step: StepRow
    attempt: AttemptRow | None = None  # the attempt that just ended, if any
    instance_status: str = "running"
    instance_wake_at: float | None = None
    consume_event: int | None = None  # event seq taken by a waitForEvent
    events: list = field(default_factory=list)  # the log entries to append: wf.runtime.events.LogEvent


@dataclass
class HistoryRow:
    """One entry of an instance's event log, shaped like Cloudflare's instance events."""

    seq: int
    instance: int
    workflow: str | None
    instance_id: str | None
    at: float
    type: str
    step: str | None
    n: int | None
    data: dict | None


class Store(Protocol):
    """What every backend provides (SQLiteStore, PostgresStore; tests/test_store_conformance.py runs
    the same suite on both). Methods are synchronous; the runner calls them on the store's thread.
    Writes a runner makes after a claim are fenced by (owner, gen) and return None/False when lost."""

    # opening and transactions
    def run_batch(self, ops: list[Callable[[], Any]]) -> list[Any]: ...
    def close(self) -> None: ...

    # reads
    def get_instance(self, workflow: str | None, id: str) -> InstanceRow | None: ...
    def get_by_seq(self, seq: int) -> InstanceRow | None: ...
    def latest_instance(self, workflow: str | None) -> InstanceRow | None: ...
    def list_instances(
        self, workflow: str | None, status: str | None, limit: int, offset: int = 0
    ) -> list[InstanceRow]: ...
    def count_by_status(self, workflow: str) -> dict[str, int]: ...
    def steps(self, seq: int, with_attempts: bool = False) -> list[StepRow]: ...
    def load_run(self, seq: int, progress: Sequence[str]) -> tuple[list[StepRow], int]: ...
    def next_event(self, seq: int, type: str | None) -> EventRow | None: ...
    def events(self, seq: int) -> list[tuple[EventRow, int | None]]: ...
    def history(
        self, after: int = 0, instance: int | None = None, workflow: str | None = None, limit: int = 1000
    ) -> list[HistoryRow]: ...
    def next_wake(self, workflows: list[str], caps: dict[str, int] | None = None) -> float | None: ...
    def with_pending_events(self, seqs: list[int]) -> list[int]: ...
    def owners(self) -> list[str]: ...

    # client writes (each its own transaction)
    def create_instances(self, items: list[dict], now: float, skip_existing: bool = False) -> list[InstanceRow]: ...
    def add_event(self, seq: int, type: str, payload: str | None, now: float) -> int: ...
    def pause(self, seq: int, now: float) -> str: ...
    def resume(self, seq: int, now: float) -> str: ...
    def terminate(self, seq: int, now: float) -> None: ...
    def restart(self, seq: int, now: float, from_step: tuple[str, int, str] | None = None) -> None: ...
    def delete(self, seq: int) -> None: ...

    # runner writes (inside run_batch, fenced by owner and gen)
    def claim(
        self,
        owner: str,
        now: float,
        lease_until: float,
        limit: int,
        workflows: list[str],
        caps: dict[str, int] | None = None,
    ) -> list[InstanceRow]: ...
    def commit_step(self, owner: str, seq: int, gen: int, w: StepWrite, now: float) -> str | None: ...
    def mark_attempt_started(
        self, owner: str, seq: int, gen: int, step: StepRow, attempt: int, now: float, events: list = ()
    ) -> None: ...
    def append_history(self, seq: int, events: list) -> None: ...
    def finish_instance(
        self, owner: str, seq: int, gen: int, status: str, output: str | None, error: dict | None, now: float
    ) -> bool: ...
    def pause_at_boundary(self, owner: str, seq: int, gen: int, now: float) -> bool: ...
    def release(self, owner: str, seq: int, gen: int, wake_at: float | None, now: float | None = None) -> bool: ...
    def suspend(self, owner: str, seq: int, gen: int, wake_at: float, wait_types: list, now: float) -> bool: ...

    # liveness
    def heartbeat(self, owner: str, lease_until: float) -> None: ...
    def release_owner(self, owner: str, now: float) -> int: ...


# -- rows <-> columns, shared by every SQL store ------------------------------------------


def to_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def from_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def instance_from_row(row: tuple) -> InstanceRow:
    """An InstanceRow from the columns in InstanceRow's field order (error and trigger are JSON)."""
    r = list(row)
    r[6], r[14] = from_json(r[6]), from_json(r[14])
    return InstanceRow(*r)


def step_from_row(row: tuple) -> StepRow:
    """A StepRow from the columns in StepRow's field order (error and config are JSON)."""
    r = list(row)
    r[6], r[8] = from_json(r[6]), from_json(r[8])
    return StepRow(*r)
