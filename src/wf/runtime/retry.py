"""One retry policy for every loop that waits for something outside wf to come back.

A `Backoff` yields growing pauses (`first`, then times `factor`, at most `most`, with optional
jitter); `call` runs a function until it succeeds, a failure is not worth retrying, or the
attempts run out. Used by the stores (busy SQLite files, PostgreSQL deadlocks), the runner's
claim loop (a store outage) and the PostgreSQL LISTEN connection.

A step's own retries (`step.do` config) wait as `backoff_delay` says: constant, linear or
exponential in the failed attempt's number. Their delay may be a function of the failure
(`retries.delay=fn`, Cloudflare's dynamic delay): `ask_delay_function` asks it, within
`DELAY_FUNCTION_LIMIT` seconds, and turns a raise, a timeout or an answer that is no duration
into `DelayFunctionFailed`, which fails the step for good.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta

from ..errors import ValidationError
from ..records import dataclass
from .durations import parse_duration

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (which `wf status` would pay for)
if TYPE_CHECKING:
    from typing import Any, TypeVar

    T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    first: float = 0.01
    factor: float = 2.0
    most: float = 5.0
    jitter: float = 0.0  # each pause is scaled by a random factor in [1 - jitter, 1]
    attempts: int | None = None  # None: forever

    def delays(self) -> Iterator[float]:
        """The pauses between attempts (one fewer than `attempts`)."""
        pause, n = self.first, 1
        while self.attempts is None or n < self.attempts:
            yield pause * (1 - _random().uniform(0, self.jitter)) if self.jitter else pause
            pause, n = min(pause * self.factor, self.most), n + 1

    def call(
        self,
        fn: Callable[[], T],
        retry_if: Callable[[BaseException], bool],
        sleep: Callable[[float], None] = time.sleep,
    ) -> T:
        """`fn()`, again after each pause while it raises an error `retry_if` accepts."""
        delays = self.delays()
        while True:
            try:
                return fn()
            except Exception as exc:
                pause = next(delays, None) if retry_if(exc) else None
                if pause is None:
                    raise
            sleep(pause)


def _random():
    """The random module, imported on the first jittered pause (not at every start of `wf`)."""
    import random

    return random


# -- a step's retries ------------------------------------------------------------------------

DYNAMIC_DELAY = "[dynamic]"  # a delay given as a function, where the config is stored or shown
DELAY_FUNCTION_LIMIT = 5.0  # seconds a delay function may take (Cloudflare's limit)


def backoff_delay(backoff: str, base: float, attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based), from a `base` delay."""
    if backoff == "constant":
        return base
    if backoff == "linear":
        return base * attempt
    return base * 2 ** (attempt - 1)


class DelayInput:
    """What a delay function receives, as Cloudflare passes `{ctx, error}`: `.ctx` (the step
    context; `ctx.attempt` is the attempt that failed) and `.error`, also as `input["error"]`."""

    __slots__ = ("ctx", "error")

    def __init__(self, ctx: Any, error: BaseException):
        self.ctx, self.error = ctx, error

    def __getitem__(self, key: str) -> Any:
        if key not in self.__slots__:
            raise KeyError(key)
        return getattr(self, key)

    def __repr__(self) -> str:
        return f"{{'ctx': {self.ctx!r}, 'error': {self.error!r}}}"


class DelayFunctionFailed(Exception):
    """A delay function raised, took too long or answered no duration: `info` is the step's error."""

    def __init__(self, step: str, reason: str):
        message = f'The delay function for step "{step}" {reason}'
        super().__init__(message)
        self.info = {"name": "NonRetryableDelayError", "message": message}


def deadline_passed(timeout: Any) -> bool:
    """Whether a clock's timeout (asyncio's, or a Deadline of a FakeClock) went off."""
    expired = getattr(timeout, "expired", False)
    return bool(expired() if callable(expired) else expired)


async def ask_delay_function(
    fn: Callable, ctx: Any, error: BaseException, step: str, clock: Any, call: Callable[..., Awaitable[Any]]
) -> float:
    """The base delay (seconds) `fn` gives for this failure; `call` runs it as a step function runs."""
    import asyncio  # here: the stores import this module, and `wf status` starts without asyncio

    deadline = clock.timeout_at(clock.now() + DELAY_FUNCTION_LIMIT)
    try:
        async with deadline:
            answer = await call(fn, DelayInput(ctx, error))
    except asyncio.CancelledError:
        raise  # the runner stops this execution
    except Exception as exc:
        if isinstance(exc, TimeoutError) and deadline_passed(deadline):
            raise DelayFunctionFailed(step, f"did not return within {DELAY_FUNCTION_LIMIT:g} seconds") from None
        raise DelayFunctionFailed(step, f"threw an error: {exc}") from None
    try:
        if isinstance(answer, bool) or not isinstance(answer, (int, float, str, timedelta)):
            raise ValidationError("not a duration")
        return parse_duration(answer, "retry delay")
    except ValidationError:
        raise DelayFunctionFailed(
            step,
            f"returned an invalid delay value {answer!r} "
            '(expected a number of seconds, a timedelta or a duration string like "30 seconds")',
        ) from None
