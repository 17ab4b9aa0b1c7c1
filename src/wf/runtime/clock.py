"""Time, passed in: the runtime never reads the wall clock directly.

`SystemClock` is real time on the running event loop; `FakeClock` only moves when told,
so tests of day-long sleeps and 24-hour timeouts take milliseconds.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable


class Clock:
    pending = 0  # timer callbacks due but not yet run (only a FakeClock moved by hand has any)

    def watch(self, listener: Callable[[], None]) -> None:
        """Call `listener` after each timer callback this clock runs (a runner awaiting quiescence
        needs to know; the system clock's timers are the event loop's own)."""

    def now(self) -> float:
        raise NotImplementedError

    def call_at(self, when: float, callback: Callable[[], None]):
        """Run `callback` on the loop once `now() >= when`; returns a handle with `cancel()`."""
        raise NotImplementedError

    async def sleep_until(self, when: float) -> None:
        fut = asyncio.get_running_loop().create_future()
        handle = self.call_at(when, lambda: None if fut.done() else fut.set_result(None))
        try:
            await fut
        finally:
            handle.cancel()

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self.now() + seconds)

    def timeout_at(self, when: float | None) -> Deadline:
        """`async with` it: the body is cancelled at `when` (TimeoutError); None: not until `arm`."""
        return Deadline(self, when)

    def arm(self, timeout, when: float) -> None:
        """Set the deadline of a timeout made with `timeout_at(None)`, inside its block."""
        timeout.arm(when)


class SystemClock(Clock):
    def now(self) -> float:
        return time.time()

    def call_at(self, when: float, callback):
        loop = asyncio.get_running_loop()
        return loop.call_later(max(0.0, when - time.time()), callback)

    def timeout_at(self, when: float | None):
        if when is None:
            return asyncio.timeout_at(None)
        loop = asyncio.get_running_loop()
        return asyncio.timeout_at(loop.time() + (when - time.time()))

    def arm(self, timeout, when: float) -> None:
        timeout.reschedule(asyncio.get_running_loop().time() + (when - time.time()))


class _FakeHandle:
    __slots__ = ("cancelled",)

    def __init__(self):
        self.cancelled = False

    def cancel(self):
        self.cancelled = True


class FakeClock(Clock):
    """A clock that stands still until `advance()` or `set()` moves it."""

    def __init__(self, start: float = 1_800_000_000.0):
        self._now = start
        self._timers: list = []
        self._seq = itertools.count()
        self._listeners: list[Callable[[], None]] = []
        self.pending = 0

    def watch(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback):
        handle = _FakeHandle()
        heapq.heappush(self._timers, (when, next(self._seq), handle, callback))
        if when <= self._now:
            self._fire_due()
        return handle

    def next_timer(self) -> float | None:
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def advance(self, seconds: float) -> None:
        self.set(self._now + seconds)

    def set(self, when: float) -> None:
        self._now = max(self._now, when)
        self._fire_due()

    def _fire_due(self) -> None:
        loop = asyncio.get_running_loop()
        while self._timers and self._timers[0][0] <= self._now:
            _, _, handle, callback = heapq.heappop(self._timers)
            if not handle.cancelled:
                self.pending += 1
                loop.call_soon(self._run, handle, callback)

    def _run(self, handle: _FakeHandle, callback: Callable[[], None]) -> None:
        self.pending -= 1
        try:
            if not handle.cancelled:
                callback()
        finally:
            for listener in self._listeners:
                listener()


class Deadline:
    """`async with clock.timeout_at(t)`: cancel the body at `t` and raise TimeoutError."""

    def __init__(self, clock: Clock, when: float | None):
        self.clock, self.when = clock, when
        self.expired = False
        self._handle = None
        self._task: asyncio.Task | None = None

    async def __aenter__(self):
        self._task = asyncio.current_task()
        if self.when is not None:
            self.arm(self.when)
        return self

    def arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self.when = when
        self._handle = self.clock.call_at(when, self._expire)

    def _expire(self) -> None:
        self.expired = True
        assert self._task is not None
        self._task.cancel()

    async def __aexit__(self, exc_type, exc, tb):
        if self._handle is not None:
            self._handle.cancel()
        if self.expired and exc_type is asyncio.CancelledError:
            asyncio.current_task().uncancel()
            raise TimeoutError
        return False
