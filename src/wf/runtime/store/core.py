"""The store: every domain operation on instances, steps, events and the event log, written once.

`SQLStore` runs the named queries of queries.sql on a `Database` port (sqlite.py or
postgres.py), which knows only its dialect: connecting, transactions and retries, savepoints,
locks and notification. Rules live here:

- Every write a runner makes after claiming an instance is fenced by `owner` and `gen`
  (bumped by terminate, restart and pause): a runner that lost an instance writes nothing.
- A client write that reads an instance and then decides (an event, pause, terminate...)
  locks the instance row first (`{for_update}`; SQLite serializes writers anyway).
- Writes that make work for a runner notify in their own transaction (PostgreSQL's NOTIFY;
  on SQLite the client sends datagrams after the commit, see coordination.py).
- Every transition appends to the instance's event log in the same transaction.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

from ...errors import ConflictError, NotFoundError
from ..status import TERMINAL, Status
from .base import (
    AttemptRow,
    Database,
    EventRow,
    HistoryRow,
    InstanceRow,
    StepRow,
    StepWrite,
    from_json,
    instance_from_row,
    step_from_row,
    to_json,
)

PAGE_SORT_MAX = 2000  # page_instances on SQLite: up to this many matches, sorting them beats walking by time


def _write(method: Callable) -> Callable:
    """Run the method in this thread's transaction, or in a new write transaction."""

    @wraps(method)
    def wrapper(self: SQLStore, *args: Any, **kwargs: Any) -> Any:
        return self.db.writing(lambda: method(self, *args, **kwargs))

    return wrapper


def _read(method: Callable) -> Callable:
    @wraps(method)
    def wrapper(self: SQLStore, *args: Any, **kwargs: Any) -> Any:
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


