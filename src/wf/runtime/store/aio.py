"""The store seen from asyncio: one thread owns the connection; writes are group-committed.

Many instances in flight each await their own step commit; whatever is pending when the
store thread comes free goes into one transaction, so a busy runner pays one commit for
many steps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from .sqlite import SQLiteStore, _Failed


class AsyncStore:
    def __init__(self, opener: Callable[[], SQLiteStore]):
        self._opener = opener
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="wf-store")
        self.store: SQLiteStore | None = None
        self._pending: list[tuple[Callable[[], Any], asyncio.Future]] = []
        self._flushing = False
        self.calls = 0  # `call`s in flight (the test harness waits for them before moving its clock)

    async def open(self) -> AsyncStore:
        if self.store is None:
            self.store = await self.call(self._opener)
        return self

    async def call(self, fn: Callable, *args: Any) -> Any:
        """Run `fn(*args)` on the store thread (reads, and writes that make their own transaction)."""
        loop = asyncio.get_running_loop()
        self.calls += 1
        try:
            return await loop.run_in_executor(self._executor, partial(fn, *args))
        finally:
            self.calls -= 1

    async def write(self, fn: Callable, *args: Any) -> Any:
        """Run `fn(*args)` inside the next group-commit transaction."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append((partial(fn, *args), fut))
        if not self._flushing:
            self._flushing = True
            loop.create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    results = await loop.run_in_executor(self._executor, self.store.run_batch, [op for op, _ in batch])
                except BaseException as exc:  # the whole transaction failed
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
                    continue
                for (_, fut), result in zip(batch, results):
                    if fut.done():
                        continue
                    if isinstance(result, _Failed):
                        fut.set_exception(result.exc)
                    else:
                        fut.set_result(result)
        finally:
            self._flushing = False

    async def close(self) -> None:
        if self.store is not None:
            await self.call(self.store.close)
            self.store = None
        self._executor.shutdown(wait=False)
