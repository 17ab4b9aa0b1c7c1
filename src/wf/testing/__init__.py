"""Test workflows in-process, offline and deterministically: the Python form of Cloudflare's
`introspectWorkflow` / `introspectWorkflowInstance` (SPEC §8).

    from wf.testing import WorkflowTest

    async def test_order():
        async with WorkflowTest({"order-processing": OrderWorkflow}) as t:   # or wf.testing.from_config(path)
            with t.introspect("order-processing") as intro:                  # every instance created from now on
                intro.modify_all(lambda m: m.disable_sleeps().mock_step_result("charge", {"ok": True}))
                inst = await t.create("order-processing", {"orderId": "o-1"})
                await inst.send_event("approval", {"approved": True})
                assert await inst.wait_for_step_result("charge") == {"ok": True}
                await inst.wait_for_status("complete")
                assert (await inst.get_output())["status"] == "completed"

A `WorkflowTest` runs the real runner and engine on a temporary SQLite store and a fake clock.
Time moves only when everything is idle: no step attempt running, no write pending, nothing due.
Then the clock jumps to the next timer, so a day-long sleep or a 24-hour event timeout takes
milliseconds. Modifiers are consulted by the engine at attempt time (the attempt and its
events are still recorded), selecting steps by name and 1-based occurrence `index` (the n-th
step of that name and kind in a run), as Cloudflare's `{name, index}`.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..client import Client
from ..config import Config, WorkflowConfig, load_config
from ..errors import ValidationError, rebuild_error
from ..loader import load_workflow_classes
from ..runtime import steps as kinds
from ..runtime.clock import FakeClock
from ..runtime.runner import Runner
from ..runtime.status import STATUSES, TERMINAL
from ..subscriptions import page as read_page
from ..subscriptions import subscription_options
from .mocks import Modifier, WorkflowTestError, _apply, _Plan, _Registry, _selector

__all__ = [
    "WorkflowTest",
    "from_config",
    "WorkflowIntrospector",
    "InstanceIntrospector",
    "Modifier",
    "WorkflowTestError",
    "timeline",
]

DEFAULT_TIMEOUT = 30.0  # real seconds an observer may wait before it gives up
PATIENCE = 0.5  # real seconds a step attempt may run, nothing else happening, before the clock jumps anyway


# -- observers -----------------------------------------------------------------------------


def timeline(steps: list[dict]) -> list[dict]:
    """The comparable essence of `describe()["steps"]`: type, name, count, status, attempts."""
    return [kinds.by_type(s["type"]).timeline(s) for s in steps]


class InstanceIntrospector:
    """One instance under test: modify it, act on it, observe it."""

    def __init__(self, test: WorkflowTest, workflow: str, id: str):
        self._t, self.workflow, self.id = test, workflow, id

    def __repr__(self) -> str:
        return f"InstanceIntrospector({self.workflow!r}, {self.id!r})"

    def modify(self, fn: Callable[[Modifier], Any] | None = None) -> Modifier:
        """Mocks for this instance: `inst.modify(lambda m: m.disable_sleeps())`, or use the returned Modifier."""
        return _apply(self._t._registry.plans.setdefault((self.workflow, self.id), _Plan()), fn)

    # -- acting --------------------------------------------------------------------------

    async def status(self) -> dict:
        return self._t.client.status(self.id, self.workflow)

    async def send_event(self, type: str = "event", payload: Any = None) -> None:
        await self._t._ensure_started()
        self._t.client.send_event(self.id, type, payload, self.workflow)

    async def pause(self) -> None:
        self._t.client.pause(self.id, self.workflow)

    async def resume(self) -> None:
        self._t.client.resume(self.id, self.workflow)

    async def terminate(self, rollback: bool = False) -> None:
        """End the instance; with `rollback`, its rollback handlers run first (as on Cloudflare)."""
        self._t.client.terminate(self.id, self.workflow, rollback=rollback)

    async def restart(self, from_step: str | None = None) -> None:
        self._t.client.restart(self.id, self.workflow, from_step)

    async def dispose(self) -> None:
        """Stop the instance and delete it."""
        if (await self.status())["status"] not in TERMINAL:
            await self.terminate()
        self._t.client.delete(self.id, self.workflow)

    # -- observing -----------------------------------------------------------------------

    async def wait_for_status(self, status: str, timeout: float | None = None) -> None:
        """Run until the instance is `status`; fails if it ends in another terminal status."""
        if status not in STATUSES:
            raise ValidationError(f"status {status!r} is not an instance status", "use one of: " + ", ".join(STATUSES))

        def reached():
            now = self._t.client.status(self.id, self.workflow)
            if now["status"] == status:
                return True
            if now["status"] in TERMINAL:
                raise WorkflowTestError(
                    f"instance {self.id!r} ended {now['status']!r}, not {status!r}"
                    + (f": {now['error']}" if now["error"] else "")
                )
            return None

        await self._t._drive(reached, f"instance {self.id!r} to be {status!r}", timeout)

    async def wait_for_step_result(self, name: str, index: int = 1, timeout: float | None = None) -> Any:
        """Run until step `name` (its `index`-th occurrence) has its result; raises the step's error."""
        name, index = _selector(name, index)

        def done():
            for s in self._t.client.describe(self.id, self.workflow, reveal=True)["steps"]:
                kind = kinds.by_type(s["type"])
                if kind.step_result and s["name"] == name and s["count"] == index:
                    if kind.succeeded(s["status"]):
                        return (s["output"],)
                    if s["status"] == "errored":
                        raise rebuild_error(s["error"])
            status = self._t.client.status(self.id, self.workflow)["status"]
            if status in TERMINAL:
                raise WorkflowTestError(
                    f"instance {self.id!r} ended {status!r} without a result of step {name!r} (index {index})"
                )
            return None

        return (await self._t._drive(done, f"step {name!r} (index {index}) of instance {self.id!r}", timeout))[0]

    async def get_output(self) -> Any:
        now = await self.status()
        if now["status"] != "complete":
            raise WorkflowTestError(
                f'Cannot retrieve output: instance {self.id!r} is "{now["status"]}", must be "complete"'
            )
        return now["output"]

    async def get_error(self) -> dict:
        now = await self.status()
        if now["status"] != "errored":
            raise WorkflowTestError(
                f'Cannot retrieve error: instance {self.id!r} is "{now["status"]}", must be "errored"'
            )
        return now["error"]

    async def describe(self) -> dict:
        """What `wf instances describe` shows: status, output, error and every step with its attempts."""
        return self._t.client.describe(self.id, self.workflow)

    async def steps(self) -> list[dict]:
        """The step timeline: [{"type", "name", "count", "status", "attempts": [True/False per attempt]}]."""
        return timeline((await self.describe())["steps"])

    async def subscribe(self, types: Iterable[str] | None = None, after: int | None = None) -> AsyncIterator[dict]:
        """The instance's events as `instance.subscribe()` gives them: its log so far, then each new
        event, the fake clock moving on whenever nothing else can happen, until the instance ends."""
        wanted, cursor = subscription_options(types, after)
        client = self._t.client
        row = client.get(self.id, self.workflow)
        over = False
        page: list = []

        def read() -> bool | None:
            nonlocal cursor, over
            events, cursor, over = read_page(client, row, cursor, wanted)
            page.extend(events)
            return True if page or over else None

        while not over:
            await self._t._drive(read, f"an event of instance {self.id!r}", None)
            while page:
                yield page.pop(0)

    async def __aenter__(self) -> InstanceIntrospector:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.dispose()


