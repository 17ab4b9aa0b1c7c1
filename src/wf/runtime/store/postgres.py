"""The distributed store: PostgreSQL, shared by any number of workers on any number of machines.

The same contract and semantics as `SQLiteStore`, with these differences of mechanism:

- Work is claimed with `FOR UPDATE SKIP LOCKED`: workers claiming at once never wait on each
  other and never take the same instance.
- SQLite serializes every writer; PostgreSQL does not, so each operation that reads an
  instance and then decides (add_event, suspend, pause, ...) first locks the instance row
  (`FOR UPDATE`). Every write a worker makes after a claim is fenced by `owner` and `gen`.
- Liveness is a lease: a worker's heartbeat keeps `lease_until` ahead of the clock on its rows
  and in `wf_runners`; when it stops (the worker died or lost the database), any other worker
  hands its instances back with `release_expired`.
- Writes that make work for a worker `NOTIFY` the schema's channel in the same transaction,
  so the note is delivered exactly when the data is visible (see `coordination.py`).

Connections come from a psycopg pool; the transaction in progress belongs to the calling
thread, so group commit (`run_batch`) nests each operation under a savepoint of one transaction.
"""

from __future__ import annotations

import functools
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ...errors import ConflictError, NotFoundError, StoreError
from . import pg_schema
from .base import AttemptRow, EventRow, HistoryRow, InstanceRow, StepRow, StepWrite
from .base import from_json as _unjson
from .base import instance_from_row as _instance
from .base import step_from_row as _step
from .base import to_json as _json
from .sqlite import _Failed

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg import sql
    from psycopg_pool import ConnectionPool
except ImportError:  # pragma: no cover - exercised by the hint test with a fake import
    psycopg = None

CONNECT_TIMEOUT = 10
RETRIES = 8
_INSTANCE_COLS = (
    "seq, workflow, id, params, status, output, error, created_at, started_at, ended_at, "
    "wake_at, owner, gen, paused_at, trigger"
)
_STEP_COLS = "pos, kind, name, n, status, output, error, attempts, config, started_at, ended_at, wake_at, event_type"
_STEP_UPSERT = (
    f"INSERT INTO wf_steps (instance, {_STEP_COLS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
    "ON CONFLICT (instance, pos) DO UPDATE SET kind=EXCLUDED.kind, name=EXCLUDED.name, n=EXCLUDED.n, "
    "status=EXCLUDED.status, output=EXCLUDED.output, error=EXCLUDED.error, attempts=EXCLUDED.attempts, "
    "config=EXCLUDED.config, started_at=EXCLUDED.started_at, ended_at=EXCLUDED.ended_at, "
    "wake_at=EXCLUDED.wake_at, event_type=EXCLUDED.event_type"
)
_ATTEMPT_UPSERT = (
    "INSERT INTO wf_attempts VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (instance, pos, attempt) "
    "DO UPDATE SET started_at=EXCLUDED.started_at, ended_at=EXCLUDED.ended_at, error=EXCLUDED.error"
)
_RELEASE_WAKE = "CASE WHEN status='waiting' AND wake_at IS NOT NULL THEN wake_at ELSE %s END"


def require_psycopg() -> None:
    if psycopg is None:
        raise StoreError(
            "WF_STORE names a PostgreSQL database, but psycopg (the PostgreSQL driver) is not installed",
            "install the extra: pip install 'wf[postgres]'",
        )


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        auth, host = rest.rsplit("@", 1)
        return f"{scheme}://{auth.split(':', 1)[0]}@{host}"
    return url


def _transient(exc: BaseException) -> bool:
    """Errors after which the whole transaction may simply be run again."""
    return isinstance(exc, (pg_errors.DeadlockDetected, pg_errors.SerializationFailure, pg_errors.LockNotAvailable))


def _atomic(method: Callable) -> Callable:
    """Run the method in the calling thread's transaction, or in a new one (retried on deadlock)."""

    @functools.wraps(method)
    def wrapper(self: PostgresStore, *args: Any, **kwargs: Any) -> Any:
        if getattr(self._local, "conn", None) is not None:
            return method(self, *args, **kwargs)
        return self._in_transaction(lambda: method(self, *args, **kwargs))

    return wrapper


