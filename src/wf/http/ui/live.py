"""Live pages: one server-sent-events stream per open page, fed from the instance event log.

Every transition appends a row to the log (`history`; `wf tail` follows the same log), whoever
made it: this process's runner, a `wf worker` elsewhere, a CLI command. `LogWatch` follows it
for all open pages at once: while at least one page is open it reads the log's newest seq (a
primary-key max) every `POLL` seconds and, when that moved, the new rows, once, for everyone;
with no page open it does nothing. Each page's stream decides from the rows whether it is
concerned and, if so, re-renders its live regions (the same templates the page was drawn
with) and sends them; bursts are coalesced to at most one render per `MIN_GAP`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import StreamingResponse

POLL = 0.25  # seconds between looks at the log while a page is open: a change shows within a second
MIN_GAP = 0.25  # at most ~4 re-renders a second per page, however busy the instance
KEEPALIVE = 20.0  # a comment line now and then keeps proxies and the browser from timing out
READ_AHEAD = 2000  # log rows read per look; more than that and every page simply re-renders
EVERYTHING = None  # "anything may have changed" (rows were deleted, or too many to read)
_CLOSE = object()


class LogWatch:
    def __init__(self, data, poll: float = POLL):
        self.data, self.poll = data, poll
        self.queues: set[asyncio.Queue] = set()
        self.seq: int | None = None
        self.task: asyncio.Task | None = None
        self.closed = False

    def subscribe(self, since: int | None) -> tuple[asyncio.Queue, int | None]:
        """A queue of new log rows for one page drawn at log seq `since`, and from where that page
        must catch up by itself (None: the watch starts from `since`, and hands it everything)."""
        queue: asyncio.Queue = asyncio.Queue()
        self.queues.add(queue)
        if self.task is None or self.task.done():
            self.seq = since
            self.task = asyncio.get_running_loop().create_task(self._follow())
            return queue, None
        return queue, since

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self.queues.discard(queue)

    async def _follow(self) -> None:
        if self.seq is None:
            self.seq = await self.data.last_seq()
        while self.queues and not self.closed:
            await asyncio.sleep(self.poll)
            try:
                await self._look()
            except Exception:  # a store hiccup must not end the live view: look again next time
                continue

    async def _look(self) -> None:
        seq = await self.data.last_seq()
        if seq == self.seq:
            return
        rows = EVERYTHING
        if seq > self.seq:
            rows = await self.data.changes(self.seq, READ_AHEAD)
            if rows and rows[-1].seq < seq:  # more than we read: let every page redraw
                rows = EVERYTHING
        self.seq = seq
        for queue in list(self.queues):
            queue.put_nowait(rows)

    async def close(self) -> None:
        """End every stream (server shutdown: open streams must not hold the server up)."""
        self.closed = True
        for queue in list(self.queues):
            queue.put_nowait(_CLOSE)
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


def sse(event: str, data: object, id: int | None = None) -> str:
    head = f"id: {id}\n" if id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def _stream(
    watch: LogWatch,
    since: int | None,
    concerns: Callable[[list | None], bool],
    render: Callable[[], Awaitable[dict | None]],
) -> AsyncIterator[str]:
    queue, behind = watch.subscribe(since)
    try:
        yield "retry: 1000\n\n"
        if behind is not None and watch.seq is not None and behind < watch.seq:  # moved since the page was drawn
            if concerns(await watch.data.changes(behind, READ_AHEAD) if behind >= 0 else EVERYTHING):
                yield await _update(watch, render)
        while True:
            try:
                rows = await asyncio.wait_for(queue.get(), KEEPALIVE)
            except TimeoutError:
                yield ": still here\n\n"
                continue
            batches = [rows]
            while not queue.empty():
                batches.append(queue.get_nowait())
            if _CLOSE in batches:
                return
            if any(concerns(b) for b in batches):
                yield await _update(watch, render)
                await asyncio.sleep(MIN_GAP)
    finally:
        watch.unsubscribe(queue)


async def _update(watch: LogWatch, render) -> str:
    regions = await render()
    if regions is None:
        return sse("gone", {}, watch.seq)
    return sse("update", regions, watch.seq)


def wants_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


def stream_response(
    request: Request,
    watch: LogWatch,
    concerns: Callable[[list | None], bool],
    render: Callable[[], Awaitable[dict | None]],
) -> StreamingResponse:
    """The live stream of the page at this URL: `since` (the log seq the page was drawn at)
    or the browser's Last-Event-ID says from where."""
    raw = request.headers.get("last-event-id") or request.query_params.get("since")
    try:
        since = int(raw) if raw is not None else None
    except ValueError:
        since = None
    return StreamingResponse(
        _stream(watch, since, concerns, render),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )
