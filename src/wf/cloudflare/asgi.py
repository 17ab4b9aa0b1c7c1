"""Cloudflare's `asgi` module on CPython: run an ASGI app (FastAPI, Starlette) for one request.

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            import asgi
            return await asgi.fetch(app, request, self.env)

The app sees the Worker's env as `request.scope["env"]`, as on Cloudflare. Each request is run on
its own; the app's lifespan is not run per request (an app that needs one can be exported as
`app` without a `Default`, and wf dev runs its lifespan once).
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import unquote, urlsplit

from .http import Request, Response
from .worker import Context, WorkerEntrypoint


def _scope(request: Request, env: Any) -> dict:
    url = urlsplit(request.url)
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.0"},
        "http_version": "1.1",
        "method": str(request.method),
        "scheme": url.scheme or "http",
        "path": unquote(url.path or "/"),
        "raw_path": (url.path or "/").encode(),
        "query_string": url.query.encode(),
        "root_path": "",
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.items()],
        "server": (url.hostname or "localhost", url.port),
        "env": env,
    }


async def fetch(app: Any, request: Request, env: Any, ctx: Context | None = None) -> Response:
    """The app's answer to `request`, as a Response."""
    body = await request.bytes() if not request.body_used else b""
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    done = asyncio.Event()
    start: dict = {}
    chunks: list[bytes] = []

    async def receive() -> dict:
        if messages:
            return messages.pop()
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    await app(_scope(request, env), receive, send)
    if not start:
        raise RuntimeError("The application did not generate a response")
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start.get("headers", [])]
    return Response(b"".join(chunks), status=start["status"], headers=headers)


def entrypoint(app: Any) -> type[WorkerEntrypoint]:
    """A `Default` Worker that answers every request with `app`."""

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return await fetch(app, request, self.env, self.ctx)

    return Default


__all__ = ["fetch", "entrypoint"]