class WorkflowIntrospector:
    """Captures every instance of `workflow` created after it began, applying `modify_all`'s mocks."""

    def __init__(self, test: WorkflowTest, workflow: str):
        test.config.workflow(workflow)
        if workflow in test._registry.sessions:
            raise ValidationError(
                f"workflow {workflow!r} is already being introspected",
                "dispose the first introspector (leave its `with` block) before starting another",
            )
        self._t, self.workflow = test, workflow
        self.plan = _Plan()
        self.captured: list[str] = []
        latest = test.client.list(limit=1)
        self.after_seq = latest[0].seq if latest else 0
        test._registry.sessions[workflow] = self

    def modify_all(self, fn: Callable[[Modifier], Any] | None = None) -> Modifier:
        return _apply(self.plan, fn)

    async def get(self) -> list[InstanceIntrospector]:
        """The captured instances, in the order they started (after letting the runner catch up)."""
        await self._t.settle()
        return [InstanceIntrospector(self._t, self.workflow, id) for id in self.captured]

    def dispose(self) -> None:
        if self._t._registry.sessions.get(self.workflow) is self:
            del self._t._registry.sessions[self.workflow]

    def __enter__(self) -> WorkflowIntrospector:
        return self

    def __exit__(self, *exc) -> None:
        self.dispose()

    async def __aenter__(self) -> WorkflowIntrospector:
        return self

    async def __aexit__(self, *exc) -> None:
        self.dispose()


# -- the test environment ------------------------------------------------------------------


def _binding(name: str) -> str:
    return name.upper().replace("-", "_")


def _class_config(workflows: Mapping[str, type], vars: Mapping | None, root: Path) -> Config:
    wfs = tuple(WorkflowConfig(name=n, binding=_binding(n), class_name=c.__name__) for n, c in workflows.items())
    return Config(
        path=root / "wrangler.jsonc",
        root=root,
        name="wf-test",
        main="",
        compatibility_date=None,
        compatibility_flags=(),
        vars=MappingProxyType(dict(vars or {})),
        workflows=wfs,
        env_name=None,
        state_dir=root / ".wf",
        store_url=None,
    )


