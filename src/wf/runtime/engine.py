"""One instance, executing: replay `run()` from the top, return stored step results, commit new ones.

Step identity is `(kind, name, n)`: `n` counts the calls of that name and kind in this run, so
a name reused in a loop is a new step each time. Every new outcome (a step's value or final
error, a retry delay, a sleep, a wait) is committed before `run()` moves on; a crash between
an attempt and its commit runs the attempt again.

What each kind of step does lives in its own module (`runtime/steps`); this module is the
plumbing they share: the step key and history, new rows, commits, the instance's state,
waiting on timers and events, and the checks after a step (pause, shutdown, replay).

The engine asks its `host` (the runner) for the store, the clock and the owner id; it never
reads the wall clock or the database on its own.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from typing import Any

from ..errors import StoreError, ValidationError, error_info
from . import codec, steps
from .entrypoint import StepEvent, WorkflowEvent
from .events import InstanceEvent, LogEvent
from .logs import current as current_step
from .report import report
from .steps import rollback
from .steps.do import StepCallable, StepContext
from .steps.kind import StepKind, Wake
from .store.base import StepRow, StepWrite
from .tracebacks import format_traceback

__all__ = ["Execution", "Interrupt", "StepCallable", "StepContext", "WorkflowStep", "check_step_name", "stop_if_own"]

log = logging.getLogger("wf.runner")
NAME_MAX = 256
REAP_GRACE = 5.0  # real seconds a cancelled step task of an ended execution gets to unwind
_CONTROL = re.compile(r"[\x00-\x1f]")


class Interrupt(BaseException):
    """Unwinds `run()` when the runner stops this execution (not an error of the workflow)."""

    def __init__(self, reason: str, cause: BaseException | None = None):
        super().__init__(reason)
        self.reason, self.cause = reason, cause


def _retrieve(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()


def stop_if_own(workflow: str, id: str) -> None:
    """Called after instance `id` of `workflow` was terminated or deleted: when that is the instance
    whose `run()` asked for it, nothing after the call runs (as on Cloudflare, where an instance that
    deletes or terminates itself stops there). The runner writes nothing more for it."""
    where = current_step.get()
    x = where[0] if where is not None else None
    if isinstance(x, Execution) and x.row.workflow == workflow and x.row.id == id:
        raise x.interrupt("lost")


class Terminating(BaseException):
    """Unwinds `run()` at its first step not already finished when `terminate(rollback=True)` asked
    for the instance to end: its rollback handlers run, then it ends terminated."""


def check_step_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise ValidationError(f"step name {name!r} must be a non-empty string", "name every step, e.g. 'charge-card'")
    if len(name) > NAME_MAX or _CONTROL.search(name):
        raise ValidationError(
            f"step name {name[:40]!r}... is {len(name)} characters, over {NAME_MAX}"
            if len(name) > NAME_MAX
            else f"step name {name!r} contains control characters",
            f"use at most {NAME_MAX} printable characters",
        )
    return name


# -- the step object ---------------------------------------------------------------------


class WorkflowStep:
    """The `step` argument of `run()`: `do`, `sleep`, `sleep_until`, `wait_for_event`, and the
    methods of any other registered step kind (`step.<method>(...)`, found in the registry)."""

    def __init__(self, execution: Execution):
        self._x = execution

    def do(
        self,
        name: Any = None,
        fn: Any = None,
        *,
        config: dict | None = None,
        concurrent: bool = False,
        depends: list | None = None,
        rollback: Any = None,
        rollback_config: dict | None = None,
    ):
        """`await step.do(name, fn, config=...)`, or `@step.do(name)` over a function (then call it);
        `rollback=` registers a compensation that runs if the instance fails (steps/rollback.py)."""
        extra = {"rollback": rollback, "rollback_config": rollback_config} if rollback is not None else {}
        return steps.method("do")(self._x, name, fn, config=config, concurrent=concurrent, depends=depends, **extra)

    async def sleep(self, name: str, duration: Any) -> None:
        await steps.method("sleep")(self._x, name, duration)

    async def sleep_until(self, name: str, when: Any) -> None:
        await steps.method("sleep_until")(self._x, name, when)

    async def wait_for_event(
        self, name: str, event_type: str | None = None, *, type: str | None = None, timeout: Any = "24 hours"
    ) -> StepEvent:
        return await steps.method("wait_for_event")(self._x, name, event_type, type=type, timeout=timeout)

    def __getattr__(self, attr: str):
        if attr.startswith("_"):
            raise AttributeError(attr)
        return partial(steps.method(attr), self._x)


# -- the execution -----------------------------------------------------------------------


class Execution:
    """The in-memory state of one claimed instance while its `run()` executes."""

    def __init__(self, host, row, workflow_cls, step_limit: int, rows: list[StepRow], env: Any):
        self.host, self.row, self.cls, self.step_limit, self.env = host, row, workflow_cls, step_limit, env
        self.seq, self.gen = row.seq, row.gen
        self.status = row.status  # the instance's status as the store last told it (claim, commits)
        self.history = {s.key: s for s in rows}
        self.next_pos = max((s.pos for s in rows), default=-1) + 1
        self.counters: dict[tuple[str, str], int] = defaultdict(int)
        self.seen: set[tuple[str, str, int]] = set()  # step keys this run has reached (see history_ahead)
        self.scratch: dict[str, Any] = {}  # per-run state a step kind keeps, by kind name
        self.active_attempts = 0
        self.deadlines: list[float] = []
        self.waits: list[asyncio.Future] = []  # one per pending _wait_until
        self.suspend_wake: float | None = None  # set by the runner when it stops this execution
        self.suspend_types: list = []
        self.wait_types: list[str | None] = []
        self.pokers: list[asyncio.Future] = []
        self.poke_count = 0
        self.pause_pending = False
        self.stop_reason: str | None = None
        self.interrupted: Interrupt | None = None  # why run() must stop, once it has been told
        self.suspect = False  # the last lease renewal did not list this instance as held
        self.task: asyncio.Task | None = None
        self.children: set[asyncio.Task] = set()  # other tasks running this run's steps (see reap_children)
        self.traceback: str | None = None  # of the error that ended run(), if one did
        self.end_events: list[LogEvent] = []  # logged with the instance's end (a rollback's outcome)
        self.log_buffer: list = []
        self._partial: dict = {}
        self._log_flush: asyncio.TimerHandle | None = None
        self.loop = asyncio.get_running_loop()
        mods = getattr(host, "modifiers", None)  # wf.testing's mocks; None (and no per-step cost) otherwise
        self.mods = mods.for_instance(row) if mods is not None else None

    # -- plumbing ------------------------------------------------------------------------

    @property
    def clock(self):
        return self.host.clock

    def lookup(self, kind: StepKind, name: str) -> tuple[tuple[str, str, int], StepRow | None]:
        """The key of the next step of `kind` called `name` in this run, and its row from an
        earlier run (None when it is new)."""
        self.check_stopped()
        check_step_name(name)
        task = asyncio.current_task()
        if task is not self.task and task is not None:  # a step run from a task of run()'s own (a gather)
            self.children.add(task)
        counter = (kind.name, name)
        self.counters[counter] += 1
        key = (kind.name, name, self.counters[counter])
        self.seen.add(key)
        rec = self.history.get(key)
        if self.row.terminating and not kind.finished(rec):
            raise Terminating()
        return key, rec

    def reach(self, kind: StepKind, key: tuple[str, str, int]) -> StepRow | None:
        """The row of a step whose identity its kind fixes (a rollback handler's run: the undone
        step's name and count), None when it is new."""
        self.check_stopped()
        return self.history.get(key)

    def history_ahead(self) -> bool:
        """Does the history hold steps this run has not reached yet? Then an earlier run went on past
        this point (the test `step.patched` makes: such an instance took the path without the patch)."""
        return any(key not in self.seen for key in self.history)

    def missing_patch(self, kind: StepKind, patch_id: str) -> None:
        """This instance went past `step.deprecate_patch(patch_id)` on the old path, which the code
        no longer has: it runs on as the code says (`wf replay --check` reports it as diverging)."""
        log.warning(
            "instance %s went past patch %r on the old path, which the code removed (deprecate_patch)",
            self.row.id,
            patch_id,
        )

    def new_step(self, key, **fields) -> StepRow:
        row = StepRow(pos=self.next_pos, kind=key[0], name=key[1], n=key[2], **fields)
        self.next_pos += 1
        self.history[key] = row
        return row

    def instance_state(self, waiting_at: float | None = None) -> tuple[str, float | None]:
        """Instance status and next wake time to record with a commit."""
        deadlines = self.deadlines + ([waiting_at] if waiting_at is not None else [])
        idle = self.active_attempts == 0 and waiting_at is not None
        return ("waiting" if idle else "running"), (min(deadlines) if deadlines else None)

    async def store_call(self, fn: Callable, *args: Any) -> Any:
        """A store read for this execution. The store failing is not the workflow's error: the
        execution stops (Interrupt, which run() cannot catch) and the runner replays it later."""
        try:
            return await self.host.astore.call(fn, *args)
        except StoreError as exc:
            raise self.interrupt("store", exc) from None

    async def store_write(self, fn: Callable, *args: Any) -> Any:
        """A write in the runner's next group commit; a store failure stops the execution as above."""
        try:
            return await self.host.astore.write(fn, *args)
        except StoreError as exc:
            raise self.interrupt("store", exc) from None

    async def commit(self, write: StepWrite, op: Callable | None = None) -> None:
        """Commit a step transition (with `op`, a store operation shaped like `commit_step`, when the
        kind writes more with it)."""
        if self.log_buffer:  # printed lines go in with the step, in time order
            write.events, self.log_buffer = sorted(self.log_buffer + write.events, key=lambda e: e[0]), []
        status = await self.store_write(
            op or self.host.store_ops.commit_step, self.host.owner, self.seq, self.gen, write, self.clock.now()
        )
        if status is None:
            raise self.interrupt("lost")
        self.status = status
        report(self.row, write.events)
        if status == "waitingForPause":
            self.pause_pending = True

    async def hold_waiting(self, rec: StepRow) -> None:
        """On replay into a pending timer, record the instance as waiting again. When that changes
        its status (a resumed instance was queued, then running from its claim), the event log says
        so: live pages and `wf tail` follow the log, and would show it queued or running for ever."""
        status, wake = self.instance_state(rec.wake_at)
        events = []
        if status == "waiting" and self.status != "waiting":
            events.append(LogEvent(self.clock.now(), InstanceEvent.WAITING.value))
        await self.commit(StepWrite(rec, instance_status=status, instance_wake_at=wake, events=events))

    def interrupt(self, reason: str, cause: BaseException | None = None) -> Interrupt:
        """The Interrupt that stops this execution, remembered: run() code that catches it (an
        `except BaseException`) gets it again at its next step, before anything runs."""
        self.interrupted = Interrupt(reason, cause)
        return self.interrupted

    def check_stopped(self) -> None:
        """Before a step begins: nothing more runs once the execution was told to stop."""
        if self.interrupted is not None:
            raise self.interrupted
        if self.stop_reason is not None:  # the runner cancelled the task, and run() swallowed it
            raise self.interrupt(self.stop_reason)

    def check_trusted(self) -> None:
        """Before an attempt starts: a runner that cannot trust its claim (its lease may have run
        out unseen) runs nothing; the instance is handed back and replayed."""
        if self.distrusted():
            raise self.interrupt("untrusted")

    def distrusted(self) -> bool:
        """Has this runner lost its trust in the claim (asked again on an attempt's own thread)?"""
        return self.suspect or not self.host.trusted()

    def check_pause(self) -> None:
        """A pause asked for while a step ran takes effect once no attempt is running."""
        if self.pause_pending and self.active_attempts == 0:
            raise self.interrupt("pause")

    def after_step(self) -> None:
        self.check_pause()
        if self.host.draining:
            raise self.interrupt("shutdown")
        if self.host.replay_always:
            raise self.interrupt("replay")

    # -- printed lines ---------------------------------------------------------------------

    def capture(self, step: str | None, n: int | None, stream: str, text: str) -> None:
        """A chunk printed by workflow code (any thread): buffer whole lines for the event log."""
        self.loop.call_soon_threadsafe(self._add_text, step, n, stream, text)

    def _add_text(self, step, n, stream, text) -> None:
        key = (step, n, stream)
        lines = (self._partial.pop(key, "") + text).split("\n")
        if lines[-1]:
            self._partial[key] = lines[-1]
        now = self.clock.now()
        for line in lines[:-1]:
            self.log_buffer.append(
                LogEvent(now, InstanceEvent.LOG.value, step, n, {"stream": stream, "line": line[:4000]})
            )
        if self.log_buffer and self._log_flush is None:
            self._log_flush = self.loop.call_later(0.1, self._flush_logs)

    def _flush_logs(self) -> None:
        self._log_flush = None
        if self.log_buffer:
            events, self.log_buffer = self.log_buffer, []
            self.host.background(
                self.host.astore.write(self.host.store_ops.append_history, self.seq, events),
                f"recording lines printed by instance {self.row.id}",
            )

    def poke(self) -> None:
        """An event arrived for this instance, or an instance it waits for ended: wake its waits to look."""
        self.poke_count += 1
        for fut in self.pokers:
            if not fut.done():
                fut.set_result("poke")

    def is_idle(self) -> bool:
        """Only waiting: no attempt running, and no wait that has already ended (its coroutine is
        about to run on)."""
        return self.active_attempts == 0 and bool(self.deadlines) and not any(f.done() for f in self.waits)

    async def wait(self, kind: StepKind, deadline: float, event_type: str | None = None) -> str:
        """Wait, held in memory, until `deadline`, or until a poke when the kind is woken by events
        (`event_type` None takes any type) or by the end of another instance."""
        if Wake.EVENT in kind.wakes:
            return await self._wait_until(deadline, event_type)
        return await self._wait_until(deadline, poked=Wake.INSTANCE in kind.wakes)

    async def _wait_until(self, deadline: float, wait_type: Any = False, poked: bool = False) -> str:
        """Wait for `deadline` (or a poke when `wait_type` is not False, an event's type, or `poked`)
        while held in memory."""
        poked = poked or wait_type is not False
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        handle = self.clock.call_at(deadline, lambda: None if fut.done() else fut.set_result("time"))
        fut.add_done_callback(lambda _: self.host.activity())
        self.deadlines.append(deadline)
        self.waits.append(fut)
        if poked:
            self.pokers.append(fut)
        if wait_type is not False:
            self.wait_types.append(wait_type)
        evict = self._schedule_eviction(deadline)
        if self.active_attempts == 0:
            self.host.now_idle(self)
        try:
            return await fut
        finally:
            handle.cancel()
            if evict is not None:
                evict.cancel()
            self.deadlines.remove(deadline)
            self.waits.remove(fut)
            if poked:
                self.pokers.remove(fut)
            if wait_type is not False:
                self.wait_types.remove(wait_type)

    def _schedule_eviction(self, deadline: float):
        if self.host.replay_always:
            asyncio.get_running_loop().call_soon(self._maybe_evict)
            return None
        keep = self.host.keep_warm
        if deadline - self.clock.now() <= keep:
            return None
        return self.clock.call_at(self.clock.now() + keep, self._maybe_evict)

    def _maybe_evict(self) -> None:
        if self.is_idle() and self.stop_reason is None:
            self.host.suspend(self)

    # -- run -----------------------------------------------------------------------------

    def event(self) -> WorkflowEvent:
        trigger = self.row.trigger or {}
        return WorkflowEvent(
            codec.decode(self.row.params), self.row.created_at, self.row.id, self.row.workflow, trigger.get("schedule")
        )

    async def execute(self) -> tuple[str, Any]:
        """Run (or replay) `run()`, then unwind its rollback handlers if it failed; returns ("complete",
        output_json), ("errored", error_info) or ("terminated", None) after `terminate(rollback=True)`."""
        entry = self.cls(None, self.env)
        current_step.set((self, None, None))
        failure: BaseException | None = None
        try:
            result = entry.run(self.event(), WorkflowStep(self))
            if inspect.isawaitable(result):
                result = await result
            outcome: tuple[str, Any] = "complete", codec.encode(result, "the workflow's return value")
        except Interrupt:
            raise
        except Terminating:
            outcome, failure = ("terminated", None), rollback.Terminated()
        except Exception as exc:
            self.traceback = format_traceback(exc)  # for the event log (the runner's log, `wf tail`)
            outcome, failure = ("errored", error_info(exc)), exc
        finally:
            await self.reap_children()
        if self.row.terminating:
            outcome, failure = ("terminated", None), failure or rollback.Terminated()
        if failure is not None:  # the rollback handlers registered by the steps run, newest first
            await rollback.unwind(self, failure)
        self.end_events = rollback.outcome(self.history)
        return outcome

    async def reap_children(self) -> None:
        """No task of this run outlives it. A step run in a task of its own (a decorated step, a
        branch of a gather) would otherwise go on after the execution ended or was suspended,
        making attempts the replay makes again; each is cancelled and awaited, its outcome read."""
        me = asyncio.current_task()
        children, self.children = [t for t in self.children if t is not me], set()
        for task in children:
            task.cancel()
            task.add_done_callback(_retrieve)  # nothing is left for asyncio to report as never retrieved
        pending = (await asyncio.wait(children, timeout=REAP_GRACE))[1] if children else set()
        if pending:  # step code that swallows its cancellation: it goes on alone, its writes fenced
            log.warning("instance %s: %d step task(s) ignored their cancellation", self.row.id, len(pending))
