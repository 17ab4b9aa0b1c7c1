"""The store's rows, and the contract of the store (`Store`), whatever the database.

Times are epoch seconds passed in by the caller; a store never reads the clock itself. JSON
columns travel as text so that a value is serialized once, where it is validated.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from ...records import dataclass, field
from ..status import ACTIVE, STATUSES, TERMINAL  # noqa: F401  (re-exported for readers of rows)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (which `wf status` would pay for)
if TYPE_CHECKING:
    from typing import Any, Protocol
else:
    Protocol = object  # `Database` is a plain class at run time: its methods are the contract


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
    terminating: bool = False  # terminate(rollback=True) asked: unwind the rollback handlers, then end terminated


@dataclass
class AttemptRow:
    attempt: int
    started_at: float
    ended_at: float | None
    error: dict | None  # None when it succeeded
    traceback: str | None = None  # of a failed attempt: the user's frames, bounded (runtime/tracebacks.py)


@dataclass
class StepRow:
    """One step of one run, identified by (kind, name, n); its kind (runtime/steps) declares its statuses:
    do → running | retrying | complete | errored; sleep → waiting | complete; waitForEvent and
    waitForInstance → waiting | complete | errored; patch → applied.
    """

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
    seq: int | None  # None: an event wf.testing mocks, never stored
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
    events: list = field(default_factory=list)  # history: (at, type, step name, n, data), see HistoryRow


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


class Database(Protocol):
    """The port a dialect module provides to the store (sqlite.py, postgres.py); core.py holds
    every domain operation over it. tests/test_store_conformance.py runs one suite on both."""

    dialect: Any  # sql.Dialect: how its SQL spells the tokens of queries.sql
    where: str  # the database, for messages (a path, or a URL without its password)
    answers_at_once: bool  # each statement's result is there when it returns (no pipelining)
    reads_later: bool  # in this thread's batch, an op checks in SQL and returns a Later (see Later)

    def execute(self, name: str, params: dict, parts: dict[str, str]) -> Any: ...
    def executemany(self, name: str, rows: list[dict]) -> None: ...
    def writing(self, fn: Callable[[], Any]) -> Any: ...  # fn() in this thread's write transaction
    def reading(self, fn: Callable[[], Any]) -> Any: ...
    def transaction(self) -> Any: ...  # a context manager: later calls on this thread join it
    def batch(self, ops: list[Callable[[], Any]]) -> list[Any]: ...  # group commit, a savepoint per op
    def savepoint(self) -> Any: ...  # a context manager: the block's writes are undone if it raises

    on_notes: Any  # SQLite: told each committed transaction's notes (a runner's store); PostgreSQL NOTIFYs

    def notify(self, note: str) -> None: ...  # wake runners when this transaction commits
    def notify_each(self, name: str, params: dict, parts: dict[str, str]) -> None: ...  # a note per row of query `name`
    def lock(self, key: str) -> None: ...  # an advisory lock until this transaction ends
    def replaced(self) -> str | None: ...  # the database, if its file is no longer the one opened
    def close(self) -> None: ...


class Undone(Exception):
    """A write that found its instance no longer held (fenced out): what it wrote is undone
    (`Database.savepoint`)."""


class Later:
    """An op's outcome in a batch that reads nothing before its COMMIT (`Database.reads_later`:
    PostgreSQL's group commit, one round trip for the lot). The op's statements refuse the whole
    transaction themselves when its check does not hold (queries.sql's `..._or_refuse`), so the
    batch commits first and then `read()`s the op's result from the answers that came back."""

    __slots__ = ("read",)

    def __init__(self, read: Callable[[], Any]):
        self.read = read


class Failed:
    """An op's exception, carried out of a group commit as that op's result."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException):
        self.exc = exc


# -- rows <-> columns, shared by every SQL store ------------------------------------------


_to_json = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps's output, without its set-up per call


def to_json(value: Any) -> str | None:
    return None if value is None else _to_json(value)


def from_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def instance_from_row(row: tuple) -> InstanceRow:
    """An InstanceRow from the columns in InstanceRow's field order (error and trigger are JSON)."""
    r = list(row)
    r[6], r[14] = from_json(r[6]), from_json(r[14])
    if len(r) > 15:
        r[15] = bool(r[15])
    return InstanceRow(*r)


def step_from_row(row: tuple) -> StepRow:
    """A StepRow from the columns in StepRow's field order (error and config are JSON)."""
    r = list(row)
    r[6], r[8] = from_json(r[6]), from_json(r[8])
    return StepRow(*r)
