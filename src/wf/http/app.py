"""The ASGI app `wf dev` serves: the explorer API under both of wrangler's base paths, the web UI
at `/cdn-cgi/explorer` (http/ui/), and the user's own ASGI `app` (exported from `main`) at `/`
(without one, `/` redirects to the UI).

A Worker half (`class Default(WorkerEntrypoint)` with `fetch(self, request)`, or `on_fetch`) is
served there instead, with the bindings in Cloudflare's Python shape as `self.env` (see
wf/cloudflare/worker.py). The user's ASGI app reaches the workflow bindings from each request:

    request.scope["wf.env"].ORDERS            # any ASGI framework
    request.state.env.ORDERS                  # Starlette / FastAPI (`request.state`)

Guards, outermost first: a bearer token when one is set (401 without it; the UI's pages and
its own API calls may show the session cookie instead, see ui/session.py), a Host check on
loopback (a DNS-rebinding page cannot drive the API), and a body size limit (413).
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount

from .explorer import INVALID, NOT_FOUND, Explorer, error
from .guards import cross_site_refusal
from .ui import UI_BASE, is_ui_path, login_redirect, session_ok

BASE_PATHS = ("/cdn-cgi/explorer/api", "/cdn-cgi/local/explorer/api")
MAX_BODY = 2 * 1024 * 1024  # instance params and event payloads are limited to 1 MiB serialized
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def _plain(status: int, code: int, message: str) -> list:
    body = json.dumps(
        {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}
    ).encode()
    return [
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        },
        {"type": "http.response.body", "body": body},
    ]


async def _refuse(send, status: int, code: int, message: str, extra: list | None = None) -> None:
    start, body = _plain(status, code, message)
    if extra:
        start["headers"] += extra
    await send(start)
    await send(body)


async def _redirect(send, location: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 307,
            "headers": [(b"location", location.encode()), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b""})


def explorer_app(explorer: Explorer) -> Starlette:
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error(404, NOT_FOUND, f"No explorer API route for {request.method} {request.url.path}.")
        if exc.status_code == 405:
            return error(405, INVALID, f"Method {request.method} is not allowed on {request.url.path}.")
        return error(exc.status_code, INVALID, str(exc.detail))

    handlers: dict[Any, Any] = {HTTPException: http_error}
    return Starlette(routes=explorer.routes(), exception_handlers=handlers)


class WfApp:
    """Routes by path: the explorer API, else the user's app with the bindings in its scope."""

    def __init__(
        self,
        explorer: Explorer,
        env: Any,
        user_app: Any = None,
        *,
        token: str | None = None,
        allowed_hosts: frozenset[str] | None = None,
        max_body: int = MAX_BODY,
        ui: Any = None,
    ):
        self.api = explorer_app(explorer)
        self.ui = ui
        self.env, self.user_app = env, user_app
        self.token = token.encode() if token else None
        self.allowed_hosts, self.max_body = allowed_hosts, max_body
        self.explorer = explorer
        self._life = None  # the user app's running lifespan
        self._life_scope = None

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            return await self._run_lifespan(scope, receive, send)
        if kind not in ("http", "websocket"):
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        path = scope.get("path", "")
        if self.token is not None and not self._authorized(headers.get(b"authorization", b"")):
            if self.ui is not None and session_ok(path, headers, self.token, BASE_PATHS):
                pass  # the UI's session cookie, on the UI or on the UI's own API calls
            elif kind == "websocket":
                return await send({"type": "websocket.close", "code": 1008})
            elif self.ui is not None and (login := login_redirect(scope, self.token)) is not None:
                for message in login:
                    await send(message)
                return
            else:
                hint = (
                    f" In a browser, open {UI_BASE}/?token=<the token> once."
                    if self.ui is not None and is_ui_path(path)
                    else ""
                )
                return await _refuse(
                    send,
                    401,
                    10000,
                    "Unauthorized: send the token as 'Authorization: Bearer $WF_TOKEN'." + hint,
                    [(b"www-authenticate", b"Bearer")],
                )
        if self.allowed_hosts is not None and not self._host_ok(headers.get(b"host", b"")):
            if kind == "websocket":
                return await send({"type": "websocket.close", "code": 1008})
            return await _refuse(
                send,
                403,
                10000,
                "Forbidden: this server answers only to localhost; the Host header names another host.",
            )
        if kind == "http":
            length = headers.get(b"content-length")
            if length is not None:
                try:
                    too_big = int(length) > self.max_body
                except ValueError:
                    return await _refuse(send, 400, INVALID, "The Content-Length header is not a number.")
                if too_big:
                    return await _refuse(
                        send, 413, INVALID, f"The request body is over the {self.max_body:,} byte limit."
                    )
            buffered = await self._buffered(receive)
            if buffered is None:
                return await _refuse(send, 413, INVALID, f"The request body is over the {self.max_body:,} byte limit.")
            receive, size = buffered
            if self._ours(path) and (refusal := cross_site_refusal(scope["method"], headers, size > 0)):
                return await _refuse(send, refusal[0], INVALID, refusal[1])
        for base in BASE_PATHS:
            if path == base or path.startswith(base + "/"):
                sub = dict(scope, root_path=scope.get("root_path", "") + base, path=path[len(base) :] or "/")
                return await self.api(sub, receive, send)
        if self.ui is not None and is_ui_path(path):
            if kind == "websocket":
                return await send({"type": "websocket.close", "code": 1000})
            return await self.ui(scope, receive, send)
        if self.user_app is None:
            if kind == "websocket":
                return await send({"type": "websocket.close", "code": 1000})
            if path == "/" and self.ui is not None:
                return await _redirect(send, UI_BASE + "/")
            return await _refuse(
                send,
                404,
                NOT_FOUND,
                f"Nothing at {path}: main exports no ASGI `app`; the workflows API is at {BASE_PATHS[1]}"
                + (f", the web UI at {UI_BASE}/." if self.ui is not None else "."),
            )
        scope = dict(scope)
        scope["wf.env"] = self.env
        state = dict(scope.get("state") or {})
        state.setdefault("env", self.env)
        scope["state"] = state
        await self.user_app(scope, receive, send)

    def _ours(self, path: str) -> bool:
        """wf dev's own routes (the user's app guards itself as it sees fit)."""
        return any(path == base or path.startswith(base + "/") for base in BASE_PATHS) or (
            self.ui is not None and is_ui_path(path)
        )

    def _authorized(self, header: bytes) -> bool:
        scheme, _, value = header.partition(b" ")
        return self.token is not None and scheme.lower() == b"bearer" and hmac.compare_digest(value.strip(), self.token)

    def _host_ok(self, header: bytes) -> bool:
        host = header.decode("latin-1").strip().lower()
        if host.startswith("["):
            name = host[: host.find("]") + 1]
        else:
            name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        return self.allowed_hosts is None or name in self.allowed_hosts

    async def _buffered(self, receive):
        """Read the whole body (at most `max_body` bytes) and replay it: (replay, body size), or
        None when it is too big."""
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: pass that on
                first = message
                break
            body = message.get("body", b"")
            seen += len(body)
            if seen > self.max_body:
                return None
            chunks.append(body)
            if not message.get("more_body", False):
                first = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                break
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return first
            return await receive()

        return replay, seen

    async def _run_lifespan(self, scope, receive, send) -> None:
        """Our own start-up and shut-down, and the user app's lifespan (if it has one) inside them."""
        message = await receive()
        assert message["type"] == "lifespan.startup"
        self._life_scope = scope
        try:
            await self._start_life()
        except Exception as exc:
            await send({"type": "lifespan.startup.failed", "message": f"the app's startup failed: {exc}"})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()
        if self.ui is not None:
            await self.ui.close()
        if self._life is not None:
            await self._life.shutdown()
            self._life = None
        await send({"type": "lifespan.shutdown.complete"})

    async def _start_life(self) -> None:
        if self.user_app is not None and self._life_scope is not None:
            life = _UserLifespan(self.user_app, self._life_scope)
            await life.startup()
            self._life = life

    def swap_config(self, config) -> None:
        """Serve `config` from now on (reload): the API and the bindings see its workflows and vars.
        The store stays: a reload never moves the state."""
        aclient = self.explorer.aclient.reconfigured(config)
        self.explorer = Explorer(aclient)
        self.api = explorer_app(self.explorer)
        self.env = aclient.env()

    async def swap_user_app(self, user_app) -> None:
        """Serve `user_app` from now on (reload), running its lifespan in place of the old one's."""
        if self._life is not None:
            await self._life.shutdown()
            self._life = None
        self.user_app = user_app
        await self._start_life()


