"""SQLite, the embedded default: one file in WAL mode, shared safely by several processes.

Only what SQLite does differently lives here: opening the file (WAL, synchronous mode, busy
timeout), `BEGIN IMMEDIATE` write transactions (the write lock up front, so two writers queue
on the busy timeout instead of deadlocking on an upgrade), savepoints for group commit,
migrations, and turning driver errors into `StoreError`s that say what happened. Every domain
operation is in core.py.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from ...errors import StoreError
from ..retry import Backoff
from .base import Failed
from .sql import Dialect, shipped_text

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (which `wf status` would pay for)
if TYPE_CHECKING:
    from typing import Any

BUSY_TIMEOUT_MS = 30_000
_BUSY = Backoff(first=0.01, factor=1.5, most=0.1, jitter=0.5, attempts=100)


class SQLiteDialect(Dialect):
    name = "sqlite"
    plan_hints = True
    no_index = "+"

    def param(self, name: str) -> str:
        return f":{name}"

    def member(self, name: str, negate: bool) -> str:
        return f"{'NOT ' if negate else ''}IN (SELECT value FROM json_each(:{name}))"

    def list_value(self, values: list) -> object:
        import json

        return json.dumps(list(values))


def migrations() -> list[str]:
    text = shipped_text("schema", "sqlite.sql")
    return [part.split("\n", 1)[1].strip() for part in text.split("\n-- migration")[1:]]


def _is_busy(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


class _Result:
    """A statement's rows, read while errors could still be turned into StoreErrors."""

    __slots__ = ("rows", "rowcount")

    def __init__(self, rows: list, rowcount: int):
        self.rows, self.rowcount = rows, rowcount

    def fetchone(self):
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list:
        return self.rows


