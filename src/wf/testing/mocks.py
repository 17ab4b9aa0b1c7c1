"""wf.testing's mocks: what `Modifier` records, and the plan the engine consults at attempt time.

The engine calls a plan's `step`, `sleep_wake`, `event_timeout` and `next_event`; an instance run
without a test harness never reaches this code.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import ValidationError, WorkflowTimeoutError
from ..runtime import codec
from ..runtime.durations import timed_out
from ..runtime.store.base import EventRow


class WorkflowTestError(AssertionError):
    """An observer's expectation cannot be met: another terminal status, a stuck instance, no output."""


# -- steps and the plan of mocks -----------------------------------------------------------


def _selector(step: Any, index: int | None = None) -> tuple[str, int]:
    """`"charge"`, `("charge", 2)` or `{"name": "charge", "index": 2}` -> ("charge", 2)."""
    if isinstance(step, dict):
        name, index = step.get("name"), step.get("index", index)
    elif isinstance(step, tuple) and len(step) == 2:
        name, index = step
    else:
        name = step
    index = 1 if index is None else index
    if not isinstance(name, str) or not name:
        raise ValidationError(f"step selector {step!r} has no name", 'pass "name" or {"name": ..., "index": 2}')
    if isinstance(index, bool) or not isinstance(index, int) or index < 1:
        raise ValidationError(
            f"step index {index!r} of {name!r} must be an integer from 1",
            "index counts the steps of that name in a run, from 1",
        )
    return name, index


def _no_retry_delay(cfg):
    cfg = copy.copy(cfg)
    cfg.delay, cfg.delay_fn = 0.0, None  # a delay function is not asked either
    return cfg


class _Plan:
    """The mocks of one instance (or, in a session, of every instance it captures).

    The engine calls `step`, `sleep_wake`, `event_timeout` and `next_event`; an instance run
    without a test harness never reaches this code."""

    def __init__(self):
        self.results: dict[tuple[str, int], str] = {}
        self.failures: dict[tuple[str, int], list] = {}
        self.sleeps: set | bool = set()  # True: every sleep
        self.retry_delays: set | bool = set()
        self.events: list[tuple[str, str | None]] = []
        self.taken: dict[tuple, EventRow] = {}  # wait key -> its mocked event, kept so restart() sees it again
        self.event_timeouts: set = set()

    def absorb(self, other: _Plan) -> None:
        for sel, value in other.results.items():
            self.results.setdefault(sel, value)
        for sel, entries in other.failures.items():
            self.failures.setdefault(sel, []).extend(entries)
        for attr in ("sleeps", "retry_delays"):
            mine, theirs = getattr(self, attr), getattr(other, attr)
            setattr(self, attr, True if True in (mine, theirs) else mine | theirs)
        self.events = list(other.events) + self.events
        self.event_timeouts |= other.event_timeouts

    # -- consulted by the engine ---------------------------------------------------------

    def step(self, key: tuple, fn: Callable, cfg, call: Callable):
        sel = key[1:]
        if self.retry_delays is True or (self.retry_delays and sel in self.retry_delays):
            cfg = _no_retry_delay(cfg)
        failures, mocked = self.failures.get(sel), sel in self.results
        if not failures and not mocked:
            return fn, cfg
        plan, timeout, seconds = self, cfg.display["timeout"], cfg.timeout

        async def attempt(ctx):
            failure = _failure_for(failures or [], ctx.attempt)
            if failure is not None:
                kind, error = failure
                if kind == "timeout":
                    raise WorkflowTimeoutError(
                        f"{timed_out(seconds)}: step {sel[0]!r} attempt {ctx.attempt} timed out after {timeout}"
                    )
                raise error() if isinstance(error, type) else error
            if mocked:
                return codec.decode(plan.results[sel])
            return await call(fn, ctx)

        attempt.__wf_params__ = ("ctx",)  # type: ignore[attr-defined]
        return attempt, cfg

    def sleep_wake(self, key: tuple, now: float, wake: float) -> float:
        return now if self.sleeps is True or (self.sleeps and key[1:] in self.sleeps) else wake

    def event_timeout(self, key: tuple) -> bool:
        return key[1:] in self.event_timeouts

    async def next_event(self, x, key: tuple, event_type: str | None):
        if self.event_timeout(key):
            return None
        if key in self.taken:
            return self.taken[key]
        for i, (type_, payload) in enumerate(self.events):
            if event_type is None or type_ == event_type:
                del self.events[i]
                self.taken[key] = EventRow(None, type_, payload, x.clock.now())  # not stored: no seq
                return self.taken[key]
        return await x.host.astore.call(x.host.store_ops.next_event, x.seq, event_type)