class SQLStore:
    """The `wf` store over one database. Methods are synchronous and each is one transaction
    (or joins the caller's: `run_batch` nests a runner's writes under savepoints of one)."""

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

    def run_batch(self, ops: list[Callable[[], Any]]) -> list[Any]:
        """Several writers' operations in one transaction (group commit); a failing op's error is
        its result (a `Failed`) and does not undo the others."""
        return self.db.batch(ops)

    # -- plumbing ------------------------------------------------------------------------

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

    # -- reads ---------------------------------------------------------------------------

    @_read
    def get_instance(self, workflow: str | None, id: str) -> InstanceRow | None:
        if workflow is not None:
            row = self._one("instance_by_workflow_id", workflow=workflow, id=id)
            return instance_from_row(row) if row else None
        rows = self._all("instances_by_id", id=id)
        if len(rows) > 1:
            names = ", ".join(sorted(r[1] for r in rows))
            raise ConflictError(
                f"instance id {id!r} exists in more than one workflow ({names})", "pass --workflow NAME"
            )
        return instance_from_row(rows[0]) if rows else None

    @_read
    def get_by_seq(self, seq: int) -> InstanceRow | None:
        row = self._one("instance_by_seq", seq=seq)
        return instance_from_row(row) if row else None

    def latest_instance(self, workflow: str | None) -> InstanceRow | None:
        rows = self.list_instances(workflow, None, 1)
        return rows[0] if rows else None

    @_read
    def list_instances(
        self, workflow: str | None, status: str | None, limit: int, offset: int = 0
    ) -> list[InstanceRow]:
        where = [
            cond
            for cond, value in (("workflow = :workflow", workflow), ("status = :status", status))
            if value is not None
        ]
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        rows = self._all(
            "list_instances", {"where": clause}, workflow=workflow, status=status, limit=limit, offset=offset
        )
        return [instance_from_row(r) for r in rows]

    @_read
    def page_instances(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        id_prefix: str | None = None,
        since: float | None = None,
        until: float | None = None,
        before: tuple[float, int] | None = None,
        after: tuple[float, int] | None = None,
        limit: int = 25,
    ) -> list[InstanceRow]:
        """One page of instances, newest first, by key: the `limit` rows just older than `before`
        (or just newer than `after`), each a `(created_at, seq)`. `id_prefix` matches the start of
        the id; `since`/`until` bound `created_at` (`until` excluded)."""
        params: dict[str, Any] = {
            "workflow": workflow,
            "status": status,
            "since": since,
            "until": until,
            "limit": limit,
        }
        equal = [c for c, v in (("workflow = :workflow", workflow), ("status = :status", status)) if v is not None]
        if equal and self.db.dialect.plan_hints and self._many_match(equal, params):
            equal = ["+" + c for c in equal]  # walk the created_at index instead of sorting every match
        where = equal + [
            c for c, v in (("created_at >= :since", since), ("created_at < :until", until)) if v is not None
        ]
        if id_prefix:
            where.append("{id_prefix}")
            params.update(prefix=id_prefix, prefix_end=id_prefix + "\U0010ffff", prefix_len=len(id_prefix))
        order = "DESC"
        if before is not None or after is not None:
            where.append(
                "(created_at, seq) < (:key_at, :key_seq)"
                if before is not None
                else "(created_at, seq) > (:key_at, :key_seq)"
            )
            params["key_at"], params["key_seq"] = before if before is not None else after  # type: ignore[misc]
            order = "DESC" if before is not None else "ASC"
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        rows = [instance_from_row(r) for r in self._all("page_instances", {"where": clause, "order": order}, **params)]
        return rows[::-1] if order == "ASC" else rows

    def _many_match(self, equal: list[str], params: dict) -> bool:
        return int(self._value("count_matching", {"where": "WHERE " + " AND ".join(equal)}, **params)) > PAGE_SORT_MAX

    @_read
    def count_by_status(self, workflow: str) -> dict[str, int]:
        return {status: int(n) for status, n in self._all("count_by_status", workflow=workflow)}

    @_read
    def steps(self, seq: int, with_attempts: bool = False) -> list[StepRow]:
        steps = [step_from_row(r) for r in self._all("steps_of", seq=seq)]
        if with_attempts and steps:
            by_pos = {s.pos: s for s in steps}
            for pos, attempt, start, end, error in self._all("attempts_of", seq=seq):
                if pos in by_pos:
                    by_pos[pos].attempt_log.append(AttemptRow(attempt, start, end, from_json(error)))
        return steps

    @_read
    def load_run(self, seq: int, progress: Iterable[str] = ()) -> tuple[list[StepRow], int]:
        """What a runner needs to resume an instance: its steps, and how often runners died on it
        since it last made progress (an entry of a type in `progress` in its log)."""
        return self.steps(seq), self.losses_since_progress(seq, progress)

    @_read
    def losses_since_progress(self, seq: int, progress: Iterable[str] = ()) -> int:
        return int(self._value("losses_since_progress", seq=seq, progress=list(progress)))

    @_read
    def next_event(self, seq: int, type: str | None) -> EventRow | None:
        row = self._one(
            "next_event", {"type_filter": "AND type = :type" if type is not None else ""}, seq=seq, type=type
        )
        return EventRow(*row) if row else None

    @_read
    def events(self, seq: int) -> list[tuple[EventRow, int | None]]:
        return [(EventRow(*r[:4]), r[4]) for r in self._all("events_of", seq=seq)]

    @_read
    def next_wake(self, workflows: list[str], caps: dict[str, int] | None = None) -> float | None:
        """The earliest wake time of an unclaimed instance; queued instances of capped workflows
        wait for a slot, not a time, so they are left out."""
        return self._value("next_wake", workflows=list(workflows), capped=list(caps or ()))

    @_read
    def with_pending_events(self, seqs: list[int]) -> list[int]:
        return [r[0] for r in self._all("with_pending_events", seqs=list(seqs))]

    @_read
    def owners(self) -> list[str]:
        return [r[0] for r in self._all("owners")]

    @_read
    def history(
        self, after: int = 0, instance: int | None = None, workflow: str | None = None, limit: int = 1000
    ) -> list[HistoryRow]:
        """Event log entries after `after` (a history seq), oldest first."""
        where = "".join(
            cond
            for cond, value in ((" AND h.instance = :instance", instance), (" AND i.workflow = :workflow", workflow))
            if value is not None
        )
        rows = self._all("history", {"where": where}, after=after, instance=instance, workflow=workflow, limit=limit)
        return [HistoryRow(*r[:8], from_json(r[8])) for r in rows]

    @_read
    def last_history_seq(self) -> int:
        return int(self._value("last_history_seq"))

    @_write
    def append_history(self, seq: int, events: list) -> None:
        """Append `(at, type, step, n, data)` entries (LogEvent records) to an instance's event log."""
        if events:
            self.db.executemany("append_history", _history_rows(seq, events))

    # -- client writes -------------------------------------------------------------------

    @_write
    def create_instances(self, items: list[dict], now: float, skip_existing: bool = False) -> list[InstanceRow]:
        """Insert queued instances; ConflictError on an existing id unless `skip_existing`."""
        created = []
        for item in items:
            trigger = item.get("trigger")
            seq = self._value(
                "insert_instance",
                workflow=item["workflow"],
                id=item["id"],
                params=item["params"],
                now=now,
                trigger=to_json(trigger),
            )
            if seq is None:
                if skip_existing:
                    continue
                raise ConflictError(
                    f"an instance with id {item['id']!r} already exists in workflow {item['workflow']!r}",
                    "choose another id, or restart the existing instance",
                )
            self._log(seq, now, "workflow_queued")
            created.append(
                InstanceRow(
                    seq,
                    item["workflow"],
                    item["id"],
                    item["params"],
                    Status.QUEUED,
                    created_at=now,
                    wake_at=now,
                    trigger=trigger,
                )
            )
        if created:
            self.db.notify("w")
        return created

    @_write
    def add_event(self, seq: int, type: str, payload: str | None, now: float) -> int:
        status, _ = self._locked_status(seq)
        if status in TERMINAL:
            raise ConflictError(
                f"the instance is {status}; it cannot receive events",
                "send events only to instances that are still running, waiting or paused",
            )
        event = self._value("insert_event", seq=seq, type=type, payload=payload, now=now)
        # also when a runner holds it: if that runner is dead, its instances are handed back
        # keeping a waiting instance's wake_at, so the event must have moved it to now
        self._run("wake_if_waiting", seq=seq, now=now)
        self._log(seq, now, "event_received", {"eventType": type})
        self.db.notify(f"e:{seq}")
        return int(event)

    @_write
    def pause(self, seq: int, now: float) -> str:
        status, _ = self._locked_status(seq)
        if status == Status.RUNNING:
            self._run("set_waiting_for_pause", seq=seq, now=now)
            self._log(seq, now, "workflow_waiting_for_pause")
            self.db.notify(f"c:{seq}")
            return Status.WAITING_FOR_PAUSE
        if status in (Status.QUEUED, Status.WAITING):
            self._run("set_paused", seq=seq, now=now)
            self._log(seq, now, "workflow_paused")
            self.db.notify(f"c:{seq}")
            return Status.PAUSED
        return status

    @_write
    def resume(self, seq: int, now: float) -> str:
        status, paused_at = self._locked_status(seq)
        if status == Status.WAITING_FOR_PAUSE:
            self._run("cancel_pause", seq=seq, now=now)
            return Status.RUNNING
        if status != Status.PAUSED:
            return status
        self._run("shift_timers", seq=seq, shift=max(0.0, now - (paused_at or now)))
        self._run("set_resumed", seq=seq, now=now)
        self._log(seq, now, "workflow_resumed")
        self.db.notify("w")
        return Status.QUEUED

    @_write
    def terminate(self, seq: int, now: float) -> None:
        status, _ = self._locked_status(seq)
        if status in TERMINAL:
            raise ConflictError(
                f"cannot terminate the instance: it is already {status}",
                "only queued, running, waiting or paused instances can be terminated",
            )
        self._run("set_terminated", seq=seq, now=now)
        self._log(seq, now, "workflow_terminated")
        self.db.notify(f"c:{seq}")

    @_write
    def restart(self, seq: int, now: float, from_step: tuple[str, int, str] | None = None) -> None:
        self._locked_status(seq)
        pos = 0
        if from_step is not None:
            name, count, kind = from_step
            pos = self._value("step_position", seq=seq, kind=kind, name=name, n=count)
            if pos is None:
                raise NotFoundError(
                    f"step {name!r} ({kind} #{count}) is not in the instance's execution history",
                    "see the steps with `wf instances describe ID`",
                )
        for query in ("forget_steps_from", "forget_attempts_from", "forget_events_from"):
            self._run(query, seq=seq, pos=pos)
        self._run("set_restarted", seq=seq, now=now)
        self._log(seq, now, "workflow_restarted", {"fromStep": from_step[0]} if from_step else None)
        self.db.notify(f"c:{seq}")
        self.db.notify("w")

    @_write
    def delete(self, seq: int) -> None:
        self._one("lock_instance", seq=seq)
        for query in ("delete_steps", "delete_attempts", "delete_events", "delete_history", "delete_instance"):
            self._run(query, seq=seq)
        self.db.notify(f"c:{seq}")

    # -- cron schedules ------------------------------------------------------------------

    @_write
    def cron_marks(self, schedules: list[tuple[str, str]], now: float) -> dict[tuple[str, str], float]:
        """The last tick fired of each (workflow, cron); one seen for the first time starts at `now`."""
        if schedules:
            self.db.executemany("add_cron_mark", [{"workflow": w, "cron": c, "now": now} for w, c in schedules])
        wanted = set(schedules)
        return {(w, c): t for w, c, t in self._all("cron_marks") if (w, c) in wanted}

    @_write
    def fire_cron(self, workflow: str, cron: str, tick: float, item: dict, now: float) -> InstanceRow | None:
        """Fire tick `tick`: move the schedule's mark to it and create `item` in one transaction, only
        if the mark is older; None when another runner fired this tick (or a later one)."""
        if self._one("advance_cron", workflow=workflow, cron=cron, tick=tick, now=now) is None:
            return None
        created = self.create_instances([item], now, skip_existing=True)
        return created[0] if created else None

    # -- runner writes -------------------------------------------------------------------

    @_write
    def claim(
        self,
        owner: str,
        now: float,
        lease: float,
        limit: int,
        workflows: list[str],
        caps: dict[str, int] | None = None,
    ) -> list[InstanceRow]:
        """Take up to `limit` due instances. A workflow in `caps` starts a queued instance only while
        fewer than its cap are running (`concurrency.limit`); waking instances go first. A lock per
        capped workflow makes its count and its claim one decision across runners."""
        if limit <= 0 or not workflows:
            return []
        caps = {w: c for w, c in (caps or {}).items() if w in workflows}
        claimed = self._claim_due(
            owner,
            now,
            lease,
            limit,
            list(workflows),
            "AND NOT (status = 'queued' AND workflow {in:capped})",
            capped=list(caps),
        )
        for workflow, cap in caps.items():
            self.db.lock(f"wf-cap:{workflow}")
            room = min(cap - int(self._value("count_running", workflow=workflow)), limit - len(claimed))
            if room > 0:
                claimed += self._claim_due(owner, now, lease, room, [workflow], "AND status = 'queued'")
        claimed.sort(key=lambda r: (r.wake_at or 0, r.seq))
        for row in claimed:
            if row.started_at == now:
                self._log(row.seq, now, "workflow_started")
        return claimed

    def _claim_due(
        self, owner: str, now: float, lease: float, limit: int, workflows: list[str], extra: str, **params: Any
    ) -> list[InstanceRow]:
        rows = self._all(
            "claim_due",
            {"extra": extra},
            owner=owner,
            now=now,
            lease=lease,
            limit=limit,
            workflows=workflows,
            **params,
        )
        return [instance_from_row(r) for r in rows]

    @_write
    def commit_step(self, owner: str, seq: int, gen: int, w: StepWrite, now: float) -> str | None:
        """Record one step transition if `owner` still holds the instance at `gen`. The instance
        status after it (`waitingForPause` tells the engine to stop at this boundary), or None when
        the claim was lost (fenced out)."""
        status = self._value(
            "commit_instance",
            seq=seq,
            owner=owner,
            gen=gen,
            status=w.instance_status,
            wake_at=w.instance_wake_at,
            now=now,
        )
        if status is None:
            return None
        s = w.step
        self._run("upsert_step", **_step_params(seq, s))
        if w.attempt is not None:
            a = w.attempt
            self._run(
                "upsert_attempt",
                seq=seq,
                pos=s.pos,
                attempt=a.attempt,
                started_at=a.started_at,
                ended_at=a.ended_at,
                error=to_json(a.error),
            )
        self.append_history(seq, w.events)
        if w.consume_event is not None and self._run("consume_event", pos=s.pos, event=w.consume_event).rowcount != 1:
            raise ConflictError("the event was already taken by another wait", "retry the wait")
        return status

    def _fenced(self, owner: str, seq: int, gen: int) -> bool:
        return self._one("fenced", seq=seq, owner=owner, gen=gen) is not None

    @_write
    def mark_attempt_started(
        self, owner: str, seq: int, gen: int, step: StepRow, attempt: int, now: float, events: Iterable = ()
    ) -> None:
        """Make a long-running attempt visible (and counted) before it ends."""
        if not self._fenced(owner, seq, gen):
            return
        marked = self._run("mark_step_running", **{**_step_params(seq, step), "attempts": attempt})
        if marked.rowcount != 1:
            return
        self._run("insert_attempt_started", seq=seq, pos=step.pos, attempt=attempt, now=now)
        self.append_history(seq, list(events))

    @_write
    def finish_instance(
        self, owner: str, seq: int, gen: int, status: str, output: str | None, error: dict | None, now: float
    ) -> bool:
        done = (
            self._run(
                "finish_instance",
                seq=seq,
                owner=owner,
                gen=gen,
                status=status,
                output=output,
                error=to_json(error),
                now=now,
            ).rowcount
            == 1
        )
        if done:
            data = {"output": from_json(output)} if status == Status.COMPLETE else {"error": error}
            self._log(seq, now, f"workflow_{'completed' if status == Status.COMPLETE else status}", data)
        return done

    @_write
    def pause_at_boundary(self, owner: str, seq: int, gen: int, now: float) -> bool:
        done = self._run("pause_at_boundary", seq=seq, owner=owner, gen=gen, now=now).rowcount == 1
        if done:
            self._log(seq, now, "workflow_paused")
        return done

    @_write
    def release(self, owner: str, seq: int, gen: int, wake_at: float | None, now: float | None = None) -> bool:
        """Give up the claim; the instance is claimable again at `wake_at` (a pause asked for
        meanwhile takes effect now: nothing is in flight)."""
        now = wake_at if now is None else now
        done = self._run("release", seq=seq, owner=owner, gen=gen, wake_at=wake_at, now=now).rowcount == 1
        if done and wake_at is not None and now is not None and wake_at <= now:
            self.db.notify("w")  # due now: whichever runner is free should take it
        return done

    @_write
    def suspend(self, owner: str, seq: int, gen: int, wake_at: float, wait_types: list, now: float) -> bool:
        """Release a waiting instance; wake it at once if an event it waits for is already stored."""
        # the row is locked first: an add_event racing with this either sees it released or is seen here
        if not self._fenced(owner, seq, gen):
            return False
        if wait_types:
            found = (
                self._one("pending_event_any", seq=seq)
                if None in wait_types
                else self._one("pending_event_of_types", seq=seq, types=list(wait_types))
            )
            if found:
                wake_at = now
        return self.release(owner, seq, gen, wake_at, now)

    # -- liveness ------------------------------------------------------------------------

    @_write
    def heartbeat(self, owner: str, now: float, lease: float) -> list[int]:
        """Extend `owner`'s lease on its instances; the seqs it still holds."""
        return [r[0] for r in self._all("renew_leases", owner=owner, now=now, lease=lease)]

    @_write
    def release_owner(self, owner: str, now: float) -> int:
        """Hand a dead runner's instances back: running ones at once, waiting ones at their timer.
        Each one that was mid-run gets a `runner_lost` entry in its log (see losses_since_progress)."""
        return self._hand_back(self._all("instances_of_owner", owner=owner), now)

    @_write
    def release_expired(self, now: float, keep: str | None = None) -> int:
        """Hand back every instance whose lease ran out and whose runner's own lease ran out too."""
        return self._hand_back(self._all("instances_with_expired_lease", now=now, keep=keep), now)

    def _hand_back(self, rows: list[tuple], now: float) -> int:
        for seq, owner, status in rows:
            if status in (Status.RUNNING, Status.WAITING_FOR_PAUSE):
                self._log(seq, now, "runner_lost", {"owner": owner})
        if rows:
            self._run("hand_back", seqs=[r[0] for r in rows], now=now)
            self.db.notify("w")
        return len(rows)

    @_write
    def register_runner(self, owner: str, now: float, lease: float) -> None:
        self._run("register_runner", owner=owner, host=socket.gethostname(), pid=os.getpid(), now=now, lease=lease)

    @_write
    def unregister_runner(self, owner: str) -> None:
        self._run("forget_runner", owner=owner)

    @_write
    def runner_heartbeat(self, owner: str, now: float, lease: float) -> list[int]:
        """Renew a runner's lease (its own row and its instances'); forget runners long gone."""
        self.register_runner(owner, now, lease)
        self._run("forget_runners_before", now=now)
        return self.heartbeat(owner, now, lease)

    @_read
    def live_runners(self, now: float) -> list[str]:
        return [r[0] for r in self._all("live_runners", now=now)]