class _InProcess:
    """The test's client tells the runner of its writes directly (no datagram to wait for)."""

    def __init__(self, test: WorkflowTest):
        self.test = test

    def notify(self, note: str) -> None:
        if self.test.runner is not None:
            self.test.runner.handle_note(note)

    def alive(self) -> bool:
        return self.test.runner is not None


class WorkflowTest:
    """The real runner on a temporary store and a fake clock. Use `async with`, or `await start()`
    then `await close()`; it also starts by itself on first use inside a running event loop."""

    def __init__(
        self,
        workflows: Mapping[str, type] | None = None,
        *,
        config: str | Path | Config | None = None,
        vars: Mapping[str, Any] | None = None,
        env: str | None = None,
        state_dir: str | Path | None = None,
        store: str | None = None,
        replay_always: bool = False,
        keep_warm: float = 60.0,
        timeout: float = DEFAULT_TIMEOUT,
        patience: float = PATIENCE,
        start_time: float = 1_800_000_000.0,
        concurrency: int = 1000,
    ):
        where = Path(state_dir) if state_dir is not None else Path(tempfile.mkdtemp(prefix="wf-test-"))
        self._tmp = None if state_dir is not None else where
        if config is None:
            if not workflows:
                raise ValidationError(
                    "WorkflowTest needs workflow classes or a config",
                    'WorkflowTest({"my-workflow": MyWorkflow}) or wf.testing.from_config(path)',
                )
            self.config = replace(_class_config(workflows, vars, where), store_url=store)
        else:
            cfg = config if isinstance(config, Config) else load_config(config, env=env)
            self.config = replace(
                cfg, state_dir=where, store_url=store, vars=MappingProxyType({**cfg.vars, **(vars or {})})
            )
        self.classes = dict(workflows) if workflows else load_workflow_classes(self.config)
        self.clock = FakeClock(start_time)
        self.client = Client(self.config, clock=self.clock, coordination=_InProcess(self))
        self.replay_always, self.keep_warm, self.timeout, self.patience = replay_always, keep_warm, timeout, patience
        self.concurrency = concurrency
        self.runner: Runner | None = None
        self._registry = _Registry()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> WorkflowTest:
        await self._ensure_started()
        return self

    async def _ensure_started(self) -> None:
        if self.runner is not None:
            return
        from ..service import build_runner

        self.runner = build_runner(
            self.config,
            self.classes,
            clock=self.clock,
            replay_always=self.replay_always,
            keep_warm=self.keep_warm,
            reap_interval=math.inf,
            gc_interval=math.inf,
            concurrency=self.concurrency,
        )
        self.runner.modifiers = self._registry
        self._loop, self._lock = asyncio.get_running_loop(), asyncio.Lock()
        await self.runner.start()

    async def close(self) -> None:
        if self.runner is not None:
            runner, self.runner = self.runner, None
            await runner.stop(grace=0.5)
        self._cleanup()

    def close_sync(self) -> None:
        """Close from synchronous code (a fixture's teardown), on the loop it ran in when possible."""
        loop = self._loop
        if self.runner is not None and loop is not None and not loop.is_closed() and not loop.is_running():
            loop.run_until_complete(self.close())
        elif self.runner is not None:
            self._abandon()
        self._cleanup()

    def _abandon(self) -> None:
        """The loop the runner ran on is gone: let go of its lock, socket and store from a fresh one."""
        runner, self.runner = self.runner, None

        async def release():
            try:
                await runner.coord.stop()
            except Exception:  # best effort: its tasks died with their loop
                pass
            if runner.capture_output:
                from ..runtime import logs

                logs.uninstall()
            await runner.astore.close()

        worker = threading.Thread(target=asyncio.run, args=(release(),))
        worker.start()
        worker.join()

    def _cleanup(self) -> None:
        self.client.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    async def __aenter__(self) -> WorkflowTest:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # -- instances -----------------------------------------------------------------------

    @property
    def env(self):
        """Async bindings and vars, as a workflow's `self.env` sees them: `await t.env.ORDERS.create(...)`."""
        if self.runner is None:
            raise WorkflowTestError("the test has not started: use `async with WorkflowTest(...)` or `await t.start()`")
        return self.runner.env

    async def fetch(self, url: str, *, json: Any = None, **options: Any) -> Any:
        """Send a request to the project's Worker (`Default.fetch` or `on_fetch` in main) with this
        test's bindings as its env; its `Response` (`.status`, `await .json()`). `url` may be a path;
        options as Cloudflare's `fetch` takes them (`method`, `headers`, `body`), or `json=`."""
        await self._ensure_started()
        from ..cloudflare.bindings import WorkerEnv
        from ..cloudflare.http import Request
        from ..cloudflare.worker import find_worker
        from ..loader import load_main

        worker = find_worker(load_main(self.config), self.config.main)
        if worker is None:
            raise WorkflowTestError(
                f"{self.config.main!r} has no Worker to fetch from: define `class Default(WorkerEntrypoint)` "
                "with `async def fetch(self, request)`, or `on_fetch(request, env)`"
            )
        if json is not None:
            import json as _json

            options = {"method": "POST", **options, "body": _json.dumps(json)}
            options["headers"] = {"content-type": "application/json", **(options.get("headers") or {})}
        request = Request(url if "://" in url else "http://localhost" + url, **options)
        return await worker.respond(request, WorkerEnv(self.env))

    async def create(
        self, workflow: str, params: Any = None, id: str | None = None, *, retention: dict | None = None
    ) -> InstanceIntrospector:
        await self._ensure_started()
        row = self.client.create(workflow, params, id, retention=retention)
        return InstanceIntrospector(self, workflow, row.id)

    async def collect_expired(self, workflow: str | None = None) -> list[dict]:
        """Delete the instances kept past their retention at the fake clock's time (`advance()` to
        get there), as a runner does in the background (not here: its timer would keep the fake
        clock moving); what was deleted."""
        await self.settle()
        return self.client.collect_expired(workflow)

    def get(self, id: str, workflow: str | None = None) -> InstanceIntrospector:
        row = self.client.get(id, workflow)
        return InstanceIntrospector(self, row.workflow, row.id)

    def introspect(self, workflow: str) -> WorkflowIntrospector:
        """Capture every instance of `workflow` created from now on (`modify_all`, `await get()`)."""
        return WorkflowIntrospector(self, workflow)

    def introspect_instance(self, workflow: str, id: str) -> InstanceIntrospector:
        """An instance by id, usually before it is created, so `modify()` applies from its first step."""
        self.config.workflow(workflow)
        return InstanceIntrospector(self, workflow, id)

    async def run(self, workflow: str, params: Any = None, id: str | None = None, timeout: float | None = None) -> dict:
        """Create an instance and run it to its end; its `{"status", "output", "error"}`."""
        inst = await self.create(workflow, params, id)
        return await self.run_until(inst.id, timeout=timeout, workflow=workflow)

    async def run_until(
        self, id: str, statuses: Iterable[str] = TERMINAL, timeout: float | None = None, workflow: str | None = None
    ) -> dict:
        """Run until instance `id` reaches one of `statuses`; its status."""
        statuses = tuple(statuses)

        def reached():
            now = self.client.status(id, workflow)
            return now if now["status"] in statuses else None

        return await self._drive(reached, f"instance {id!r} to reach {'/'.join(statuses)}", timeout)

    # -- time ----------------------------------------------------------------------------

    async def settle(self, timeout: float | None = None) -> None:
        """Wait until the runner is quiescent: nothing running, pending or due. A step attempt that
        runs `patience` real seconds while nothing else happens counts as idle too, so that a
        hanging step can reach its timeout on the fake clock."""
        await self._ensure_started()
        runner, limit = self.runner, timeout or self.timeout
        assert runner is not None
        deadline = time.monotonic() + limit
        while True:
            try:
                await asyncio.wait_for(runner.quiescent(), min(self.patience, max(0.001, deadline - time.monotonic())))
                return
            except TimeoutError:
                if runner.running_attempts():
                    return
                if time.monotonic() > deadline:
                    raise WorkflowTestError(f"the runner was still busy after {limit}s: {runner.busy_with()}") from None

    async def advance(self, seconds: float) -> None:
        """Move the fake clock forward by `seconds` (timers due by then fire), then settle."""
        await self.settle()
        self.clock.advance(seconds)
        await self.settle()

    async def _drive(self, check: Callable[[], Any], what: str, timeout: float | None) -> Any:
        await self._ensure_started()
        limit = timeout or self.timeout
        deadline = time.monotonic() + limit
        assert self._lock is not None
        async with self._lock:
            while True:
                await self.settle(max(0.001, deadline - time.monotonic()))
                result = check()
                if result is not None:
                    return result
                nxt = self.clock.next_timer()
                if nxt is None or nxt == math.inf:
                    raise WorkflowTestError(f"waiting for {what}: nothing is left to run and no timer is pending")
                if time.monotonic() > deadline:
                    raise WorkflowTestError(f"waiting for {what}: not reached after {limit}s")
                self.clock.set(nxt)


def from_config(path: str | Path | Config | None = None, **options: Any) -> WorkflowTest:
    """A `WorkflowTest` of a project: the workflows its wrangler config declares, imported from `main`."""
    return WorkflowTest(config=path if path is not None else load_config(None, env=options.pop("env", None)), **options)