class _UserLifespan:
    """Drive the user app's ASGI lifespan protocol; an app that does not speak it is fine."""

    def __init__(self, app, scope):
        import asyncio

        self.app, self.scope = app, dict(scope)
        self.to_app: asyncio.Queue = asyncio.Queue()
        self.from_app: asyncio.Queue = asyncio.Queue()
        self.task = None
        self.supported = True

    async def startup(self) -> None:
        import asyncio

        async def run():
            try:
                await self.app(self.scope, self.to_app.get, self.from_app.put)
            except BaseException as exc:  # an app without lifespan support raises on the unknown scope
                await self.from_app.put({"type": "_error", "exc": exc})

        self.task = asyncio.get_running_loop().create_task(run())
        await self.to_app.put({"type": "lifespan.startup"})
        reply = await self.from_app.get()
        if reply["type"] == "_error":
            self.supported = False
            return
        if reply["type"] == "lifespan.startup.failed":
            raise RuntimeError(reply.get("message", ""))

    async def shutdown(self) -> None:
        import asyncio

        if not self.supported or self.task is None:
            return
        await self.to_app.put({"type": "lifespan.shutdown"})
        try:
            await asyncio.wait_for(self.from_app.get(), timeout=5)
        except TimeoutError:
            self.task.cancel()


