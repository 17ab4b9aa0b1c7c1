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
import copy
import inspect
import math
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .client import Client
from .config import Config, WorkflowConfig, load_config
from .errors import ValidationError, WorkflowTimeoutError, rebuild_error
from .loader import load_workflow_classes
from .runtime import codec
from .runtime import steps as kinds
from .runtime.clock import FakeClock
from .runtime.store.base import STATUSES, TERMINAL, EventRow

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
QUIET = 0.01  # real seconds of idleness before the fake clock may jump
PATIENCE = 0.5  # real seconds a step attempt may run, nothing else happening, before the clock jumps anyway


class WorkflowTestError(AssertionError):
    """An observer's expectation cannot be met: another terminal status, a stuck instance, no output."""


# -- steps and the plan of mocks -----------------------------------------------------------


def _selector(step: Any, index: int | None = None) -> tuple[str, int]:
    """`"charge"`, `("charge", 2)` or `{"name": "charge", "index": 2}` -> ("charge", 2)."""
    if isinstance(step, dict):
        name, index = step.get("name"), step.get("index", index)
    elif isinstance(step, tuple) and len(step) == 2:
        name, index = step
    else:
        name = step
    index = 1 if index is None else index
    if not isinstance(name, str) or not name:
        raise ValidationError(f"step selector {step!r} has no name", 'pass "name" or {"name": ..., "index": 2}')
    if isinstance(index, bool) or not isinstance(index, int) or index < 1:
        raise ValidationError(
            f"step index {index!r} of {name!r} must be an integer from 1",
            "index counts the steps of that name in a run, from 1",
        )
    return name, index


def _no_retry_delay(cfg):
    cfg = copy.copy(cfg)
    cfg.delay = 0.0
    return cfg


class _Plan:
    """The mocks of one instance (or, in a session, of every instance it captures).

    The engine calls `step`, `sleep_wake`, `event_timeout` and `next_event`; an instance run
    without a test harness never reaches this code."""

    def __init__(self):
        self.results: dict[tuple[str, int], str] = {}
        self.failures: dict[tuple[str, int], list] = {}
        self.sleeps: set | bool = set()  # True: every sleep
        self.retry_delays: set | bool = set()
        self.events: list[tuple[str, str | None]] = []
        self.taken: dict[tuple, EventRow] = {}  # wait key -> its mocked event, kept so restart() sees it again
        self.event_timeouts: set = set()

    def absorb(self, other: _Plan) -> None:
        for sel, value in other.results.items():
            self.results.setdefault(sel, value)
        for sel, entries in other.failures.items():
            self.failures.setdefault(sel, []).extend(entries)
        for attr in ("sleeps", "retry_delays"):
            mine, theirs = getattr(self, attr), getattr(other, attr)
            setattr(self, attr, True if True in (mine, theirs) else mine | theirs)
        self.events = list(other.events) + self.events
        self.event_timeouts |= other.event_timeouts

    # -- consulted by the engine ---------------------------------------------------------

    def step(self, key: tuple, fn: Callable, cfg, call: Callable):
        sel = key[1:]
        if self.retry_delays is True or sel in self.retry_delays:
            cfg = _no_retry_delay(cfg)
        failures, mocked = self.failures.get(sel), sel in self.results
        if not failures and not mocked:
            return fn, cfg
        plan, timeout = self, cfg.display["timeout"]

        async def attempt(ctx):
            failure = _failure_for(failures or [], ctx.attempt)
            if failure is not None:
                kind, error = failure
                if kind == "timeout":
                    raise WorkflowTimeoutError(f"step {sel[0]!r} attempt {ctx.attempt} timed out after {timeout}")
                raise error() if isinstance(error, type) else error
            if mocked:
                return codec.decode(plan.results[sel])
            return await call(fn, ctx)

        attempt.__wf_params__ = ("ctx",)
        return attempt, cfg

    def sleep_wake(self, key: tuple, now: float, wake: float) -> float:
        return now if self.sleeps is True or key[1:] in self.sleeps else wake

    def event_timeout(self, key: tuple) -> bool:
        return key[1:] in self.event_timeouts

    async def next_event(self, x, key: tuple, event_type: str | None):
        if self.event_timeout(key):
            return None
        if key in self.taken:
            return self.taken[key]
        for i, (type_, payload) in enumerate(self.events):
            if event_type is None or type_ == event_type:
                del self.events[i]
                self.taken[key] = EventRow(None, type_, payload, x.clock.now())
                return self.taken[key]
        return await x.host.astore.call(x.host.store_ops.next_event, x.seq, event_type)