class PostgresStore:
    """The `Store` contract on PostgreSQL. Thread-safe: each thread's transaction has its own connection."""

    def __init__(self, url: str, pool_size: int | None = None):
        require_psycopg()
        self.url = url
        self._local = threading.local()
        first = self._connect()
        try:
            self.schema = self._current_schema(first)
            self._migrate(first)
        finally:
            first.close()
        self.channel = f"wf_{self.schema}"[:63]
        size = pool_size or int(os.environ.get("WF_PG_POOL", "4"))
        self.pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, size),
            open=False,
            name="wf",
            kwargs={"autocommit": False, "connect_timeout": CONNECT_TIMEOUT},
        )
        self.pool.open(wait=True, timeout=CONNECT_TIMEOUT)

    # -- opening -------------------------------------------------------------------------

    def _connect(self, autocommit: bool = False):
        try:
            return psycopg.connect(self.url, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT)
        except psycopg.Error as exc:
            reason = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
            raise StoreError(
                f"cannot connect to the PostgreSQL store {redact(self.url)}: {reason}",
                "check that the server is running and that WF_STORE (or --store) names it, "
                "e.g. postgresql://user@host:5432/dbname",
            ) from None

    def _current_schema(self, conn) -> str:
        schema = conn.execute("SELECT current_schema()").fetchone()[0]
        if schema is None:
            path = conn.execute("SHOW search_path").fetchone()[0]
            raise StoreError(
                f"the PostgreSQL store {redact(self.url)} has no usable schema (search_path is {path})",
                "create the schema first (CREATE SCHEMA name), or fix options=-csearch_path in the URL",
            )
        conn.rollback()
        return schema

    def _migrate(self, conn) -> None:
        """Bring the schema up to date; workers starting at once take turns on an advisory lock."""
        if self._version(conn) == pg_schema.VERSION:
            conn.rollback()
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('wf-migrate:' || current_schema()))")
            conn.execute(pg_schema.META)
            version = self._version(conn)
            for migration in pg_schema.MIGRATIONS[version:]:
                conn.execute(migration)
            conn.execute(
                "INSERT INTO wf_meta VALUES ('schema_version', %s) ON CONFLICT (key) "
                "DO UPDATE SET value=EXCLUDED.value",
                (str(pg_schema.VERSION),),
            )
        conn.commit()

    def _version(self, conn) -> int:
        if conn.execute("SELECT to_regclass('wf_meta')").fetchone()[0] is None:
            return 0
        row = conn.execute("SELECT value FROM wf_meta WHERE key='schema_version'").fetchone()
        version = int(row[0]) if row else 0
        if version > pg_schema.VERSION:
            raise StoreError(
                f"the PostgreSQL store {redact(self.url)} has schema version {version}, newer than "
                f"this wf understands ({pg_schema.VERSION})",
                "upgrade wf (pip install -U wf)",
            )
        return version

    def close(self) -> None:
        self.pool.close()

    def coordination(self, state_dir=None):
        """Liveness by lease and wake-ups by LISTEN/NOTIFY: what the runner and client use here."""
        from ..coordination import PostgresCoordination

        return PostgresCoordination(self)

    # -- transactions --------------------------------------------------------------------

    @property
    def _c(self):
        return self._local.conn

    def _in_transaction(self, fn: Callable[[], Any]) -> Any:
        for attempt in range(RETRIES):
            try:
                with self.pool.connection() as conn:
                    self._local.conn = conn
                    try:
                        with conn.transaction():
                            return fn()
                    finally:
                        self._local.conn = None
            except psycopg.Error as exc:
                if not _transient(exc) or attempt == RETRIES - 1:
                    raise self._store_error(exc) from None
                time.sleep(random.uniform(0.001, 0.01) * (attempt + 1))  # a deadlock victim: run it again

    def _store_error(self, exc: BaseException) -> BaseException:
        if isinstance(exc, psycopg.OperationalError):
            return StoreError(
                f"the PostgreSQL store {redact(self.url)} failed: {str(exc).strip()}",
                "check the server and the network; wf retries the work when it is back",
            )
        return exc

    def transaction(self):
        """A transaction for several calls on this thread (as SQLiteStore.transaction())."""
        return _Transaction(self)

    def run_batch(self, ops: list[Callable[[], Any]]) -> list[Any]:
        """Run several writers' operations in one transaction (group commit), each under a savepoint:
        one op's failure is returned as its result and does not undo the others. A deadlock runs
        the whole batch again."""

        def batch() -> list[Any]:
            results: list[Any] = []
            for op in ops:
                try:
                    with self._c.transaction():
                        results.append(op())
                except psycopg.Error as exc:
                    if _transient(exc):
                        raise
                    results.append(_Failed(self._store_error(exc)))
                except Exception as exc:  # returned to that op's caller, the batch goes on
                    results.append(_Failed(exc))
            return results

        return self._in_transaction(batch)

    def _notify(self, note: str) -> None:
        """Wake the workers when this transaction commits (PostgreSQL drops duplicates within it)."""
        self._c.execute("SELECT pg_notify(%s, %s)", (self.channel, note))

    # -- reads ---------------------------------------------------------------------------

    @_atomic
    def get_instance(self, workflow: str | None, id: str) -> InstanceRow | None:
        if workflow is None:
            rows = self._c.execute(f"SELECT {_INSTANCE_COLS} FROM wf_instances WHERE id=%s LIMIT 2", (id,)).fetchall()
            if len(rows) > 1:
                names = ", ".join(sorted(r[1] for r in rows))
                raise ConflictError(
                    f"instance id {id!r} exists in more than one workflow ({names})", "pass --workflow NAME"
                )
            return _instance(rows[0]) if rows else None
        row = self._c.execute(
            f"SELECT {_INSTANCE_COLS} FROM wf_instances WHERE workflow=%s AND id=%s", (workflow, id)
        ).fetchone()
        return _instance(row) if row else None

    @_atomic
    def get_by_seq(self, seq: int) -> InstanceRow | None:
        row = self._c.execute(f"SELECT {_INSTANCE_COLS} FROM wf_instances WHERE seq=%s", (seq,)).fetchone()
        return _instance(row) if row else None

    def latest_instance(self, workflow: str | None) -> InstanceRow | None:
        rows = self.list_instances(workflow, None, 1)
        return rows[0] if rows else None

    @_atomic
    def list_instances(
        self, workflow: str | None, status: str | None, limit: int, offset: int = 0
    ) -> list[InstanceRow]:
        where, args = [], []
        if workflow is not None:
            where.append("workflow=%s")
            args.append(workflow)
        if status is not None:
            where.append("status=%s")
            args.append(status)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        rows = self._c.execute(
            f"SELECT {_INSTANCE_COLS} FROM wf_instances {clause} ORDER BY created_at DESC, seq DESC LIMIT %s OFFSET %s",
            (*args, limit, offset),
        ).fetchall()
        return [_instance(r) for r in rows]

    @_atomic
    def count_by_status(self, workflow: str) -> dict[str, int]:
        rows = self._c.execute(
            "SELECT status, count(*) FROM wf_instances WHERE workflow=%s GROUP BY status", (workflow,)
        ).fetchall()
        return dict(rows)

    @_atomic
    def steps(self, seq: int, with_attempts: bool = False) -> list[StepRow]:
        rows = self._c.execute(f"SELECT {_STEP_COLS} FROM wf_steps WHERE instance=%s ORDER BY pos", (seq,)).fetchall()
        steps = [_step(r) for r in rows]
        if with_attempts and steps:
            by_pos = {s.pos: s for s in steps}
            for pos, attempt, start, end, error in self._c.execute(
                "SELECT pos, attempt, started_at, ended_at, error FROM wf_attempts WHERE instance=%s "
                "ORDER BY pos, attempt",
                (seq,),
            ):
                if pos in by_pos:
                    by_pos[pos].attempt_log.append(AttemptRow(attempt, start, end, _unjson(error)))
        return steps

    @_atomic
    def next_event(self, seq: int, type: str | None) -> EventRow | None:
        if type is None:
            row = self._c.execute(
                "SELECT seq, type, payload, created_at FROM wf_events WHERE instance=%s "
                "AND consumed_by IS NULL ORDER BY seq LIMIT 1",
                (seq,),
            ).fetchone()
        else:
            row = self._c.execute(
                "SELECT seq, type, payload, created_at FROM wf_events WHERE instance=%s "
                "AND consumed_by IS NULL AND type=%s ORDER BY seq LIMIT 1",
                (seq, type),
            ).fetchone()
        return EventRow(*row) if row else None

    @_atomic
    def events(self, seq: int) -> list[tuple[EventRow, int | None]]:
        rows = self._c.execute(
            "SELECT seq, type, payload, created_at, consumed_by FROM wf_events WHERE instance=%s ORDER BY seq", (seq,)
        ).fetchall()
        return [(EventRow(*r[:4]), r[4]) for r in rows]

    @_atomic
    def next_wake(self, workflows: list[str], caps: dict[str, int] | None = None) -> float | None:
        """The earliest wake time of an unclaimed instance, leaving out queued instances of
        capped workflows (they wait for a slot, not a time)."""
        return self._c.execute(
            "SELECT min(wake_at) FROM wf_instances WHERE owner IS NULL AND wake_at IS NOT NULL "
            "AND workflow = ANY(%s) AND NOT (status='queued' AND workflow = ANY(%s))",
            (list(workflows), list(caps or ())),
        ).fetchone()[0]

    @_atomic
    def with_pending_events(self, seqs: list[int]) -> list[int]:
        return [
            r[0]
            for r in self._c.execute(
                "SELECT DISTINCT instance FROM wf_events WHERE consumed_by IS NULL AND instance = ANY(%s)",
                (list(seqs),),
            )
        ]

    @_atomic
    def load_run(self, seq: int, progress: Sequence[str]) -> tuple[list[StepRow], int]:
        """What a runner needs to resume an instance: its steps, and how often runners died on it."""
        return self.steps(seq), self.losses_since_progress(seq, progress)

    @_atomic
    def losses_since_progress(self, seq: int, progress: Sequence[str]) -> int:
        """How many runners died holding this instance since the last of its `progress` events."""
        return self._c.execute(
            "SELECT count(*) FROM wf_history WHERE instance=%s AND type='runner_lost' AND seq > COALESCE("
            "(SELECT max(seq) FROM wf_history WHERE instance=%s AND type = ANY(%s)), 0)",
            (seq, seq, list(progress)),
        ).fetchone()[0]

    @_atomic
    def owners(self) -> list[str]:
        return [r[0] for r in self._c.execute("SELECT DISTINCT owner FROM wf_instances WHERE owner IS NOT NULL")]

    @_atomic
    def history(
        self, after: int = 0, instance: int | None = None, workflow: str | None = None, limit: int = 1000
    ) -> list[HistoryRow]:
        """Event log entries after `after` (a history seq), oldest first."""
        where, args = ["h.seq > %s"], [after]
        if instance is not None:
            where.append("h.instance = %s")
            args.append(instance)
        if workflow is not None:
            where.append("i.workflow = %s")
            args.append(workflow)
        rows = self._c.execute(
            f"SELECT h.seq, h.instance, i.workflow, i.id, h.at, h.type, h.step, h.n, h.data FROM wf_history h "
            f"LEFT JOIN wf_instances i ON i.seq = h.instance WHERE {' AND '.join(where)} ORDER BY h.seq LIMIT %s",
            (*args, limit),
        ).fetchall()
        return [HistoryRow(*r[:8], _unjson(r[8])) for r in rows]

    @_atomic
    def last_history_seq(self) -> int:
        return self._c.execute("SELECT COALESCE(max(seq), 0) FROM wf_history").fetchone()[0]

    @_atomic
    def append_history(self, seq: int, events: list) -> None:
        """Append `(at, type, step, n, data)` entries to an instance's event log."""
        if events:
            self._c.cursor().executemany(
                "INSERT INTO wf_history (instance, at, type, step, n, data) VALUES (%s,%s,%s,%s,%s,%s)",
                [(seq, at, type, step, n, _json(data)) for at, type, step, n, data in events],
            )

    @_atomic
    def activity(self) -> tuple:
        """A fingerprint that changes whenever anything is written (tests wait for it to settle)."""
        row = self._c.execute("SELECT max(updated_at), count(*) FROM wf_instances").fetchone()
        steps = self._c.execute("SELECT count(*), sum(attempts) FROM wf_steps").fetchone()
        history = self._c.execute("SELECT max(seq) FROM wf_history").fetchone()
        return tuple(row), tuple(steps), history[0]

    # -- client writes -------------------------------------------------------------------

    @_atomic
    def create_instances(self, items: list[dict], now: float, skip_existing: bool = False) -> list[InstanceRow]:
        """Insert queued instances; ConflictError on an existing id unless `skip_existing`."""
        created = []
        for item in items:
            row = self._c.execute(
                "INSERT INTO wf_instances (workflow, id, params, status, created_at, updated_at, wake_at, trigger) "
                "VALUES (%s, %s, %s, 'queued', %s, %s, %s, %s) ON CONFLICT (workflow, id) DO NOTHING RETURNING seq",
                (item["workflow"], item["id"], item["params"], now, now, now, _json(item.get("trigger"))),
            ).fetchone()
            if row is None:
                if skip_existing:
                    continue
                raise ConflictError(
                    f"an instance with id {item['id']!r} already exists in workflow {item['workflow']!r}",
                    "choose another id, or restart the existing instance",
                )
            self.append_history(row[0], [(now, "workflow_queued", None, None, None)])
            created.append(
                InstanceRow(
                    row[0],
                    item["workflow"],
                    item["id"],
                    item["params"],
                    "queued",
                    created_at=now,
                    wake_at=now,
                    trigger=item.get("trigger"),
                )
            )
        if created:
            self._notify("w")
        return created

    @_atomic
    def add_event(self, seq: int, type: str, payload: str | None, now: float) -> int:
        status = self._status(seq)
        if status in ("complete", "errored", "terminated"):
            raise ConflictError(
                f"the instance is {status}; it cannot receive events",
                "send events only to instances that are still running, waiting or paused",
            )
        event = self._c.execute(
            "INSERT INTO wf_events (instance, type, payload, created_at) VALUES (%s, %s, %s, %s) RETURNING seq",
            (seq, type, payload, now),
        ).fetchone()[0]
        # also when a worker holds it: if that worker is dead, release_expired keeps a waiting
        # instance's wake_at, so the event must have moved it to now (a live owner rewrites it)
        self._c.execute("UPDATE wf_instances SET wake_at=%s WHERE seq=%s AND status='waiting'", (now, seq))
        self.append_history(seq, [(now, "event_received", None, None, {"eventType": type})])
        self._notify(f"e:{seq}")
        return event

    def _status(self, seq: int) -> str:
        """The instance's status, with its row locked until the transaction ends."""
        row = self._c.execute("SELECT status FROM wf_instances WHERE seq=%s FOR UPDATE", (seq,)).fetchone()
        if row is None:
            raise NotFoundError("the instance was deleted", "list instances with `wf instances list`")
        return row[0]

    @_atomic
    def pause(self, seq: int, now: float) -> str:
        status = self._status(seq)
        if status == "running":
            self._c.execute("UPDATE wf_instances SET status='waitingForPause', updated_at=%s WHERE seq=%s", (now, seq))
            self.append_history(seq, [(now, "workflow_waiting_for_pause", None, None, None)])
            self._notify(f"c:{seq}")
            return "waitingForPause"
        if status in ("queued", "waiting"):
            self._c.execute(
                "UPDATE wf_instances SET status='paused', paused_at=%s, owner=NULL, lease_until=NULL, "
                "wake_at=NULL, gen=gen+1, updated_at=%s WHERE seq=%s",
                (now, now, seq),
            )
            self.append_history(seq, [(now, "workflow_paused", None, None, None)])
            self._notify(f"c:{seq}")
            return "paused"
        return status

    @_atomic
    def resume(self, seq: int, now: float) -> str:
        status = self._status(seq)
        if status == "waitingForPause":
            self._c.execute("UPDATE wf_instances SET status='running', updated_at=%s WHERE seq=%s", (now, seq))
            return "running"
        if status != "paused":
            return status
        paused_at = self._c.execute("SELECT paused_at FROM wf_instances WHERE seq=%s", (seq,)).fetchone()[0]
        shift = max(0.0, now - (paused_at or now))
        self._c.execute(
            "UPDATE wf_steps SET wake_at=wake_at+%s WHERE instance=%s AND wake_at IS NOT NULL "
            "AND status IN ('waiting', 'retrying')",
            (shift, seq),
        )
        self._c.execute(
            "UPDATE wf_instances SET status='queued', paused_at=NULL, wake_at=%s, updated_at=%s WHERE seq=%s",
            (now, now, seq),
        )
        self.append_history(seq, [(now, "workflow_resumed", None, None, None)])
        self._notify("w")
        return "queued"

    @_atomic
    def terminate(self, seq: int, now: float) -> None:
        status = self._status(seq)
        if status in ("complete", "errored", "terminated"):
            raise ConflictError(
                f"cannot terminate the instance: it is already {status}",
                "only queued, running, waiting or paused instances can be terminated",
            )
        self._c.execute(
            "UPDATE wf_instances SET status='terminated', ended_at=%s, updated_at=%s, owner=NULL, "
            "lease_until=NULL, wake_at=NULL, paused_at=NULL, gen=gen+1 WHERE seq=%s",
            (now, now, seq),
        )
        self.append_history(seq, [(now, "workflow_terminated", None, None, None)])
        self._notify(f"c:{seq}")

    @_atomic
    def restart(self, seq: int, now: float, from_step: tuple[str, int, str] | None = None) -> None:
        self._status(seq)
        pos = 0
        if from_step is not None:
            name, count, kind = from_step
            row = self._c.execute(
                "SELECT pos FROM wf_steps WHERE instance=%s AND kind=%s AND name=%s AND n=%s", (seq, kind, name, count)
            ).fetchone()
            if row is None:
                raise NotFoundError(
                    f"step {name!r} ({kind} #{count}) is not in the instance's execution history",
                    "see the steps with `wf instances describe ID`",
                )
            pos = row[0]
        self._c.execute("DELETE FROM wf_steps WHERE instance=%s AND pos>=%s", (seq, pos))
        self._c.execute("DELETE FROM wf_attempts WHERE instance=%s AND pos>=%s", (seq, pos))
        self._c.execute("DELETE FROM wf_events WHERE instance=%s AND consumed_by>=%s", (seq, pos))
        self._c.execute(
            "UPDATE wf_instances SET status='queued', output=NULL, error=NULL, ended_at=NULL, "
            "started_at=NULL, paused_at=NULL, owner=NULL, lease_until=NULL, wake_at=%s, "
            "gen=gen+1, updated_at=%s WHERE seq=%s",
            (now, now, seq),
        )
        self.append_history(
            seq, [(now, "workflow_restarted", None, None, {"fromStep": from_step[0]} if from_step else None)]
        )
        self._notify(f"c:{seq}")
        self._notify("w")

    @_atomic
    def delete(self, seq: int) -> None:
        self._c.execute("SELECT 1 FROM wf_instances WHERE seq=%s FOR UPDATE", (seq,))
        for table, col in (
            ("wf_steps", "instance"),
            ("wf_attempts", "instance"),
            ("wf_events", "instance"),
            ("wf_history", "instance"),
            ("wf_instances", "seq"),
        ):
            self._c.execute(f"DELETE FROM {table} WHERE {col}=%s", (seq,))
        self._notify(f"c:{seq}")

    # -- runner writes -------------------------------------------------------------------

    @_atomic
    def claim(
        self,
        owner: str,
        now: float,
        lease_until: float,
        limit: int,
        workflows: list[str],
        caps: dict[str, int] | None = None,
    ) -> list[InstanceRow]:
        """Take up to `limit` due instances (FOR UPDATE SKIP LOCKED). A workflow in `caps` starts a
        queued instance only while fewer than its cap are running; an advisory lock per capped
        workflow makes the count and the claim one decision across workers."""
        if limit <= 0 or not workflows:
            return []
        caps = {w: c for w, c in (caps or {}).items() if w in workflows}
        claimed = self._claim_where(owner, now, lease_until, limit, workflows, list(caps), None)
        for workflow, cap in caps.items():
            self._c.execute("SELECT pg_advisory_xact_lock(hashtext('wf-cap:' || %s))", (workflow,))
            running = self._c.execute(
                "SELECT count(*) FROM wf_instances WHERE workflow=%s AND status IN ('running', 'waitingForPause')",
                (workflow,),
            ).fetchone()[0]
            room = min(cap - running, limit - len(claimed))
            if room > 0:
                claimed += self._claim_where(owner, now, lease_until, room, [workflow], [], "queued")
        claimed.sort(key=lambda r: (r.wake_at or 0, r.seq))
        for row in claimed:
            if row.started_at == now:
                self.append_history(row.seq, [(now, "workflow_started", None, None, None)])
        return claimed

    def _claim_where(self, owner, now, lease_until, limit, workflows, capped, only_status) -> list[InstanceRow]:
        rows = self._c.execute(
            f"WITH due AS (SELECT seq FROM wf_instances WHERE owner IS NULL AND wake_at IS NOT NULL "
            f"AND wake_at<=%s AND workflow = ANY(%s) AND NOT (status='queued' AND workflow = ANY(%s)) "
            f"AND (%s::text IS NULL OR status=%s::text) "
            f"ORDER BY wake_at LIMIT %s FOR UPDATE SKIP LOCKED) "
            f"UPDATE wf_instances i SET owner=%s, lease_until=%s, "
            f"status=CASE WHEN i.status='queued' THEN 'running' ELSE i.status END, "
            f"started_at=COALESCE(i.started_at, %s), updated_at=%s "
            f"FROM due WHERE i.seq=due.seq AND i.owner IS NULL "
            f"RETURNING {', '.join('i.' + c.strip() for c in _INSTANCE_COLS.split(','))}",
            (now, list(workflows), list(capped), only_status, only_status, limit, owner, lease_until, now, now),
        ).fetchall()
        return [_instance(r) for r in rows]

    @_atomic
    def commit_step(self, owner: str, seq: int, gen: int, w: StepWrite, now: float) -> str | None:
        """Record one step transition if `owner` still holds the instance at `gen`; the status after
        it (`waitingForPause` tells the engine to stop here), or None when the claim was lost."""
        row = self._c.execute(
            "UPDATE wf_instances SET status=CASE WHEN status='waitingForPause' THEN status ELSE %s END, "
            "wake_at=%s, updated_at=%s WHERE seq=%s AND owner=%s AND gen=%s RETURNING status",
            (w.instance_status, w.instance_wake_at, now, seq, owner, gen),
        ).fetchone()
        if row is None:
            return None
        s = w.step
        self._c.execute(
            _STEP_UPSERT,
            (
                seq,
                s.pos,
                s.kind,
                s.name,
                s.n,
                s.status,
                s.output,
                _json(s.error),
                s.attempts,
                _json(s.config),
                s.started_at,
                s.ended_at,
                s.wake_at,
                s.event_type,
            ),
        )
        if w.attempt is not None:
            a = w.attempt
            self._c.execute(_ATTEMPT_UPSERT, (seq, s.pos, a.attempt, a.started_at, a.ended_at, _json(a.error)))
        self.append_history(seq, w.events)
        if w.consume_event is not None:
            cur = self._c.execute(
                "UPDATE wf_events SET consumed_by=%s WHERE seq=%s AND consumed_by IS NULL", (s.pos, w.consume_event)
            )
            if cur.rowcount != 1:
                raise ConflictError("the event was already taken by another wait", "retry the wait")
        return row[0]

    @_atomic
    def mark_attempt_started(
        self, owner: str, seq: int, gen: int, step: StepRow, attempt: int, now: float, events: list = ()
    ) -> None:
        """Make a long-running attempt visible (and counted) before it ends."""
        fenced = self._c.execute(
            "SELECT 1 FROM wf_instances WHERE seq=%s AND owner=%s AND gen=%s FOR UPDATE", (seq, owner, gen)
        ).fetchone()
        if not fenced:
            return
        # Written in the background, this mark may arrive after the attempt's outcome: it only
        # ever moves a step forward, never back to running.
        cur = self._c.execute(
            f"INSERT INTO wf_steps (instance, {_STEP_COLS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
            "ON CONFLICT (instance, pos) DO UPDATE SET status='running', attempts=EXCLUDED.attempts, wake_at=NULL "
            "WHERE wf_steps.status IN ('running', 'retrying') AND wf_steps.attempts < EXCLUDED.attempts",
            (
                seq,
                step.pos,
                step.kind,
                step.name,
                step.n,
                "running",
                None,
                _json(step.error),
                attempt,
                _json(step.config),
                step.started_at,
                None,
                None,
                None,
            ),
        )
        if cur.rowcount != 1:
            return
        self._c.execute(
            "INSERT INTO wf_attempts VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
            (seq, step.pos, attempt, now, None, None),
        )
        self.append_history(seq, list(events))

    @_atomic
    def finish_instance(
        self, owner: str, seq: int, gen: int, status: str, output: str | None, error: dict | None, now: float
    ) -> bool:
        cur = self._c.execute(
            "UPDATE wf_instances SET status=%s, output=%s, error=%s, ended_at=%s, updated_at=%s, owner=NULL, "
            "lease_until=NULL, wake_at=NULL WHERE seq=%s AND owner=%s AND gen=%s",
            (status, output, _json(error), now, now, seq, owner, gen),
        )
        if cur.rowcount == 1:
            data = {"output": _unjson(output)} if status == "complete" else {"error": error}
            self.append_history(
                seq, [(now, f"workflow_{'completed' if status == 'complete' else status}", None, None, data)]
            )
        return cur.rowcount == 1

    @_atomic
    def pause_at_boundary(self, owner: str, seq: int, gen: int, now: float) -> bool:
        cur = self._c.execute(
            "UPDATE wf_instances SET status='paused', paused_at=%s, updated_at=%s, owner=NULL, lease_until=NULL, "
            "wake_at=NULL WHERE seq=%s AND owner=%s AND gen=%s AND status='waitingForPause'",
            (now, now, seq, owner, gen),
        )
        if cur.rowcount == 1:
            self.append_history(seq, [(now, "workflow_paused", None, None, None)])
        return cur.rowcount == 1

    @_atomic
    def release(self, owner: str, seq: int, gen: int, wake_at: float | None, now: float | None = None) -> bool:
        """Give up the claim; the instance is claimable again at `wake_at` (a pause asked for meanwhile
        takes effect now: nothing is in flight)."""
        now = wake_at if now is None else now
        cur = self._c.execute(
            "UPDATE wf_instances SET owner=NULL, lease_until=NULL, "
            "wake_at=CASE WHEN status='waitingForPause' THEN NULL ELSE %s END, "
            "paused_at=CASE WHEN status='waitingForPause' THEN %s ELSE paused_at END, "
            "status=CASE WHEN status='waitingForPause' THEN 'paused' ELSE status END "
            "WHERE seq=%s AND owner=%s AND gen=%s",
            (wake_at, now, seq, owner, gen),
        )
        if cur.rowcount == 1 and wake_at is not None and now is not None and wake_at <= now:
            self._notify("w")  # due now: whichever worker is free should take it
        return cur.rowcount == 1

    @_atomic
    def suspend(self, owner: str, seq: int, gen: int, wake_at: float, wait_types: list, now: float) -> bool:
        """Release a waiting instance; wake it at once if an event it waits for is already stored."""
        # lock the row first: an add_event racing with this either sees it released or is seen here
        if not self._c.execute(
            "SELECT 1 FROM wf_instances WHERE seq=%s AND owner=%s AND gen=%s FOR UPDATE", (seq, owner, gen)
        ).fetchone():
            return False
        if wait_types:
            if None in wait_types:
                found = self._c.execute(
                    "SELECT 1 FROM wf_events WHERE instance=%s AND consumed_by IS NULL LIMIT 1", (seq,)
                ).fetchone()
            else:
                found = self._c.execute(
                    "SELECT 1 FROM wf_events WHERE instance=%s AND consumed_by IS NULL AND type = ANY(%s) LIMIT 1",
                    (seq, list(wait_types)),
                ).fetchone()
            if found:
                wake_at = now
        return self.release(owner, seq, gen, wake_at, now)

    @_atomic
    def heartbeat(self, owner: str, lease_until: float) -> list[int]:
        """Extend `owner`'s lease on its instances; the seqs it still holds. Rows locked right now (by
        the owner's own commit, on another connection) are skipped, not waited for: renewals never
        wait or deadlock, and the next one renews them."""
        return [
            r[0]
            for r in self._c.execute(
                "WITH mine AS (SELECT seq FROM wf_instances WHERE owner=%s FOR UPDATE SKIP LOCKED) "
                "UPDATE wf_instances i SET lease_until=%s FROM mine WHERE i.seq=mine.seq RETURNING i.seq",
                (owner, lease_until),
            )
        ]

    @_atomic
    def release_owner(self, owner: str, now: float) -> int:
        """Hand a stopped worker's instances back: running ones at once, waiting ones at their timer.
        Each one that was mid-run gets a `runner_lost` log entry (see `losses_since_progress`)."""
        return self._hand_back(
            self._c.execute(
                "SELECT seq, owner, status FROM wf_instances WHERE owner=%s ORDER BY seq FOR UPDATE", (owner,)
            ).fetchall(),
            now,
        )

    def _hand_back(self, rows: list[tuple], now: float) -> int:
        for seq, owner, status in rows:
            if status in ("running", "waitingForPause"):
                self.append_history(seq, [(now, "runner_lost", None, None, {"owner": owner})])
        if rows:
            self._c.execute(
                f"UPDATE wf_instances SET owner=NULL, lease_until=NULL, wake_at={_RELEASE_WAKE} WHERE seq = ANY(%s)",
                (now, [r[0] for r in rows]),
            )
            self._notify("w")
        return len(rows)

    @_atomic
    def release_expired(self, now: float, keep: str | None = None) -> int:
        """Hand back every instance whose lease ran out (its worker stopped renewing it) and whose
        worker's own lease (its `wf_runners` row) ran out too: a live worker whose renewal of a row
        was skipped (the row was locked by its own commit) keeps it. Rows locked by a writer are
        skipped: someone is working on them right now."""
        return self._hand_back(
            self._c.execute(
                "SELECT seq, owner, status FROM wf_instances i WHERE owner IS NOT NULL AND lease_until<%s "
                "AND owner IS DISTINCT FROM %s AND NOT EXISTS (SELECT 1 FROM wf_runners r "
                "WHERE r.owner=i.owner AND r.lease_until>=%s) ORDER BY seq FOR UPDATE OF i SKIP LOCKED",
                (now, keep, now),
            ).fetchall(),
            now,
        )

    # -- workers -------------------------------------------------------------------------

    @_atomic
    def register_runner(self, owner: str, now: float, lease_until: float) -> None:
        self._c.execute(
            "INSERT INTO wf_runners VALUES (%s, %s, %s, %s, %s) ON CONFLICT (owner) "
            "DO UPDATE SET lease_until=EXCLUDED.lease_until",
            (owner, socket.gethostname(), os.getpid(), now, lease_until),
        )

    @_atomic
    def unregister_runner(self, owner: str) -> None:
        self._c.execute("DELETE FROM wf_runners WHERE owner=%s", (owner,))

    @_atomic
    def runner_heartbeat(self, owner: str, now: float, lease_until: float) -> list[int]:
        """Renew a worker's lease (its row and its instances); forget workers long gone."""
        self.register_runner(owner, now, lease_until)
        self._c.execute("DELETE FROM wf_runners WHERE lease_until < %s", (now - 3600,))
        return self.heartbeat(owner, lease_until)

    @_atomic
    def live_runners(self, now: float) -> list[str]:
        return [
            r[0] for r in self._c.execute("SELECT owner FROM wf_runners WHERE lease_until >= %s ORDER BY owner", (now,))
        ]

    def listen_channel(self):
        """The channel name, quoted for LISTEN."""
        return sql.SQL("LISTEN {}").format(sql.Identifier(self.channel))


class _Transaction:
    """`with store.transaction():` — later calls on this thread join one transaction."""

    def __init__(self, store: PostgresStore):
        self.store = store
        self._cm = None
        self._tx = None

    def __enter__(self):
        if getattr(self.store._local, "conn", None) is not None:
            self._tx = self.store._local.conn.transaction()
            self._tx.__enter__()
            return self
        self._cm = self.store.pool.connection()
        conn = self._cm.__enter__()
        self.store._local.conn = conn
        self._tx = conn.transaction()
        self._tx.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            return self._tx.__exit__(exc_type, exc, tb)
        finally:
            if self._cm is not None:
                self.store._local.conn = None
                self._cm.__exit__(exc_type, exc, tb)
