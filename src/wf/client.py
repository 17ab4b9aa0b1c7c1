"""The Python API that users, the command line and the HTTP server all call.

    env = wf.connect()                                  # async bindings, like Cloudflare's env
    inst = await env.ORDERS.create(params={...})
    await inst.status(); await inst.send_event(type="approval", payload={...})

    env = wf.connect_sync()                             # the same, synchronous, for scripts

`Client` holds the logic once, synchronously, on a store connection; the async face runs
the same methods on the store's own thread.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import batches
from .config import Config
from .errors import ConflictError, NotFoundError, ValidationError, WfError
from .runtime import codec
from .runtime.status import STATUSES, TERMINAL
from .runtime.store import db_path, open_store
from .runtime.store.base import HistoryRow, InstanceRow
from .runtime.store.core import GC_BATCH
from .runtime.store.urls import is_postgres, redact
from .runtime.validate import check_event_type, check_id_prefix, check_instance_id

if TYPE_CHECKING:  # the async side (asyncio, threads) is imported only by those who use it
    from .env import Env
    from .runtime.clock import Clock
    from .runtime.store.aio import AsyncStore

_List = list  # `list` inside Client names its method
ROLLBACK_KIND = "rollback"  # steps/rollback.py's Rollback.name (tests/test_cli_startup.py checks)
LIST_MAX = 1_000_000_000  # instances a list may ask for or skip (SQLite integers are 64-bit; keep far from it)


def status_shape(row: InstanceRow) -> dict:
    """Cloudflare's `instance.status()`: status, output, error."""
    return {
        "status": row.status if row.status in STATUSES else "unknown",
        "output": codec.decode(row.output),
        "error": row.error,
    }


