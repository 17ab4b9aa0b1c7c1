"""The embedded store: one SQLite file in WAL mode, shared safely by several processes.

Writers take `BEGIN IMMEDIATE` (the write lock up front, so two writers queue on the busy
timeout instead of deadlocking on an upgrade). Every write a runner makes after claiming an
instance is fenced by `owner` and `gen`: a runner that lost its claim writes nothing.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ...errors import ConflictError, NotFoundError, StoreError
from . import schema
from .base import AttemptRow, EventRow, HistoryRow, InstanceRow, StepRow, StepWrite
from .base import from_json as _unjson
from .base import instance_from_row as _instance
from .base import step_from_row as _step
from .base import to_json as _json

BUSY_TIMEOUT_MS = 30_000
_INSTANCE_COLS = (
    "seq, workflow, id, params, status, output, error, created_at, started_at, ended_at, "
    "wake_at, owner, gen, paused_at, trigger"
)
_STEP_COLS = "pos, kind, name, n, status, output, error, attempts, config, started_at, ended_at, wake_at, event_type"


class SQLiteStore:
    """The `Store` contract on one SQLite file. One instance per thread (sqlite3 objects are not shared)."""

    def __init__(self, path: str | Path, synchronous: str | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.synchronous = (synchronous or os.environ.get("WF_SQLITE_SYNC", "normal")).upper()
        if self.synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise StoreError(
                f"WF_SQLITE_SYNC={self.synchronous.lower()!r} is not a SQLite synchronous mode",
                "use normal (survives process crashes) or full (also survives power loss)",
            )
        self.conn = self._open()
        self._migrate()

    # -- opening -------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self.conn = conn
            try:
                self._version()  # refuse a SQLite file that is not wf's before changing its journal mode
            except StoreError:
                conn.close()
                raise
            for attempt in range(100):
                try:
                    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                    break
                except sqlite3.OperationalError as exc:
                    # switching a new file to WAL takes an exclusive lock without waiting on
                    # busy_timeout: processes opening a fresh store at once collide here
                    if ("locked" not in str(exc) and "busy" not in str(exc)) or attempt == 99:
                        raise
                    time.sleep(0.01 * min(attempt + 1, 10))
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"the state database {self.path} cannot be opened: {exc}",
                "it may be damaged or not a wf database; move it aside (it is safe to delete "
                "a .wf folder you no longer need) and run again",
            ) from None
        if mode.lower() != "wal":
            raise StoreError(
                f"the state database {self.path} could not be switched to WAL mode (got {mode})",
                "keep .wf on a local file system",
            )
        return conn

    def _migrate(self) -> None:
        try:
            version = self._version()
            if version == schema.VERSION:
                return
            self._check_not_newer(version)
            with self.transaction():
                version = self._version()
                self._check_not_newer(version)
                if version == 0:
                    self.conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                for sql in schema.MIGRATIONS[version:]:
                    for statement in sql.split(";"):
                        if statement.strip():
                            self.conn.execute(statement)
                self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(schema.VERSION),))
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"the state database {self.path} is damaged or not a wf database: {exc}",
                "move it aside and run again; wf starts a fresh one",
            ) from None

    def _version(self) -> int:
        has_meta = self.conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        if not has_meta:
            tables = self.conn.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0]
            if tables:
                raise StoreError(
                    f"{self.path} is a SQLite database but not a wf state database",
                    "point --persist-to at another folder",
                )
            return 0
        row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else 0

    def _check_not_newer(self, version: int) -> None:
        if version > schema.VERSION:
            raise StoreError(
                f"the state database {self.path} has schema version {version}, newer than this "
                f"wf understands ({schema.VERSION})",
                "upgrade wf (pip install -U wf)",
            )

    def close(self) -> None:
        self.conn.close()

    # -- transactions --------------------------------------------------------------------

    def transaction(self):
        return _Transaction(self.conn)

    def run_batch(self, ops: list[Callable[[], Any]]) -> list[Any]:
        """Run several writers' operations in one transaction (group commit).

        Each op runs under its own savepoint: one op's failure is returned as its result and
        does not undo the others.
        """
        results: list[Any] = []
        with self.transaction():
            for op in ops:
                self.conn.execute("SAVEPOINT op")
                try:
                    results.append(op())
                    self.conn.execute("RELEASE op")
                except Exception as exc:  # returned to that op's caller, the batch goes on
                    self.conn.execute("ROLLBACK TO op")
                    self.conn.execute("RELEASE op")
                    results.append(_Failed(exc))
        return results

    # -- reads ---------------------------------------------------------------------------

    def get_instance(self, workflow: str | None, id: str) -> InstanceRow | None:
        if workflow is None:
            rows = self.conn.execute(f"SELECT {_INSTANCE_COLS} FROM instances WHERE id=? LIMIT 2", (id,)).fetchall()
            if len(rows) > 1:
                names = ", ".join(sorted(r[1] for r in rows))
                raise ConflictError(
                    f"instance id {id!r} exists in more than one workflow ({names})", "pass --workflow NAME"
                )
            return _instance(rows[0]) if rows else None
        row = self.conn.execute(
            f"SELECT {_INSTANCE_COLS} FROM instances WHERE workflow=? AND id=?", (workflow, id)
        ).fetchone()
        return _instance(row) if row else None

    def get_by_seq(self, seq: int) -> InstanceRow | None:
        row = self.conn.execute(f"SELECT {_INSTANCE_COLS} FROM instances WHERE seq=?", (seq,)).fetchone()
        return _instance(row) if row else None

    def latest_instance(self, workflow: str | None) -> InstanceRow | None:
        rows = self.list_instances(workflow, None, 1)
        return rows[0] if rows else None

    def list_instances(
        self, workflow: str | None, status: str | None, limit: int, offset: int = 0
    ) -> list[InstanceRow]:
        where, args = [], []
        if workflow is not None:
            where.append("workflow=?")
            args.append(workflow)
        if status is not None:
            where.append("status=?")
            args.append(status)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        rows = self.conn.execute(
            f"SELECT {_INSTANCE_COLS} FROM instances {clause} ORDER BY created_at DESC, seq DESC LIMIT ? OFFSET ?",
            (*args, limit, offset),
        ).fetchall()
        return [_instance(r) for r in rows]

    def count_by_status(self, workflow: str) -> dict[str, int]:
        rows = self.conn.execute(
            "SELECT status, count(*) FROM instances WHERE workflow=? GROUP BY status", (workflow,)
        ).fetchall()
        return dict(rows)

    def steps(self, seq: int, with_attempts: bool = False) -> list[StepRow]:
        rows = self.conn.execute(f"SELECT {_STEP_COLS} FROM steps WHERE instance=? ORDER BY pos", (seq,)).fetchall()
        steps = [_step(r) for r in rows]
        if with_attempts and steps:
            by_pos = {s.pos: s for s in steps}
            for pos, attempt, start, end, error in self.conn.execute(
                "SELECT pos, attempt, started_at, ended_at, error FROM attempts WHERE instance=? ORDER BY pos, attempt",
                (seq,),
            ):
                if pos in by_pos:
                    by_pos[pos].attempt_log.append(AttemptRow(attempt, start, end, _unjson(error)))
        return steps

    def next_event(self, seq: int, type: str | None) -> EventRow | None:
        if type is None:
            row = self.conn.execute(
                "SELECT seq, type, payload, created_at FROM events WHERE instance=? "
                "AND consumed_by IS NULL ORDER BY seq LIMIT 1",
                (seq,),
            ).fetchone()
        else:
            row = self.conn.execute(
                "SELECT seq, type, payload, created_at FROM events WHERE instance=? "
                "AND consumed_by IS NULL AND type=? ORDER BY seq LIMIT 1",
                (seq, type),
            ).fetchone()
        return EventRow(*row) if row else None

    def events(self, seq: int) -> list[tuple[EventRow, int | None]]:
        rows = self.conn.execute(
            "SELECT seq, type, payload, created_at, consumed_by FROM events WHERE instance=? ORDER BY seq", (seq,)
        ).fetchall()
        return [(EventRow(*r[:4]), r[4]) for r in rows]

    def next_wake(self, workflows: list[str], caps: dict[str, int] | None = None) -> float | None:
        """The earliest wake time of an unclaimed instance; queued instances of capped workflows
        wait for a slot, not a time, so they are left out."""
        marks = ",".join("?" * len(workflows))
        capped = list(caps or ())
        skip = f"AND NOT (status='queued' AND workflow IN ({','.join('?' * len(capped))}))" if capped else ""
        row = self.conn.execute(
            f"SELECT min(wake_at) FROM instances WHERE owner IS NULL AND wake_at IS NOT NULL "
            f"AND workflow IN ({marks}) {skip}",
            (*workflows, *capped),
        ).fetchone()
        return row[0]

    def with_pending_events(self, seqs: list[int]) -> list[int]:
        marks = ",".join("?" * len(seqs))
        return [
            r[0]
            for r in self.conn.execute(
                f"SELECT DISTINCT instance FROM events WHERE consumed_by IS NULL AND instance IN ({marks})", seqs
            )
        ]

    def load_run(self, seq: int, progress: Sequence[str]) -> tuple[list[StepRow], int]:
        """What a runner needs to resume an instance: its steps, and how often runners died on it."""
        return self.steps(seq), self.losses_since_progress(seq, progress)

    def losses_since_progress(self, seq: int, progress: Sequence[str]) -> int:
        """How many runners died holding this instance since the last of its `progress` events."""
        marks = ",".join("?" * len(progress))
        return self.conn.execute(
            "SELECT count(*) FROM history WHERE instance=? AND type='runner_lost' AND seq > COALESCE("
            f"(SELECT max(seq) FROM history WHERE instance=? AND type IN ({marks})), 0)",
            (seq, seq, *progress),
        ).fetchone()[0]

    def owners(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT owner FROM instances WHERE owner IS NOT NULL")]

    def history(
        self, after: int = 0, instance: int | None = None, workflow: str | None = None, limit: int = 1000
    ) -> list[HistoryRow]:
        """Event log entries after `after` (a history seq), oldest first."""
        where, args = ["h.seq > ?"], [after]
        if instance is not None:
            where.append("h.instance = ?")
            args.append(instance)
        if workflow is not None:
            where.append("i.workflow = ?")
            args.append(workflow)
        rows = self.conn.execute(
            f"SELECT h.seq, h.instance, i.workflow, i.id, h.at, h.type, h.step, h.n, h.data FROM history h "
            f"LEFT JOIN instances i ON i.seq = h.instance WHERE {' AND '.join(where)} ORDER BY h.seq LIMIT ?",
            (*args, limit),
        ).fetchall()
        return [HistoryRow(*r[:8], _unjson(r[8])) for r in rows]

    def last_history_seq(self) -> int:
        return self.conn.execute("SELECT COALESCE(max(seq), 0) FROM history").fetchone()[0]

    def append_history(self, seq: int, events: list) -> None:
        """Append `(at, type, step, n, data)` entries to an instance's event log."""
        if events:
            self.conn.executemany(
                "INSERT INTO history (instance, at, type, step, n, data) VALUES (?,?,?,?,?,?)",
                [(seq, at, type, step, n, _json(data)) for at, type, step, n, data in events],
            )

    # -- client writes -------------------------------------------------------------------

    def create_instances(self, items: list[dict], now: float, skip_existing: bool = False) -> list[InstanceRow]:
        """Insert queued instances; ConflictError on an existing id unless `skip_existing`."""
        created = []
        with self.transaction():
            for item in items:
                try:
                    cur = self.conn.execute(
                        "INSERT INTO instances (workflow, id, params, status, created_at, updated_at, wake_at, "
                        "trigger) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?)",
                        (item["workflow"], item["id"], item["params"], now, now, now, _json(item.get("trigger"))),
                    )
                except sqlite3.IntegrityError:
                    if skip_existing:
                        continue
                    raise ConflictError(
                        f"an instance with id {item['id']!r} already exists in workflow {item['workflow']!r}",
                        "choose another id, or restart the existing instance",
                    ) from None
                self.append_history(cur.lastrowid, [(now, "workflow_queued", None, None, None)])
                created.append(
                    InstanceRow(
                        cur.lastrowid,
                        item["workflow"],
                        item["id"],
                        item["params"],
                        "queued",
                        created_at=now,
                        wake_at=now,
                        trigger=item.get("trigger"),
                    )
                )
        return created

    def add_event(self, seq: int, type: str, payload: str | None, now: float) -> int:
        with self.transaction():
            status = self._status(seq)
            if status in ("complete", "errored", "terminated"):
                raise ConflictError(
                    f"the instance is {status}; it cannot receive events",
                    "send events only to instances that are still running, waiting or paused",
                )
            cur = self.conn.execute(
                "INSERT INTO events (instance, type, payload, created_at) VALUES (?, ?, ?, ?)",
                (seq, type, payload, now),
            )
            # also when a runner holds it: if that runner is dead, release_owner keeps a waiting
            # instance's wake_at, so the event must have moved it to now (a live owner rewrites it)
            self.conn.execute("UPDATE instances SET wake_at=? WHERE seq=? AND status='waiting'", (now, seq))
            self.append_history(seq, [(now, "event_received", None, None, {"eventType": type})])
            return cur.lastrowid

    def _status(self, seq: int) -> str:
        row = self.conn.execute("SELECT status FROM instances WHERE seq=?", (seq,)).fetchone()
        if row is None:
            raise NotFoundError("the instance was deleted", "list instances with `wf instances list`")
        return row[0]

    def pause(self, seq: int, now: float) -> str:
        with self.transaction():
            status = self._status(seq)
            if status == "running":
                self.conn.execute("UPDATE instances SET status='waitingForPause', updated_at=? WHERE seq=?", (now, seq))
                self.append_history(seq, [(now, "workflow_waiting_for_pause", None, None, None)])
                return "waitingForPause"
            if status in ("queued", "waiting"):
                self.conn.execute(
                    "UPDATE instances SET status='paused', paused_at=?, owner=NULL, lease_until=NULL, "
                    "wake_at=NULL, gen=gen+1, updated_at=? WHERE seq=?",
                    (now, now, seq),
                )
                self.append_history(seq, [(now, "workflow_paused", None, None, None)])
                return "paused"
            return status

    def resume(self, seq: int, now: float) -> str:
        with self.transaction():
            status = self._status(seq)
            if status == "waitingForPause":
                self.conn.execute("UPDATE instances SET status='running', updated_at=? WHERE seq=?", (now, seq))
                return "running"
            if status != "paused":
                return status
            paused_at = self.conn.execute("SELECT paused_at FROM instances WHERE seq=?", (seq,)).fetchone()[0]
            shift = max(0.0, now - (paused_at or now))
            self.conn.execute(
                "UPDATE steps SET wake_at=wake_at+? WHERE instance=? AND wake_at IS NOT NULL "
                "AND status IN ('waiting', 'retrying')",
                (shift, seq),
            )
            self.conn.execute(
                "UPDATE instances SET status='queued', paused_at=NULL, wake_at=?, updated_at=? WHERE seq=?",
                (now, now, seq),
            )
            self.append_history(seq, [(now, "workflow_resumed", None, None, None)])
            return "queued"

    def terminate(self, seq: int, now: float) -> None:
        with self.transaction():
            status = self._status(seq)
            if status in ("complete", "errored", "terminated"):
                raise ConflictError(
                    f"cannot terminate the instance: it is already {status}",
                    "only queued, running, waiting or paused instances can be terminated",
                )
            self.conn.execute(
                "UPDATE instances SET status='terminated', ended_at=?, updated_at=?, owner=NULL, "
                "lease_until=NULL, wake_at=NULL, paused_at=NULL, gen=gen+1 WHERE seq=?",
                (now, now, seq),
            )
            self.append_history(seq, [(now, "workflow_terminated", None, None, None)])

    def restart(self, seq: int, now: float, from_step: tuple[str, int, str] | None = None) -> None:
        with self.transaction():
            self._status(seq)
            pos = 0
            if from_step is not None:
                name, count, kind = from_step
                row = self.conn.execute(
                    "SELECT pos FROM steps WHERE instance=? AND kind=? AND name=? AND n=?", (seq, kind, name, count)
                ).fetchone()
                if row is None:
                    raise NotFoundError(
                        f"step {name!r} ({kind} #{count}) is not in the instance's execution history",
                        "see the steps with `wf instances describe ID`",
                    )
                pos = row[0]
            self.conn.execute("DELETE FROM steps WHERE instance=? AND pos>=?", (seq, pos))
            self.conn.execute("DELETE FROM attempts WHERE instance=? AND pos>=?", (seq, pos))
            self.conn.execute("DELETE FROM events WHERE instance=? AND consumed_by>=?", (seq, pos))
            self.conn.execute(
                "UPDATE instances SET status='queued', output=NULL, error=NULL, ended_at=NULL, "
                "started_at=NULL, paused_at=NULL, owner=NULL, lease_until=NULL, wake_at=?, "
                "gen=gen+1, updated_at=? WHERE seq=?",
                (now, now, seq),
            )
            self.append_history(
                seq, [(now, "workflow_restarted", None, None, {"fromStep": from_step[0]} if from_step else None)]
            )

    def delete(self, seq: int) -> None:
        with self.transaction():
            for table, col in (
                ("steps", "instance"),
                ("attempts", "instance"),
                ("events", "instance"),
                ("history", "instance"),
                ("instances", "seq"),
            ):
                self.conn.execute(f"DELETE FROM {table} WHERE {col}=?", (seq,))

    # -- runner writes -------------------------------------------------------------------

    def claim(
        self,
        owner: str,
        now: float,
        lease_until: float,
        limit: int,
        workflows: list[str],
        caps: dict[str, int] | None = None,
    ) -> list[InstanceRow]:
        """Take up to `limit` due instances. A workflow in `caps` starts a queued instance only
        while fewer than its cap are running (`concurrency.limit`); waking instances go first."""
        if limit <= 0 or not workflows:
            return []
        caps = {w: c for w, c in (caps or {}).items() if w in workflows}
        with self.transaction():
            claimed = self._claim_where(owner, now, lease_until, limit, workflows, list(caps), None)
            for workflow, cap in caps.items():
                running = self.conn.execute(
                    "SELECT count(*) FROM instances WHERE workflow=? AND status IN ('running', 'waitingForPause')",
                    (workflow,),
                ).fetchone()[0]
                room = min(cap - running, limit - len(claimed))
                if room > 0:
                    claimed += self._claim_where(owner, now, lease_until, room, [workflow], [], "queued")
            for row in claimed:
                if row.started_at == now:
                    self.append_history(row.seq, [(now, "workflow_started", None, None, None)])
        return claimed

    def _claim_where(self, owner, now, lease_until, limit, workflows, capped, only_status) -> list[InstanceRow]:
        marks = ",".join("?" * len(workflows))
        extra, args = "", []
        if capped:
            extra = f"AND NOT (status='queued' AND workflow IN ({','.join('?' * len(capped))})) "
            args = capped
        if only_status:
            extra += "AND status=? "
            args = [*args, only_status]
        rows = self.conn.execute(
            f"UPDATE instances SET owner=?, lease_until=?, "
            f"status=CASE WHEN status='queued' THEN 'running' ELSE status END, "
            f"started_at=COALESCE(started_at, ?), updated_at=? "
            f"WHERE seq IN (SELECT seq FROM instances WHERE owner IS NULL AND wake_at IS NOT NULL "
            f"AND wake_at<=? AND workflow IN ({marks}) {extra}ORDER BY wake_at LIMIT ?) "
            f"RETURNING {_INSTANCE_COLS}",
            (owner, lease_until, now, now, now, *workflows, *args, limit),
        ).fetchall()
        return sorted((_instance(r) for r in rows), key=lambda r: (r.wake_at or 0, r.seq))

    def commit_step(self, owner: str, seq: int, gen: int, w: StepWrite, now: float) -> str | None:
        """Record one step transition if `owner` still holds the instance at `gen`.

        Returns the instance status after the write (`waitingForPause` tells the engine to
        stop at this boundary), or None when the claim was lost (fenced out).
        """
        row = self.conn.execute(
            "UPDATE instances SET status=CASE WHEN status='waitingForPause' THEN status ELSE ? END, "
            "wake_at=?, updated_at=? WHERE seq=? AND owner=? AND gen=? RETURNING status",
            (w.instance_status, w.instance_wake_at, now, seq, owner, gen),
        ).fetchone()
        if row is None:
            return None
        s = w.step
        self.conn.execute(
            f"INSERT OR REPLACE INTO steps (instance, {_STEP_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
            self.conn.execute(
                "INSERT OR REPLACE INTO attempts VALUES (?,?,?,?,?,?)",
                (seq, s.pos, a.attempt, a.started_at, a.ended_at, _json(a.error)),
            )
        self.append_history(seq, w.events)
        if w.consume_event is not None:
            cur = self.conn.execute(
                "UPDATE events SET consumed_by=? WHERE seq=? AND consumed_by IS NULL", (s.pos, w.consume_event)
            )
            if cur.rowcount != 1:
                raise ConflictError("the event was already taken by another wait", "retry the wait")
        return row[0]

    def mark_attempt_started(
        self, owner: str, seq: int, gen: int, step: StepRow, attempt: int, now: float, events: list = ()
    ) -> None:
        """Make a long-running attempt visible (and counted) before it ends."""
        fenced = self.conn.execute(
            "SELECT 1 FROM instances WHERE seq=? AND owner=? AND gen=?", (seq, owner, gen)
        ).fetchone()
        if not fenced:
            return
        # This mark may reach the store after the attempt's own outcome (it is written in the
        # background): it must never undo a later state, so it only moves a step forward.
        cur = self.conn.execute(
            f"INSERT INTO steps (instance, {_STEP_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
            f"ON CONFLICT (instance, pos) DO UPDATE SET status='running', attempts=excluded.attempts, wake_at=NULL "
            f"WHERE steps.status IN ('running', 'retrying') AND steps.attempts < excluded.attempts",
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
        self.conn.execute(
            "INSERT OR IGNORE INTO attempts VALUES (?,?,?,?,?,?)", (seq, step.pos, attempt, now, None, None)
        )
        self.append_history(seq, list(events))

    def finish_instance(
        self, owner: str, seq: int, gen: int, status: str, output: str | None, error: dict | None, now: float
    ) -> bool:
        cur = self.conn.execute(
            "UPDATE instances SET status=?, output=?, error=?, ended_at=?, updated_at=?, owner=NULL, "
            "lease_until=NULL, wake_at=NULL WHERE seq=? AND owner=? AND gen=?",
            (status, output, _json(error), now, now, seq, owner, gen),
        )
        if cur.rowcount == 1:
            data = {"output": _unjson(output)} if status == "complete" else {"error": error}
            self.append_history(
                seq, [(now, f"workflow_{'completed' if status == 'complete' else status}", None, None, data)]
            )
        return cur.rowcount == 1

    def pause_at_boundary(self, owner: str, seq: int, gen: int, now: float) -> bool:
        cur = self.conn.execute(
            "UPDATE instances SET status='paused', paused_at=?, updated_at=?, owner=NULL, lease_until=NULL, "
            "wake_at=NULL WHERE seq=? AND owner=? AND gen=? AND status='waitingForPause'",
            (now, now, seq, owner, gen),
        )
        if cur.rowcount == 1:
            self.append_history(seq, [(now, "workflow_paused", None, None, None)])
        return cur.rowcount == 1

    def release(self, owner: str, seq: int, gen: int, wake_at: float | None, now: float | None = None) -> bool:
        """Give up the claim; the instance is claimable again at `wake_at`.

        A pause asked for while the runner held it takes effect now: nothing is in flight.
        """
        now = wake_at if now is None else now
        cur = self.conn.execute(
            "UPDATE instances SET owner=NULL, lease_until=NULL, "
            "wake_at=CASE WHEN status='waitingForPause' THEN NULL ELSE ? END, "
            "paused_at=CASE WHEN status='waitingForPause' THEN ? ELSE paused_at END, "
            "status=CASE WHEN status='waitingForPause' THEN 'paused' ELSE status END "
            "WHERE seq=? AND owner=? AND gen=?",
            (wake_at, now, seq, owner, gen),
        )
        return cur.rowcount == 1

    def suspend(self, owner: str, seq: int, gen: int, wake_at: float, wait_types: list, now: float) -> bool:
        """Release a waiting instance; wake it at once if an event it waits for is already stored."""
        if wait_types:
            if None in wait_types:
                found = self.conn.execute(
                    "SELECT 1 FROM events WHERE instance=? AND consumed_by IS NULL LIMIT 1", (seq,)
                ).fetchone()
            else:
                marks = ",".join("?" * len(wait_types))
                found = self.conn.execute(
                    f"SELECT 1 FROM events WHERE instance=? AND consumed_by IS NULL AND type IN ({marks}) LIMIT 1",
                    (seq, *wait_types),
                ).fetchone()
            if found:
                wake_at = now
        return self.release(owner, seq, gen, wake_at, now)

    def heartbeat(self, owner: str, lease_until: float) -> None:
        with self.transaction():
            self.conn.execute("UPDATE instances SET lease_until=? WHERE owner=?", (lease_until, owner))

    def release_owner(self, owner: str, now: float) -> int:
        """Hand a dead runner's instances back: running ones at once, waiting ones at their timer.

        Each instance that was mid-run gets a `runner_lost` entry in its log, so a step that
        kills its process every time is noticed (see `losses_since_progress`).
        """
        with self.transaction():
            lost = self.conn.execute(
                "SELECT seq FROM instances WHERE owner=? AND status IN ('running', 'waitingForPause')", (owner,)
            ).fetchall()
            for (seq,) in lost:
                self.append_history(seq, [(now, "runner_lost", None, None, {"owner": owner})])
            cur = self.conn.execute(
                "UPDATE instances SET owner=NULL, lease_until=NULL, "
                "wake_at=CASE WHEN status='waiting' AND wake_at IS NOT NULL THEN wake_at ELSE ? END "
                "WHERE owner=?",
                (now, owner),
            )
            return cur.rowcount

    def release_expired(self, now: float) -> int:
        with self.transaction():
            cur = self.conn.execute(
                "UPDATE instances SET owner=NULL, lease_until=NULL, "
                "wake_at=CASE WHEN status='waiting' AND wake_at IS NOT NULL THEN wake_at ELSE ? END "
                "WHERE owner IS NOT NULL AND lease_until<?",
                (now, now),
            )
            return cur.rowcount


class _Failed:
    """An op's exception, carried out of a group commit."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException):
        self.exc = exc


class _Transaction:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.outer = False

    def __enter__(self):
        if self.conn.in_transaction:
            return self
        self.outer = True
        for attempt in range(50):
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                return self
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise StoreError(
            "the state database stayed locked by another process for too long", "check for a stuck wf process"
        )

    def __exit__(self, exc_type, exc, tb):
        if not self.outer:
            return False
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")
        return False