def _failure_for(entries: list, attempt: int):
    start = 0
    for kind, error, times in entries:
        if times is None or attempt <= start + times:
            return kind, error
        start += times
    return None


class Modifier:
    """Records mocks on a plan. Every method returns the modifier, so calls chain."""

    def __init__(self, plan: _Plan):
        self._plan = plan

    def mock_step_result(self, step: Any, result: Any, *, index: int | None = None) -> Modifier:
        """The step returns `result` without running its function (after any mocked errors)."""
        sel = _selector(step, index)
        if sel in self._plan.results:
            raise ValidationError(
                f"step {sel[0]!r} (index {sel[1]}) already has a mocked result", "mock each step's result once"
            )
        self._plan.results[sel] = codec.encode(result, f"the mocked result of step {sel[0]!r}")
        return self

    def mock_step_error(
        self, step: Any, error: BaseException | type, times: int | None = None, *, index: int | None = None
    ) -> Modifier:
        """Every attempt raises `error`, or only the next `times` attempts (then mocks or the real function).
        Refused after the step's result was mocked, as Cloudflare's modifier refuses it."""
        if not (isinstance(error, Exception) or (isinstance(error, type) and issubclass(error, Exception))):
            raise ValidationError(f"mock_step_error needs an exception, got {error!r}", 'e.g. RuntimeError("down")')
        return self._fail(step, index, "error", error, times)

    def force_step_timeout(self, step: Any, times: int | None = None, *, index: int | None = None) -> Modifier:
        """Every attempt (or the next `times`) times out at once, without running the function.
        Refused after the step's result was mocked, as Cloudflare's modifier refuses it."""
        return self._fail(step, index, "timeout", None, times)

    def _fail(self, step, index, kind, error, times) -> Modifier:
        if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
            raise ValidationError(f"times={times!r} must be a positive integer or None", "None means every attempt")
        sel = _selector(step, index)
        if sel in self._plan.results:
            what = "mock error" if kind == "error" else "force timeout"
            raise ValidationError(
                f"Trying to {what} on step {sel[0]!r} after mocking its result!",
                "mock the errors or timeouts first, then the result the step returns after them",
            )
        self._plan.failures.setdefault(sel, []).append((kind, error, times))
        return self

    def disable_sleeps(self, steps: Iterable | None = None) -> Modifier:
        """Sleeps (all, or those selected) end at once."""
        self._plan.sleeps = True if steps is None else _union(self._plan.sleeps, steps)
        return self

    def disable_retry_delays(self, steps: Iterable | None = None) -> Modifier:
        """Retries (of all steps, or those selected) start at once; the attempts are all made."""
        self._plan.retry_delays = True if steps is None else _union(self._plan.retry_delays, steps)
        return self

    def mock_event(self, type: str, payload: Any = None) -> Modifier:
        """An event already waiting for the first `wait_for_event` of its type."""
        from ..runtime.validate import check_event_type

        text = None if payload is None else codec.encode(payload, f"payload of mocked event {type!r}")
        self._plan.events.append((check_event_type(type), text))
        return self

    def force_event_timeout(self, step: Any, *, index: int | None = None) -> Modifier:
        """That `wait_for_event` times out at once, even if an event is there."""
        self._plan.event_timeouts.add(_selector(step, index))
        return self


def _union(current, steps: Iterable):
    if isinstance(steps, (str, dict)):
        steps = [steps]
    return current if current is True else current | {_selector(s) for s in steps}


def _apply(plan: _Plan, fn: Callable | None) -> Modifier:
    m = Modifier(plan)
    if fn is not None:
        result = fn(m)
        if inspect.isawaitable(result):
            raise ValidationError("modify functions run synchronously here", "use a plain function or lambda")
    return m


class _Registry:
    """`runner.modifiers`: the plan of each instance, by (workflow, id)."""

    def __init__(self):
        self.plans: dict[tuple[str, str], _Plan] = {}
        self.sessions: dict[str, Any] = {}  # workflow -> its WorkflowIntrospector
        self.seen: set[tuple[str, str]] = set()

    def for_instance(self, row) -> _Plan:
        key = (row.workflow, row.id)
        plan = self.plans.setdefault(key, _Plan())
        if key not in self.seen:
            self.seen.add(key)
            session = self.sessions.get(row.workflow)
            if session is not None and row.seq > session.after_seq:
                plan.absorb(session.plan)
                session.captured.append(row.id)
        return plan
