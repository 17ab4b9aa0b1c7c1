"""The store seen from asyncio: one thread owns the connection; writes are group-committed.

Many instances in flight each await their own step commit; whatever is pending when the
store thread comes free goes into one transaction, so a busy runner pays one commit for
many steps.

With one instance in flight there is nothing to group: a write made when nothing else is
queued for the loop, no call or write is under way and the database's write lock is free is
committed at once on the loop's own thread (SQLite), with no hop to the store thread and
no loop turn. The connection is still used by one thread at a time: the store thread is
idle then. A run of such writes yields to the loop (one turn) after `DIRECT_BUDGET` seconds,
so one long instance never keeps the loop from notes, timers and other instances.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from .base import Failed
from .core import SQLStore

DIRECT_BUDGET = 0.005  # seconds of direct writes in one loop turn before a write goes the queued way


class AsyncStore:
    def __init__(self, opener: Callable[[], SQLStore]):
        self._opener = opener
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="wf-store")
        self.store: SQLStore | None = None
        self._pending: list[tuple[Callable[[], Any], asyncio.Future]] = []
        self._flush_task: asyncio.Task | None = None
        self._calls = 0
        self._in_place = False  # the store can commit on the caller's thread (SQLite)
        self._turn: float | None = None  # when this loop turn's first direct write began
        self.on_settled: Callable[[], None] = lambda: None  # told when the last call or write ends

    @property
    def busy(self) -> bool:
        """A call or a write is under way or waiting for the store thread."""
        return bool(self._calls or self._pending or self._flush_task is not None)

    async def open(self) -> AsyncStore:
        if self.store is None:
            self.store = await self.call(self._opener)
        self._in_place = self.store.commits_in_place
        return self

    def open_here(self) -> SQLStore:
        """The store, opened now if it is not yet (call this on the store's thread)."""
        if self.store is None:
            self.store = self._opener()
        return self.store

    async def call(self, fn: Callable, *args: Any) -> Any:
        """Run `fn(*args)` on the store thread (reads, and writes that make their own transaction)."""
        loop = asyncio.get_running_loop()
        self._calls += 1
        try:
            return await loop.run_in_executor(self._executor, partial(fn, *args))
        finally:
            self._calls -= 1
            if not self.busy:
                self.on_settled()

    async def write(self, fn: Callable, *args: Any) -> Any:
        """Run `fn(*args)` inside the next group-commit transaction (or at once: see the module)."""
        loop = asyncio.get_running_loop()
        op = partial(fn, *args)
        if self._turn is not None and time.monotonic() - self._turn >= DIRECT_BUDGET:
            await asyncio.sleep(0)  # the turn's budget is spent: let the loop turn, then look again
        if self.alone(loop):
            assert self.store is not None
            results = self.store.run_batch_now([op])
            if results is not None:
                self.on_settled()
                if isinstance(results[0], Failed):
                    raise results[0].exc
                return results[0]
        fut = loop.create_future()
        self._pending.append((op, fut))
        if self._flush_task is None:
            self._flush_task = loop.create_task(self._flush())
        return await fut

    def alone(self, loop: asyncio.AbstractEventLoop) -> bool:
        """May the store be used here and now, on the loop's thread: nothing queued for the store or
        the loop (the asyncio loop's ready queue; another loop never takes this path), within the
        turn's budget? (Only where nothing waits on another process's lock: see `write`.)"""
        if not self._in_place or self._pending or self._flush_task is not None or self._calls:
            return False
        ready = getattr(loop, "_ready", None)
        if ready is None:
            return False
        if self._turn is None:
            if ready:
                return False
            self._turn = time.monotonic()
            loop.call_soon(self._turn_over)  # runs once the loop takes its next turn
            return True
        return len(ready) <= 1 and time.monotonic() - self._turn < DIRECT_BUDGET

    def _turn_over(self) -> None:
        self._turn = None

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        store = self.store
        assert store is not None, "open the AsyncStore before writing"
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    results = await loop.run_in_executor(self._executor, store.run_batch, [op for op, _ in batch])
                except BaseException as exc:  # the whole transaction failed
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
                    continue
                for (_, fut), result in zip(batch, results):
                    if fut.done():
                        continue
                    if isinstance(result, Failed):
                        fut.set_exception(result.exc)
                    else:
                        fut.set_result(result)
        finally:
            self._flush_task = None
            if not self.busy:
                self.on_settled()

    async def close(self) -> None:
        if self.store is not None:
            await self.call(self.store.close)
            self.store = None
        self._executor.shutdown(wait=False)