def _failure_for(entries: list, attempt: int):
    start = 0
    for kind, error, times in entries:
        if times is None or attempt <= start + times:
            return kind, error
        start += times
    return None


class Modifier:
    """Records mocks on a plan. Every method returns the modifier, so calls chain."""

    def __init__(self, plan: _Plan):
        self._plan = plan

    def mock_step_result(self, step: Any, result: Any, *, index: int | None = None) -> Modifier:
        """The step returns `result` without running its function (after any mocked errors)."""
        sel = _selector(step, index)
        if sel in self._plan.results:
            raise ValidationError(
                f"step {sel[0]!r} (index {sel[1]}) already has a mocked result", "mock each step's result once"
            )
        self._plan.results[sel] = codec.encode(result, f"the mocked result of step {sel[0]!r}")
        return self

    def mock_step_error(
        self, step: Any, error: BaseException | type, times: int | None = None, *, index: int | None = None
    ) -> Modifier:
        """Every attempt raises `error`, or only the next `times` attempts (then mocks or the real function)."""
        if not (isinstance(error, Exception) or (isinstance(error, type) and issubclass(error, Exception))):
            raise ValidationError(f"mock_step_error needs an exception, got {error!r}", 'e.g. RuntimeError("down")')
        return self._fail(step, index, "error", error, times)

    def force_step_timeout(self, step: Any, times: int | None = None, *, index: int | None = None) -> Modifier:
        """Every attempt (or the next `times`) times out at once, without running the function."""
        return self._fail(step, index, "timeout", None, times)

    def _fail(self, step, index, kind, error, times) -> Modifier:
        if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
            raise ValidationError(f"times={times!r} must be a positive integer or None", "None means every attempt")
        self._plan.failures.setdefault(_selector(step, index), []).append((kind, error, times))
        return self

    def disable_sleeps(self, steps: Iterable | None = None) -> Modifier:
        """Sleeps (all, or those selected) end at once."""
        self._plan.sleeps = True if steps is None else _union(self._plan.sleeps, steps)
        return self

    def disable_retry_delays(self, steps: Iterable | None = None) -> Modifier:
        """Retries (of all steps, or those selected) start at once; the attempts are all made."""
        self._plan.retry_delays = True if steps is None else _union(self._plan.retry_delays, steps)
        return self

    def mock_event(self, type: str, payload: Any = None) -> Modifier:
        """An event already waiting for the first `wait_for_event` of its type."""
        from .runtime.validate import check_event_type

        text = None if payload is None else codec.encode(payload, f"payload of mocked event {type!r}")
        self._plan.events.append((check_event_type(type), text))
        return self

    def force_event_timeout(self, step: Any, *, index: int | None = None) -> Modifier:
        """That `wait_for_event` times out at once, even if an event is there."""
        self._plan.event_timeouts.add(_selector(step, index))
        return self


def _union(current, steps: Iterable):
    if isinstance(steps, (str, dict)):
        steps = [steps]
    return current if current is True else current | {_selector(s) for s in steps}


def _apply(plan: _Plan, fn: Callable | None) -> Modifier:
    m = Modifier(plan)
    if fn is not None:
        result = fn(m)
        if inspect.isawaitable(result):
            raise ValidationError("modify functions run synchronously here", "use a plain function or lambda")
    return m