class SQLiteDB:
    """The database port on one SQLite file. One connection, used by one thread at a time."""

    dialect = SQLiteDialect()
    answers_at_once = True
    reads_later = False  # each op reads its results as it goes: they cost nothing to wait for

    def __init__(self, path: str | Path, durability: str = "power-loss"):
        self.path = Path(path)
        self.where = str(self.path)
        # WAL with synchronous=FULL syncs the log at every commit (and a group commit is one
        # commit): what wf acknowledges survives a power cut. NORMAL syncs at checkpoints only.
        self.synchronous = "FULL" if durability == "power-loss" else "NORMAL"
        self._local = threading.local()
        self._patient = True  # busy_timeout is BUSY_TIMEOUT_MS (not 0, as a direct commit sets it)
        # notes (see notify) of the open transaction, and who hears them once it commits: a runner's
        # coordination broadcasts them; a client sends its own after each write (client.py)
        self._notes: list[str] = []
        self.on_notes: Callable[[list[str]], None] | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise StoreError(
                f"the state folder {self.path.parent} cannot be created: a file of that name is in the way",
                "point --persist-to at a folder (or remove the file)",
            ) from None
        except OSError as exc:
            raise self.error(exc) from None
        self.conn = self._open()
        self._migrate()
        self._inode = self._identity()

    # -- opening -------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self.conn = conn
            self._check_ours()  # refuse a SQLite file that is not wf's before changing its journal mode
            # switching a new file to WAL takes an exclusive lock without waiting on busy_timeout:
            # processes opening a fresh store at once collide here
            mode = _BUSY.call(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone()[0], _is_busy)
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
        except sqlite3.Error as exc:
            raise self.error(exc, opening=True) from None
        if mode.lower() != "wal":
            raise StoreError(
                f"the state database {self.path} could not be switched to WAL mode (got {mode})",
                "keep .wf on a local file system",
            )
        return conn

    def _tables(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}

    def _check_ours(self) -> None:
        tables = self._tables()
        if tables and not tables & {"meta", "wf_meta"}:
            raise StoreError(
                f"{self.path} is a SQLite database but not a wf state database", "point --persist-to at another folder"
            )

    def _version(self) -> int:
        tables = self._tables()
        meta = "wf_meta" if "wf_meta" in tables else "meta" if "meta" in tables else None
        if meta is None:
            return 0
        row = self.conn.execute(f"SELECT value FROM {meta} WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        steps = migrations()
        try:
            if self._version() == len(steps):
                return
            with self.transaction():
                version = self._version()
                if version > len(steps):
                    raise StoreError(
                        f"the state database {self.path} has schema version {version}, newer than "
                        f"this wf understands ({len(steps)})",
                        "upgrade wf (the wf-workflows package) to the version that wrote it",
                    )
                if version == 0:
                    self.conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                for script in steps[version:]:
                    for statement in script.split(";"):
                        if statement.strip():
                            self.conn.execute(statement)
                self.conn.execute("INSERT OR REPLACE INTO wf_meta VALUES ('schema_version', ?)", (str(len(steps)),))
        except sqlite3.Error as exc:
            raise self.error(exc, opening=True) from None

    def close(self) -> None:
        self.conn.close()

    def _identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def replaced(self) -> str | None:
        """The database file, when it is no longer the file this connection opened: writes would
        go to a deleted file, and a new runner would start on an empty one."""
        return None if self._identity() == self._inode else f"the state database {self.path}"

    # -- errors --------------------------------------------------------------------------

    def error(self, exc: BaseException, opening: bool = False) -> StoreError:
        """A driver error as a StoreError that says what happened and what to do. Only a file
        SQLite itself calls malformed (or not a database) is called damaged: a full or read-only
        disk is no reason to throw state away."""
        text = str(exc)
        lowered = text.lower()
        errno = getattr(exc, "errno", None)
        if "disk is full" in lowered or errno == 28 or ("i/o error" in lowered and self._disk_full()):
            return StoreError(
                f"the disk holding the state database {self.path} is full",
                "free some space; wf retries the work when it can write again",
                transient=True,
            )
        if "readonly" in lowered or "read-only" in lowered or errno in (13, 30) or self._read_only():
            return StoreError(
                f"the state database {self.path} cannot be written: {text}",
                "make the file and its folder writable (or point --persist-to elsewhere)",
                transient=True,
            )
        if _is_busy(exc):
            return StoreError(
                f"the state database {self.path} stayed locked by another process for too long",
                "check for a stuck wf process",
                transient=True,
            )
        if "malformed" in lowered or "not a database" in lowered:
            return StoreError(
                f"the state database {self.path} is damaged or not a wf database: {text}",
                "move it aside (keep it if its state matters) and run again; wf starts a fresh one",
            )
        if opening:
            return StoreError(
                f"the state database {self.path} cannot be opened: {text}",
                "check that its folder exists and is writable, and that the disk is healthy",
                transient=True,
            )
        return StoreError(
            f"the state database {self.path} failed: {text}", "run again; wf retries where it can", transient=True
        )

    def _disk_full(self) -> bool:
        try:
            import shutil

            return shutil.disk_usage(self.path.parent).free < 64 * 1024
        except OSError:
            return False

    def _read_only(self) -> bool:
        try:
            return bool(os.statvfs(self.path.parent).f_flag & os.ST_RDONLY)
        except OSError:
            return False

    # -- statements and transactions -----------------------------------------------------

    def execute(self, name: str, params: dict, parts: dict[str, str]) -> _Result:
        text, params = self.dialect.prepare(name, params, parts)
        if not self._patient and not self.conn.in_transaction:
            self._wait_when_busy()
        try:
            cursor = self.conn.execute(text, params)
            return _Result(cursor.fetchall(), cursor.rowcount)  # a damaged page can fail the fetch too
        except sqlite3.Error as exc:
            raise self.error(exc) from None

    def executemany(self, name: str, rows: list[dict]) -> None:
        text, _ = self.dialect.query(name)
        try:
            self.conn.executemany(text, rows)
        except sqlite3.Error as exc:
            raise self.error(exc) from None

    def notify(self, note: str) -> None:
        """Runners on this file are told by datagram once the transaction commits: kept for `on_notes`
        (a runner's store; coordination.py), dropped when nobody listens (a client notifies itself)."""
        if self.on_notes is not None:
            self._notes.append(note)

    def notify_each(self, name: str, params: dict, parts: dict[str, str]) -> None:
        """notify() each note query `name` returns (one column)."""
        if self.on_notes is not None:
            self._notes.extend(row[0] for row in self.execute(name, params, parts).fetchall())

    def _tell(self, committed: bool) -> None:
        notes, self._notes = self._notes, []
        if committed and notes and self.on_notes is not None:
            try:
                self.on_notes(notes)
            except Exception:  # a lost note costs a wake-up (runners look again on their own), never a write
                pass

    def lock(self, key: str) -> None:
        """Nothing to do: SQLite writers are serialized already."""

    @contextmanager
    def transaction(self):
        """A write transaction, or the one already open (then it commits with the outer one)."""
        if self.conn.in_transaction:
            yield self
            return
        self._wait_when_busy()
        try:
            _BUSY.call(lambda: self.conn.execute("BEGIN IMMEDIATE"), _is_busy)
        except sqlite3.Error as exc:
            raise self.error(exc) from None
        with self._committing():
            yield self

    def _begin_now(self) -> bool:
        """Begin a write transaction if the write lock is free this instant; False (nothing begun)
        when another connection holds it: the caller then queues instead of waiting here."""
        conn = self.conn
        try:
            if self._patient:  # left so until a statement outside a direct commit runs (see execute)
                conn.execute("PRAGMA busy_timeout=0")
                self._patient = False
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            if _is_busy(exc):
                return False
            raise self.error(exc) from None
        return True

    def _wait_when_busy(self) -> None:
        if not self._patient:
            try:
                self.conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            except sqlite3.Error as exc:
                raise self.error(exc) from None
            self._patient = True

    @contextmanager
    def _committing(self):
        """The end of a write transaction already begun: commit, or roll back on an error."""
        try:
            yield
        except BaseException:
            self._tell(committed=False)
            self._end("ROLLBACK")
            raise
        try:
            self._end("COMMIT")
        except BaseException:
            self._tell(committed=False)
            raise
        self._tell(committed=True)

    def _end(self, how: str) -> None:
        try:
            self.conn.execute(how)
        except sqlite3.Error as exc:
            if how == "COMMIT":
                try:
                    self.conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise self.error(exc) from None

    def writing(self, fn: Callable[[], Any]) -> Any:
        if self.conn.in_transaction:  # (a group commit's op) joins it, as transaction() would
            return fn()
        with self.transaction():
            return fn()

    def reading(self, fn: Callable[[], Any]) -> Any:
        self._wait_when_busy()
        return fn()  # WAL readers never wait for writers; one statement is one snapshot

    def batch(self, ops: list[Callable[[], Any]]) -> list[Any]:
        """Several writers' operations in one transaction (group commit), each under a savepoint:
        one op's failure is returned as its result and does not undo the others."""
        if len(ops) == 1 and not self.conn.in_transaction:  # nothing to keep apart: no savepoint
            return self._single(ops[0], self.transaction())
        results: list[Any] = []
        with self.transaction():
            for op in ops:
                self._savepoint("SAVEPOINT op")
                mark = len(self._notes)
                try:
                    results.append(op())
                    self._savepoint("RELEASE op")
                except StoreError as exc:
                    if exc.transient:  # the database itself failed: the whole batch fails
                        raise
                    self._undo(results, exc, mark)
                except Exception as exc:
                    self._undo(results, exc, mark)
        return results

    def batch_now(self, ops: list[Callable[[], Any]]) -> list[Any] | None:
        """`batch(ops)` in the calling thread if the write lock is free this instant, else None and
        nothing done (the async store's direct path: a commit on the event loop's thread when
        nothing else is queued, which must never wait there on another process's lock)."""
        if self.conn.in_transaction or not self._begin_now():
            return None
        if len(ops) == 1:
            return self._single(ops[0], self._committing())
        with self._committing():
            return self.batch(ops)

    def _single(self, op: Callable[[], Any], transaction: Any) -> list[Any]:
        """A batch of one op: its failure rolls the whole transaction back and is its result."""
        try:
            with transaction:
                return [op()]
        except StoreError as exc:
            if exc.transient:  # the database itself failed: the batch fails
                raise
            return [Failed(exc)]
        except Exception as exc:
            return [Failed(exc)]

    @contextmanager
    def unsynced(self):
        """Commits here are not synced on their own (synchronous=NORMAL): for writes nothing is
        acknowledged by (a runner's claim). The WAL is a sequence: the next synced commit carries
        them to disk with it; lost to a power cut before that, they are as if never made."""
        if self.synchronous == "NORMAL" or self.conn.in_transaction:
            yield
            return
        self._pragma("PRAGMA synchronous=NORMAL")
        try:
            yield
        finally:
            self._pragma(f"PRAGMA synchronous={self.synchronous}")

    def _pragma(self, statement: str) -> None:
        try:
            self.conn.execute(statement)
        except sqlite3.Error as exc:
            raise self.error(exc) from None

    def _undo(self, results: list, exc: Exception, notes: int) -> None:
        self._savepoint("ROLLBACK TO op")
        self._savepoint("RELEASE op")
        del self._notes[notes:]  # the op's notes go with its writes
        results.append(Failed(exc))

    @contextmanager
    def savepoint(self):
        """Undo the block's writes (and its notes) if it raises, inside the open transaction."""
        self._savepoint("SAVEPOINT part")
        mark = len(self._notes)
        try:
            yield
        except BaseException:
            self._savepoint("ROLLBACK TO part")
            self._savepoint("RELEASE part")
            del self._notes[mark:]
            raise
        self._savepoint("RELEASE part")

    def _savepoint(self, statement: str) -> None:
        try:
            self.conn.execute(statement)
        except sqlite3.Error as exc:
            raise self.error(exc) from None
