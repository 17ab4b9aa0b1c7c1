"""The Worker half of a Cloudflare Python project, served by `wf dev` at `/`.

`main` may export, as on Cloudflare:

    class Default(WorkerEntrypoint):          # Cloudflare's convention for the default export
        async def fetch(self, request):       # self.env: vars and bindings; self.ctx: wait_until
            return Response("Hello")

or the older handler function `async def on_fetch(request, env)` (optionally `, ctx`). `find_worker`
finds either and wraps it as an ASGI app (`WorkerApp`): each HTTP request becomes a `Request`, a new
`Default(ctx, env)` handles it (workerd, too, makes one per request), and the `Response` it returns
becomes the HTTP response. A handler that raises, or returns something other than a Response,
answers 500 with the reason, and its traceback goes to stderr, as `wrangler dev` shows it.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import traceback
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

from ..errors import LoaderError
from .bindings import WorkerEnv
from .ffi import JsObject
from .http import Request, Response


class Context:
    """A Worker's `self.ctx` (`ctx` of `on_fetch`): `wait_until(awaitable)` keeps work going after the response."""

    def __init__(self) -> None:
        self.props = JsObject()
        self._tasks: set[asyncio.Future] = set()

    def wait_until(self, awaitable: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    waitUntil = wait_until

    def _finished(self, task: asyncio.Future) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            print(f"wait_until: the task failed: {type(exc).__name__}: {exc}", file=sys.stderr)

    def pass_through_on_exception(self) -> None:
        """On Cloudflare: fall back to the origin on an error. There is no origin behind wf dev."""

    passThroughOnException = pass_through_on_exception


class WorkerEntrypoint:
    """Subclass as `Default` and define `async def fetch(self, request)`; `self.env`, `self.ctx`."""

    def __init__(self, ctx: Any, env: Any):
        self.ctx = ctx
        self.env = env


class DurableObject:
    """Importable so that a Worker file defining one loads; wf hosts no Durable Objects."""

    def __init__(self, ctx: Any, env: Any):
        self.ctx = ctx
        self.env = env


def handler(fn: Callable) -> Callable:
    """Cloudflare's `@handler` converts JS arguments to Python ones; they are Python already here."""
    return fn


Handler = Callable[[Request, Any, Context], Any]


def find_worker(module: ModuleType, main: str) -> WorkerApp | None:
    """`main`'s Worker: a `Default` WorkerEntrypoint subclass, else an `on_fetch` function, else None."""
    default = getattr(module, "Default", None)
    if default is not None:
        return WorkerApp(_class_handler(default, main), f"{main}:Default")
    on_fetch = getattr(module, "on_fetch", None)
    if on_fetch is not None:
        return WorkerApp(_function_handler(on_fetch, main), f"{main}:on_fetch")
    return None


def _class_handler(cls: Any, main: str) -> Handler:
    if not (isinstance(cls, type) and issubclass(cls, WorkerEntrypoint)):
        raise LoaderError(
            f"`Default` in {main!r} is {'a class' if isinstance(cls, type) else type(cls).__name__}"
            " that is not a WorkerEntrypoint subclass.",
            hint="declare `class Default(WorkerEntrypoint)`, imported with `from workers import WorkerEntrypoint`",
        )
    if not callable(getattr(cls, "fetch", None)):
        raise LoaderError(
            f"`Default` in {main!r} has no fetch method, so it cannot answer HTTP requests.",
            hint="define `async def fetch(self, request)` returning a Response",
        )

    def handle(request: Request, env: Any, ctx: Context) -> Any:
        entry: Any = cls(ctx, env)
        return entry.fetch(request)

    return handle


def _function_handler(fn: Any, main: str) -> Handler:
    if not callable(fn):
        raise LoaderError(
            f"`on_fetch` in {main!r} is a {type(fn).__name__}, not a function.", hint="def on_fetch(request, env)"
        )
    try:
        arity = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        arity = 3

    def handle(request: Request, env: Any, ctx: Context) -> Any:
        return fn(*(request, env, ctx)[: max(1, min(arity, 3))])

    return handle


class WorkerApp:
    """An ASGI app that answers each HTTP request with the Worker's handler."""

    def __init__(self, handle: Handler, name: str):
        self.handle, self.name = handle, name

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        if scope["type"] != "http":  # a Worker answers websockets through a Response; not served here
            return await send({"type": "websocket.close", "code": 1003})
        request = Request._received(scope["method"], _url(scope), _headers(scope), await _body(receive))
        env = WorkerEnv(scope["wf.env"])
        response = await self.respond(request, env)
        await send({"type": "http.response.start", "status": response.status, "headers": _raw(response)})
        await send({"type": "http.response.body", "body": response._body})

    async def respond(self, request: Request, env: Any) -> Response:
        try:
            result = self.handle(request, env, Context())
            if inspect.isawaitable(result):
                result = await result
        except Exception:
            traceback.print_exc(file=sys.stderr)
            kind, exc = sys.exc_info()[:2]
            return Response(f"{self.name} raised {kind.__name__ if kind else 'an error'}: {exc}", status=500)
        if not isinstance(result, Response):
            message = f"{self.name} returned {type(result).__name__}, not a Response"
            print(message, file=sys.stderr)
            return Response(message + ": return Response(...) or Response.json(...) (from workers)", status=500)
        return result


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            return await send({"type": "lifespan.shutdown.complete"})


def _url(scope) -> str:
    host = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == b"host"), None)
    if host is None:
        server = scope.get("server") or ("localhost", None)
        host = server[0] + (f":{server[1]}" if server[1] else "")
    path = scope.get("root_path", "") + scope.get("path", "/")
    query = scope.get("query_string", b"").decode("latin-1")
    return f"{scope.get('scheme', 'http')}://{host}{path}" + (f"?{query}" if query else "")


def _headers(scope) -> list[tuple[str, str]]:
    return [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope.get("headers", [])]


async def _body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _raw(response: Response) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.header_list]


__all__ = ["WorkerEntrypoint", "DurableObject", "Context", "handler", "find_worker", "WorkerApp"]
