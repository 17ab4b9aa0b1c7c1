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

from collections.abc import Iterable

from ...errors import ConflictError, NotFoundError
from ..status import TERMINAL, Status
from .base import (
    AttemptRow,
    EventRow,
    HistoryRow,
    InstanceRow,
    StepRow,
    from_json,
    instance_from_row,
    step_from_row,
    to_json,
)
from .ops import Ops, _read, _write
from .runs import RunnerOps

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (which `wf status` would pay for)
if TYPE_CHECKING:
    from typing import Any

_OPEN = "status NOT IN ('complete', 'errored', 'terminated')"
# add_event_by_id's {match} and {open}: by id alone (False) or by workflow and id (True)
_BY_ID = {
    named: {"match": match, "open": f"{match} AND {_OPEN} AND (SELECT count(*) FROM wf_instances WHERE {match}) = 1"}
    for named, match in ((False, "id = :id"), (True, "workflow = :workflow AND id = :id"))
}
GC_BATCH = 100  # expired instances deleted per transaction (by the runner, and `wf gc`)
PAGE_SORT_MAX = 2000  # page_instances on SQLite: up to this many matches, sorting them beats walking by time


class SQLStore(RunnerOps, Ops):
    """The `wf` store over one database. Methods are synchronous and each is one transaction
    (or joins the caller's: `run_batch` nests a runner's writes under savepoints of one)."""

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
        self,
        workflow: str | None,
        status: str | None,
        limit: int,
        offset: int = 0,
        *,
        since: float | None = None,
        until: float | None = None,
    ) -> list[InstanceRow]:
        """Newest first; `since`/`until` bound `created_at` (`until` excluded)."""
        params = {"workflow": workflow, "status": status, "since": since, "until": until}
        conditions = ("workflow = :workflow", "status = :status", "created_at >= :since", "created_at < :until")
        where = [cond for cond, value in zip(conditions, params.values()) if value is not None]
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        rows = self._all("list_instances", {"where": clause}, limit=limit, offset=offset, **params)
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

    @_read
    def instances_in(self, workflows: list[str], statuses: list[str]) -> list[InstanceRow]:
        """Every instance of `workflows` in one of `statuses`, oldest first."""
        rows = self._all("instances_in", workflows=list(workflows), statuses=list(statuses))
        return [instance_from_row(r) for r in rows]

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
            for pos, attempt, start, end, error, traceback in self._all("attempts_of", seq=seq):
                if pos in by_pos:
                    by_pos[pos].attempt_log.append(AttemptRow(attempt, start, end, from_json(error), traceback))
        return steps

    @_read
    def steps_of_kind(self, seq: int, kind: str) -> list[StepRow]:
        """The steps of one kind (the rollback handlers' runs, say), in start order."""
        return [step_from_row(r) for r in self._all("steps_of_kind", seq=seq, kind=kind)]

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
    def next_wake(
        self, workflows: list[str], caps: dict[str, int] | None = None, only: list[int] | None = None
    ) -> float | None:
        """The earliest wake time of an unclaimed instance; queued instances of capped workflows
        wait for a slot, not a time, so they are left out."""
        parts = {"extra": "AND seq {in:only}" if only else ""}  # `only`: a runner for those instances alone
        return self._value("next_wake", parts, workflows=list(workflows), capped=list(caps or ()), only=only or [])

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
        return [HistoryRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], from_json(r[8])) for r in rows]

    @_read
    def last_history_seq(self) -> int:
        return int(self._value("last_history_seq"))

    # -- client writes -------------------------------------------------------------------

    @_write
    def create_instances(self, items: list[dict], now: float, skip_existing: bool = False) -> list[InstanceRow]:
        """Insert queued instances; ConflictError on an existing id unless `skip_existing`. The inserts
        are all sent before their seqs are read (on PostgreSQL, one wait for the whole batch)."""
        inserted = [
            self._run(
                "insert_instance",
                workflow=item["workflow"],
                id=item["id"],
                params=item["params"],
                now=now,
                trigger=to_json(item.get("trigger")),
                success_retention=item.get("success_retention"),
                error_retention=item.get("error_retention"),
            )
            for item in items
        ]
        created = []
        for item, result in zip(items, inserted):
            row = result.fetchone()
            if row is None:
                if skip_existing:
                    continue
                raise ConflictError(
                    f"an instance with id {item['id']!r} already exists in workflow {item['workflow']!r}",
                    "choose another id, or restart the existing instance",
                )
            created.append(
                InstanceRow(
                    row[0],
                    item["workflow"],
                    item["id"],
                    item["params"],
                    Status.QUEUED,
                    created_at=now,
                    wake_at=now,
                    trigger=item.get("trigger"),
                )
            )
        if created:
            queued = {"at": now, "type": "workflow_queued", "step": None, "n": None, "data": None}
            self.db.executemany("append_history", [{"seq": r.seq, **queued} for r in created])
            self.db.notify("w")
        return created

    def add_event(self, seq: int, type: str, payload: str | None, now: float) -> int:
        """Store an event for instance `seq` (NotFoundError, or ConflictError when it has ended).
        The transaction decides nothing on the way: the event and its log entry are inserted only
        if the instance is open, and what it found is read after the commit (on PostgreSQL the
        whole send is one round trip)."""
        found, event = self._add_event(seq, type, payload, now)
        row = found.fetchone()
        if row is None:
            raise NotFoundError("the instance was deleted", "list instances with `wf instances list`")
        if row[0] in TERMINAL:
            raise ConflictError(
                f"the instance is {row[0]}; it cannot receive events",
                "send events only to instances that are still running, waiting or paused",
            )
        return int(event.fetchone()[0])

    def add_event_by_id(self, workflow: str | None, id: str, type: str, payload: str | None, now: float) -> int | None:
        """Store an event for the open instance named `id` (in `workflow`, if given), finding it in
        the same transaction: the instance's seq, or None when no event was stored (no such
        instance, an id two workflows share, an instance that has ended; the caller's way through
        get() and add_event() then says which)."""
        row = self._add_event_by_id(_BY_ID[workflow is not None], workflow, id, type, payload, now).fetchone()
        return None if row is None else int(row[0])

    @_write
    def _add_event_by_id(
        self, parts: dict[str, str], workflow: str | None, id: str, type: str, payload: str | None, now: float
    ) -> Any:
        key = {"id": id, "workflow": workflow}
        self._run("lock_by_id", parts, **key)
        event = self._run("insert_event_by_id", parts, **key, type=type, payload=payload, now=now)
        self._run("wake_by_id", parts, **key, now=now)
        self._run("log_by_id", parts, **key, now=now, data=to_json({"eventType": type}))
        self.db.notify_each("event_note_by_id", key, parts)
        return event

    @_write
    def _add_event(self, seq: int, type: str, payload: str | None, now: float) -> tuple[Any, Any]:
        found = self._run("lock_instance", seq=seq)
        event = self._run("insert_event_if_open", seq=seq, type=type, payload=payload, now=now)
        # also when a runner holds it: if that runner is dead, its instances are handed back
        # keeping a waiting instance's wake_at, so the event must have moved it to now
        self._run("wake_if_waiting", seq=seq, now=now)
        self._run("log_if_open", seq=seq, at=now, type="event_received", data=to_json({"eventType": type}))
        self.db.notify(f"e:{seq}")
        return found, event

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
    def terminate(self, seq: int, now: float, rollback: bool = False) -> list[int]:
        """End the instance `terminated`; the instances that waited for it (woken) are returned.
        With `rollback`, a runner first unwinds its rollback handlers (the instance stays running
        meanwhile, as on Cloudflare) and then ends it terminated."""
        status, _ = self._locked_status(seq)
        if status in TERMINAL:
            raise ConflictError(
                f"cannot terminate the instance: it is already {status}",
                "only queued, running, waiting or paused instances can be terminated",
            )
        if rollback:
            self._run("set_terminating", seq=seq, now=now)
            self.db.notify(f"c:{seq}")
            self.db.notify("w")
            return []
        self._run("set_terminated", seq=seq, now=now)
        self._log(seq, now, "workflow_terminated")
        self.db.notify(f"c:{seq}")
        return self._wake_waiters(seq, now)

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
        for query in ("forget_steps_from", "forget_attempts_from", "forget_events_from", "forget_waits_from"):
            self._run(query, seq=seq, pos=pos)
        self._run("set_restarted", seq=seq, now=now)
        self._log(seq, now, "workflow_restarted", {"fromStep": from_step[0]} if from_step else None)
        self.db.notify(f"c:{seq}")
        self.db.notify("w")

    @_write
    def delete(self, seq: int, now: float | None = None) -> list[int]:
        """Delete the instance and all it holds; the instances that waited for it (woken) are returned."""
        self._one("lock_instance", seq=seq)
        for query in (
            "delete_steps",
            "delete_attempts",
            "delete_events",
            "delete_history",
            "delete_instance",
        ):
            self._run(query, seq=seq)
        self.db.notify(f"c:{seq}")
        return self._wake_waiters(seq, now)

    # -- retention -----------------------------------------------------------------------

    @_read
    def expired(self, workflow: str, success: float, error: float, now: float, limit: int) -> list[InstanceRow]:
        """Ended instances of `workflow` kept past their retention (their own, else `success` /
        `error` seconds for complete / errored and terminated ones), longest ended first."""
        rows = self._all("expired_instances", workflow=workflow, success=success, error=error, now=now, limit=limit)
        return [instance_from_row(r) for r in rows]

    @_write
    def delete_expired(
        self, workflow: str, success: float, error: float, now: float, limit: int
    ) -> tuple[list[InstanceRow], list[int]]:
        """Delete up to `limit` expired instances of `workflow` (as `expired` finds them) with all
        they hold, in one transaction; on PostgreSQL rows another collector holds are skipped. The
        deleted instances, and the instances that waited for them (woken)."""
        rows = self.expired(workflow, success, error, now, limit)
        woken: list[int] = []
        for row in rows:
            woken += self.delete(row.seq, now)
        return rows, woken

    @_write
    def hold(self, seq: int, now: float, why: str) -> bool:
        """Pause an unfinished instance at once, whoever holds it (the generation moves on, so a
        runner still running it writes nothing more): the replay check found that the code about
        to run it diverges from its history. False if it had ended or was paused already."""
        status, _ = self._locked_status(seq)
        if status in TERMINAL or status == Status.PAUSED:
            return False
        self._run("set_paused", seq=seq, now=now)
        self._log(seq, now, "workflow_paused", {"heldBy": "replay check", "reason": why})
        self.db.notify(f"c:{seq}")
        return True

    # -- code checks ---------------------------------------------------------------------

    @_read
    def code_checked(self, workflows: list[str]) -> dict[str, str]:
        """The code fingerprint each workflow's instances were last checked against (or made by)."""
        return dict(self._all("code_checked", workflows=list(workflows)))

    @_write
    def record_code(self, workflows: list[str], fingerprint: str, now: float) -> None:
        self.db.executemany("record_code", [{"workflow": w, "fingerprint": fingerprint, "now": now} for w in workflows])
