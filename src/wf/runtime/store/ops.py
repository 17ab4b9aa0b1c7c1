"""The store's plumbing, shared by its operations: a transaction per operation, named queries run
on the `Database` port, rows to and from columns. The operations are in core.py and runs.py."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from functools import wraps

from ...errors import NotFoundError
from .base import Database, Later, StepRow, Undone, to_json

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (which `wf status` would pay for)
if TYPE_CHECKING:
    from typing import Any


def _write(method: Callable) -> Callable:
    """Run the method in this thread's transaction, or in a new write transaction."""

    @wraps(method)
    def wrapper(self: Ops, *args: Any, **kwargs: Any) -> Any:
        return self.db.writing(lambda: method(self, *args, **kwargs))

    return wrapper


def _read(method: Callable) -> Callable:
    @wraps(method)
    def wrapper(self: Ops, *args: Any, **kwargs: Any) -> Any:
        return self.db.reading(lambda: method(self, *args, **kwargs))

    return wrapper


def _step_params(seq: int, s: StepRow) -> dict:
    return {
        "seq": seq,
        "pos": s.pos,
        "kind": s.kind,
        "name": s.name,
        "n": s.n,
        "status": s.status,
        "output": s.output,
        "error": to_json(s.error),
        "attempts": s.attempts,
        "config": to_json(s.config),
        "started_at": s.started_at,
        "ended_at": s.ended_at,
        "wake_at": s.wake_at,
        "event_type": s.event_type,
    }


def _history_rows(seq: int, events: Iterable) -> list[dict]:
    return [
        {"seq": seq, "at": at, "type": str(type_), "step": step, "n": n, "data": to_json(data)}
        for at, type_, step, n, data in events
    ]


class Ops:
    """The database port and what every operation uses on it."""

    def __init__(self, db: Database):
        self.db = db

    @property
    def kind(self) -> str:
        """ "sqlite" or "postgres": what the runner's coordination is chosen by."""
        return self.db.dialect.name

    @property
    def where(self) -> str:
        return self.db.where

    def close(self) -> None:
        self.db.close()

    def replaced(self) -> str | None:
        """The database, when its file was deleted or replaced under this connection (SQLite)."""
        return self.db.replaced()

    def transaction(self):
        return self.db.transaction()

    def hear_notes(self, deliver: Callable[[list[str]], None]) -> None:
        """Hand the notes of each committed transaction to `deliver` (a runner on SQLite broadcasts
        them by datagram; on PostgreSQL they are NOTIFYs sent by the commit itself)."""
        self.db.on_notes = deliver

    def run_batch(self, ops: list[Callable[[], Any]]) -> list[Any]:
        """Several writers' operations in one transaction (group commit); a failing op's error is
        its result (a `Failed`) and does not undo the others."""
        return self.db.batch(ops)

    @property
    def commits_in_place(self) -> bool:
        """Can a batch be committed in the caller's thread without waiting on a lock (SQLite)?"""
        return hasattr(self.db, "batch_now")

    def run_batch_now(self, ops: list[Callable[[], Any]]) -> list[Any] | None:
        """`run_batch(ops)` here and now if the database's write lock is free, else None (nothing done)."""
        return self.db.batch_now(ops)  # type: ignore[attr-defined]

    def unacknowledged(self) -> AbstractContextManager:
        """Where writes nothing is acknowledged by are made (a runner's claim): SQLite does not sync
        their commit on its own (the next synced one carries it); elsewhere nothing changes."""
        unsynced = getattr(self.db, "unsynced", None)
        return unsynced() if unsynced is not None else nullcontext()

    # -- plumbing ------------------------------------------------------------------------

    def _refusing(self, read: Callable[[], Any]) -> Any:
        """The outcome of an op whose statements refuse their transaction when it does not hold
        (`Database.reads_later`): read once its batch has committed."""
        return Later(read)

    def _checked(self, send: Callable[[], Callable[[], Any]], undone: Any = None) -> Any:
        """An op that sends all its statements before it reads any result: `send()` sends them and
        returns the function that reads the op's outcome (raising Undone, or the op's error, when
        what it wrote must not stand), read here inside a savepoint that Undone rolls back (the
        op's result is then `undone`)."""
        try:
            with self.db.savepoint():
                return send()()
        except Undone:
            return undone

    def _run(self, query: str, parts: dict[str, str] | None = None, /, **params: Any):
        return self.db.execute(query, params, parts or {})

    def _one(self, query: str, parts: dict[str, str] | None = None, /, **params: Any) -> tuple | None:
        return self._run(query, parts, **params).fetchone()

    def _all(self, query: str, parts: dict[str, str] | None = None, /, **params: Any) -> list[tuple]:
        return self._run(query, parts, **params).fetchall()

    def _value(self, query: str, parts: dict[str, str] | None = None, /, **params: Any) -> Any:
        row = self._one(query, parts, **params)
        return None if row is None else row[0]

    def _log(self, seq: int, at: float, type_: str, data: dict | None = None) -> None:
        self.append_history(seq, [(at, type_, None, None, data)])

    def _locked_status(self, seq: int) -> tuple[str, float | None]:
        """The instance's status and paused time, its row locked until the transaction ends."""
        row = self._one("lock_instance", seq=seq)
        if row is None:
            raise NotFoundError("the instance was deleted", "list instances with `wf instances list`")
        return row[0], row[1]

    @_write
    def append_history(self, seq: int, events: list) -> None:
        """Append `(at, type, step, n, data)` entries (LogEvent records) to an instance's event log."""
        if events:
            self.db.executemany("append_history", _history_rows(seq, events))
