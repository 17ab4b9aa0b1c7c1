"""`wf dev`: the runner and the HTTP server (uvicorn) in one asyncio loop.

Start: check the host (beyond loopback only with a token), bind the port (a clear error when it
is taken), import `main` once (workflow classes and the ASGI `app`), start the runner, serve.
Stop (SIGINT/SIGTERM): stop accepting, finish open requests, then stop the runner (in-flight
step attempts get a grace period; whatever does not finish is retried next time, since every
claim is released to the store), close the socket.

`--reload` watches the project with `watchfiles` (inotify and its kin, not polling): its `.py`
files, and beside the config the config itself (`wrangler.jsonc`, `.json`, `.toml`) and
`.dev.vars` / `.env`. On a change it imports the new code first, reading the config again when
one of those changed (a broken edit is reported and the old code and config keep running), then
swaps the runner: the old one stops as above and the new one picks every unfinished instance up
again by replay, once the replay check has looked at them on the new code (service.py). The state
location (`--persist-to`, `--store`) is kept: changing it needs a restart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import math
import re
import signal
import socket
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from ..errors import StoreError, ValidationError, WfError
from .app import LOOPBACK_HOSTS, WfApp, create_app

access_log = logging.getLogger("wf.http")

if TYPE_CHECKING:  # uvicorn and the runtime load when `wf dev` starts, not when this module is imported
    import uvicorn

    from ..runtime.runner import Runner

GRACE = 5.0
CONFIG_FILES = frozenset({"wrangler.jsonc", "wrangler.json", "wrangler.toml"})
LOCAL_VARS = re.compile(r"\.(dev\.vars|env)(\.[^.]+)?")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: str | None) -> None:
    if not is_loopback(host) and not token:
        raise ValidationError(
            f"refusing to listen on {host!r} without a token: anyone who can reach it "
            "could run and change your workflows",
            "set WF_TOKEN=<a long random secret> (clients then send 'Authorization: Bearer "
            "<token>'), or keep the default --host 127.0.0.1",
        )


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        if exc.errno in (98, 48):  # EADDRINUSE on Linux, macOS
            raise WfError(
                f"port {port} on {host} is already in use",
                f"stop whatever listens there, or pick another port: wf dev --port {port + 1}",
            ) from None
        raise WfError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", "check --host and --port") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _server(config: uvicorn.Config) -> uvicorn.Server:
    """uvicorn's server without its own signal handling (wf dev owns the signals)."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextmanager
        def capture_signals(self):
            yield

    return Server(config)


def _serving(user_app, url: str) -> str:
    name = getattr(user_app, "name", None)  # a Worker (wf.cloudflare.worker.WorkerApp) names its handler
    return f"the Worker {name}, served at {url}/" if name else f"main exports `app`, served at {url}/"


def is_config_file(path: str | Path, config) -> bool:
    """The config or the local vars beside it (`.dev.vars[.<env>]`, `.env[.<env>]`)."""
    path = Path(path)
    if path.parent != config.root:
        return False
    return path.name in CONFIG_FILES or path.name == config.path.name or bool(LOCAL_VARS.fullmatch(path.name))


def watch_filter(config):
    """What `--reload` reacts to: `.py` files outside tool and state folders, and the config files."""
    from watchfiles import DefaultFilter

    class Project(DefaultFilter):
        ignore_dirs = (*DefaultFilter.ignore_dirs, ".wf", ".wrangler", "venv", ".ruff_cache")

        def __call__(self, change, path: str) -> bool:
            wanted = path.endswith(".py") or is_config_file(path, config)
            return wanted and super().__call__(change, path)

    return Project()


def _project_modules(root: Path) -> dict[str, ModuleType]:
    from ..loader import PACKAGE_PREFIX

    root = root.resolve()
    mine: dict[str, ModuleType] = {}
    for name, module in list(sys.modules.items()):
        if name.startswith(PACKAGE_PREFIX):
            mine[name] = module
            continue
        file = getattr(module, "__file__", None)
        if file and "site-packages" not in file:
            try:
                if Path(file).resolve().is_relative_to(root):
                    mine[name] = module
            except OSError:
                pass
    return mine


