"""Rollback handlers (saga): compensations that run when an instance fails, newest step first.

A step registers a handler: `await step.do(name, fn, rollback=handler, rollback_config=...)`, or
Cloudflare's Python form, `@step.with_rollback(name)` over the step and `@fn.undo` over its undo.
Registrations need no storage: every replay of `run()` makes them again. What is stored is each
handler's run, a step of this kind with the name and count of the step it undoes.

When `run()` fails, or `terminate(rollback=True)` stops it, the engine unwinds (`unwind`): each
registered handler, in reverse step-start order, runs once as a durable step with its own retries
and timeout (`rollback_config`, the step's defaults otherwise). A handler whose run is stored as
complete never runs again (across crashes and restarts); the first one that fails for good stops
the unwinding, and the instance records it (`status()["rollback"]`, `rollback_errored` in the log).
`await step.rollback_all(error)` unwinds from inside `run()` (Cloudflare's Python SDK).

A handler gets the step's context (`ctx.step.name`, `ctx.step.count`, `ctx.attempt`, `ctx.config`
as the step ran), the step's output (None when the step did not complete) and the error:
by parameter name (`ctx`, `output`, `error`), or as one argument carrying all three (attribute
and key access, as Cloudflare passes `{ctx, output, error}`). An `@fn.undo` handler gets
`(error, value)` as in Cloudflare's Python SDK, and runs only for a step that completed.
"""

from __future__ import annotations

from collections.abc import Callable

from ...errors import ValidationError, rebuild_error
from ...records import dataclass, replace
from .. import codec
from ..events import InstanceEvent, LogEvent
from ..store.base import HistoryRow, StepRow, StepWrite
from . import register
from .do import (
    _DEFAULT_STEP_CONFIG,
    DEFAULT_CONFIG,
    Do,
    StepConfig,
    StepContext,
    _param_names,
    _state,
    call_step,
    expand_ok,
)
from .kind import EventSpec, StepStatus, Wake

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (which `wf status` would pay for)
if TYPE_CHECKING:
    from typing import Any

    from ..engine import Execution

ARGUMENTS = frozenset({"ctx", "output", "error"})
_RENAMED = {
    name: f"rollback_{name}"
    for name in (
        "step_started",
        "attempt_started",
        "attempt_completed",
        "attempt_errored",
        "step_completed",
        "step_errored",
        "step_ok",
    )
}


class Terminated(Exception):
    """The error a rollback handler gets when `terminate(rollback=True)` stopped the instance."""

    def __init__(self, message: str = "the instance was terminated"):
        super().__init__(message)
        self.message = message


class RollbackInput:
    """The one argument of a handler that takes one: `.ctx`, `.output`, `.error` (or `["ctx"]`...)."""

    __slots__ = ("ctx", "output", "error")

    def __init__(self, ctx: StepContext, output: Any, error: BaseException):
        self.ctx, self.output, self.error = ctx, output, error

    def __getitem__(self, key: str) -> Any:
        if key not in ARGUMENTS:
            raise KeyError(key)
        return getattr(self, key)


@dataclass
class _Registered:
    key: tuple[str, str, int]  # the step it undoes
    handler: Callable
    config: dict | None
    only_completed: bool  # `@fn.undo`: a step that did not complete has nothing to undo
    positional: bool  # `@fn.undo`: called as (error, value)


class _Saga:
    __slots__ = ("registered",)

    def __init__(self):
        self.registered: dict[tuple[str, str, int], _Registered] = {}


def _saga(x: Execution) -> _Saga:
    saga = x.scratch.get("rollback")
    if saga is None:
        saga = x.scratch["rollback"] = _Saga()
    return saga


def remember(x: Execution, key: tuple, handler: Any, config: dict | None, *, undo: bool = False) -> None:
    """Step `key` registers `handler` (called by `step.do` as each step starts, on every replay)."""
    if not callable(handler):
        raise ValidationError(
            f"rollback of step {key[1]!r} must be a function, got {handler!r}",
            "pass rollback=an async or plain function taking (ctx, output, error)",
        )
    if config is not None:
        StepConfig(f"{key[1]} (rollback)", config)  # a bad rollback_config fails when the step is called
    _saga(x).registered[key] = _Registered(key, handler, config, undo, undo)


def _expand_ok(row: HistoryRow) -> list[HistoryRow]:
    return [replace(r, type=_RENAMED[r.type]) for r in expand_ok(row)]


