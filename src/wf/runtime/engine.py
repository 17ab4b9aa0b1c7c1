"""One instance, executing: replay `run()` from the top, return stored step results, commit new ones.

Step identity is `(kind, name, n)`: `n` counts the calls of that name and kind in this run, so
a name reused in a loop is a new step each time. Every new outcome (a step's value or final
error, a retry delay, a sleep, a wait) is committed before `run()` moves on; a crash between
an attempt and its commit runs the attempt again.

The engine asks its `host` (the runner) for the store, the clock and the owner id; it never
reads the wall clock or the database on its own.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from ..errors import (
    ConflictError,
    NonRetryableError,
    StoreError,
    ValidationError,
    WorkflowFatalError,
    WorkflowTimeoutError,
    error_info,
    rebuild_error,
)
from . import codec
from .crash import crash_point
from .durations import MAX_SLEEP, parse_duration, parse_instant
from .entrypoint import StepEvent, WorkflowEvent
from .logs import current as current_step
from .store.base import AttemptRow, StepRow, StepWrite
from .validate import check_event_type

DEFAULT_CONFIG = {"retries": {"limit": 5, "delay": "10 seconds", "backoff": "exponential"}, "timeout": "10 minutes"}
BACKOFFS = ("constant", "linear", "exponential")
NAME_MAX = 256
_CONTROL = re.compile(r"[\x00-\x1f]")
MARK_STARTED_AFTER = 0.05  # an attempt running longer than this is recorded as started


class Interrupt(BaseException):
    """Unwinds `run()` when the runner stops this execution (not an error of the workflow)."""

    def __init__(self, reason: str, cause: BaseException | None = None):
        super().__init__(reason)
        self.reason, self.cause = reason, cause


# -- validation --------------------------------------------------------------------------


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


class StepConfig:
    """A step's retry and timeout policy, merged over the defaults and checked."""

    __slots__ = ("limit", "delay", "backoff", "timeout", "display")

    def __init__(self, name: str, config: dict | None):
        if config is not None and not isinstance(config, dict):
            raise ValidationError(
                f"config of step {name!r} must be a dict, got {config!r}",
                'e.g. {"retries": {"limit": 3, "delay": "5 seconds"}, "timeout": "1 minute"}',
            )
        config = config or {}
        unknown = set(config) - {"retries", "timeout"}
        if unknown:
            raise ValidationError(
                f"config of step {name!r} has unknown key {sorted(unknown)[0]!r}",
                "allowed keys are 'retries' and 'timeout'",
            )
        retries = config.get("retries", {})
        if not isinstance(retries, dict) or set(retries) - {"limit", "delay", "backoff"}:
            raise ValidationError(
                f"retries of step {name!r} must be a dict of limit, delay and backoff, got {retries!r}",
                'e.g. {"limit": 3, "delay": "5 seconds", "backoff": "linear"}',
            )
        merged = {**DEFAULT_CONFIG["retries"], **retries}
        self.limit = merged["limit"]
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or not 0 <= self.limit <= 10_000:
            raise ValidationError(
                f"retries.limit of step {name!r} must be an integer from 0 to 10000, got {self.limit!r}",
                "limit counts retries: 0 means one attempt",
            )
        self.delay = parse_duration(merged["delay"], f"retries.delay of step {name!r}")
        self.backoff = merged["backoff"]
        if self.backoff not in BACKOFFS:
            raise ValidationError(
                f"retries.backoff of step {name!r} is {self.backoff!r}", "use 'constant', 'linear' or 'exponential'"
            )
        timeout = config.get("timeout", DEFAULT_CONFIG["timeout"])
        self.timeout = parse_duration(timeout, f"timeout of step {name!r}")
        if self.timeout <= 0:
            raise ValidationError(
                f"timeout of step {name!r} must be more than zero, got {timeout!r}", "e.g. '30 seconds'"
            )
        self.display = {"retries": merged, "timeout": timeout}

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if self.backoff == "constant":
            return self.delay
        if self.backoff == "linear":
            return self.delay * attempt
        return self.delay * 2 ** (attempt - 1)


_DEFAULT_STEP_CONFIG = StepConfig("default", None)


