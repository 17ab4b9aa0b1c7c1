"""The store's operations for runners: cron marks, claims, step commits (fenced by owner and
generation), releases, and liveness (leases, dead runners' instances handed back). An instance's
end wakes the instances waiting for it (waits.py) in the same transaction."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from ...errors import ConflictError
from ..status import Status
from .base import InstanceRow, StepRow, StepWrite, from_json, instance_from_row, step_from_row, to_json
from .ops import Undone, _read, _step_params, _write
from .waits import WaitOps

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (which `wf status` would pay for)
if TYPE_CHECKING:
    from typing import Any


class RunnerOps(WaitOps):
    create_instances: Any  # from SQLStore: a fired cron tick creates its instance like a client does
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
        only: list[int] | None = None,
    ) -> list[InstanceRow]:
        """Take up to `limit` due instances (of the seqs in `only`, when given). A workflow in `caps`
        starts a queued instance only while fewer than its cap are running (`concurrency.limit`);
        waking instances go first. A lock per capped workflow makes its count and its claim one
        decision across runners."""
        if limit <= 0 or not workflows:
            return []
        caps = {w: c for w, c in (caps or {}).items() if w in workflows}
        mine = " AND seq {in:only}" if only else ""
        claimed = self._claim_due(
            owner,
            now,
            lease,
            limit,
            list(workflows),
            "AND NOT (status = 'queued' AND workflow {in:capped})" + mine,
            capped=list(caps),
            only=only or [],
        )
        for workflow, cap in caps.items():
            self.db.lock(f"wf-cap:{workflow}")
            room = min(cap - int(self._value("count_running", workflow=workflow)), limit - len(claimed))
            if room > 0:
                claimed += self._claim_due(
                    owner, now, lease, room, [workflow], "AND status = 'queued'" + mine, only=only or []
                )
        claimed.sort(key=lambda r: (r.wake_at or 0, r.seq))
        for row in claimed:
            if row.started_at == now:
                self._log(row.seq, now, "workflow_started")
        return claimed

    def claim_runs(
        self,
        owner: str,
        now: float,
        lease: float,
        limit: int,
        workflows: list[str],
        caps: dict[str, int] | None = None,
        only: list[int] | None = None,
        progress: Iterable[str] = (),
    ) -> tuple[list[tuple[InstanceRow, list[StepRow], int]], float | None]:
        """`claim`, with what each claimed instance needs to run (`load_run`'s answer), and the
        earliest wake time of what is left unclaimed (`next_wake`), in one transaction: its reads
        are sent before its commit and read after it (on PostgreSQL, two waits in all)."""
        claimed, steps, losses, due = self._claim_and_read(owner, now, lease, limit, workflows, caps, only, progress)
        wake = due.fetchone()[0]
        if not claimed:
            return [], wake
        by_seq: dict[int, list[StepRow]] = {r.seq: [] for r in claimed}
        for row in steps.fetchall():
            by_seq[row[0]].append(step_from_row(row[1:]))
        lost = {seq: int(n) for seq, n in losses.fetchall()}
        return [(r, by_seq[r.seq], lost.get(r.seq, 0)) for r in claimed], wake

    @_write
    def _claim_and_read(self, owner, now, lease, limit, workflows, caps, only, progress) -> tuple:
        claimed = self.claim(owner, now, lease, limit, workflows, caps, only)
        steps = losses = None
        if claimed:
            seqs = [r.seq for r in claimed]
            steps = self._run("steps_of_many", seqs=seqs)
            losses = self._run("losses_of_many", seqs=seqs, progress=list(progress))
        parts = {"extra": "AND seq {in:only}" if only else ""}
        due = self._run("next_wake", parts, workflows=list(workflows), capped=list(caps or ()), only=only or [])
        return claimed, steps, losses, due

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
        the claim was lost (fenced out).

        Where each statement is answered as it runs (SQLite), the fence is read first and nothing
        is written past it. Elsewhere every statement is sent before the fence is read, and undone
        when it did not hold (Ops._checked); in PostgreSQL's group commit the statements refuse the
        transaction themselves (Later), so the batch waits for the database once for all its ops.
        An event another wait took raises ConflictError; the op's transaction (or its savepoint in
        a group commit) undoes what it wrote."""
        fence = dict(seq=seq, owner=owner, gen=gen, status=w.instance_status, wake_at=w.instance_wake_at, now=now)
        if self.db.answers_at_once:
            row = self._one("commit_instance", **fence)
            if row is None:
                return None  # nothing was written: the fence is the first statement
            taken = self._step_rows(seq, w)
            if taken is not None and taken.rowcount != 1:
                raise _taken()
            return row[0]
        if self.db.reads_later:  # the database refuses the batch if it does not hold
            refused = self._run("commit_instance_or_refuse", **fence)
            self._step_rows(seq, w, refuse=True)
            return self._refusing(lambda: refused.fetchone()[0])

        def send() -> Callable[[], str]:
            fenced = self._run("commit_instance", **fence)
            taken = self._step_rows(seq, w)

            def outcome() -> str:
                row = fenced.fetchone()
                if row is None:
                    raise Undone()
                if taken is not None and taken.rowcount != 1:
                    raise _taken()
                return row[0]

            return outcome

        return self._checked(send)

    def _step_rows(self, seq: int, w: StepWrite, refuse: bool = False) -> Any:
        """The rows of a step transition past the instance's: the step, its attempt, its log, and
        the event it took (that statement's result, or None; with `refuse`, a taken event refuses
        the transaction)."""
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
                traceback=a.traceback,
            )
        self.append_history(seq, w.events)
        if w.consume_event is not None:
            return self._run("consume_event_or_refuse" if refuse else "consume_event", pos=s.pos, event=w.consume_event)
        return None

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
        self,
        owner: str,
        seq: int,
        gen: int,
        status: str,
        output: str | None,
        error: dict | None,
        now: float,
        traceback: str | None = None,
        events: Iterable = (),
    ) -> bool:
        """End the instance if `owner` still holds it; `traceback` (of the error that ended `run()`)
        goes to the event log only: the instance's error is Cloudflare's {name, message}. `events`
        are logged just before the end (a rollback's outcome). Written before the fence is read,
        and undone when it did not hold (see commit_step)."""
        data: dict[str, Any] = {"output": from_json(output)} if status == Status.COMPLETE else {"error": error}
        if traceback and status != Status.COMPLETE:
            data["traceback"] = traceback

        def write(query: str) -> Any:
            ended = self._run(
                query, seq=seq, owner=owner, gen=gen, status=status, output=output, error=to_json(error), now=now
            )
            if events:
                self.append_history(seq, list(events))
            self._log(seq, now, f"workflow_{'completed' if status == Status.COMPLETE else status}", data)
            self._wake_waiters_unread(seq, now)
            return ended

        if self.db.reads_later:  # the database refuses the batch if it does not hold (see commit_step)
            write("finish_instance_or_refuse")
            return self._refusing(lambda: True)

        def send() -> Callable[[], bool]:
            ended = write("finish_instance")

            def outcome() -> bool:
                if ended.rowcount != 1:
                    raise Undone()
                return True

            return outcome

        return self._checked(send, undone=False)

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
        """Release a waiting instance; wake it at once if an event it waits for is already stored, or
        an instance it waits for has ended."""
        # the row is locked first: an add_event (or an instance's end) racing with this either sees
        # it released or is seen here
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
        if wake_at > now and self._waited_instance_ended(seq):
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
    def release_orphans(self, owner: str, seqs: set[int], now: float) -> int:
        """Hand back those of `seqs` that `owner` still holds in the store but no longer runs."""
        return self._hand_back([r for r in self._all("instances_of_owner", owner=owner) if r[0] in seqs], now)

    @_write
    def release_expired(self, now: float, keep: str | None = None) -> int:
        """Hand back every instance whose lease ran out and whose runner's own lease ran out too."""
        return self._hand_back(self._all("instances_with_expired_lease", now=now, keep=keep), now)

    def _hand_back(self, rows: list[tuple], now: float) -> int:
        for seq, owner, status in rows:
            if status in (Status.RUNNING, Status.WAITING_FOR_PAUSE):
                self._log(seq, now, "runner_lost", {"owner": owner})
            if status == Status.WAITING_FOR_PAUSE:  # paused by hand_back, the step it was in not run again
                self._log(seq, now, "workflow_paused")
        if rows:
            self._run("hand_back", seqs=[r[0] for r in rows], now=now)
            self.db.notify("w")
        return len(rows)

    @_write
    def register_runner(self, owner: str, now: float, lease: float) -> None:
        import socket

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


def _taken() -> ConflictError:
    return ConflictError("the event was already taken by another wait", "retry the wait")