class DevServer:
    def __init__(
        self,
        config,
        host: str = "127.0.0.1",
        port: int = 8787,
        reload: bool = False,
        token: str | None = None,
        say: Callable[[str], None] | None = None,
        concurrency: int = 1000,
        grace: float = GRACE,
    ):
        self.config, self.host, self.port, self.reload = config, host, port, reload
        self.token = token
        self.say = say or (lambda m: sys.stderr.write(m + "\n"))
        self.concurrency, self.grace = concurrency, grace
        self.runner: Runner  # both made by run(): importing the code can fail, and is reported there
        self.app: WfApp
        self.stop_event: asyncio.Event | None = None
        self._watch_stop = asyncio.Event()
        self._swapped = asyncio.Event()  # set (and replaced) each time a reload swaps the runner

    def _build_runner(self) -> Runner:
        from ..service import build_runner

        return build_runner(self.config, concurrency=self.concurrency)

    async def run(self) -> None:
        started = time.monotonic()
        check_exposure(self.host, self.token)
        sock = bind(self.host, self.port)
        try:
            await self._run(sock, started)
        finally:
            sock.close()

    async def _run(self, sock: socket.socket, started: float) -> None:
        import uvicorn

        from .app import find_user_app

        self.runner = self._build_runner()  # imports main: broken code fails here, before serving
        user_app = find_user_app(self.config)
        allowed = None if (self.token or not is_loopback(self.host)) else LOOPBACK_HOSTS | {self.host}
        self.app = create_app(self.config, user_app=user_app, token=self.token, allowed_hosts=allowed)
        await self.app.explorer.aclient.open()
        self.stop_event = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop_event.set)
        await self._check_code(self.config, self.runner)
        await self.runner.start()
        watcher = await self._start_watching() if self.reload else None
        port = sock.getsockname()[1]
        grace = math.ceil(self.grace)  # uvicorn takes whole seconds
        server = _server(
            uvicorn.Config(
                AccessLog(self.app),
                log_level="warning",
                access_log=False,  # AccessLog says it, in the runner's log format
                lifespan="on",
                timeout_graceful_shutdown=grace,
            )
        )
        serving = loop.create_task(server.serve(sockets=[sock]))
        while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn offers no started event
            await asyncio.sleep(0.005)
        if serving.done():  # start-up failed (the app's lifespan, say)
            await self._stop_watching(watcher)
            await self.runner.stop(self.grace)
            await serving
            raise WfError("the HTTP server did not start", "see the message above")
        self._banner(port, user_app, time.monotonic() - started)
        stop_wait = loop.create_task(self.stop_event.wait())
        failed = loop.create_task(self._runner_failed())
        await asyncio.wait({serving, stop_wait, failed}, return_when=asyncio.FIRST_COMPLETED)
        self.say("stopping: finishing open requests and in-flight steps...")
        await self._stop_watching(watcher)
        server.should_exit = True
        await asyncio.gather(serving, return_exceptions=True)
        stop_wait.cancel()
        failed.cancel()
        await self.runner.stop(self.grace)
        await self.app.explorer.aclient.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        self.say("stopped.")
        if self.runner.failure:
            raise StoreError(f"wf dev stopped: {self.runner.failure}", "start it again; it opens the store afresh")

    async def _runner_failed(self) -> None:
        """Returns when the runner stops for good (its database or lock file was replaced under it,
        say): then wf dev stops too, rather than serving an API whose instances nobody runs."""
        while True:
            runner, swapped = self.runner, self._swapped
            waits = [asyncio.ensure_future(runner.failed.wait()), asyncio.ensure_future(swapped.wait())]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
            if runner.failure is not None and runner is self.runner:
                return

    def _banner(self, port: int, user_app, took: float) -> None:
        host = f"[{self.host}]" if ":" in self.host else self.host
        url = f"http://{host}:{port}"
        names = ", ".join(f"{w.name} ({w.binding} -> {w.class_name})" for w in self.config.workflows) or "(none)"
        lines = [
            f"wf dev: {self.config.name or self.config.root.name} ({self.config.path})",
            f"  workflows: {names}",
            f"  state:     {self.config.store_url or self.config.state_dir}",
            "  app:       " + (_serving(user_app, url) if user_app else "none (main exports no `app`; / opens the UI)"),
            f"  UI:        {url}/cdn-cgi/explorer/"
            + ("?token=<WF_TOKEN> (once; then a session cookie)" if self.token else ""),
            f"  API:       {url}/cdn-cgi/local/explorer/api (wrangler workflows ... --local --port {port})",
            f"  ready on {url} in {took * 1000:.0f} ms"
            + ("; reloading on code and config changes" if self.reload else "")
            + "; Ctrl-C stops",
        ]
        if self.token:
            lines.append("  every request must carry 'Authorization: Bearer $WF_TOKEN'")
        self.say("\n".join(lines))

    # -- reload ---------------------------------------------------------------------------

    async def _start_watching(self) -> asyncio.Task:
        """Watch the project; the watches are in place when this returns (a change made from then
        on is seen), before the server answers its first request."""
        task = asyncio.get_running_loop().create_task(self._watch(self._watch_stop))
        await asyncio.sleep(0)  # the task runs up to its first wait: watchfiles has set its watches
        return task

    async def _stop_watching(self, task: asyncio.Task | None) -> None:
        if task is not None:
            self._watch_stop.set()  # watchfiles' thread sees it within one step (50 ms)
            await asyncio.gather(task, return_exceptions=True)

    async def _watch(self, stop: asyncio.Event) -> None:
        from watchfiles import awatch

        async for changes in awatch(self.config.root, watch_filter=watch_filter(self.config), stop_event=stop):
            await self.reload_code(any(is_config_file(path, self.config) for _, path in changes))

    def _read_config(self):
        """The config read again, at the same state location as the running one."""
        from ..config import load_config

        fresh = load_config(self.config.path, env=self.config.env_name)
        return dataclasses.replace(fresh, state_dir=self.config.state_dir, store_url=self.config.store_url)

    async def reload_code(self, config_changed: bool = False) -> bool:
        """Import the changed code (and read the config again if it changed); if both load, swap
        the runner and the app. True if swapped."""
        from ..loader import load_workflow_classes
        from .app import find_user_app

        try:
            config = self._read_config() if config_changed else self.config
        except WfError as exc:
            self._reload_failed(exc)
            return False
        old = _project_modules(self.config.root)
        for name in old:
            sys.modules.pop(name, None)
        import importlib

        importlib.invalidate_caches()
        try:
            classes = load_workflow_classes(config)
            user_app = find_user_app(config)
        except WfError as exc:
            for name in _project_modules(self.config.root):
                sys.modules.pop(name, None)
            sys.modules.update(old)
            self._reload_failed(exc)
            return False
        from ..service import build_runner

        new_runner = build_runner(config, classes, concurrency=self.concurrency)
        await self.runner.stop(self.grace)
        self.runner = new_runner
        self._swapped.set()
        self._swapped = asyncio.Event()
        await self._check_code(config, new_runner)
        await self.runner.start()
        if config is not self.config:
            self.config = config
            self.app.swap_config(config)
        await self.app.swap_user_app(user_app)
        what = "config and code" if config_changed else "code"
        self.say(f"reloaded: {what} changed; unfinished instances continue by replay")
        return True

    async def _check_code(self, config, runner: Runner) -> None:
        """The replay check of unfinished instances against code they have not been checked against
        (a start, a reload): divergent ones are reported loudly (and held with WF_ON_DIVERGENCE=hold)."""
        from ..service import check_before_running

        await check_before_running(config, runner, self.say)

    def _reload_failed(self, exc: WfError) -> None:
        hint = f"\nhint: {exc.hint}" if exc.hint else ""
        self.say(f"reload failed, still running the previous code and config: {exc}{hint}")


async def serve_dev(config, **options) -> None:
    await DevServer(config, **options).run()


class AccessLog:
    """One record per HTTP request on the `wf.http` logger once it is answered: method, path (never
    the query string, which may carry the UI's token), status and time, as uvicorn users expect."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not access_log.isEnabledFor(logging.INFO):
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), 500

        async def sending(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            request = {"method": scope["method"], "path": scope["path"], "status": status}
            request["ms"] = (time.perf_counter() - started) * 1000
            access_log.info("%(method)s %(path)s %(status)s", request, extra={"wf_request": request})
