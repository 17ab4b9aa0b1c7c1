"""`step.do`: run a function durably, with retries, backoff and a timeout per attempt.

A step that succeeds at its first attempt is logged as one `step_ok` row (the hot path pays
for one row, not four); readers see it expanded into the four events Cloudflare reports. A
failed attempt with retries left is recorded with its retry time (`retrying`) and waited on
durably; the final outcome, value or error, is committed before `run()` goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from ...errors import (
    NonRetryableError,
    NotFoundError,
    ValidationError,
    WorkflowFatalError,
    WorkflowTimeoutError,
    error_info,
    rebuild_error,
)
from ...records import replace
from .. import codec
from ..crash import crash_point
from ..durations import format_duration, parse_duration, timed_out
from ..retry import DYNAMIC_DELAY, DelayFunctionFailed, ask_delay_function, backoff_delay, deadline_passed
from ..store.base import AttemptRow, HistoryRow, StepRow, StepWrite
from ..threads import STEP_THREADS, NotStarted
from ..tracebacks import format_traceback
from . import register
from .context import StepContext
from .decorated import StepCallable
from .kind import REDACTED, EventSpec, StepKind, StepStatus, Wake, error_line, is_sensitive

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (which `wf status` would pay for)
if TYPE_CHECKING:
    from typing import Any

    from ..engine import Execution

DEFAULT_CONFIG: dict[str, Any] = {
    "retries": {"limit": 5, "delay": "10 seconds", "backoff": "exponential"},
    "timeout": "10 minutes",
}
BACKOFFS = ("constant", "linear", "exponential")
MARK_STARTED_AFTER = 0.05  # an attempt running longer than this is recorded as started
PREVIEW_MAX = 2000  # an output longer than this (JSON characters) is logged as its size only


def _retries(name: str, config: dict) -> dict:
    """The step's retry policy: the defaults when the config has no `retries`, else the one given,
    which must name both `limit` and `delay` (as Cloudflare validates a step's config); without a
    `backoff` it is constant, as Cloudflare computes it."""
    if "retries" not in config:
        return dict(DEFAULT_CONFIG["retries"])
    retries = config["retries"]
    if not isinstance(retries, dict) or set(retries) - {"limit", "delay", "backoff"}:
        raise ValidationError(
            f"retries of step {name!r} must be a dict of limit, delay and backoff, got {retries!r}",
            'e.g. {"limit": 3, "delay": "5 seconds", "backoff": "linear"}',
        )
    missing = [key for key in ("limit", "delay") if key not in retries]
    if missing:
        raise ValidationError(
            f"retries of step {name!r} has no {' and no '.join(map(repr, missing))}: {retries!r}",
            'a step\'s retries name both, e.g. {"limit": 3, "delay": "5 seconds"}; '
            "leave out `retries` for the defaults (5 retries, 10 seconds, exponential)",
        )
    return {"backoff": "constant", **retries}


class StepConfig:
    """A step's retry and timeout policy, merged over the defaults and checked."""

    __slots__ = ("limit", "delay", "delay_fn", "backoff", "timeout", "display", "context")

    def __init__(self, name: str, config: dict | None):
        if config is not None and not isinstance(config, dict):
            raise ValidationError(
                f"config of step {name!r} must be a dict, got {config!r}",
                'e.g. {"retries": {"limit": 3, "delay": "5 seconds"}, "timeout": "1 minute"}',
            )
        config = config or {}
        unknown = set(config) - {"retries", "timeout", "sensitive"}
        if unknown:
            raise ValidationError(
                f"config of step {name!r} has unknown key {sorted(unknown)[0]!r}",
                "allowed keys are 'retries', 'timeout' and 'sensitive'",
            )
        sensitive = config.get("sensitive")
        if sensitive not in (None, "output"):
            raise ValidationError(
                f"sensitive of step {name!r} must be 'output', got {sensitive!r}",
                "write 'sensitive': 'output' to show the step's output as [REDACTED] everywhere",
            )
        merged = _retries(name, config)
        self.limit = merged["limit"]
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or not 0 <= self.limit <= 10_000:
            raise ValidationError(
                f"retries.limit of step {name!r} must be an integer from 0 to 10000, got {self.limit!r}",
                "limit counts retries: 0 means one attempt",
            )
        # a function of the failed attempt (Cloudflare's dynamic delay), asked at each failure
        self.delay_fn = merged["delay"] if callable(merged["delay"]) else None
        if self.delay_fn is not None:
            merged["delay"] = DYNAMIC_DELAY
        self.delay = 0.0 if self.delay_fn else parse_duration(merged["delay"], f"retries.delay of step {name!r}")
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
        self.display = {"retries": merged, "timeout": timeout, **({"sensitive": "output"} if sensitive else {})}
        # what ctx.config shows: as stored, but without a delay that is a function (as Cloudflare)
        retries = {k: v for k, v in merged.items() if not (k == "delay" and self.delay_fn)}
        self.context = {**self.display, "retries": retries} if self.delay_fn else self.display

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return backoff_delay(self.backoff, self.delay, attempt)


_DEFAULT_STEP_CONFIG = StepConfig("default", None)


class _RunState:
    """What the do kind keeps per execution: steps counted against the limit, attempts already
    in the log, and the functions decorated with `@step.do` (by function name, for injection)."""

    __slots__ = ("calls", "announced", "decorated", "configs")

    def __init__(self):
        self.calls = 0
        self.announced: set[tuple[int, int]] = set()  # (pos, attempt)
        self.decorated: dict[str, StepCallable] = {}
        self.configs: dict[int, tuple[dict, StepConfig]] = {}  # id(config) -> (a copy of it, parsed)

    def config(self, name: str, config: dict | None) -> StepConfig:
        """The step's parsed config: a config dict passed again (a loop's steps) is parsed once per
        run, unless it changed since (it is compared with a copy)."""
        if config is None:
            return _DEFAULT_STEP_CONFIG
        seen = self.configs.get(id(config))
        if seen is not None and seen[0] == config:
            return seen[1]
        parsed = StepConfig(name, config)
        if len(self.configs) < 64:
            import copy

            try:
                self.configs[id(config)] = (copy.deepcopy(config), parsed)
            except Exception:  # a value that cannot be copied: parsed at each step, as before
                pass
        return parsed


@cache
def _step_context():
    """logs.current (and so logging), imported on the first attempt, once: `wf instances describe`
    reads this kind and runs none (a `from` import in the attempt itself would cost each attempt ~1 µs)."""
    from ..logs import current

    return current


def _state(x: Execution) -> _RunState:
    state = x.scratch.get("do")
    if state is None:
        state = x.scratch["do"] = _RunState()
    return state


def expand_ok(row: HistoryRow) -> list[HistoryRow]:
    """A `step_ok` row as the four events Cloudflare reports for a step that succeeded at once."""
    data = row.data or {}
    started = data.get("startedAt", row.at)
    return [
        replace(row, at=started, type="step_started", data=None),
        replace(row, at=started, type="attempt_started", data={"attempt": 1}),
        replace(row, type="attempt_completed", data={"attempt": 1}),
        replace(row, type="step_completed", data={"output": data.get("output")}),
    ]


class DoStatus(StepStatus):
    RUNNING = "running", "▶ Running"
    RETRYING = "retrying", "🔄 Retrying"
    COMPLETE = "complete", "✅ Success"
    ERRORED = "errored", "❌ Error"


@register
class Do(StepKind):
    name = "do"
    display = "step"
    label = "🎯 Step"
    icon = "▸"
    methods = ("do",)
    Status = DoStatus
    final = frozenset({DoStatus.COMPLETE, DoStatus.ERRORED})
    wakes = frozenset({Wake.TIMER})  # the delay before a retry
    step_result = True
    times = ("start", "end", "next_retry")
    events = (
        EventSpec("step_started"),
        EventSpec("attempt_started", state="running", shows={"attempt": "attempt"}),
        EventSpec("attempt_completed"),
        EventSpec("attempt_errored", progress=True),  # a retry's wait: see follow()
        EventSpec("step_completed", state="complete", progress=True, ends=True),
        EventSpec("step_errored", state="errored", progress=True, ends=True),
        EventSpec("step_ok", state="complete", progress=True, ends=True, expand=expand_ok),
    )

    # -- the WorkflowStep method -------------------------------------------------------------

    def do(
        self,
        x: Execution,
        name: Any = None,
        fn: Callable | None = None,
        *,
        config: dict | None = None,
        concurrent: bool = False,
        depends: list | None = None,
        rollback: Callable | None = None,
        rollback_config: dict | None = None,
    ):
        """`await step.do(name, fn, config=...)`, or `@step.do(name)` over a function (then call it).
        `rollback=` registers a compensation (steps/rollback.py), with its own `rollback_config`."""
        if rollback is not None and fn is not None:
            return self.run(x, name, fn, config, rollback=(rollback, rollback_config, False))
        if callable(name) and fn is None:  # @step.do without parentheses
            return self._decorate(x, name.__name__, name, config, concurrent, depends)
        if fn is None:
            return lambda f: self._decorate(x, name if name is not None else f.__name__, f, config, concurrent, depends)
        if isinstance(fn, dict) and config is None:
            raise ValidationError(
                f"step {name!r}: pass the config as config=..., after the function",
                "write step.do(name, fn, config={...})",
            )
        if depends is not None:  # the call form with dependencies: run them, then the step
            return StepCallable(self, x, _state(x).decorated, name, fn, config, concurrent, depends)()
        return self.run(x, name, fn, config)

    def _decorate(self, x: Execution, name, fn, config, concurrent, depends) -> StepCallable:
        decorated = _state(x).decorated
        wrapped = decorated[fn.__name__] = StepCallable(self, x, decorated, name, fn, config, concurrent, depends)
        return wrapped

    # -- running -----------------------------------------------------------------------------

    async def run(
        self, x: Execution, name: str, fn: Callable, config: dict | None, rollback: tuple | None = None
    ) -> Any:
        key, rec = x.lookup(self, name)
        if rollback is not None:  # (handler, rollback_config, undo form): registered on every replay
            from .rollback import remember

            remember(x, key, rollback[0], rollback[1], undo=rollback[2])
        state = _state(x)
        state.calls += 1
        if state.calls > x.step_limit:
            raise WorkflowFatalError(
                f"The limit of {x.step_limit} steps has been reached. This limit can be "
                f"changed in your worker configuration (limits.steps)."
            )
        if not callable(fn):
            raise ValidationError(f"step {name!r} needs a function, got {fn!r}", "write step.do(name, fn)")
        if self.finished(rec):
            return self.replay(rec)
        cfg = state.config(name, config)
        if x.mods is not None:
            fn, cfg = x.mods.step(key, fn, cfg, call_step)
        if rec is None:
            rec = x.new_step(key, status=DoStatus.RUNNING.value, config=cfg.display, started_at=x.clock.now())
        elif rec.status == DoStatus.RETRYING and rec.wake_at is not None and rec.wake_at > x.clock.now():
            await x.hold_waiting(rec)
            await x.wait(self, rec.wake_at)
        return await self._attempts(x, state, rec, fn, cfg)

    async def _attempts(self, x: Execution, state: _RunState, rec: StepRow, fn: Callable, cfg: StepConfig) -> Any:
        while True:
            attempt = rec.attempts + 1
            started = x.clock.now()
            outcome, value = await self._one_attempt(x, state, rec, fn, cfg, attempt)
            now = x.clock.now()
            rec.attempts = attempt
            crash_point("before-commit", rec.name)
            if outcome == "ok":
                await self._succeeded(x, state, rec, attempt, started, now, value)
                return codec.decode(value)
            info, trace = error_info(value), format_traceback(value)
            failed = AttemptRow(attempt, started, now, info, trace)
            if outcome == "final" or attempt > cfg.limit:
                await self._failed(x, state, rec, failed, now)
                raise rebuild_error(info)
            try:
                pause = await self._retry_delay(x, rec, cfg, attempt, value)
            except DelayFunctionFailed as bad:  # the step fails for good, with the delay function's error
                await self._failed(x, state, rec, failed, now, bad.info)
                raise rebuild_error(bad.info) from None
            rec.status, rec.error, rec.wake_at = DoStatus.RETRYING.value, info, now + pause
            status, wake = x.instance_state(rec.wake_at)
            delay_ms = round((rec.wake_at - now) * 1000)
            retry = {"attempt": attempt, "error": info, "retryDelayMs": delay_ms, "nextRetryAt": rec.wake_at}
            events = self._attempt_started(state, rec, attempt, started) + [
                self.log(rec, now, "attempt_errored", {**retry, **_traced(trace)})
            ]
            await x.commit(StepWrite(rec, AttemptRow(attempt, started, now, info, trace), status, wake, events=events))
            crash_point("retry-delay", rec.name)
            x.check_pause()
            await x.wait(self, rec.wake_at)
            rec.status = DoStatus.RUNNING.value

    async def _retry_delay(self, x: Execution, rec: StepRow, cfg: StepConfig, attempt: int, exc: Any) -> float:
        """Seconds before the next attempt: the configured delay, or the delay function's answer
        (asked once per failure; the wait it gives is stored, so a replay never asks again), through
        the backoff."""
        if cfg.delay_fn is None:
            return cfg.delay_after(attempt)
        ctx = StepContext(rec.name, rec.n, attempt, cfg.context)
        x.active_attempts += 1  # user code runs, as in an attempt (a test clock may move past its limit)
        try:
            base = await ask_delay_function(cfg.delay_fn, ctx, exc, f"{rec.name}-{rec.n}", x.clock, call_step)
        finally:
            x.active_attempts -= 1
        return backoff_delay(cfg.backoff, base, attempt)

    async def _succeeded(self, x, state, rec: StepRow, attempt: int, started: float, now: float, value: str) -> None:
        rec.status, rec.output, rec.ended_at, rec.wake_at, rec.error = DoStatus.COMPLETE.value, value, now, None, None
        if attempt == 1 and (rec.pos, 1) not in state.announced:  # the common case, one log row
            events = [self.log(rec, now, "step_ok", {"startedAt": started, "output": _preview(value, rec)})]
        else:
            events = self._attempt_started(state, rec, attempt, started) + [
                self.log(rec, now, "attempt_completed", {"attempt": attempt}),
                self.log(rec, now, "step_completed", {"output": _preview(value, rec)}),
            ]
        status, wake = x.instance_state()
        await x.commit(StepWrite(rec, AttemptRow(attempt, started, now, None), status, wake, events=events))
        crash_point("after-commit", rec.name)
        x.after_step()

    async def _failed(self, x, state, rec: StepRow, a: AttemptRow, now: float, error: dict | None = None) -> None:
        """The last attempt failed: the step ends errored with `error` (default: the attempt's), which
        the caller raises in `run()`."""
        info = a.error if error is None else error
        rec.status, rec.error, rec.ended_at, rec.wake_at = DoStatus.ERRORED.value, info, now, None
        events = self._attempt_started(state, rec, a.attempt, a.started_at) + [
            self.log(rec, now, "attempt_errored", {"attempt": a.attempt, "error": a.error, **_traced(a.traceback)}),
            self.log(rec, now, "step_errored", {"error": info}),
        ]
        status, wake = x.instance_state()
        await x.commit(StepWrite(rec, a, status, wake, events=events))
        x.after_step()

    def _attempt_started(self, state: _RunState, rec: StepRow, attempt: int, started: float) -> list:
        if (rec.pos, attempt) in state.announced:
            return []
        state.announced.add((rec.pos, attempt))
        events = [self.log(rec, started, "step_started")] if attempt == 1 else []
        return events + [self.log(rec, started, "attempt_started", {"attempt": attempt})]

    async def _one_attempt(
        self, x: Execution, state: _RunState, rec: StepRow, fn: Callable, cfg: StepConfig, attempt: int
    ) -> tuple[str, Any]:
        """("ok", json) | ("retry", exc) | ("final", exc)."""
        import asyncio  # here: `wf instances describe` reads this kind without an event loop

        current_step = _step_context()

        x.check_trusted()
        ctx = StepContext(rec.name, rec.n, attempt, cfg.context)
        x.active_attempts += 1
        clock = x.clock
        started = clock.now()
        deadline = started + cfg.timeout
        # one timer for the common attempt, which ends before either: at MARK_STARTED_AFTER it marks
        # the attempt started and sets the timeout's own timer (a timeout shorter than that has its own)
        soon = deadline <= started + MARK_STARTED_AFTER
        timeout = clock.timeout_at(deadline if soon else None)

        def mark() -> None:
            if not soon:
                clock.arm(timeout, deadline)
            self._mark_started(x, state, rec, attempt, started)

        marker = clock.call_at(started + MARK_STARTED_AFTER, mark)
        token = current_step.set((x, rec.name, rec.n))
        try:
            async with timeout:
                result = await call_step(fn, ctx, x.distrusted)
            return "ok", codec.encode(result, f"the result of step {rec.name!r}")
        except NotStarted:  # a sync attempt whose thread came too late: as if check_trusted had refused it
            raise x.interrupt("untrusted") from None
        except ValidationError as exc:
            return "final", WorkflowFatalError(str(exc))
        except TimeoutError as exc:
            if deadline_passed(timeout):
                return "retry", WorkflowTimeoutError(
                    f"{timed_out(cfg.timeout)}: step {rec.name!r} attempt {attempt} timed out after "
                    f"{cfg.display['timeout']}"
                )
            return "retry", exc
        except Exception as exc:
            return ("final" if _is_nonretryable(exc) else "retry"), exc
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if x.stop_reason is not None or (task is not None and task.cancelling()):
                raise  # the runner stops this execution (pause, shutdown, lost): not the attempt's doing
            return "retry", exc  # raised by the step function itself: a failed attempt like any other
        finally:
            current_step.reset(token)
            marker.cancel()
            x.active_attempts -= 1

    def _mark_started(self, x: Execution, state: _RunState, rec: StepRow, attempt: int, started: float) -> None:
        """A long attempt shows in the log and in describe() before it ends."""
        events = self._attempt_started(state, rec, attempt, started)

        async def mark():
            if rec.status != DoStatus.RUNNING or rec.attempts >= attempt:  # it ended while this was scheduled
                return
            host = x.host
            try:
                await host.astore.write(
                    host.store_ops.mark_attempt_started, host.owner, x.seq, x.gen, rec, attempt, started, events
                )
            except Exception:  # visibility only; the outcome commit is what counts
                pass

        x.host.background(mark(), f"marking step {rec.name!r} of instance {x.row.id} as started")

    # -- describe ----------------------------------------------------------------------------

    def details(self, s: StepRow) -> dict:
        return {
            "output": codec.decode(s.output),
            "error": s.error,
            "config": s.config,
            "next_retry": s.wake_at if s.status == DoStatus.RETRYING else None,
            "attempts": [
                {
                    "attempt": a.attempt,
                    "start": a.started_at,
                    "end": a.ended_at,
                    "success": a.error is None and a.ended_at is not None,
                    "error": a.error,
                    "traceback": a.traceback,
                }
                for a in s.attempt_log
            ],
        }

    def cloudflare(self, d: dict, iso: Callable) -> dict:
        status = d["status"]
        success = True if status == DoStatus.COMPLETE else False if status == DoStatus.ERRORED else None
        out = {
            "name": f"{d['name']}-{d['count']}",
            "start": iso(d["start"]),
            "end": iso(d["end"]) if status in self.final else None,
            "success": success,
            "type": self.display,
            "config": _cloudflare_config(d.get("config")),
            "attempts": [
                {
                    "start": iso(a["start"]),
                    "end": iso(a["end"]),
                    "success": None if a["end"] is None else a["error"] is None,
                    "error": _with_stack(a["error"], a.get("traceback")),
                }
                for a in d.get("attempts", [])
            ],
        }
        if success and d.get("output") is not None:
            out["output"] = d["output"]
        return out

    def full_output(self, d: dict, attempt: int | None = None) -> dict:
        if attempt is None:
            if d["status"] in (DoStatus.RUNNING, DoStatus.RETRYING):  # retrying: running, with the last error
                return {"status": "running", "error": d.get("error"), "output": None}
            return super().full_output(d)
        tries = d.get("attempts", [])
        if not 1 <= attempt <= len(tries):
            raise NotFoundError(
                f"step {d['name']!r} #{d['count']} has no attempt {attempt}", f"it has made {len(tries)} attempt(s)"
            )
        a = tries[attempt - 1]
        if a["end"] is None:
            return {"status": "running", "error": None, "output": None}
        if a["error"] is not None:
            return {"status": "errored", "error": a["error"], "output": None}
        return {"status": "complete", "error": None, "output": d.get("output")}

    def with_times(self, d: dict, iso: Callable) -> dict:
        out = super().with_times(d, iso)
        out["attempts"] = [{**a, "start": iso(a["start"]), "end": iso(a["end"])} for a in d.get("attempts", [])]
        return out

    def human(self, d: dict) -> list[tuple[str, str, Any]]:
        fields = [("Retries At", "when", d["next_retry"])] if d.get("next_retry") else []
        return fields + super().human(d)

    # -- wf tail -----------------------------------------------------------------------------

    def follow(self, view: Any, spec: EventSpec, at: float, data: dict) -> bool:
        if spec.name == "attempt_errored" and "nextRetryAt" in data:  # failed, with a retry to come
            view.state, view.facts["next_retry"], view.error = "retrying", data["nextRetryAt"], data.get("error")
            return True
        return super().follow(view, spec, at, data)

    def detail(self, view: Any, now: float) -> str:
        retry_at = view.facts.get("next_retry")
        if view.state == "retrying" and retry_at:
            return f"retry in {format_duration(max(0.0, retry_at - now))}" + error_line(view.error)
        return super().detail(view, now)

    def attempt(self, view: Any) -> str:
        return str(view.facts["attempt"]) if view.facts.get("attempt") else ""


def _param_names(fn: Callable) -> tuple[str, ...]:
    """Names of the parameters `fn` needs (those without defaults): () or ("ctx",) or DI names."""
    marked = getattr(fn, "__wf_params__", None)
    if marked is not None:
        return marked
    import inspect  # here, not at import: `wf instances describe` reads this kind and runs no step

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


async def call_step(fn: Callable, ctx: Any, guard: Callable[[], bool] | None = None) -> Any:
    """One attempt of a step function (or a delay function): async on the loop, sync on a thread of
    its own (threads.py), not called there if `guard` then says so; `ctx` is passed when the function
    takes an argument."""
    import inspect

    args = (ctx,) if _param_names(fn) else ()
    if inspect.iscoroutinefunction(fn):
        return await fn(*args)
    result = await STEP_THREADS.run(fn, *args, guard=guard)
    if inspect.isawaitable(result):
        result = await result
    return result


def _is_nonretryable(exc: BaseException) -> bool:
    return isinstance(exc, (NonRetryableError, WorkflowFatalError)) and getattr(exc, "name", "") in (
        "NonRetryableError",
        "WorkflowFatalError",
    )


def _traced(trace: str | None) -> dict:
    """An attempt_errored entry's traceback field, when the error has one."""
    return {"traceback": trace} if trace else {}


def _with_stack(error: dict | None, trace: str | None) -> dict | None:
    """A failed attempt's error in the explorer API: Cloudflare's {name, message}, plus `stack` (the
    traceback, as a JavaScript error carries its stack) when there is one."""
    return {**error, "stack": trace} if error is not None and trace else error


def _preview(output_json: str, rec: StepRow) -> Any:
    """A step's output for the event log: itself when small, else its size; hidden when sensitive."""
    if is_sensitive(rec.config):
        return REDACTED
    if len(output_json) <= PREVIEW_MAX:
        return codec.decode(output_json)
    return {"truncated": True, "bytes": len(output_json.encode())}


def _cloudflare_config(config: Any) -> dict:
    """The step's config as Cloudflare shows it: numbers are milliseconds there, seconds in wf."""
    config = config if isinstance(config, dict) else DEFAULT_CONFIG
    retries = config.get("retries") or DEFAULT_CONFIG["retries"]
    timeout = config.get("timeout", DEFAULT_CONFIG["timeout"])
    ms = lambda v: v * 1000 if isinstance(v, (int, float)) and not isinstance(v, bool) else v  # noqa: E731
    return {"retries": {**retries, "delay": ms(retries["delay"])}, "timeout": ms(timeout)}