class _Registry:
    """`runner.modifiers`: the plan of each instance, by (workflow, id)."""

    def __init__(self):
        self.plans: dict[tuple[str, str], _Plan] = {}
        self.sessions: dict[str, WorkflowIntrospector] = {}
        self.seen: set[tuple[str, str]] = set()

    def for_instance(self, row) -> _Plan:
        key = (row.workflow, row.id)
        plan = self.plans.setdefault(key, _Plan())
        if key not in self.seen:
            self.seen.add(key)
            session = self.sessions.get(row.workflow)
            if session is not None and row.seq > session.after_seq:
                plan.absorb(session.plan)
                session.captured.append(row.id)
        return plan


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

    async def terminate(self) -> None:
        self._t.client.terminate(self.id, self.workflow)

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
            for s in self._t.client.describe(self.id, self.workflow)["steps"]:
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
        latest = test.client.store.latest_instance(None)
        self.after_seq = latest.seq if latest is not None else 0
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
        self._tmp = None if state_dir is not None else Path(tempfile.mkdtemp(prefix="wf-test-"))
        where = Path(state_dir) if state_dir is not None else self._tmp
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
        self.client = Client(self.config, clock=self.clock)
        self.replay_always, self.keep_warm, self.timeout, self.patience = replay_always, keep_warm, timeout, patience
        self.concurrency = concurrency
        self.runner = None
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
        from .service import build_runner

        self.runner = build_runner(
            self.config,
            self.classes,
            clock=self.clock,
            replay_always=self.replay_always,
            keep_warm=self.keep_warm,
            reap_interval=math.inf,
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
                from .runtime import logs

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

    async def create(self, workflow: str, params: Any = None, id: str | None = None) -> InstanceIntrospector:
        await self._ensure_started()
        row = self.client.create(workflow, params, id)
        return InstanceIntrospector(self, workflow, row.id)

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
        """Wait (in real time) until the runner is idle: nothing running, pending or due. A step
        attempt that runs `patience` seconds with nothing else happening counts as idle too, so
        that a hanging step can reach its timeout on the fake clock."""
        await self._ensure_started()
        deadline = time.monotonic() + (timeout or self.timeout)
        last, idle_since, quiet_since = None, time.monotonic(), time.monotonic()
        while True:
            await asyncio.sleep(0.002)
            now = time.monotonic()
            mark, idle, pending = self._fingerprint(), self._idle(), self._pending()
            if mark != last or pending:
                last, idle_since, quiet_since = mark, now, now
            elif not idle:
                idle_since = now
            if now - idle_since >= QUIET or now - quiet_since >= self.patience:
                return
            if now > deadline:
                raise WorkflowTestError(f"the runner was still busy after {timeout or self.timeout}s: {self._busy()}")

    def _fingerprint(self) -> tuple:
        if hasattr(self.client.store, "activity"):  # PostgreSQL
            return self.client.store.activity()
        conn = self.client.store.conn
        return (
            conn.execute("SELECT max(updated_at), count(*) FROM instances").fetchone(),
            conn.execute("SELECT count(*), sum(attempts) FROM steps").fetchone(),
        )

    def _pending(self) -> bool:
        """Store writes in flight, or an instance due that the runner has yet to claim."""
        if self.runner.astore._pending or self.runner.astore._flushing:
            return True
        if len(self.runner._tasks) > len(self.runner.executions):  # claimed, still loading its steps
            return True
        if getattr(self.runner.astore, "calls", 0):  # a store read in flight (slow on a loaded PostgreSQL)
            return True
        due = self.client.store.next_wake(list(self.classes))
        return due is not None and due <= self.clock.now()

    def _idle(self) -> bool:
        return all(x.is_idle() for x in self.runner.executions.values())

    def _busy(self) -> str:
        running = [
            f"{x.row.id} ({x.active_attempts} attempt(s) running)"
            for x in self.runner.executions.values()
            if not x.is_idle()
        ]
        return "instances " + ", ".join(running) if running else "store writes pending"

    async def advance(self, seconds: float) -> None:
        """Move the fake clock forward by `seconds` (timers due by then fire), then settle."""
        await self.settle()
        self.clock.advance(seconds)
        await self.settle()

    async def _drive(self, check: Callable[[], Any], what: str, timeout: float | None) -> Any:
        await self._ensure_started()
        limit = timeout or self.timeout
        deadline = time.monotonic() + limit
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
