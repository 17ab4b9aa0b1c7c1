"""The store's operations for waits on other instances (`step.wait_for_instance`).

A waiting step registers itself in `wf_waits` (waiter, its step's position, the instance waited
on) while the awaited instance's row is locked. Whatever ends an instance (a runner finishing it,
a client terminating or deleting it) wakes its waiters in the same transaction: a waiter released
to the store is made due now, and a note `e:<waiter>` goes to the runners (PostgreSQL's NOTIFY
inside the transaction; on SQLite the runner or client sends it by datagram after the commit).
So no end is missed: either the end sees the registration, or the registration sees the end.
A wait's row goes when its step ends, or with its instance (deleted, or restarted before it).
"""

from __future__ import annotations

from collections.abc import Callable

from .base import StepWrite
from .ops import Ops, _write

Watched = tuple[int, str, str | None, str | None]  # the instance waited on: seq, status, output, error (JSON)


class WaitOps(Ops):
    commit_step: Callable[..., str | None]  # from RunnerOps

    @_write
    def watch_instance(
        self, owner: str, seq: int, gen: int, pos: int, workflow: str, id: str, target: int | None = None
    ) -> Watched | None | bool:
        """Register step `pos` of instance `seq` as waiting for instance (`workflow`, `id`) (or for
        `target`, the seq found the first time) and say how that instance is now. None: there is no
        such instance (or no longer); False: `owner` lost instance `seq` (fenced out)."""
        if self._one("fenced", seq=seq, owner=owner, gen=gen) is None:
            return False
        if target is None:
            row = self._one("watch_by_id", workflow=workflow, id=id)
        else:
            row = self._one("watch_by_seq", seq=target)
        if row is None:
            return None
        if row[1] not in ("complete", "errored", "terminated"):
            self._run("add_wait", seq=seq, pos=pos, target=row[0])
        return int(row[0]), row[1], row[2], row[3]

    @_write
    def commit_wait_end(self, owner: str, seq: int, gen: int, w: StepWrite, now: float) -> str | None:
        """Commit the end of a waitForInstance step (`commit_step`) and forget its registration."""
        status = self.commit_step(owner, seq, gen, w, now)
        if status is not None:
            self._run("forget_wait", seq=seq, pos=w.step.pos)
        return status

    def _wake_waiters(self, seq: int, now: float | None) -> list[int]:
        """Instance `seq` ends (or is deleted) in this transaction: wake the instances waiting for it,
        and forget its own waits. Returns the waiters' seqs (a client on SQLite notifies them itself).
        (A runner's finish does the same without reading them: _wake_waiters_unread.)"""
        self._run("delete_waits", seq=seq)
        waiters = [int(r[0]) for r in self._all("waiters_of", seq=seq)]
        if waiters:
            # a delete carries no time: 0 is long past, so the waiter is due at once
            self._run("wake_waiting", seqs=waiters, now=0.0 if now is None else now)
            for waiter in waiters:
                self.db.notify(f"e:{waiter}")
        return waiters

    def _wake_waiters_unread(self, seq: int, now: float) -> None:
        """_wake_waiters without reading the waiters first (a runner's finish, whose batch reads
        nothing before its COMMIT): the statements wake them and tell their runners themselves."""
        self._run("delete_waits", seq=seq)
        self._run("wake_waiters_of", seq=seq, now=now)
        self.db.notify_each("waiter_notes", {"seq": seq}, {})

    def _waited_instance_ended(self, seq: int) -> bool:
        return self._one("waited_instance_ended", seq=seq) is not None