class StepContext:
    """Passed to a step function that takes one argument: `.step.name`, `.step.count`, `.attempt`, `.config`."""

    __slots__ = ("step", "attempt", "config")

    class _Step:
        __slots__ = ("name", "count")

        def __init__(self, name, count):
            self.name, self.count = name, count

        def __getitem__(self, key):
            return getattr(self, key)

        def __repr__(self):
            return f"{{'name': {self.name!r}, 'count': {self.count}}}"

    def __init__(self, name: str, count: int, attempt: int, config: dict):
        self.step = self._Step(name, count)
        self.attempt = attempt
        self.config = config

    def __getitem__(self, key):
        return getattr(self, key)


def _is_nonretryable(exc: BaseException) -> bool:
    return isinstance(exc, (NonRetryableError, WorkflowFatalError)) and getattr(exc, "name", "") in (
        "NonRetryableError",
        "WorkflowFatalError",
    )


# -- the step object ---------------------------------------------------------------------


class WorkflowStep:
    """The `step` argument of `run()`: `do`, `sleep`, `sleep_until`, `wait_for_event`."""

    def __init__(self, execution: Execution):
        self._x = execution
        self._decorated: dict[str, StepCallable] = {}

    def do(
        self,
        name: Any = None,
        fn: Callable | None = None,
        *,
        config: dict | None = None,
        concurrent: bool = False,
        depends: list | None = None,
    ):
        """`await step.do(name, fn, config=...)`, or `@step.do(name)` over a function (then call it)."""
        if callable(name) and fn is None:  # @step.do without parentheses
            return self._decorate(name.__name__, name, config, concurrent)
        if fn is None:
            return lambda f: self._decorate(name if name is not None else f.__name__, f, config, concurrent)
        if isinstance(fn, dict) and config is None:
            raise ValidationError(
                f"step {name!r}: pass the config as config=..., after the function",
                "write step.do(name, fn, config={...})",
            )
        return self._x.do(name, fn, config)

    def _decorate(self, name, fn, config, concurrent) -> StepCallable:
        wrapped = StepCallable(self, name, fn, config, concurrent)
        self._decorated[fn.__name__] = wrapped
        return wrapped

    async def sleep(self, name: str, duration: Any) -> None:
        await self._x.sleep(name, duration)

    async def sleep_until(self, name: str, when: Any) -> None:
        await self._x.sleep_until(name, when)

    async def wait_for_event(
        self, name: str, event_type: str | None = None, *, type: str | None = None, timeout: Any = "24 hours"
    ) -> StepEvent:
        return await self._x.wait_for_event(name, event_type if event_type is not None else type, timeout)


class StepCallable:
    """A function decorated with `@step.do(...)`: call it to run the step (once per run)."""

    def __init__(self, step: WorkflowStep, name: str, fn: Callable, config: dict | None, concurrent: bool):
        self._step, self.name, self.fn, self.config, self.concurrent = step, name, fn, config, concurrent
        self._result: asyncio.Future | None = None
        self.__name__ = getattr(fn, "__name__", name)

    def __call__(self):
        return self._run()

    async def _run(self):
        if self._result is None:
            self._result = asyncio.ensure_future(self._execute())
        return await asyncio.shield(self._result)

    async def _execute(self):
        params = _param_names(self.fn)
        deps = [p for p in params if p in self._step._decorated and p != "ctx"]
        if self.concurrent:
            values = await asyncio.gather(*(self._step._decorated[d]() for d in deps))
        else:
            values = [await self._step._decorated[d]() for d in deps]
        injected = dict(zip(deps, values))
        rest = [p for p in params if p not in injected]
        fn = self.fn

        def call(ctx):
            kwargs = dict(injected)
            for p in rest:
                kwargs[p] = ctx
            return fn(**kwargs)

        call.__wf_params__ = ("ctx",)  # the engine passes ctx; `call` spreads it
        if inspect.iscoroutinefunction(fn):

            async def acall(ctx):
                return await call(ctx)

            acall.__wf_params__ = ("ctx",)
            return await self._step._x.do(self.name, acall, self.config)
        return await self._step._x.do(self.name, call, self.config)


def _param_names(fn: Callable) -> tuple[str, ...]:
    """Names of the parameters `fn` needs (those without defaults): () or ("ctx",) or DI names."""
    marked = getattr(fn, "__wf_params__", None)
    if marked is not None:
        return marked
    code = getattr(fn, "__code__", None)
    if code is not None and not inspect.ismethod(fn):
        required = code.co_argcount - len(getattr(fn, "__defaults__", None) or ())
        return code.co_varnames[:required]
    try:
        return tuple(
            name
            for name, p in inspect.signature(fn).parameters.items()
            if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        )
    except (TypeError, ValueError):
        return ()


# -- the execution -----------------------------------------------------------------------


