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

from .base import Failed
from .core import SQLStore


class AsyncStore:
    def __init__(self, opener: Callable[[], SQLStore]):
        self._opener = opener
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="wf-store")
        self.store: SQLStore | None = None
        self._pending: list[tuple[Callable[[], Any], asyncio.Future]] = []
        self._flush_task: asyncio.Task | None = None
        self._calls = 0
        self.on_settled: Callable[[], None] = lambda: None  # told when the last call or write ends

    @property
    def busy(self) -> bool:
        """A call or a write is under way or waiting for the store thread."""
        return bool(self._calls or self._pending or self._flush_task is not None)

    async def open(self) -> AsyncStore:
        if self.store is None:
            self.store = await self.call(self._opener)
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
        """Run `fn(*args)` inside the next group-commit transaction."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append((partial(fn, *args), fut))
        if self._flush_task is None:
            self._flush_task = loop.create_task(self._flush())
        return await fut

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
