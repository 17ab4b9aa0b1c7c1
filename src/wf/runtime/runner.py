"""The runner: claims due instances from the store and executes many of them at once on asyncio.

It sleeps until the earliest timer in the store or until a client's note wakes it; it does
not poll. An instance that waits stays in memory (no replay) unless it stays idle longer than
`keep_warm` seconds, when it is suspended to the store and replayed when its timer or event
comes. `replay_always` suspends after every step, to prove that replay gives the same result.

The runner owns "idle": `await runner.quiescent()` returns once nothing can happen without
time passing or someone writing (no claim under way, no instance running code or a step
attempt, no store write pending, no background task, nothing due in the store).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StoreError, error_info
from . import crash, logs, steps
from .claims import claim_work
from .clock import Clock, SystemClock
from .coordination import coordination_for
from .cron import CronScheduler
from .durations import RETENTION_DEFAULT
from .engine import Execution, Interrupt
from .events import InstanceEvent, LogEvent
from .report import enabled as report_enabled
from .report import ended_event, report
from .retention import collect_expired
from .retry import Backoff
from .settings import Settings
from .status import Status
from .store import open_store
from .store.aio import AsyncStore
from .window import ClaimWindow

log = logging.getLogger("wf.runner")
_STORE_DOWN = Backoff(first=0.1, factor=2.0, most=5.0)


@dataclass(frozen=True)
class Registered:
    """A workflow the runner can execute: its class and step limit."""

    cls: type
    step_limit: int = 10_000
    concurrency_limit: int | None = None  # most instances running at once (`concurrency.limit`)
    schedules: tuple[str, ...] = ()  # cron expressions: each tick creates an instance (cron.py)
    retention: tuple[float, float] = (RETENTION_DEFAULT, RETENTION_DEFAULT)  # default (success, error) seconds


class Runner:
    def __init__(
        self,
        workflows: dict[str, Registered],
        state_dir: str | Path,
        *,
        settings: Settings | None = None,
        store_url: str | None = None,
        clock: Clock | None = None,
        owner: str | None = None,
        concurrency: int = 1000,
        keep_warm: float = 60.0,
        replay_always: bool = False,
        lease: float | None = None,
        reap_interval: float = 1.0,
        gc_interval: float = 60.0,
        env: Any = None,
        astore: AsyncStore | None = None,
        capture_output: bool = True,
        only: list[int] | None = None,
    ):
        self.workflows = workflows
        self.state_dir = Path(state_dir)
        self.settings = settings or Settings()
        self.clock = clock or SystemClock()
        self.owner = owner or uuid.uuid4().hex[:12]
        self.concurrency, self.keep_warm, self.replay_always = concurrency, keep_warm, replay_always
        self.lease = self.settings.lease if lease is None else lease
        self.reap_interval = reap_interval
        self.gc_interval = gc_interval  # seconds between looks for expired instances (math.inf: never)
        self.env = env
        self.capture_output = capture_output
        self.only = list(only) if only else None  # run these instances (seqs) and no other (`trigger --wait`)
        self.max_losses = self.settings.max_recovery_attempts
        self.astore = astore or AsyncStore(lambda: open_store(self.state_dir, store_url, self.settings))
        self.astore.on_settled = self.activity
        self.coord: Any = None  # liveness and wake-ups: chosen by the store's kind (coordination.py)
        self.executions: dict[int, Execution] = {}
        self.draining = False
        schedules = [(name, cron) for name, reg in workflows.items() for cron in reg.schedules]
        self.crons = CronScheduler(schedules, self.astore, self.clock)  # fired from the claim loop
        self.modifiers: Any = None  # wf.testing sets a lookup of per-instance mocks; the engine ignores None
        self.finished: asyncio.Queue | None = None  # set one to get (seq, status) as instances end here
        self._wake = asyncio.Event()
        self._sleeper: asyncio.Future | None = None  # what the claim loop sleeps on; wake() ends it
        self._claiming = True  # the claim loop is running, or has been woken to run
        self._loop_task: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()  # one per claimed instance
        self._background: set[asyncio.Task] = set()  # marks, log flushes, control checks
        self._unreleased: dict[int, tuple[int, float]] = {}  # seq -> (gen, wake_at): claims to hand back
        self._backlog = True  # the last claim may have left due work for want of room (see _room_made)
        self._window: ClaimWindow | None = None  # busy instances before claiming more (see window.py)
        # Until when (time.monotonic()) this runner may trust its claims: the coordination moves it
        # forward with each confirmed lease renewal; no step attempt starts after it.
        self.trusted_until = math.inf
        # When (time.monotonic()) trust last came back after it had lapsed: a claim asked for before
        # then may have been taken over in between, so it is checked before its instance runs.
        self.regained_at = -math.inf
        self._claimed: dict[int, int] = {}  # seq -> number of this runner's latest claim of it
        self._claims = 0
        self.failure: str | None = None  # why this runner stopped working for good (see fail())
        self.failed = asyncio.Event()
        self._changed: asyncio.Event | None = None  # set on any activity while someone awaits quiescence

    @property
    def store_ops(self):
        return self.astore.store

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> Runner:
        crash.arm(self.settings.crash_at)
        self.clock.watch(self.activity)
        await self.astore.open()
        if self.capture_output:
            logs.install()
        self.coord = coordination_for(self.astore.store, self.state_dir)
        self._window = ClaimWindow(self.coord.claim_window, self.concurrency) if self.coord.claim_window else None
        await self.coord.start(self)
        self._loop_task = asyncio.get_running_loop().create_task(self._main())
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
        if self._background:
            await asyncio.wait(set(self._background), timeout=grace)
        if self.coord is not None:
            await self.coord.stop()
        if self.capture_output:
            logs.uninstall()
        await self.astore.close()

    def trusted(self) -> bool:
        """May this runner start work on its claims now? Not once its lease may have run out
        unseen (the process was stopped, the database unreachable), nor after fail()."""
        return self.failure is None and time.monotonic() < self.trusted_until

    def trust_until(self, deadline: float) -> None:
        was = self.trusted()
        self.trusted_until = deadline
        if not was and self.trusted():
            self.regained_at = time.monotonic()
            self.wake()

    def fail(self, reason: str) -> None:
        """Stop for good: claim nothing more, start no step attempt; `failed` tells the command."""
        if self.failure is None:
            self.failure = reason
            log.error("%s", reason)
            self.failed.set()
            self.wake()

    def lose(self, x: Execution) -> None:
        """The instance is no longer this runner's (taken over, restarted, deleted): stop it, write nothing."""
        self._cancel(x, "lost")

    def wake(self) -> None:
        self._claiming = True
        self._wake.set()
        if self._sleeper is not None and not self._sleeper.done():
            self._sleeper.set_result(None)
        self.activity()

    def background(self, coro: Coroutine, what: str) -> None:
        """Run `coro` beside the instances, tracked (stop(), quiescent() wait for it), failure logged."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(lambda t: self._background_done(t, what))

    def _background_done(self, task: asyncio.Task, what: str) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("%s failed: %s: %s", what, type(exc).__name__, exc)
        self.activity()

    # -- quiescence ----------------------------------------------------------------------

    def activity(self) -> None:
        """Something changed that may end (or begin) quiescence; free unless someone waits for it."""
        if self._changed is not None:
            self._changed.set()

    def settled(self) -> bool:
        """Nothing runs now: no claim, instance, attempt, store write or background task (see quiescent())."""
        return (
            not self._claiming
            and not self._background
            and not self.astore.busy
            and not self.clock.pending
            and len(self._tasks) == len(self.executions)
            and all(x.is_idle() for x in self.executions.values())
        )

    def running_attempts(self) -> int:
        """Step attempts running now, across every instance in memory."""
        return sum(x.active_attempts for x in self.executions.values())

    def busy_with(self) -> str:
        """What keeps the runner from being quiescent, in words (for error messages)."""
        busy = [
            f"{x.row.id} ({x.active_attempts} attempt(s) running)" for x in self.executions.values() if not x.is_idle()
        ]
        if busy:
            return "instances " + ", ".join(busy)
        if self.astore.busy:
            return "store writes pending"
        return "claiming work" if self._claiming else "background tasks"

    async def quiescent(self) -> None:
        """Return once the runner is settled and nothing is due in the store (an instance to
        claim, an event for an instance held in memory)."""
        self._changed = changed = asyncio.Event()
        try:
            while True:
                changed.clear()
                if self.settled() and not await self._work_due() and self.settled():
                    return
                await changed.wait()
        finally:
            if self._changed is changed:
                self._changed = None

    async def _work_due(self) -> bool:
        names = list(self.workflows)
        caps = {n: r.concurrency_limit for n, r in self.workflows.items() if r.concurrency_limit}
        due = await self.astore.call(self.store_ops.next_wake, names, caps, self.only)
        room = len(self._tasks) < self.concurrency or any(x.is_idle() for x in self.executions.values())
        if due is not None and due <= self.clock.now() and room and self._window_room() > 0:
            self.wake()
            return True
        return await self._poke_waiters() > 0

    async def _poke_waiters(self) -> int:
        """Poke instances in memory that wait for an event already stored (a note may be lost)."""
        waiting = [seq for seq, x in self.executions.items() if x.pokers]
        if not waiting:
            return 0
        found = await self.astore.call(self.store_ops.with_pending_events, waiting[:30000])
        for seq in found:
            x = self.executions.get(seq)
            if x is not None:
                x.poke()
        return len(found)

    # -- notes from clients --------------------------------------------------------------

    def handle_note(self, note: str) -> None:
        kind, _, arg = note.partition(":")
        if kind in ("e", "c") and arg.isdigit():
            x = self.executions.get(int(arg))
            if x is not None:
                if kind == "e":  # it is here already: nothing to claim, no store work before its own
                    x.poke()
                    self.activity()
                    return
                else:
                    self.background(self._check_control(x), f"checking instance {x.row.id} for a control change")
        self.wake()

    async def _check_control(self, x: Execution) -> None:
        row = await self.astore.call(self.store_ops.get_by_seq, x.seq)
        if row is None or row.gen != x.gen or row.owner != self.owner:
            self._cancel(x, "lost")
        elif row.status == Status.WAITING_FOR_PAUSE:
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

    def _spawn(self, row, asked: float, loaded: tuple[list, int] | None = None) -> None:
        """Run a claimed instance; `asked`: when (monotonic) the claim was asked; `loaded`: its run, if read."""
        self._claims += 1
        self._claimed[row.seq] = self._claims
        task = asyncio.get_running_loop().create_task(self._drive(row, asked, self._claims, loaded))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("an instance's execution failed: %s: %s", type(exc).__name__, exc)
        self.activity()

    async def _drive(self, row, asked: float, claim: int, loaded: tuple[list, int] | None = None) -> None:
        try:
            await self._load_and_execute(row, asked, claim, loaded)
        finally:
            if self._claimed.get(row.seq) == claim:
                del self._claimed[row.seq]

    async def _still_ours(self, row, asked: float, claim: int) -> bool:
        """Loaded, about to run: is the claim still this runner's? Not when a newer claim of the same
        instance was made here (it runs that one), nor when trust lapsed since the claim was asked for
        (the runner was stopped or cut off past its lease) and the store now says the instance is
        someone else's: loading it then was reading another runner's progress. Once the execution is in
        `executions`, the coordination's renewals tell it what it lost."""
        since = asked
        while self._claimed.get(row.seq) == claim:
            if self.regained_at <= since:
                return True
            since = time.monotonic()
            current = await self.astore.call(self.store_ops.get_by_seq, row.seq)
            if current is None or current.gen != row.gen or current.owner != self.owner:
                log.info("instance %s is no longer this runner's (its lease ran out unrenewed); not run here", row.id)
                return False
        return False

    async def _load_and_execute(self, row, asked: float, claim: int, loaded: tuple[list, int] | None) -> None:
        reg = self.workflows[row.workflow]
        try:
            if loaded is None:
                loaded = await self.astore.call(self.store_ops.load_run, row.seq, steps.progress_events())
            rows, losses = loaded
            if not await self._still_ours(row, asked, claim):
                return
        except Exception as exc:
            log.error("could not load instance %s (%s); it will be run again", row.id, exc)
            return await self._hand_back(row.seq, row.gen, self.clock.now() + 1)
        if losses >= self.max_losses:
            await self._give_up(row)
            return
        x = Execution(self, row, reg.cls, reg.step_limit, rows, self.env)
        x.task = asyncio.current_task()
        self.executions[row.seq] = x
        ended = False
        try:
            ended = await self._execute(x)
        finally:
            if self.executions.get(row.seq) is x:  # a restart may have brought in a newer one
                del self.executions[row.seq]
            if ended:
                self._room_made()
            else:  # handed back to the store: its wake time may be the next one this loop must keep
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
        now = self.clock.now()
        if await self.astore.write(
            self.store_ops.finish_instance, self.owner, row.seq, row.gen, "errored", None, error, now
        ):
            report(row, [ended_event("errored", None, error, now)])

    async def _execute(self, x: Execution) -> bool:
        """Run the instance until it ends (True) or stops here (False: suspended, handed back, lost)."""
        try:
            status, value = await x.execute()
        except Interrupt as stop:
            await self._settle(x, stop.reason, self.clock.now())
            return False
        except asyncio.CancelledError:
            if x.stop_reason is None:
                raise
            await self._settle(x, x.stop_reason, x.suspend_wake if x.suspend_wake is not None else self.clock.now())
            return False
        except BaseException as exc:  # SystemExit or the like from workflow code: the instance fails
            log.exception("instance %s raised %s", x.row.id, type(exc).__name__)
            status, value = "errored", error_info(exc)
        output, error = (value, None) if status == "complete" else (None, value)
        try:
            end = (status, output, error, self.clock.now(), x.traceback)
            done = await self.astore.write(self.store_ops.finish_instance, self.owner, x.seq, x.gen, *end, x.end_events)
            if done and report_enabled():
                report(x.row, [*x.end_events, ended_event(*end)])
        except StoreError as exc:  # its end is not stored: it runs again (by replay) when the store is back
            log.error("could not record the end of instance %s (%s); it will be replayed", x.row.id, exc)
            await self._hand_back(x.seq, x.gen, self.clock.now())
            return False
        if done and self.finished is not None:
            self.finished.put_nowait((x.seq, status))
        return bool(done)

    async def _settle(self, x: Execution, reason: str, wake_at: float) -> None:
        store, now = self.store_ops, self.clock.now()
        if reason == "lost":
            return
        if reason == "store":
            log.error("the store failed while instance %s ran; it will be replayed when the store is back", x.row.id)
            return await self._hand_back(x.seq, x.gen, now)
        if reason == "untrusted":  # release it if it is still ours (fenced); it runs again, by replay
            return await self._hand_back(x.seq, x.gen, now)
        if reason == "pause":
            if await self.astore.write(store.pause_at_boundary, self.owner, x.seq, x.gen, now):
                return
            wake_at = now
        if reason in ("suspend", "shutdown"):
            types = getattr(x, "suspend_types", [])
            await self.astore.write(store.suspend, self.owner, x.seq, x.gen, wake_at, types, now)
            return
        await self._hand_back(x.seq, x.gen, min(wake_at, now))

    async def _hand_back(self, seq: int, gen: int, wake_at: float) -> None:
        """Release a claim; when the store cannot be written, keep it to release later (the claim
        loop retries until the store is back), so that no instance stays stranded."""
        try:
            await self.astore.write(self.store_ops.release, self.owner, seq, gen, wake_at, self.clock.now())
            self._unreleased.pop(seq, None)
        except StoreError:
            self._unreleased[seq] = (gen, wake_at)

    async def _release_stranded(self) -> None:
        for seq, (gen, wake_at) in list(self._unreleased.items()):
            if seq not in self.executions:
                await self.astore.write(self.store_ops.release, self.owner, seq, gen, wake_at, self.clock.now())
            self._unreleased.pop(seq, None)

    # -- the loop ------------------------------------------------------------------------

    async def _main(self) -> None:
        """Claim and sleep, forever; a store that fails (a database restart, a full disk) is
        retried with a growing pause instead of stopping the runner."""
        delays = _STORE_DOWN.delays()
        while not self.draining:
            started = time.monotonic()
            try:
                await self._claim_loop()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if time.monotonic() - started > 30:
                    delays = _STORE_DOWN.delays()
                pause = next(delays)
                log.error("the store failed (%s: %s); trying again in %.1fs", type(exc).__name__, exc, pause)
                await asyncio.sleep(pause)

    async def _claim_loop(self) -> None:
        names = list(self.workflows)
        caps = {n: r.concurrency_limit for n, r in self.workflows.items() if r.concurrency_limit}
        next_reap = -math.inf
        next_gc = -math.inf if self.gc_interval != math.inf else math.inf
        while not self.draining:
            self._wake.clear()
            self._claiming = True
            now = self.clock.now()
            if self._unreleased:
                await self._release_stranded()
            if now >= next_reap:
                await self._reap(now)
                next_reap = now + self.reap_interval
            if now >= next_gc and self.trusted():
                more = await collect_expired(self, now)
                next_gc = now if more else now + self.gc_interval
            next_tick = await self.crons.fire_due() if self.trusted() else math.inf  # a fired one starts at once
            room = self.concurrency - len(self._tasks) if self.trusted() else 0  # loading ones count too
            free = min(room, self._window_room())
            rows: list = []
            due = None
            if free > 0:
                asked = time.monotonic()
                if self.store_ops.commits_in_place:  # SQLite: on the loop's thread when it can
                    got, loaded, due = await claim_work(self, now, free, names, caps)
                    claimed = [(row, loaded.get(row.seq)) for row in got]
                else:  # PostgreSQL: claim, runs and next wake in one transaction
                    runs, due = await self.astore.call(
                        self.store_ops.claim_runs,
                        self.owner,
                        now,
                        self.lease,
                        free,
                        names,
                        caps,
                        self.only,
                        steps.progress_events(),
                    )
                    claimed = [(row, (done, losses)) for row, done, losses in runs]
                if claimed:
                    crash.stop_point("claimed")
                for row, run in claimed:
                    rows.append(row)
                    self._spawn(row, asked, run)
                    if row.started_at == now:  # its first claim: the store logged it as started
                        report(row, [LogEvent(now, InstanceEvent.STARTED.value)])
            # more may be due than it took: claim again as instances finish (or at once, below)
            self._backlog = free <= 0 or len(rows) == free or bool(caps)
            if self._window is not None and self._window.adapt(now, room, free, len(rows)):
                continue
            if rows and len(rows) == free:
                await asyncio.sleep(0)
                continue
            if room <= 0:
                due = await self.astore.call(self.store_ops.next_wake, names, caps, self.only)
            elif free <= 0:
                due = None  # a full claim window: the instances finishing wake this loop
            if room <= 0 and self.trusted() and due is not None and due <= now:
                self._make_room()  # those suspended wake this loop as they finish
                due = None
            await self._sleep_until(min(due if due is not None else math.inf, next_reap, next_tick, next_gc))

    def now_idle(self, x: Execution) -> None:
        """An instance in memory started to wait: if the runner is full, look again for due work."""
        if len(self._tasks) >= self.concurrency:
            self.wake()
        else:
            self._room_made()
        self.activity()

    def _room_made(self) -> None:
        """An instance finished or started to wait: claim again if the last claim may have left
        due work behind for want of room. A windowed runner waits until a quarter of its window
        is free (or nothing runs), so that its claims, a round trip or two each, come in batches."""
        if self._backlog:
            window = self._window.size if self._window is not None else None
            room = self._window_room()
            if window is None or room >= max(1, window // 4) or room >= window - self._loading():
                self.wake()
                return
        self.activity()

    def _window_room(self) -> int:
        """How many more instances this runner may take on now by its coordination's claim window
        (instances that only wait do not count): on PostgreSQL a worker does not claim every due
        instance at once, so that the other workers find work too."""
        if self._window is None:
            return self.concurrency
        return self._window.size - sum(1 for x in self.executions.values() if not x.is_idle()) - self._loading()

    def _loading(self) -> int:
        """Claimed instances whose execution is not in memory yet."""
        return max(0, len(self._tasks) - len(self.executions))

    def _make_room(self) -> None:
        """The runner is full and work is due: suspend instances that only wait (they hold no
        work) so that it can start; they come back by replay when their timer or event comes."""
        idle = [x for x in self.executions.values() if x.is_idle() and x.stop_reason is None]
        for x in idle[: max(1, self.concurrency // 10)]:
            self.suspend(x)

    async def _sleep_until(self, deadline: float) -> None:
        if self._wake.is_set():
            return
        fut = self._sleeper = asyncio.get_running_loop().create_future()  # wake() ends it too
        handle = self.clock.call_at(deadline, lambda: None if fut.done() else fut.set_result(None))
        self._claiming = False
        self.activity()
        try:
            await fut
        finally:
            self._claiming = True
            self._sleeper = None
            handle.cancel()

    async def _reap(self, now: float) -> None:
        """Hand back the instances of runners that died (the coordination knows how), and, in case
        a note was lost (a full socket buffer drops it), look for events nobody was told about."""
        await self._poke_waiters()
        await self.coord.reap(now)
