"""PostgreSQL, shared by any number of workers on any number of machines.

Only what PostgreSQL does differently lives here: a connection pool whose connection belongs to
the calling thread for the length of a transaction, transactions retried when PostgreSQL picks
them as a deadlock or serialization victim, savepoints for group commit, advisory locks,
`NOTIFY` in the writing transaction, migrations under an advisory lock (workers starting at once
migrate exactly once), and driver errors turned into `StoreError`s. Every domain operation is in
core.py; runner liveness (leases, LISTEN) is in ../coordination.py.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

from ...errors import StoreError
from ..retry import Backoff
from .base import Failed, Later
from .pgpipe import _pipeline, _Result, _Tx, pipelining
from .sql import Dialect, shipped_text
from .urls import redact

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg import sql
    from psycopg_pool import ConnectionPool
except ImportError:  # pragma: no cover - exercised by the hint test with a fake import
    psycopg = None  # type: ignore[assignment]

CONNECT_TIMEOUT = 10
_VALUES = re.compile(r"\bVALUES\s*(\([^()]*\))", re.IGNORECASE)  # the row of an INSERT ... VALUES query
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_ROWS_PER_INSERT = 500  # rows per statement: far below PostgreSQL's 65535 parameters
_VICTIM = Backoff(first=0.002, factor=2.0, most=0.05, jitter=0.8, attempts=8)


class PostgresDialect(Dialect):
    name = "postgres"
    for_update = "FOR UPDATE"
    skip_locked = "FOR UPDATE SKIP LOCKED"
    id_prefix = "left(id, :prefix_len) = :prefix"  # a range is not exact under a linguistic collation
    db_now = "extract(epoch from clock_timestamp())::double precision"  # leases: one clock for every worker

    def param(self, name: str) -> str:
        return f"%({name})s"

    def member(self, name: str, negate: bool) -> str:
        return f"<> ALL(%({name})s)" if negate else f"= ANY(%({name})s)"


def migrations() -> list[str]:
    text = shipped_text("schema", "postgres.sql")
    return [part.split("\n", 1)[1].strip() for part in text.split("\n-- migration")[1:]]


def _session(url: str, durability: str, lease: float) -> dict:
    """Settings of every wf connection. PostgreSQL's default, synchronous_commit=on, waits for the
    WAL flush (power-loss); in "process" mode a commit returns before it, as SQLite's
    synchronous=NORMAL does. A worker stopped in the middle of a transaction (SIGSTOP, a frozen VM)
    would hold its rows' locks for ever, and takeovers skip locked rows: the server ends such a
    transaction once it has sat idle for a lease."""
    from psycopg.conninfo import conninfo_to_dict

    options = [str(conninfo_to_dict(url).get("options") or "")]  # the URL's own (a search_path, say) first
    options.append(f"-c idle_in_transaction_session_timeout={max(1000, round(lease * 1000))}")
    if durability != "power-loss":
        options.append("-c synchronous_commit=off")
    return {"options": " ".join(o for o in options if o)}


def require_psycopg() -> None:
    if psycopg is None:
        raise StoreError(
            "WF_STORE names a PostgreSQL database, but psycopg (the PostgreSQL driver) is not installed",
            "install wf's postgres extra (pip install -e '.[postgres]' in wf's folder), "
            "or psycopg[binary] and psycopg-pool",
        )


def _victim(exc: BaseException) -> bool:
    """Errors after which the whole transaction may simply be run again."""
    return isinstance(exc, _Retry)


class _Retry(Exception):
    """A deadlock or serialization victim, carried out of the transaction to be run again."""


class PostgresDB:
    """The database port on PostgreSQL. Thread-safe: each thread's transaction has its own connection."""

    dialect = PostgresDialect()
    on_notes = None  # unused: a transaction's NOTIFYs go out with its commit
    answers_at_once = False  # a write transaction is pipelined (its answers wait for a read or COMMIT)

    @property
    def reads_later(self) -> bool:
        """In a first, optimistic run of a batch (see batch()), where a division by zero in a
        statement refuses the transaction (queries.sql's `..._or_refuse`)."""
        tx = getattr(self._local, "tx", None)
        return tx is not None and tx.later

    def __init__(
        self, url: str, pool_size: int = 4, durability: str = "power-loss", lease: float = 30.0, pipeline: bool = True
    ):
        require_psycopg()
        self.pipelined = pipeline and pipelining()
        self.url = url
        self.where = redact(url)
        self._local = threading.local()
        first = self._connect()
        try:
            self.schema = self._current_schema(first)
            self._migrate(first)
        except psycopg.Error as exc:
            raise self.error(exc) from None
        finally:
            first.close()
        self.channel = f"wf_{self.schema}"[:63]
        self.pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, pool_size),
            open=False,
            name="wf",
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT, **_session(url, durability, lease)},
        )
        try:
            self.pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except Exception as exc:
            raise self.error(exc) from None

    # -- opening -------------------------------------------------------------------------

    def _connect(self, autocommit: bool = False):
        try:
            return psycopg.connect(self.url, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT)
        except psycopg.Error as exc:
            reason = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
            raise StoreError(
                f"cannot connect to the PostgreSQL store {self.where}: {reason}",
                "check that the server is running and that WF_STORE (or --store) names it, "
                "e.g. postgresql://user@host:5432/dbname",
                transient=True,
            ) from None

    def _current_schema(self, conn) -> str:
        schema = conn.execute("SELECT current_schema()").fetchone()[0]
        if schema is None:
            path = conn.execute("SHOW search_path").fetchone()[0]
            raise StoreError(
                f"the PostgreSQL store {self.where} has no usable schema (search_path is {path})",
                "create the schema first (CREATE SCHEMA name), or fix options=-csearch_path in the URL",
            )
        conn.rollback()
        return schema

    def _migrate(self, conn) -> None:
        """Bring the schema up to date; workers starting at once take turns on an advisory lock."""
        steps = migrations()
        if self._version(conn, len(steps)) == len(steps):
            conn.rollback()
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('wf-migrate:' || current_schema()))")
            conn.execute("CREATE TABLE IF NOT EXISTS wf_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            for script in steps[self._version(conn, len(steps)) :]:
                conn.execute(script)
            conn.execute(
                "INSERT INTO wf_meta VALUES ('schema_version', %s) ON CONFLICT (key) "
                "DO UPDATE SET value=EXCLUDED.value",
                (str(len(steps)),),
            )
        conn.commit()

    def _version(self, conn, known: int) -> int:
        if conn.execute("SELECT to_regclass('wf_meta')").fetchone()[0] is None:
            return 0
        row = conn.execute("SELECT value FROM wf_meta WHERE key='schema_version'").fetchone()
        version = int(row[0]) if row else 0
        if version > known:
            raise StoreError(
                f"the PostgreSQL store {self.where} has schema version {version}, newer than "
                f"this wf understands ({known})",
                "upgrade wf (the wf-workflows package) to the version that wrote it",
            )
        return version

    def close(self) -> None:
        self.pool.close()

    def replaced(self) -> str | None:
        return None  # a server, not a file: nothing to replace under the connection

    # -- errors --------------------------------------------------------------------------

    def error(self, exc: BaseException) -> StoreError:
        if isinstance(exc, StoreError):
            return exc
        text = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) or "pool" in type(exc).__name__.lower():
            return StoreError(
                f"the PostgreSQL store {self.where} failed: {text}",
                "check the server and the network; wf retries the work when it is back",
                transient=True,
            )
        return StoreError(
            f"the PostgreSQL store {self.where} refused a query: {text}",
            "this is a bug in wf if the schema is wf's own; run again with --verbose and report it",
        )

    # -- statements and transactions -----------------------------------------------------
    #
    # A write transaction runs in libpq's pipeline mode (see pipelining()): BEGIN, the statements,
    # savepoints and COMMIT are sent without waiting for each answer, each followed by a Sync that
    # nothing waits for, and the connection waits only where the caller reads a result (a fetch or
    # a rowcount) and at COMMIT.
    # Across a network each wait is a round trip. A read outside a write runs its statements one
    # by one in autocommit (no BEGIN or COMMIT to wait for; under READ COMMITTED each statement had
    # its own snapshot anyway).

    @property
    def _tx(self) -> _Tx:
        tx = getattr(self._local, "tx", None)
        if tx is None:
            raise RuntimeError("a PostgreSQL statement outside a transaction")
        return tx

    def execute(self, name: str, params: dict, parts: dict[str, str]) -> _Result:
        text, params = self.dialect.prepare(name, params, parts)
        tx = self._tx
        return _Result(tx.send(text, params), tx.pipe)

    def executemany(self, name: str, rows: list[dict]) -> None:
        """Run an `INSERT ... VALUES (...)` query for each of `rows`, as one plain multi-row statement.

        Not psycopg's executemany: it runs in pipeline mode, after which the server does not end the
        transaction however long it then sits idle (idle_in_transaction_session_timeout is not applied
        until the next plain statement; seen on PostgreSQL 15 with psycopg 3.3). A worker stopped right
        after one (SIGSTOP, a frozen VM) held its rows locked for ever, and every takeover skipped them."""
        text, _ = self.dialect.query(name)
        tx = self._tx.writable()
        match = _VALUES.search(text)
        if match is None or "DO UPDATE" in text.upper() or _PLACEHOLDER.search(text, match.end()):
            for row in rows:  # not a plain multi-row INSERT: one statement per row (still no pipeline)
                tx.send(text, row)
            return
        head, values, tail = text[: match.start(1)], match.group(1), text[match.end(1) :]
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            chunk = rows[start : start + _ROWS_PER_INSERT]
            tuples = ", ".join(_PLACEHOLDER.sub(rf"%(\1_{i})s", values) for i in range(len(chunk)))
            params = {f"{key}_{i}": value for i, row in enumerate(chunk) for key, value in row.items()}
            tx.send(head + tuples + tail, params)

    def notify(self, note: str) -> None:
        """Wake the workers when this transaction commits (PostgreSQL drops duplicates within it)."""
        self._tx.writable().send("SELECT pg_notify(%s, %s)", (self.channel, note))

    def notify_each(self, name: str, params: dict, parts: dict[str, str]) -> None:
        """NOTIFY each note query `name` returns (one column), in the same pipelined write."""
        text, params = self.dialect.prepare(name, params, parts)
        notes = f"SELECT pg_notify(%(wf_channel)s, note) FROM ({text}) AS notes(note)"
        self._tx.writable().send(notes, {**params, "wf_channel": self.channel})

    def lock(self, key: str) -> None:
        self._tx.writable().send("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))

    @contextmanager
    def savepoint(self):
        """Undo the block's writes if it raises, inside the open transaction (no round trip)."""
        with self._tx.writable().savepoint():
            yield

    def listen_statement(self):
        """`LISTEN <channel>`, quoted, for the runner's notification connection."""
        return sql.SQL("LISTEN {}").format(sql.Identifier(self.channel))

    @contextmanager
    def transaction(self):
        """A transaction on this thread, or a savepoint of the one already open."""
        tx = getattr(self._local, "tx", None)
        if tx is not None:
            with tx.writable().savepoint():
                yield self
            return
        try:
            with self.pool.connection() as conn, _pipeline(conn, self.pipelined) as pipe:
                self._local.tx = tx = _Tx(conn, pipe)
                try:
                    tx.send("BEGIN")
                    yield self
                    conn.execute("COMMIT")
                    pipe.sync()
                except BaseException:
                    tx.rollback()
                    raise
                finally:
                    self._local.tx = None
        except psycopg.Error as exc:
            if _deadlock(exc):
                raise _Retry() from exc
            raise self.error(exc) from None
        except Exception as exc:
            if type(exc).__module__.startswith("psycopg_pool"):
                raise self.error(exc) from None
            raise

    def writing(self, fn: Callable[[], Any]) -> Any:
        if getattr(self._local, "tx", None) is not None:
            return fn()

        def attempt():
            with self.transaction():
                return fn()

        try:
            return _VICTIM.call(attempt, _victim)
        except _Retry as exc:
            raise self.error(exc.__cause__ or exc) from None

    def reading(self, fn: Callable[[], Any]) -> Any:
        if getattr(self._local, "tx", None) is not None:
            return fn()
        try:
            with self.pool.connection() as conn:
                self._local.tx = _Tx(conn, None)
                try:
                    return fn()
                finally:
                    self._local.tx = None
        except psycopg.Error as exc:
            raise self.error(exc) from None
        except Exception as exc:
            if type(exc).__module__.startswith("psycopg_pool"):
                raise self.error(exc) from None
            raise

    def batch(self, ops: list[Callable[[], Any]]) -> list[Any]:
        """Several writers' operations in one transaction (group commit): one op's failure is
        returned as its result and does not undo the others. A deadlock runs the whole batch again;
        a failure of the database itself fails the whole batch.

        The first run is optimistic: every op's statements are sent one after the other, with no
        savepoint between them and nothing read; the ops that check what they wrote (a step's
        commit, an instance's end: is the instance still held?) do it in SQL, with a statement that
        refuses the whole transaction when the write changed nothing, and hand back a Later. The
        COMMIT goes out with them, so the batch waits on the database once, and the Laters are read
        from its answers. If an op fails, a check refuses or the database refuses a statement, the
        batch is rolled back and run again op by op, each under a savepoint and waited for, which
        pins each outcome on its op. A batch of one op needs no second run for an op of its own
        failing: its transaction undoes it."""
        if getattr(self._local, "tx", None) is not None:  # inside a transaction: op by op, in it
            return self._one_by_one(ops)
        alone = len(ops) == 1
        try:
            results = self.writing(lambda: self._optimistic(ops, alone))
            # committed: the Laters' answers came back with the COMMIT's (the connection's results,
            # read from its cursors, not from the connection, which is back in the pool)
            return [r.read() if isinstance(r, Later) else r for r in results]
        except _OpFailed as failed:
            return [Failed(failed.exc)]
        except _Recheck:
            pass
        except StoreError as exc:
            if exc.transient:
                raise
        return self.writing(lambda: self._one_by_one(ops))

    def _optimistic(self, ops: list[Callable[[], Any]], alone: bool) -> list[Any]:
        tx = self._tx
        tx.later = True
        try:
            return [self._sent(op, alone) for op in ops]
        finally:
            tx.later = False

    @staticmethod
    def _sent(op: Callable[[], Any], alone: bool) -> Any:
        try:
            return op()
        except psycopg.Error:
            raise
        except StoreError as exc:
            if exc.transient:
                raise
            failure: BaseException = exc
        except Exception as exc:
            failure = exc
        if alone:
            raise _OpFailed(failure) from None
        raise _Recheck() from None

    def _one_by_one(self, ops: list[Callable[[], Any]]) -> list[Any]:
        """The careful run: each op under a savepoint, its statements waited for as it leaves."""
        tx = self._tx
        results: list[Any] = []
        for op in ops:
            try:
                with tx.savepoint(True):
                    result = op()
                results.append(result)  # its statements ran; they may fail on leaving
            except psycopg.Error as exc:
                if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) or _deadlock(exc):
                    raise
                results.append(Failed(self.error(exc)))
            except StoreError as exc:
                if exc.transient:
                    raise
                results.append(Failed(exc))
            except Exception as exc:
                results.append(Failed(exc))
        return results


class _OpFailed(Exception):
    """The one op of a batch failed: its transaction is rolled back, the failure is its result."""

    def __init__(self, exc: BaseException):
        self.exc = exc


class _Recheck(Exception):
    """An op of an optimistic batch failed: the batch is run again, one op at a time."""


def _deadlock(exc: BaseException) -> bool:
    return isinstance(exc, pg_errors.DeadlockDetected | pg_errors.SerializationFailure | pg_errors.LockNotAvailable)