class Execution:
    """The in-memory state of one claimed instance while its `run()` executes."""

    def __init__(self, host, row, workflow_cls, step_limit: int, steps: list[StepRow], env: Any):
        self.host, self.row, self.cls, self.step_limit, self.env = host, row, workflow_cls, step_limit, env
        self.seq, self.gen = row.seq, row.gen
        self.history = {s.key: s for s in steps}
        self.next_pos = max((s.pos for s in steps), default=-1) + 1
        self.counters: dict[tuple[str, str], int] = defaultdict(int)
        self.do_calls = 0
        self.active_attempts = 0
        self.deadlines: list[float] = []
        self.waits: list[asyncio.Future] = []  # one per pending _wait_until
        self.wait_types: list[str | None] = []
        self.pokers: list[asyncio.Future] = []
        self.poke_count = 0
        self.pause_pending = False
        self.stop_reason: str | None = None
        self.task: asyncio.Task | None = None
        self.announced: set[tuple[int, int]] = set()  # (pos, attempt) already in the event log
        self.log_buffer: list = []
        self._partial: dict = {}
        self._log_flush = None
        self.loop = asyncio.get_running_loop()
        mods = getattr(host, "modifiers", None)  # wf.testing's mocks; None (and no per-step cost) otherwise
        self.mods = mods.for_instance(row) if mods is not None else None

    # -- plumbing ------------------------------------------------------------------------

    @property
    def clock(self):
        return self.host.clock

    def _key(self, kind: str, name: str) -> tuple[str, str, int]:
        check_step_name(name)
        self.counters[(kind, name)] += 1
        return (kind, name, self.counters[(kind, name)])

    def _new_step(self, key, **fields) -> StepRow:
        row = StepRow(pos=self.next_pos, kind=key[0], name=key[1], n=key[2], **fields)
        self.next_pos += 1
        self.history[key] = row
        return row

    def _instance_state(self, waiting_at: float | None = None) -> tuple[str, float | None]:
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
            raise Interrupt("store", exc) from None

    async def store_write(self, fn: Callable, *args: Any) -> Any:
        """A write in the runner's next group commit; a store failure stops the execution as above."""
        try:
            return await self.host.astore.write(fn, *args)
        except StoreError as exc:
            raise Interrupt("store", exc) from None

    async def _commit(self, write: StepWrite) -> None:
        if self.log_buffer:  # printed lines go in with the step, in time order
            write.events, self.log_buffer = sorted(self.log_buffer + write.events, key=lambda e: e[0]), []
        status = await self.store_write(
            self.host.store_ops.commit_step, self.host.owner, self.seq, self.gen, write, self.clock.now()
        )
        if status is None:
            raise Interrupt("lost")
        if status == "waitingForPause":
            self.pause_pending = True

    def _after_step(self) -> None:
        if self.pause_pending and self.active_attempts == 0:
            raise Interrupt("pause")
        if self.host.draining:
            raise Interrupt("shutdown")
        if self.host.replay_always:
            raise Interrupt("replay")

    # -- the event log -------------------------------------------------------------------

    def _ev(self, rec: StepRow, at: float, type: str, data: dict | None = None) -> tuple:
        return (at, type, rec.name, rec.n, data)

    def _wait_events(self, rec: StepRow, recorded: bool, now: float) -> list:
        if recorded:
            return []
        return [
            self._ev(
                rec, rec.started_at or now, "wait_started", {"eventType": rec.event_type, "timeoutAt": rec.wake_at}
            )
        ]

    def _attempt_started(self, rec: StepRow, attempt: int, started: float, cfg: StepConfig) -> list:
        if (rec.pos, attempt) in self.announced:
            return []
        self.announced.add((rec.pos, attempt))
        events = [self._ev(rec, started, "step_started", None)] if attempt == 1 else []
        return events + [self._ev(rec, started, "attempt_started", {"attempt": attempt})]

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
            self.log_buffer.append((now, "log", step, n, {"stream": stream, "line": line[:4000]}))
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
        """An event arrived for this instance: wake its waits to look."""
        self.poke_count += 1
        for fut in self.pokers:
            if not fut.done():
                fut.set_result("poke")

    def is_idle(self) -> bool:
        """Only waiting: no attempt running, and no wait that has already ended (its coroutine is
        about to run on)."""
        return self.active_attempts == 0 and bool(self.deadlines) and not any(f.done() for f in self.waits)

    async def _wait_until(self, deadline: float, wait_type: Any = False) -> str:
        """Wait for `deadline` (or a poke when `wait_type` is not False) while held in memory."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        handle = self.clock.call_at(deadline, lambda: fut.done() or fut.set_result("time"))
        fut.add_done_callback(lambda _: self.host.activity())
        self.deadlines.append(deadline)
        self.waits.append(fut)
        if wait_type is not False:
            self.pokers.append(fut)
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
            if wait_type is not False:
                self.pokers.remove(fut)
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
        """Run (or replay) `run()`; returns ("complete", output_json) or ("errored", error_info)."""
        entry = self.cls(None, self.env)
        current_step.set((self, None, None))
        try:
            result = entry.run(self.event(), WorkflowStep(self))
            if inspect.isawaitable(result):
                result = await result
            return "complete", codec.encode(result, "the workflow's return value")
        except Interrupt:
            raise
        except Exception as exc:
            return "errored", error_info(exc)

    # -- step.do -------------------------------------------------------------------------

    async def do(self, name: str, fn: Callable, config: dict | None) -> Any:
        key = self._key("do", name)
        self.do_calls += 1
        if self.do_calls > self.step_limit:
            raise WorkflowFatalError(
                f"The limit of {self.step_limit} steps has been reached. This limit can be "
                f"changed in your worker configuration (limits.steps)."
            )
        if not callable(fn):
            raise ValidationError(f"step {name!r} needs a function, got {fn!r}", "write step.do(name, fn)")
        rec = self.history.get(key)
        if rec is not None and rec.status == "complete":
            return codec.decode(rec.output)
        if rec is not None and rec.status == "errored":
            raise rebuild_error(rec.error)
        cfg = _DEFAULT_STEP_CONFIG if config is None else StepConfig(name, config)
        if self.mods is not None:
            fn, cfg = self.mods.step(key, fn, cfg, self._call)
        if rec is None:
            rec = self._new_step(key, status="running", config=cfg.display, started_at=self.clock.now())
        elif rec.status == "retrying" and rec.wake_at is not None and rec.wake_at > self.clock.now():
            await self._hold_instance_waiting(rec)
            await self._wait_until(rec.wake_at)
        return await self._attempts(rec, fn, cfg)

    async def _hold_instance_waiting(self, rec: StepRow) -> None:
        """On replay into a pending timer, record the instance as waiting again."""
        status, wake = self._instance_state(rec.wake_at)
        await self._commit(StepWrite(rec, instance_status=status, instance_wake_at=wake))

    async def _attempts(self, rec: StepRow, fn: Callable, cfg: StepConfig) -> Any:
        while True:
            attempt = rec.attempts + 1
            started = self.clock.now()
            outcome, value = await self._one_attempt(rec, fn, cfg, attempt)
            now = self.clock.now()
            rec.attempts = attempt
            crash_point("before-commit", rec.name)
            if outcome == "ok":
                rec.status, rec.output, rec.ended_at, rec.wake_at, rec.error = "complete", value, now, None, None
                if attempt == 1 and (rec.pos, 1) not in self.announced:  # the common case, one log row
                    events = [self._ev(rec, now, "step_ok", {"startedAt": started, "output": _preview(value)})]
                else:
                    events = self._attempt_started(rec, attempt, started, cfg) + [
                        self._ev(rec, now, "attempt_completed", {"attempt": attempt}),
                        self._ev(rec, now, "step_completed", {"output": _preview(value)}),
                    ]
                await self._commit(
                    StepWrite(rec, AttemptRow(attempt, started, now, None), *self._instance_state(), events=events)
                )
                crash_point("after-commit", rec.name)
                self._after_step()
                return codec.decode(value)
            info = error_info(value)
            if outcome == "final" or attempt > cfg.limit:
                rec.status, rec.error, rec.ended_at, rec.wake_at = "errored", info, now, None
                events = self._attempt_started(rec, attempt, started, cfg) + [
                    self._ev(rec, now, "attempt_errored", {"attempt": attempt, "error": info}),
                    self._ev(rec, now, "step_errored", {"error": info}),
                ]
                await self._commit(
                    StepWrite(rec, AttemptRow(attempt, started, now, info), *self._instance_state(), events=events)
                )
                self._after_step()
                raise rebuild_error(info)
            rec.status, rec.error, rec.wake_at = "retrying", info, now + cfg.delay_after(attempt)
            status, wake = self._instance_state(rec.wake_at)
            events = self._attempt_started(rec, attempt, started, cfg) + [
                self._ev(
                    rec,
                    now,
                    "attempt_errored",
                    {
                        "attempt": attempt,
                        "error": info,
                        "retryDelayMs": round((rec.wake_at - now) * 1000),
                        "nextRetryAt": rec.wake_at,
                    },
                )
            ]
            await self._commit(StepWrite(rec, AttemptRow(attempt, started, now, info), status, wake, events=events))
            crash_point("retry-delay", rec.name)
            if self.pause_pending and self.active_attempts == 0:
                raise Interrupt("pause")
            await self._wait_until(rec.wake_at)
            rec.status = "running"

    async def _one_attempt(self, rec: StepRow, fn: Callable, cfg: StepConfig, attempt: int) -> tuple[str, Any]:
        """("ok", json) | ("retry", exc) | ("final", exc)."""
        if not self.host.trusted():  # the claim may be another runner's by now: run nothing
            raise Interrupt("untrusted")
        ctx = StepContext(rec.name, rec.n, attempt, cfg.display)
        self.active_attempts += 1
        started = self.clock.now()
        marker = self.clock.call_at(
            started + MARK_STARTED_AFTER, lambda: self._mark_started(rec, attempt, started, cfg)
        )
        token = current_step.set((self, rec.name, rec.n))
        deadline = self.clock.now() + cfg.timeout
        try:
            timeout = self.clock.timeout_at(deadline)
            async with timeout:
                result = await self._call(fn, ctx)
            return "ok", codec.encode(result, f"the result of step {rec.name!r}")
        except ValidationError as exc:
            return "final", WorkflowFatalError(str(exc))
        except TimeoutError as exc:
            if _expired(timeout):
                return "retry", WorkflowTimeoutError(
                    f"step {rec.name!r} attempt {attempt} timed out after {cfg.display['timeout']}"
                )
            return "retry", exc
        except Exception as exc:
            return ("final" if _is_nonretryable(exc) else "retry"), exc
        finally:
            current_step.reset(token)
            marker.cancel()
            self.active_attempts -= 1

    async def _call(self, fn: Callable, ctx: StepContext) -> Any:
        args = (ctx,) if _param_names(fn) else ()
        if inspect.iscoroutinefunction(fn):
            return await fn(*args)
        result = await asyncio.to_thread(fn, *args)
        if inspect.isawaitable(result):
            result = await result
        return result

    def _mark_started(self, rec: StepRow, attempt: int, started: float, cfg: StepConfig) -> None:
        events = self._attempt_started(rec, attempt, started, cfg)

        async def mark():
            if rec.status != "running" or rec.attempts >= attempt:  # it ended while this was scheduled
                return
            try:
                await self.host.astore.write(
                    self.host.store_ops.mark_attempt_started,
                    self.host.owner,
                    self.seq,
                    self.gen,
                    rec,
                    attempt,
                    started,
                    events,
                )
            except Exception:  # visibility only; the outcome commit is what counts
                pass

        self.host.background(mark(), f"marking step {rec.name!r} of instance {self.row.id} as started")

    # -- sleeps --------------------------------------------------------------------------

    async def sleep(self, name: str, duration: Any) -> None:
        seconds = parse_duration(duration, f"duration of sleep {name!r}")
        if seconds > MAX_SLEEP:
            raise ValidationError(f"sleep {name!r} of {duration!r} is longer than 365 days", "sleep at most 365 days")
        await self._sleep(name, lambda now: now + seconds)

    async def sleep_until(self, name: str, when: Any) -> None:
        target = parse_instant(when, f"time of sleep_until {name!r}")

        def wake_at(now: float) -> float:
            if target < now:
                raise ValidationError(
                    f"sleep_until {name!r} was given a time in the past ({when!r})", "pass a time in the future"
                )
            if target - now > MAX_SLEEP:
                raise ValidationError(
                    f"sleep_until {name!r} was given {when!r}, more than 365 days away", "sleep at most 365 days"
                )
            return target

        await self._sleep(name, wake_at)

    async def _sleep(self, name: str, wake_at: Callable[[float], float]) -> None:
        key = self._key("sleep", name)
        rec = self.history.get(key)
        if rec is not None and rec.status == "complete":
            return
        now = self.clock.now()
        if rec is None:
            wake = wake_at(now)
            if self.mods is not None:
                wake = self.mods.sleep_wake(key, now, wake)
            rec = self._new_step(key, status="waiting", started_at=now, wake_at=wake)
            status, iwake = self._instance_state(wake)
            events = [self._ev(rec, now, "sleep_started", {"durationMs": round((wake - now) * 1000), "wakeAt": wake})]
            await self._commit(StepWrite(rec, None, status, iwake, events=events))
        elif rec.wake_at > now:
            await self._hold_instance_waiting(rec)
        crash_point("sleeping", rec.name)
        if rec.wake_at > self.clock.now():
            await self._wait_until(rec.wake_at)
        rec.status, rec.ended_at = "complete", self.clock.now()
        await self._commit(
            StepWrite(rec, None, *self._instance_state(), events=[self._ev(rec, rec.ended_at, "sleep_completed")])
        )
        self._after_step()

    # -- events --------------------------------------------------------------------------

    async def wait_for_event(self, name: str, event_type: str | None, timeout: Any) -> StepEvent:
        if event_type is not None:
            check_event_type(event_type)
        seconds = parse_duration(timeout, f"timeout of wait_for_event {name!r}")
        if seconds > MAX_SLEEP:
            raise ValidationError(
                f"timeout of wait_for_event {name!r} is longer than 365 days", "wait at most 365 days"
            )
        key = self._key("waitForEvent", name)
        rec = self.history.get(key)
        if rec is not None and rec.status == "complete":
            return _step_event(codec.decode(rec.output))
        if rec is not None and rec.status == "errored":
            raise rebuild_error(rec.error)
        if rec is None:
            now = self.clock.now()
            rec = self._new_step(key, status="waiting", started_at=now, wake_at=now + seconds, event_type=event_type)
            if self.mods is not None and self.mods.event_timeout(key):
                rec.wake_at = now
            recorded = False
        else:
            recorded = True
        return await self._await_event(rec, event_type, recorded)

    async def _await_event(self, rec: StepRow, event_type: str | None, recorded: bool) -> StepEvent:
        store = self.host.store_ops
        while True:
            seen = self.poke_count
            event = await (
                self.store_call(store.next_event, self.seq, event_type)
                if self.mods is None
                else self.mods.next_event(self, rec.key, event_type)
            )
            now = self.clock.now()
            if event is not None:
                output = '{"type":%s,"payload":%s,"timestamp":%r}' % (  # noqa: UP031 - JSON built from JSON parts
                    codec.encode(event.type, "event type"),
                    event.payload or "null",
                    event.created_at,
                )
                rec.status, rec.output, rec.ended_at, rec.wake_at = "complete", output, now, None
                try:
                    await self._commit(
                        StepWrite(
                            rec,
                            None,
                            *self._instance_state(),
                            consume_event=event.seq,
                            events=self._wait_events(rec, recorded, now)
                            + [self._ev(rec, now, "wait_completed", {"eventType": event.type})],
                        )
                    )
                except ConflictError:  # another wait took it first; look again
                    rec.status = "waiting"
                    continue
                self._after_step()
                return _step_event(codec.decode(output))
            if now >= rec.wake_at:
                info = {
                    "name": "WorkflowTimeoutError",
                    "message": f"wait_for_event {rec.name!r} timed out: no "
                    f"{repr(event_type) + ' ' if event_type else ''}event arrived in time",
                }
                rec.status, rec.error, rec.ended_at, rec.wake_at = "errored", info, now, None
                await self._commit(
                    StepWrite(
                        rec,
                        None,
                        *self._instance_state(),
                        events=self._wait_events(rec, recorded, now)
                        + [self._ev(rec, now, "wait_timed_out", {"error": info})],
                    )
                )
                self._after_step()
                raise rebuild_error(info)
            if self.poke_count != seen:
                continue
            if not recorded:
                status, wake = self._instance_state(rec.wake_at)
                await self._commit(StepWrite(rec, None, status, wake, events=self._wait_events(rec, False, now)))
                recorded = True
                crash_point("waiting", rec.name)
                if self.poke_count != seen:
                    continue
            elif self.active_attempts == 0 and not self.deadlines:
                await self._hold_instance_waiting(rec)
            await self._wait_until(rec.wake_at, event_type)


def _preview(output_json: str) -> Any:
    """A step's output for the event log: itself when small, else its size."""
    if len(output_json) <= 2000:
        return codec.decode(output_json)
    return {"truncated": True, "bytes": len(output_json.encode())}


def _expired(timeout) -> bool:
    expired = getattr(timeout, "expired", None)
    return expired() if callable(expired) else bool(expired)


def _step_event(data: dict) -> StepEvent:
    return StepEvent(data["type"], data["payload"], data["timestamp"])