class RollbackStatus(StepStatus):
    RUNNING = "running", "▶ Rolling back"
    RETRYING = "retrying", "🔄 Retrying"
    COMPLETE = "complete", "↩ Rolled back"
    ERRORED = "errored", "❌ Rollback failed"


@register
class Rollback(Do):
    """A rollback handler's run: a `do` step in all but its name, events and identity."""

    name = "rollback"
    display = "rollback"
    label = "↩ Rollback"
    icon = "↩"
    methods = ("with_rollback", "rollback_all")  # type: ignore[assignment]
    Status = RollbackStatus  # type: ignore[assignment]
    final = frozenset({RollbackStatus.COMPLETE, RollbackStatus.ERRORED})
    wakes = frozenset({Wake.TIMER})
    step_result = False
    events = (
        EventSpec("rollback_step_started"),
        EventSpec("rollback_attempt_started", state="running", shows={"attempt": "attempt"}),
        EventSpec("rollback_attempt_completed"),
        EventSpec("rollback_attempt_errored", progress=True),
        EventSpec("rollback_step_completed", state="complete", progress=True, ends=True),
        EventSpec("rollback_step_errored", state="errored", progress=True, ends=True),
        EventSpec("rollback_step_ok", state="complete", progress=True, ends=True, expand=_expand_ok),
    )

    def log(self, rec: StepRow, at: float, name: str, data: dict | None = None) -> LogEvent:
        return super().log(rec, at, _RENAMED.get(name, name), data)

    def follow(self, view: Any, spec: EventSpec, at: float, data: dict) -> bool:
        if spec.name == "rollback_attempt_errored" and "nextRetryAt" in data:
            view.state, view.facts["next_retry"], view.error = "retrying", data["nextRetryAt"], data.get("error")
            return True
        return super().follow(view, spec, at, data)

    # -- the WorkflowStep methods ----------------------------------------------------------

    def with_rollback(
        self,
        x: Execution,
        name: Any = None,
        *,
        undo: Callable | None = None,
        config: dict | None = None,
        undo_config: dict | None = None,
        depends: list | None = None,
        concurrent: bool = False,
    ):
        """`@step.with_rollback(name)` over a step function; `@fn.undo` over its undo (Cloudflare's Python form)."""
        if callable(name) and undo is None and config is None:  # without parentheses
            return WithRollback(x, name.__name__, name, None, None, None)
        return lambda fn: WithRollback(x, name if name is not None else fn.__name__, fn, undo, config, undo_config)

    async def rollback_all(self, x: Execution, error: Any = None, continue_on_error: bool = False) -> None:
        """Run every registered handler not run yet, newest step first (Cloudflare's Python SDK)."""
        await unwind(x, error if isinstance(error, BaseException) else Exception(str(error)), continue_on_error)

    # -- running a handler -----------------------------------------------------------------

    async def undo(self, x: Execution, reg: _Registered, error: BaseException) -> None:
        """Run one registered handler durably (or not at all when its run is stored); raises the
        handler's error when it fails for good (now, or in an earlier run)."""
        step = x.history.get(reg.key)
        if step is None or (reg.only_completed and step.status != "complete"):
            return  # never started, or nothing to undo
        key = (self.name, step.name, step.n)
        rec = x.reach(self, key)
        if self.finished(rec):
            if rec.status == RollbackStatus.ERRORED:
                raise rebuild_error(rec.error or {})
            return
        output = codec.decode(step.output) if step.status == "complete" else None
        ctx = StepContext(step.name, step.n, max(step.attempts, 1), step.config or DEFAULT_CONFIG)
        fn = _call(reg, ctx, output, error)
        cfg = _DEFAULT_STEP_CONFIG if reg.config is None else StepConfig(f"{step.name} (rollback)", reg.config)
        if x.mods is not None:  # wf.testing: retry delays off; a mock of the step itself does not apply here
            fn, cfg = x.mods.step((self.name, f"{step.name} (rollback)", step.n), fn, cfg, call_step)
        now = x.clock.now()
        if rec is None:
            first = not any(k[0] == self.name for k in x.history)
            rec = x.new_step(key, status=RollbackStatus.RUNNING.value, config=cfg.display, started_at=now)
            status, wake = x.instance_state()
            began = [LogEvent(now, InstanceEvent.ROLLBACK_STARTED.value)] if first else []
            await x.commit(StepWrite(rec, instance_status=status, instance_wake_at=wake, events=began))
        elif rec.status == RollbackStatus.RETRYING and rec.wake_at is not None and rec.wake_at > now:
            await x.hold_waiting(rec)
            await x.wait(self, rec.wake_at)
        await self._attempts(x, _state(x), rec, fn, cfg)