class Client:
    """Every operation on instances, on one synchronous store connection."""

    def __init__(self, config: Config, store=None, clock: Clock | None = None, coordination=None):
        self.config = config
        self.state_dir = Path(config.state_dir)
        self._store = store
        self.clock = clock
        self._coordination = coordination  # how runners hear of writes; chosen by the store when None

    @property
    def store(self):
        if self._store is None:
            self._store = open_store(self.state_dir, self.config.store_url, self.config.settings)
        return self._store

    @property
    def store_name(self) -> str:
        """The store, for messages: its URL without a password, or the SQLite file (not opened)."""
        url = self.config.store_url
        return redact(url) if url else str(db_path(self.state_dir))

    def now(self) -> float:
        return time.time() if self.clock is None else self.clock.now()

    @property
    def coordination(self):
        """How runners are told of writes and found alive: chosen by the store (coordination.py)."""
        if self._coordination is None:
            from .runtime.coordination import coordination_for

            distributed = is_postgres(self.config.store_url)
            self._coordination = coordination_for(self.store if distributed else None, self.state_dir)
        return self._coordination

    def _notify(self, note: str) -> None:
        self.coordination.notify(note)

    def runner_alive(self) -> bool:
        return self.coordination.alive()

    # -- create --------------------------------------------------------------------------

    def _item(
        self, workflow: str, params: Any, id: str | None, trigger: dict | None = None, retention: Any = None
    ) -> dict:
        self.config.workflow(workflow)
        instance_id = check_instance_id(id) if id is not None else str(uuid.uuid4())
        text = codec.encode({} if params is None else params, f"params of instance {instance_id!r}")
        item: dict[str, Any] = {"workflow": workflow, "id": instance_id, "params": text, "trigger": trigger}
        if retention is not None:
            from .runtime.durations import parse_retention

            item.update(parse_retention(retention, f"retention of instance {instance_id!r}"))
        return item

    def create(
        self,
        workflow: str,
        params: Any = None,
        id: str | None = None,
        trigger: dict | None = None,
        retention: dict | None = None,
    ) -> InstanceRow:
        """A queued instance. `retention` (`{"success_retention": "2 days", "error_retention": ...}`,
        durations; numbers are seconds) overrides the workflow's `default_retention` for it."""
        [row] = self.store.create_instances([self._item(workflow, params, id, trigger, retention)], self.now())
        self._notify("w")
        return row

    def create_batch(self, workflow: str, items: Iterable[dict]) -> list[InstanceRow]:
        """Cloudflare's `createBatch([...])`: the instances created, ids that exist skipped silently.
        (`create_many` is the newer form, which says why each one left out was.)"""
        items = [batches.entry(i or {}) for i in items]
        batches.check_size(len(items), "instances")
        prepared = [self._item(workflow, i.get("params"), i.get("id"), None, i.get("retention")) for i in items]
        rows = self.store.create_instances(prepared, self.now(), skip_existing=True)
        if rows:
            self._notify("w")
        return rows

    def create_many(self, workflow: str, options: Mapping, retention: Any = None) -> dict:
        """Cloudflare's `createBatch({count, params})` or `createBatch({instances: [...]})`:
        `{"created": [{"id"}], "errors": [{"index", "id", "code", "message"}]}`, an error for each
        entry left out (an id repeated in the batch, or one that exists), by its place in the input."""
        items = batches.entries(options)
        prepared = [
            self._item(workflow, i.get("params"), i.get("id"), None, i.get("retention", retention)) for i in items
        ]
        errors, fresh, seen = [], [], set()
        for index, (item, entry) in enumerate(zip(items, prepared)):
            if item.get("id") is not None and entry["id"] in seen:
                errors.append(batches.error(batches.BATCH_DUPLICATE, entry["id"], index))
                continue
            seen.add(entry["id"])
            fresh.append((index, entry))
        rows = self.store.create_instances([e for _, e in fresh], self.now(), skip_existing=True)
        if rows:
            self._notify("w")
        made = {r.id for r in rows}
        errors += [batches.error(batches.ALREADY_EXISTS, e["id"], i) for i, e in fresh if e["id"] not in made]
        return {"created": [{"id": r.id} for r in rows], "errors": sorted(errors, key=lambda e: e["index"])}

    # -- look up -------------------------------------------------------------------------

    def get(self, id: str, workflow: str | None = None) -> InstanceRow:
        if workflow is not None:
            self.config.workflow(workflow)
        if id == "latest":
            row = self.store.latest_instance(workflow)
            if row is None:
                where = f"workflow {workflow!r}" if workflow else "this project"
                raise NotFoundError(f"there are no instances in {where}", "create one with `wf trigger WORKFLOW`")
            return row
        if not isinstance(id, str) or not id:
            raise ValidationError(f"instance id {id!r} is invalid", "pass an instance id or 'latest'")
        row = self.store.get_instance(workflow, id)
        if row is None:
            where = f" in workflow {workflow!r}" if workflow else ""
            raise NotFoundError(f"instance {id!r} was not found{where}", "list instances with `wf instances list`")
        return row

    def status(self, id: str, workflow: str | None = None) -> dict:
        """Cloudflare's `status()`; with `rollback` ({outcome, error}) once rollback handlers ran."""
        row = self.get(id, workflow)
        return self._with_rollback(row, status_shape(row))

    def _with_rollback(self, row: InstanceRow, shape: dict, steps: Iterable | None = None) -> dict:
        """`shape` plus the outcome of the instance's rollback, when handlers ran and it has ended."""
        if row.status not in TERMINAL:
            return shape
        runs = steps if steps is not None else self.store.steps_of_kind(row.seq, ROLLBACK_KIND)
        if not (runs := [s for s in runs if s.kind == ROLLBACK_KIND]):
            return shape  # no handler ran: `wf status` does not load the step kinds (steps/rollback.py)
        from .runtime.steps.rollback import status_of

        return {**shape, "rollback": status_of(runs)}

    def list(
        self,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 25,
        offset: int = 0,
        *,
        since: float | None = None,
        until: float | None = None,
    ) -> _List[InstanceRow]:
        """Instances newest first, `offset` rows in; created in [since, until) when those are given."""
        if workflow is not None:
            self.config.workflow(workflow)
        if status is not None and status not in STATUSES:
            raise ValidationError(f"status {status!r} is not an instance status", "use one of: " + ", ".join(STATUSES))
        for name, value, low in (("limit", limit, 1), ("offset", offset, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= LIST_MAX:
                raise ValidationError(
                    f"{name} {value!r} is out of range", f"use a whole number from {low} to {LIST_MAX:,}"
                )
        return self.store.list_instances(workflow, status, limit, offset, since=since, until=until)

    # -- act -----------------------------------------------------------------------------

    def send_event(self, id: str, type: str | None = None, payload: Any = None, workflow: str | None = None) -> None:
        try:
            event_type = check_event_type(type if type is not None else "event")
            text = None if payload is None else codec.encode(payload, f"payload of event {event_type!r}")
        except ValidationError:
            self.get(id, workflow)  # an unknown instance is said first
            raise
        if workflow is not None:
            self.config.workflow(workflow)
        # found and sent in one transaction; when that sent nothing, get() and add_event() say why
        seq = self.store.add_event_by_id(workflow, id, event_type, text, self.now()) if _named(id) else None
        if seq is None:
            row = self.get(id, workflow)
            try:
                self.store.add_event(row.seq, event_type, text, self.now())
            except (ConflictError, NotFoundError) as exc:
                raise exc.naming(f"instance {row.id!r}") from None
            seq = row.seq
        self._notify(f"e:{seq}")

    def pause(self, id: str, workflow: str | None = None) -> str:
        return self._control(self.get(id, workflow), self.store.pause)

    def resume(self, id: str, workflow: str | None = None) -> str:
        return self._control(self.get(id, workflow), self.store.resume)

    def terminate(self, id: str, workflow: str | None = None, rollback: bool = False) -> None:
        """End the instance `terminated`. With `rollback`, a runner first runs the rollback handlers
        its steps registered (newest first); the instance stays running until they are done."""
        if not isinstance(rollback, bool):
            raise ValidationError(f"rollback must be true or false, got {rollback!r}", "pass rollback=True")
        row = self.get(id, workflow)
        self._wake(self._control(row, lambda seq, now: self.store.terminate(seq, now, rollback)))

    def restart(
        self, id: str, workflow: str | None = None, from_step: str | None = None, count: int = 1, type: str = "do"
    ) -> None:
        row = self.get(id, workflow)
        target = None
        if from_step is not None:
            from .runtime import steps

            target = steps.restart_target(from_step, count, type)
        self.store.restart(row.seq, self.now(), target)
        self._notify(f"c:{row.seq}")

    def delete(self, id: str, workflow: str | None = None) -> None:
        row = self.get(id, workflow)
        woken = self.store.delete(row.seq, self.now())
        self._notify(f"c:{row.seq}")
        self._wake(woken)

    def delete_batch(self, ids: Any, workflow: str | None = None) -> dict:
        """Cloudflare's `deleteBatch`: `{"deleted": [{"id"}], "errors": [{"id", "code", "message"}]}`,
        one entry per id given, in order (an id given twice is deleted once and reported twice); an
        id that is not there is an error entry, an invalid id refuses the whole call."""
        if isinstance(ids, Mapping):  # Cloudflare's newer form, deleteBatch({instances: [...]})
            ids = ids.get("instances")
        if isinstance(ids, (str, bytes)) or not isinstance(ids, (_List, tuple)):
            raise ValidationError(f"delete_batch takes a list of instance ids, got {ids!r}", "e.g. ['o-1', 'o-2']")
        batches.check_size(len(ids), "instance ids")
        for i in ids:
            if i != "latest":
                check_instance_id(i)
        outcome: dict[str, dict | None] = {}
        for i in dict.fromkeys(ids):
            try:
                self.delete(i, workflow)
                outcome[i] = None
            except NotFoundError:
                outcome[i] = batches.error(batches.NOT_FOUND_IN_BATCH, i)
            except WfError as exc:  # say why (an id in several workflows, say), under Cloudflare's code
                outcome[i] = {"id": i, "code": batches.INTERNAL[0], "message": str(exc)}
        deleted = [{"id": i} for i in ids if outcome[i] is None]
        return {"deleted": deleted, "errors": [e for i in ids if (e := outcome[i]) is not None]}

    def _wake(self, waiters: Iterable[int]) -> None:
        """Tell the runners of instances that waited for one that just ended (step.wait_for_instance)."""
        for seq in waiters:
            self._notify(f"e:{seq}")

    def _control(self, row: InstanceRow, action) -> Any:
        try:
            result = action(row.seq, self.now())
        except (ConflictError, NotFoundError) as exc:
            raise exc.naming(f"instance {row.id!r}") from None
        self._notify(f"c:{row.seq}")
        return result

    # -- describe ------------------------------------------------------------------------

    def describe(self, id: str, workflow: str | None = None, *, reveal: bool = False) -> dict:
        """The instance and its steps; a step output marked sensitive shows as `[REDACTED]` unless
        `reveal` (wf.testing's `wait_for_step_result` reveals it, as the workflow itself sees it)."""
        row = self.get(id, workflow)
        steps = self.store.steps(row.seq, with_attempts=True)
        return {
            **self._with_rollback(row, status_shape(row), steps),
            "id": row.id,
            "workflow": row.workflow,
            "params": codec.decode(row.params),
            "created": row.created_at,
            "start": row.started_at,
            "end": row.ended_at,
            "steps": [_describe_step(s, reveal) for s in steps],
        }

    def step_output(
        self,
        id: str,
        name: str,
        count: int = 1,
        type: str = "step",
        attempt: int | None = None,
        workflow: str | None = None,
    ) -> dict:
        """One step's full output, as Cloudflare's `GET …/instances/{id}/step` gives it: `{status,
        error, output}` (status running, waiting, complete or errored; a sensitive output shows as
        `[REDACTED]`; a waitForEvent step's output is the event's payload, with `event_type`).
        `type` is Cloudflare's (step, sleep, waitForEvent…) or wf's kind name (do…); `attempt`
        picks one attempt of a step.do."""
        from .runtime import steps

        kinds = {steps.kind(n).display: steps.kind(n) for n in steps.names()}
        kinds.update({n: steps.kind(n) for n in steps.names()})
        kind = kinds.get(type) if isinstance(type, str) else None
        if kind is None:
            raise ValidationError(f"step type {type!r} is not one of {', '.join(kinds)}", "e.g. type='step'")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValidationError(f"step count {count!r} must be a positive integer", "counts start at 1")
        if attempt is not None and (isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1):
            raise ValidationError(f"attempt {attempt!r} must be a positive integer", "attempts count from 1")
        row = self.get(id, workflow)
        for s in self.store.steps(row.seq, with_attempts=True):
            if s.kind == kind.name and s.name == name and s.n == count:
                return kind.full_output(kind.describe(s), attempt)
        raise NotFoundError(
            f"instance {row.id!r} has no {kind.display} step {name!r} #{count}",
            f"see its steps with `wf instances describe {row.id}`",
        )

    # -- changing code under running instances -----------------------------------------

    def replay_check(
        self,
        workflow: str | None = None,
        statuses: Iterable[str] | None = None,
        id: str | None = None,
        classes: dict[str, type] | None = None,
    ) -> _List[dict]:
        """Replay the current code (`classes`, else imported from `main`) of the selected instances
        (default: every unfinished one) against their stored histories, with no side effects: one
        verdict per instance: matches, diverges (the first differing step, what would happen), error."""
        from .env import Env
        from .loader import load_workflow_classes
        from .runtime import replay

        classes = classes if classes is not None else load_workflow_classes(self.config)
        names = [self.config.workflow(workflow).name] if workflow else [w.name for w in self.config.workflows]
        wanted = list(statuses or replay.UNFINISHED)
        bad = [s for s in wanted if s not in STATUSES]
        if bad:
            raise ValidationError(f"status {bad[0]!r} is not an instance status", "use any of: " + ", ".join(STATUSES))
        rows = [self.get(id, workflow)] if id is not None else self.store.instances_in(names, wanted)
        env = Env(self.config, {w.binding: replay.Binding(w.name, w.binding) for w in self.config.workflows})
        limits = {w.name: w.step_limit for w in self.config.workflows}
        items = ((r, self.store.steps(r.seq)) for r in rows if r.workflow in classes)
        return [v.to_dict() for v in replay.check(items, classes, limits, env)]

    def hold(self, id: str, workflow: str | None = None, why: str = "") -> bool:
        """Pause an unfinished instance at once, whoever runs it (the replay check found that the
        code about to run it diverges); False if it had ended or was paused already."""
        row = self.get(id, workflow)
        held = self.store.hold(row.seq, self.now(), why)
        self._notify(f"c:{row.seq}")
        return held

    def code_checked(self, workflows: Iterable[str]) -> dict[str, str]:
        """The code fingerprint each workflow's instances were last checked against (`record_code`)."""
        return self.store.code_checked(list(workflows))

    def record_code(self, workflows: Iterable[str], fingerprint: str) -> None:
        self.store.record_code(list(workflows), fingerprint, self.now())

    def count_by_status(self, workflow: str) -> dict[str, int]:
        """How many instances of `workflow` are in each status (statuses with none are left out)."""
        self.config.workflow(workflow)
        return self.store.count_by_status(workflow)

    # -- the event log -------------------------------------------------------------------

    def history(
        self, after: int = 0, *, instance: InstanceRow | None = None, workflow: str | None = None, limit: int = 1000
    ) -> _List[HistoryRow]:
        """Event log entries after the entry numbered `after`, oldest first: of one instance (a row
        from `get`), of one workflow, or of all. Each row keeps its entry's number (`seq`), so the
        last row's `seq` is where to read on from."""
        from .runtime.history import expand

        if workflow is not None:
            self.config.workflow(workflow)
        seq = instance.seq if instance is not None else None
        return expand(self.store.history(after, seq, workflow if instance is None else None, limit))

    def subscribe(
        self,
        id: str,
        workflow: str | None = None,
        *,
        types: Iterable[str] | None = None,
        after: int | None = None,
        iso: bool = False,
    ) -> Iterator[dict]:
        """The instance's events, as Cloudflare's `instance.subscribe()` gives them (see
        wf/subscriptions.py): `types` keeps only those event types (the end still ends it); `after`
        is the `eventId` of the last event handled; times are epoch seconds, or ISO with `iso`."""
        from . import subscriptions

        return subscriptions.follow(self, self.get(id, workflow), types, after, iso)

    def last_history_seq(self) -> int:
        """The number of the newest event log entry (0 when there is none)."""
        return self.store.last_history_seq()

    # -- many at once --------------------------------------------------------------------

    def delete_all(self, workflow: str) -> int:
        """Delete every instance of `workflow`; how many there were."""
        self.config.workflow(workflow)
        deleted = 0
        while rows := self.store.list_instances(workflow, None, 500, 0):
            for row in rows:
                woken = self.store.delete(row.seq, self.now())
                self._notify(f"c:{row.seq}")
                self._wake(woken)
                deleted += 1
        return deleted

    def collect_expired(
        self, workflow: str | None = None, *, dry_run: bool = False, batch: int = GC_BATCH
    ) -> _List[dict]:
        """Delete the ended instances kept past their retention (each its own `success_retention` /
        `error_retention`, else its workflow's `default_retention`), with their history, `batch` at a
        time (one transaction each); `dry_run`: only say which. What was (or would be) deleted."""
        names = [self.config.workflow(workflow).name] if workflow else [w.name for w in self.config.workflows]
        out: _List[dict] = []
        for name in names:
            w = self.config.workflow(name)
            kept = (name, w.success_retention, w.error_retention)
            if dry_run:
                out += [_expired(r) for r in self.store.expired(*kept, self.now(), LIST_MAX)]
                continue
            while True:
                rows, woken = self.store.delete_expired(*kept, self.now(), batch)
                for row in rows:
                    self._notify(f"c:{row.seq}")
                self._wake(woken)
                out += [_expired(r) for r in rows]
                if len(rows) < batch:
                    break
        return out

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- pages of instances and their events (the web UI) ----------------------------

    def events(self, id: str, workflow: str | None = None) -> _List[dict]:
        """Events sent to an instance, oldest first: `consumed` by a wait (`taken_by` names its step) or pending."""
        row = self.get(id, workflow)
        steps = {s.pos: s for s in self.store.steps(row.seq)}
        out = []
        for event, pos in self.store.events(row.seq):
            step = steps.get(pos) if pos is not None else None
            out.append(
                {
                    "type": event.type,
                    "payload": codec.decode(event.payload),
                    "created": event.created_at,
                    "consumed": pos is not None,
                    "taken_by": {"name": step.name, "count": step.n} if step else None,
                }
            )
        return out

    def page_instances(
        self,
        workflow: str | None = None,
        status: str | None = None,
        id_prefix: str | None = None,
        since: float | None = None,
        until: float | None = None,
        before: tuple[float, int] | None = None,
        after: tuple[float, int] | None = None,
        limit: int = 25,
    ) -> _List[InstanceRow]:
        """A page of instances, newest first, by key: rows just older than `before` or just newer
        than `after` (each a `(created_at, seq)` of a row already shown); stays fast however deep."""
        if workflow is not None:
            self.config.workflow(workflow)
        if status is not None and status not in STATUSES:
            raise ValidationError(f"status {status!r} is not an instance status", "use one of: " + ", ".join(STATUSES))
        if id_prefix:
            check_id_prefix(id_prefix)
        if not 1 <= limit <= 1000:
            raise ValidationError(f"a page of {limit} instances is not allowed", "ask for 1 to 1000 per page")
        return self.store.page_instances(
            workflow=workflow,
            status=status,
            id_prefix=id_prefix or None,
            since=since,
            until=until,
            before=before,
            after=after,
            limit=limit,
        )


def _named(id: Any) -> bool:
    return isinstance(id, str) and bool(id) and id != "latest"


def _expired(row: InstanceRow) -> dict:
    return {"id": row.id, "workflow": row.workflow, "status": row.status, "ended": row.ended_at}


def _describe_step(s, reveal: bool = False) -> dict:
    """A step as its kind describes it (imported here: `wf status` never needs the step kinds)."""
    from .runtime import steps

    return steps.kind(s.kind).describe(s, reveal)


class _LazyClient(Client):
    """A client whose store is opened on the async store's own thread, on first use."""

    def __init__(self, config: Config, astore: AsyncStore, clock: Clock | None = None):
        super().__init__(config, clock=clock)
        self._astore = astore

    @property
    def store(self):
        return self._astore.open_here()


class AsyncClient:
    """`Client` for asyncio code (the HTTP server, the runner's `self.env`): the same operations,
    run on the store's own thread, so the event loop never waits on the database.

        ac = AsyncClient(config)
        row = await ac.call(ac.client.get, "order-1")
    """

    def __init__(self, config: Config, *, clock: Clock | None = None, astore: AsyncStore | None = None):
        if astore is None:
            from .runtime.store.aio import AsyncStore

            astore = AsyncStore(lambda: open_store(config.state_dir, config.store_url, config.settings))
        self.config, self.astore = config, astore
        self.client: Client = _LazyClient(config, astore, clock)

    async def call(self, fn, *args: Any) -> Any:
        """Run `fn(*args)` (a method of `self.client`) on the store's thread."""
        return await self.astore.call(fn, *args)

    def reconfigured(self, config: Config) -> AsyncClient:
        """The same store (a reload never moves the state) under a new config."""
        return AsyncClient(config, clock=self.client.clock, astore=self.astore)

    async def open(self) -> AsyncClient:
        await self.astore.open()
        return self

    async def close(self) -> None:
        await self.astore.close()

    def env(self) -> Env:
        """Async bindings and vars on this client, as a workflow's `self.env` sees them."""
        from .env import async_env

        return async_env(self.client, self.astore)


__all__ = ["Client", "AsyncClient", "check_instance_id", "status_shape"]
