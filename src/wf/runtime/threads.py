"""Threads for synchronous step attempts.

asyncio's default executor has a fixed number of threads: steps that hang past their timeout
keep theirs (a thread cannot be killed), and once every thread is taken by a hung attempt the
next attempts wait in its queue until they time out without ever having run. Here an attempt
never waits for a thread: an idle one is reused, else a new one is started. Threads are daemons,
so a hung attempt never keeps the process alive after the runner has stopped; an idle thread
retires after `idle_for` seconds.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from functools import cache

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (which `wf status` would pay for)
if TYPE_CHECKING:
    from concurrent.futures import Future
    from typing import Any

IDLE_FOR = 30.0


class _Worker:
    def __init__(self, pool: StepThreads, job: tuple):
        self.pool = pool
        self.job: tuple | None = job
        self.handed = threading.Event()

    def loop(self) -> None:
        while True:
            assert self.job is not None
            fn, args, future = self.job
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # the attempt's outcome, whatever it is, goes to its awaiter
                    future.set_exception(exc)
            self.job = None
            if not self.pool.rest(self):
                return


@cache
def _future_class() -> type[Future]:
    """concurrent.futures.Future, imported on the first attempt, once (as asyncio below: `wf instances
    describe` imports this module and runs no step)."""
    from concurrent.futures import Future

    return Future


class StepThreads:
    """A pool that grows as needed and never queues an attempt behind another."""

    def __init__(self, idle_for: float = IDLE_FOR):
        self.idle_for = idle_for
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self.started = 0  # threads started so far (for tests and benchmarks)

    def submit(self, fn: Callable, *args: Any) -> Future:
        future: Future = _future_class()()
        job = (fn, args, future)
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is not None:
            worker.job = job
            worker.handed.set()
        else:
            self.started += 1
            threading.Thread(target=_Worker(self, job).loop, name="wf-step", daemon=True).start()
        return future

    def rest(self, worker: _Worker) -> bool:
        """Park `worker` until it is handed a job (True) or has been idle too long (False)."""
        worker.handed.clear()
        with self._lock:
            self._idle.append(worker)
        if worker.handed.wait(self.idle_for):
            return True
        with self._lock:
            if worker in self._idle:
                self._idle.remove(worker)
                return False
        worker.handed.wait()  # handed a job just as it was about to retire
        return True

    async def run(self, fn: Callable, *args: Any, guard: Callable[[], bool] | None = None) -> Any:
        """`fn(*args)` on a thread of this pool, with the caller's context variables. With `guard`:
        asked on that thread just before `fn` is called; if it says so, NotStarted is raised instead."""
        import asyncio

        context = contextvars.copy_context()
        if guard is None:
            return await asyncio.wrap_future(self.submit(context.run, fn, *args))
        return await asyncio.wrap_future(self.submit(context.run, _guarded, guard, fn, *args))


class NotStarted(BaseException):
    """A guarded call that was not made: by the time its thread ran, its guard said no."""


def _guarded(guard: Callable[[], bool], fn: Callable, *args: Any) -> Any:
    # A thread starts some time after it was asked for; the process may even have been stopped
    # (SIGSTOP, a frozen VM) in between, and lost its claim meanwhile.
    if guard():
        raise NotStarted()
    return fn(*args)


STEP_THREADS = StepThreads()