def create_app(
    config,
    *,
    aclient=None,
    env=None,
    user_app: Any = "auto",
    token: str | None = None,
    allowed_hosts: frozenset[str] | None = None,
    max_body: int = MAX_BODY,
    clock=None,
    ui: bool = True,
) -> WfApp:
    """The app for `config`. Without `aclient`, it makes its own client (for tests and for serving
    without a runner); `env` defaults to async bindings on that client; `user_app` defaults to
    `main`'s `app` if it exports one; `ui` serves the web UI at /cdn-cgi/explorer."""
    from ..client import AsyncClient

    if aclient is None:
        aclient = AsyncClient(config, clock=clock)
    if env is None:
        env = aclient.env()
    if user_app == "auto":
        user_app = find_user_app(config)
    web = None
    if ui:
        from .ui import build_ui

        web = build_ui(aclient.client, aclient.call, config.name or config.root.name)
    return WfApp(Explorer(aclient), env, user_app, token=token, allowed_hosts=allowed_hosts, max_body=max_body, ui=web)


def find_user_app(config) -> Any:
    """What answers at `/`: `main`'s Worker (a `Default` WorkerEntrypoint or `on_fetch`, as on
    Cloudflare), else its ASGI `app`, else None."""
    from ..cloudflare.worker import find_worker
    from ..errors import LoaderError
    from ..loader import load_main

    module = load_main(config)
    worker = find_worker(module, config.main)
    if worker is not None:
        return worker
    app = getattr(module, "app", None)
    if app is None:
        return None
    if not callable(app):
        raise LoaderError(
            f"`app` in {config.main!r} is a {type(app).__name__}, not an ASGI application.",
            hint="export an ASGI app, e.g. `app = Starlette(routes=[...])`, or remove the name",
        )
    return app


__all__ = ["create_app", "find_user_app", "WfApp", "BASE_PATHS", "MAX_BODY", "LOOPBACK_HOSTS", "Mount"]
