"""The Cloudflare-shaped face of `Client`: `env.ORDERS.create(...)`, `instance.status()`.

    env = wf.connect()                                  # async bindings, like Cloudflare's env
    inst = await env.ORDERS.create(params={...})
    env = wf.connect_sync()                             # the same, synchronous, for scripts

The same bindings are a workflow's `self.env` under the runner.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .client import AsyncClient, Client
from .config import Config, load_config
from .errors import ValidationError
from .lookup import Values
from .runtime.engine import stop_if_own
from .subscriptions import SUBSCRIBE_PAGE, SUBSCRIBE_POLL, page, subscription_options

if TYPE_CHECKING:
    from .runtime.store.aio import AsyncStore


class SyncInstance:
    def __init__(self, client: Client, workflow: str, id: str):
        self._client, self.workflow, self.id = client, workflow, id

    def status(self) -> dict:
        return self._client.status(self.id, self.workflow)

    def send_event(self, type: Any = None, payload: Any = None) -> None:
        if isinstance(type, Mapping):  # Cloudflare's form: send_event(to_js({"type": t, "payload": p}, ...))
            from .cloudflare.bindings import event_options

            type, payload = event_options(type, {} if payload is None else {"payload": payload})
        self._client.send_event(self.id, type, payload, self.workflow)

    def pause(self) -> None:
        self._client.pause(self.id, self.workflow)

    def resume(self) -> None:
        self._client.resume(self.id, self.workflow)

    def terminate(self, options: Mapping | None = None, /, *, rollback: bool = False) -> None:
        """End the instance; `rollback=True` (or Cloudflare's `{"rollback": True}`) runs its rollback
        handlers first. An instance terminating itself without rollback stops there."""
        if not self._terminate(options, rollback):
            stop_if_own(self.workflow, self.id)

    def _terminate(self, options: Mapping | None, rollback: bool) -> bool:
        if options is not None:
            from .cloudflare.bindings import options as checked

            rollback = bool(
                checked(options, {"rollback": rollback} if rollback else {}, ("rollback",), "terminate()").get(
                    "rollback"
                )
            )
        self._client.terminate(self.id, self.workflow, rollback=rollback)
        return rollback

    def restart(self, from_step: str | dict | None = None) -> None:
        name, count, kind = _from_step(from_step)
        self._client.restart(self.id, self.workflow, name, count, kind)

    def delete(self) -> None:
        self._client.delete(self.id, self.workflow)
        stop_if_own(self.workflow, self.id)

    def subscribe(self, types: Iterable[str] | None = None, after: int | None = None) -> Iterator[dict]:
        """The instance's events, history first, then live, until it ends (see `Client.subscribe`)."""
        return self._client.subscribe(self.id, self.workflow, types=types, after=after)

    def __repr__(self) -> str:
        return f"Instance({self.workflow!r}, {self.id!r})"


def _from_step(from_step) -> tuple[str | None, int, str]:
    if from_step is None or isinstance(from_step, str):
        return from_step, 1, "do"
    if isinstance(from_step, dict) and "name" in from_step:
        return from_step["name"], from_step.get("count", 1), from_step.get("type", "do")
    raise ValidationError(
        f"from_step {from_step!r} must be a step name or {{'name', 'count', 'type'}}",
        "e.g. restart(from_step='charge-card')",
    )


def _cloudflare_options(params: Any, id: str | None, retention: Any = None) -> tuple[Any, str | None, Any]:
    """`create(to_js({"id": ..., "params": ..., "retention": ...}, dict_converter=Object.fromEntries))`,
    Cloudflare's form, where wf's takes `params` first: a `to_js` object is read as the options object."""
    from .cloudflare.ffi import JsMap, JsObject

    if isinstance(params, (JsObject, JsMap)) and id is None:
        from .cloudflare.bindings import create_options, create_retention

        return (*create_options(params), create_retention(params))
    return params, id, retention


class SyncWorkflow:
    """`env.ORDERS` in a script: create, create_batch, get."""

    def __init__(self, client: Client, name: str):
        self._client, self.name = client, name

    def create(self, params: Any = None, id: str | None = None, *, retention: dict | None = None) -> SyncInstance:
        params, id, retention = _cloudflare_options(params, id, retention)
        row = self._client.create(self.name, params, id, retention=retention)
        return SyncInstance(self._client, self.name, row.id)

    def create_batch(self, items: Iterable[dict] | Mapping) -> Any:
        """A list of `{id, params}`: the instances created (ids that exist are skipped). Or
        Cloudflare's newer form, `{"count": n, "params": p}` / `{"instances": [...]}`:
        `{"created": [instances], "errors": [{"index", "id", "code", "message"}]}`."""
        if isinstance(items, Mapping):
            made = self._client.create_many(self.name, items)
            created = [SyncInstance(self._client, self.name, c["id"]) for c in made["created"]]
            return {"created": created, "errors": made["errors"]}
        return [SyncInstance(self._client, self.name, r.id) for r in self._client.create_batch(self.name, items)]

    def delete_batch(self, ids: Any) -> dict:
        """Cloudflare's `deleteBatch`: `{"deleted": [{"id"}], "errors": [{"id", "code", "message"}]}`."""
        return self._client.delete_batch(ids, self.name)

    def get(self, id: str) -> SyncInstance:
        row = self._client.get(id, self.name)
        return SyncInstance(self._client, self.name, row.id)


class AsyncInstance:
    def __init__(self, astore: AsyncStore, client: Client, workflow: str, id: str):
        self._a, self._client, self._sync = astore, client, SyncInstance(client, workflow, id)
        self.workflow, self.id = workflow, id

    async def status(self) -> dict:
        return await self._a.call(self._sync.status)

    async def send_event(self, type: str | None = None, payload: Any = None) -> None:
        await self._a.call(self._sync.send_event, type, payload)

    async def pause(self) -> None:
        await self._a.call(self._sync.pause)

    async def resume(self) -> None:
        await self._a.call(self._sync.resume)

    async def terminate(self, options: Mapping | None = None, /, *, rollback: bool = False) -> None:
        if not await self._a.call(self._sync._terminate, options, rollback):
            stop_if_own(self.workflow, self.id)

    async def restart(self, from_step: str | dict | None = None) -> None:
        await self._a.call(self._sync.restart, from_step)

    async def delete(self) -> None:
        await self._a.call(self._client.delete, self.id, self.workflow)
        stop_if_own(self.workflow, self.id)

    async def subscribe(self, types: Iterable[str] | None = None, after: int | None = None) -> AsyncIterator[dict]:
        """Cloudflare's `instance.subscribe()`: `async for event in instance.subscribe(): ...` gives
        the instance's events (`{"type", "eventId", "instanceId", "timestamp", ...}`), its history
        first, then each new one as it happens, and ends when the instance ends. `types` keeps only
        those event types; `after` resumes after the event with that `eventId`."""
        wanted, cursor = subscription_options(types, after)
        client = self._sync._client
        row = await self._a.call(client.get, self.id, self.workflow)
        while True:
            events, cursor, over = await self._a.call(page, client, row, cursor, wanted)
            for event in events:
                yield event
            if over:
                return
            if len(events) < SUBSCRIBE_PAGE:
                await asyncio.sleep(SUBSCRIBE_POLL)

    def __repr__(self) -> str:
        return f"Instance({self.workflow!r}, {self.id!r})"


class AsyncWorkflow:
    """`env.ORDERS` in async code, as on Cloudflare."""

    def __init__(self, astore: AsyncStore, client: Client, name: str):
        self._a, self._client, self.name = astore, client, name
        self._sync = SyncWorkflow(client, name)

    async def create(
        self, params: Any = None, id: str | None = None, *, retention: dict | None = None
    ) -> AsyncInstance:
        """A new instance; `retention={"success_retention": "2 days", "error_retention": "30 days"}`
        (Cloudflare's `retention` option) keeps it that long once it ends, instead of the workflow's
        `default_retention`."""
        inst = await self._a.call(lambda: self._sync.create(params, id, retention=retention))
        return AsyncInstance(self._a, self._client, self.name, inst.id)

    async def create_batch(self, items: Iterable[dict] | Mapping) -> Any:
        """As `SyncWorkflow.create_batch`: a list, or `{"created", "errors"}` for `{count}` / `{instances}`."""
        if isinstance(items, Mapping):
            made = await self._a.call(self._sync.create_batch, items)
            wrap = [AsyncInstance(self._a, self._client, self.name, i.id) for i in made["created"]]
            return {"created": wrap, "errors": made["errors"]}
        made = await self._a.call(self._sync.create_batch, list(items))
        return [AsyncInstance(self._a, self._client, self.name, i.id) for i in made]

    async def delete_batch(self, ids: Any) -> dict:
        return await self._a.call(self._sync.delete_batch, ids)

    async def get(self, id: str) -> AsyncInstance:
        inst = await self._a.call(self._sync.get, id)
        return AsyncInstance(self._a, self._client, self.name, inst.id)


class Env(Values):
    """Vars and workflow bindings by name: `env.API_BASE`, `env.ORDERS`, also `env["ORDERS"]`."""

    def __init__(self, config: Config, bindings: dict[str, Any]):
        self.config = config
        self._values = {**dict(config.vars), **bindings}


def sync_env(client: Client) -> Env:
    return Env(client.config, {w.binding: SyncWorkflow(client, w.name) for w in client.config.workflows})


def async_env(client: Client, astore: AsyncStore) -> Env:
    return Env(client.config, {w.binding: AsyncWorkflow(astore, client, w.name) for w in client.config.workflows})


def connect_sync(
    config: str | Path | Config | None = None,
    *,
    store: str | None = None,
    env: str | None = None,
    persist_to: str | Path | None = None,
) -> Env:
    """Bindings for scripts: `wf.connect_sync().ORDERS.create(params={...})`."""
    cfg = config if isinstance(config, Config) else load_config(config, env=env, store=store, persist_to=persist_to)
    return sync_env(Client(cfg))


def connect(
    config: str | Path | Config | None = None,
    *,
    store: str | None = None,
    env: str | None = None,
    persist_to: str | Path | None = None,
) -> Env:
    """Async bindings: `await wf.connect().ORDERS.create(params={...})`."""
    cfg = config if isinstance(config, Config) else load_config(config, env=env, store=store, persist_to=persist_to)
    return AsyncClient(cfg).env()


__all__ = ["Env", "connect", "connect_sync", "sync_env", "async_env"]
