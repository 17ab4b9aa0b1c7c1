"""The runner: claims due instances from the store and executes many of them at once on asyncio.

It sleeps until the earliest timer in the store or until a client's note wakes it; it does
not poll. An instance that waits stays in memory (no replay) unless it stays idle longer than
`keep_warm` seconds, when it is suspended to the store and replayed when its timer or event
comes. `replay_always` suspends after every step, to prove that replay gives the same result.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import error_info
from . import logs, steps
from .clock import Clock, SystemClock
from .coordination import coordination_for
from .engine import Execution, Interrupt
from .store import open_store
from .store.aio import AsyncStore

log = logging.getLogger("wf.runner")
# Runners that may die holding one instance, with no step of it finishing in between, before
# the instance is failed (like DBOS's max_recovery_attempts). High, because a dying runner takes
# every instance it held down with it, innocent ones included; WF_MAX_RECOVERY_ATTEMPTS sets it.
MAX_LOSSES = 100


@dataclass(frozen=True)
class Registered:
    """A workflow the runner can execute: its class and step limit."""

    cls: type
    step_limit: int = 10_000
    concurrency_limit: int | None = None  # most instances running at once (`concurrency.limit`)


class Runner:
    def __init__(
        self,
        workflows: dict[str, Registered],
        state_dir: str | Path,
        *,
        store_url: str | None = None,
        clock: Clock | None = None,
        owner: str | None = None,
        concurrency: int = 1000,
        keep_warm: float = 60.0,
        replay_always: bool = False,
        lease: float = 30.0,
        reap_interval: float = 1.0,
        env: Any = None,
        astore: AsyncStore | None = None,
        capture_output: bool = True,
    ):
        self.workflows = workflows
        self.state_dir = Path(state_dir)
        self.clock = clock or SystemClock()
        self.owner = owner or uuid.uuid4().hex[:12]
        self.concurrency, self.keep_warm, self.replay_always = concurrency, keep_warm, replay_always
        self.lease, self.reap_interval = lease, reap_interval
        self.env = env
        self.capture_output = capture_output
        self.max_losses = int(os.environ.get("WF_MAX_RECOVERY_ATTEMPTS", MAX_LOSSES))
        self.astore = astore or AsyncStore(lambda: open_store(self.state_dir, store_url))
        self.coord = None  # liveness and wake-ups: chosen by the store (coordination.py)
        self.executions: dict[int, Execution] = {}
        self.draining = False
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self.finished: asyncio.Queue | None = None  # (seq, status) as instances end here; for waiters
        self.modifiers = None  # wf.testing sets a lookup of per-instance mocks; the engine ignores None

    @property
    def store_ops(self):
        return self.astore.store

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> Runner:
        await self.astore.open()
        if self.capture_output:
            logs.install()
        self.coord = coordination_for(self.astore.store, self.state_dir)
        await self.coord.start(self)
        loop = asyncio.get_running_loop()
        self._loop_task = loop.create_task(self._main())
        return self

    async def stop(self, grace: float = 5.0) -> None:
        """Finish in-flight step attempts (up to `grace` seconds), release every claim, let go."""
        self.draining = True
        self.wake()
        for x in list(self.executions.values()):
            if x.is_idle() or x.active_attempts == 0:
                self._cancel(x, "shutdown")
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                for x in self.executions.values():
                    if x.task is task:
                        self._cancel(x, "shutdown")
            if pending:
                await asyncio.wait(pending, timeout=2.0)
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        if self.coord is not None:
            await self.coord.stop()
        if self.capture_output:
            logs.uninstall()
        await self.astore.close()

    def wake(self) -> None:
        self._wake.set()

    # -- notes from clients --------------------------------------------------------------

    def handle_note(self, note: str) -> None:
        kind, _, arg = note.partition(":")
        if kind in ("e", "c") and arg.isdigit():
            x = self.executions.get(int(arg))
            if x is not None:
                if kind == "e":
                    x.poke()
                else:
                    asyncio.ensure_future(self._check_control(x))
        self.wake()

    async def _check_control(self, x: Execution) -> None:
        row = await self.astore.call(self.store_ops.get_by_seq, x.seq)
        if row is None or row.gen != x.gen or row.owner != self.owner:
            self._cancel(x, "lost")
        elif row.status == "waitingForPause":
            x.pause_pending = True
            if x.active_attempts == 0:
                self._cancel(x, "pause")

    # -- executing -----------------------------------------------------------------------

    def suspend(self, x: Execution) -> None:
        self._cancel(x, "suspend")

    def _cancel(self, x: Execution, reason: str) -> None:
        if x.stop_reason is None and x.task is not None and not x.task.done():
            x.stop_reason = reason
            x.suspend_wake = min(x.deadlines) if x.deadlines and x.active_attempts == 0 else self.clock.now()
            x.suspend_types = list(x.wait_types)
            x.task.cancel()

    def _spawn(self, row) -> None:
        task = asyncio.get_running_loop().create_task(self._drive(row))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drive(self, row) -> None:
        reg = self.workflows[row.workflow]
        try:
            rows, losses = await self.astore.call(self.store_ops.load_run, row.seq, steps.progress_events())
        except Exception:
            log.exception("could not load instance %s", row.id)
            await self.astore.write(
                self.store_ops.release, self.owner, row.seq, row.gen, self.clock.now() + 1, self.clock.now()
            )
            return
        if losses >= self.max_losses:
            await self._give_up(row)
            return
        x = Execution(self, row, reg.cls, reg.step_limit, rows, self.env)
        x.task = asyncio.current_task()
        self.executions[row.seq] = x
        try:
            await self._execute(x)
        finally:
            if self.executions.get(row.seq) is x:  # a restart may have brought in a newer one
                del self.executions[row.seq]
            self.wake()

    async def _give_up(self, row) -> None:
        """A step keeps killing its runner: end the instance instead of crashing forever."""
        error = {
            "name": "WorkflowFatalError",
            "message": f"the runner died {self.max_losses} times in a row while running this instance, with no "
            f"step finishing in between; a step probably kills its process (os._exit, a crash "
            f"in native code, running out of memory)",
        }
        log.error("instance %s: %s", row.id, error["message"])
        await self.astore.write(
            self.store_ops.finish_instance, self.owner, row.seq, row.gen, "errored", None, error, self.clock.now()
        )

    async def _execute(self, x: Execution) -> None:
        try:
            status, value = await x.execute()
        except Interrupt as stop:
            return await self._settle(x, stop.reason, self.clock.now())
        except asyncio.CancelledError:
            if x.stop_reason is None:
                raise
            return await self._settle(x, x.stop_reason, x.suspend_wake)
        except BaseException as exc:  # SystemExit or the like from workflow code: the instance fails
            log.exception("instance %s raised %s", x.row.id, type(exc).__name__)
            status, value = "errored", error_info(exc)
        output, error = (value, None) if status == "complete" else (None, value)
        done = await self.astore.write(
            self.store_ops.finish_instance, self.owner, x.seq, x.gen, status, output, error, self.clock.now()
        )
        if done and self.finished is not None:
            self.finished.put_nowait((x.seq, status))

    async def _settle(self, x: Execution, reason: str, wake_at: float) -> None:
        store, now = self.store_ops, self.clock.now()
        if reason == "lost":
            return
        if reason == "pause":
            if await self.astore.write(store.pause_at_boundary, self.owner, x.seq, x.gen, now):
                return
            wake_at = now
        if reason == "suspend" or reason == "shutdown":
            types = getattr(x, "suspend_types", [])
            await self.astore.write(store.suspend, self.owner, x.seq, x.gen, wake_at, types, now)
            return
        await self.astore.write(store.release, self.owner, x.seq, x.gen, min(wake_at, now), now)

    # -- the loop ------------------------------------------------------------------------

    async def _main(self) -> None:
        """Claim and sleep, forever; a store that fails (a database restart, a full disk) is
        retried with a growing pause instead of stopping the runner."""
        pause = 0.1
        while not self.draining:
            started = time.monotonic()
            try:
                await self._claim_loop()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                pause = 0.1 if time.monotonic() - started > 30 else min(pause * 2, 5.0)
                log.error("the store failed (%s: %s); trying again in %.1fs", type(exc).__name__, exc, pause)
                await asyncio.sleep(pause)

    async def _claim_loop(self) -> None:
        names = list(self.workflows)
        caps = {n: r.concurrency_limit for n, r in self.workflows.items() if r.concurrency_limit}
        next_reap = -math.inf
        while not self.draining:
            self._wake.clear()
            now = self.clock.now()
            if now >= next_reap:
                await self._reap(now)
                next_reap = now + self.reap_interval
            free = self.concurrency - len(self._tasks)  # claimed ones still loading count too
            rows = []
            if free > 0:
                rows = await self.astore.call(
                    self.store_ops.claim, self.owner, now, now + self.lease, free, names, caps
                )
                for row in rows:
                    self._spawn(row)
            if rows and len(rows) == free:
                await asyncio.sleep(0)
                continue
            due = (
                await self.astore.call(self.store_ops.next_wake, names, caps) if free > len(rows) or free <= 0 else None
            )
            if free <= 0 and due is not None and due <= now:
                self._make_room()  # those suspended wake this loop as they finish
                due = None
            await self._sleep_until(min(due if due is not None else math.inf, next_reap))

    def now_idle(self, x: Execution) -> None:
        """An instance in memory started to wait: if the runner is full, look again for due work."""
        if len(self._tasks) >= self.concurrency:
            self.wake()

    def _make_room(self) -> None:
        """The runner is full and work is due: suspend instances that only wait (they hold no
        work) so that it can start; they come back by replay when their timer or event comes."""
        idle = [x for x in self.executions.values() if x.is_idle() and x.stop_reason is None]
        for x in idle[: max(1, self.concurrency // 10)]:
            self.suspend(x)

    async def _sleep_until(self, deadline: float) -> None:
        if self._wake.is_set():
            return
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        handle = self.clock.call_at(deadline, lambda: fut.done() or fut.set_result(None))
        waiter = loop.create_task(self._wake.wait())
        try:
            await asyncio.wait({fut, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            handle.cancel()
            waiter.cancel()

    async def _reap(self, now: float) -> None:
        """Hand back the instances of runners that died (the coordination knows how), and, in case
        a note was lost (a full socket buffer drops it), look for events nobody was told about."""
        waiting = [seq for seq, x in self.executions.items() if x.pokers]
        if waiting:
            for seq in await self.astore.call(self.store_ops.with_pending_events, waiting[:30000]):
                x = self.executions.get(seq)
                if x is not None:
                    x.poke()
        await self.coord.reap(now)