def _call(reg: _Registered, ctx: StepContext, output: Any, error: BaseException) -> Callable:
    """The handler as a step function of no arguments (async when the handler is)."""
    import inspect  # here: `wf status` loads the step kinds and runs no handler

    handler = reg.handler
    params = _param_names(handler)
    if reg.positional:
        args: tuple = (error, output, ctx)[: len(params)]
        kwargs: dict = {}
    elif params and set(params) <= ARGUMENTS:
        args, kwargs = (), {p: {"ctx": ctx, "output": output, "error": error}[p] for p in params}
    else:
        args, kwargs = ((RollbackInput(ctx, output, error),) if params else ()), {}

    if inspect.iscoroutinefunction(handler):

        async def run_async():
            return await handler(*args, **kwargs)

        run_async.__wf_params__ = ()  # type: ignore[attr-defined]
        return run_async

    def run():
        return handler(*args, **kwargs)

    run.__wf_params__ = ()  # type: ignore[attr-defined]
    return run


async def unwind(x: Execution, error: BaseException, continue_on_error: bool = False) -> None:
    """Run the registered handlers, newest step first, each at most once; stop at the first that
    fails for good (unless `continue_on_error`). Pauses and shutdowns pass through (Interrupt)."""
    kind = _kind()
    saga = _saga(x)
    started = {key: x.history[key].pos for key in saga.registered if key in x.history}
    for key in sorted(started, key=started.__getitem__, reverse=True):
        try:
            await kind.undo(x, saga.registered[key], error)
        except Exception:
            if not continue_on_error:
                return


def outcome(history: dict) -> list[LogEvent]:
    """The log entries that close a rollback, written with the instance's end: none when no
    handler ran, else `rollback_completed` or `rollback_errored` with the handler's error."""
    runs = sorted((s for s in history.values() if s.kind == Rollback.name), key=lambda s: s.pos)
    if not runs:
        return []
    failed = next((s for s in runs if s.status == RollbackStatus.ERRORED), None)
    now = max((s.ended_at or s.started_at or 0.0) for s in runs)
    if failed is not None:
        return [LogEvent(now, InstanceEvent.ROLLBACK_ERRORED.value, failed.name, failed.n, {"error": failed.error})]
    return [LogEvent(now, InstanceEvent.ROLLBACK_COMPLETED.value)]


def status_of(runs: list[StepRow]) -> dict | None:
    """`status()["rollback"]` from an instance's rollback runs: Cloudflare's {outcome, error}."""
    if not runs:
        return None
    failed = next((s for s in runs if s.status == RollbackStatus.ERRORED), None)
    if failed is not None:
        return {"outcome": "failed", "error": failed.error}
    return {"outcome": "complete", "error": None}


def _kind() -> Rollback:
    from . import kind

    found = kind(Rollback.name)
    assert isinstance(found, Rollback)
    return found


class WithRollback:
    """A step decorated with `@step.with_rollback(name)`: `@it.undo` names its undo; call it to run it."""

    def __init__(self, x: Execution, name: str, fn: Callable, undo, config, undo_config):
        self._x, self.name, self.fn, self.config = x, name, fn, config
        self._undo, self._undo_config = undo, undo_config
        self.__name__ = getattr(fn, "__name__", name)

    def undo(self, handler: Callable) -> Callable:
        self._undo = handler
        return handler

    def __call__(self):
        """Run the step (a coroutine, awaited by the caller: no task of its own outlives the run)."""
        return self._execute()

    async def _execute(self):
        if self._undo is None:
            raise ValidationError(
                f"step {self.name!r} has no undo handler",
                f"decorate one with @{self.__name__}.undo, or pass undo= to step.with_rollback",
            )
        do = _kind_do()
        return await do.run(self._x, self.name, self.fn, self.config, rollback=(self._undo, self._undo_config, True))


def _kind_do() -> Do:
    from . import kind

    found = kind(Do.name)
    assert isinstance(found, Do)
    return found
