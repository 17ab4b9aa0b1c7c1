"""Workflow bindings in Cloudflare's Python shape, for a Worker's `self.env` (and `on_fetch`'s `env`).

On Cloudflare the binding is a JavaScript object: its methods take one options object, which
Python code builds with `to_js({...}, dict_converter=Object.fromEntries)`:

    instance = await self.env.MY_WORKFLOW.create(to_js({"id": i, "params": p}, dict_converter=Object.fromEntries))
    await instance.send_event(to_js({"type": "approval", "payload": {...}}, dict_converter=Object.fromEntries))

Here the same calls work, and so do a plain dict and keyword arguments (`create(id=i, params=p)`,
`send_event(type=..., payload=...)`). `status()` gives a dict whose keys read as attributes too,
as the JS object does. Vars pass through unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from ..errors import ValidationError
from ..lookup import Values
from .ffi import JsMap, JsObject, plain

CREATE_KEYS = ("id", "params", "retention")
EVENT_KEYS = ("type", "payload")


def options(given: Any, keywords: Mapping[str, Any], allowed: tuple[str, ...], call: str) -> dict:
    """One options object from a positional object and/or keyword arguments, checked."""
    if isinstance(given, JsMap):
        raise ValidationError(
            f"{call} got a JS Map: to_js(...) without dict_converter=Object.fromEntries makes a Map, "
            "from which Cloudflare's binding reads no options",
            f"write {call.split('(')[0]}(to_js({{...}}, dict_converter=Object.fromEntries))",
        )
    if given is not None and not isinstance(given, Mapping):
        raise ValidationError(
            f"{call} takes an options object ({', '.join(allowed)}), got {given!r}",
            "pass a dict or to_js({...}, dict_converter=Object.fromEntries), or keyword arguments",
        )
    merged = {**plain(dict(given or {})), **plain(dict(keywords))}
    unknown = sorted(set(merged) - set(allowed))
    if unknown:
        raise ValidationError(
            f"{call} options have unknown key {unknown[0]!r}", f"Cloudflare's options are {', '.join(allowed)}"
        )
    return merged


def create_options(given: Any, keywords: Mapping[str, Any] | None = None) -> tuple[Any, str | None]:
    """(params, id) from Cloudflare's `WorkflowInstanceCreateOptions` (its `retention`: `create_retention`)."""
    opts = options(given, keywords or {}, CREATE_KEYS, "create()")
    return opts.get("params"), opts.get("id")


def create_retention(given: Any, keywords: Mapping[str, Any] | None = None) -> dict | None:
    """The `retention` of Cloudflare's create options (`{successRetention, errorRetention}`: duration
    strings, or numbers of milliseconds as Cloudflare reads them), as seconds; None when absent."""
    from ..runtime.durations import parse_retention

    value = options(given, keywords or {}, CREATE_KEYS, "create()").get("retention")
    return None if value is None else parse_retention(value, "create() retention", milliseconds=True)


def event_options(given: Any, keywords: Mapping[str, Any] | None = None) -> tuple[str | None, Any]:
    opts = options(given, keywords or {}, EVENT_KEYS, "send_event()")
    return opts.get("type"), opts.get("payload")


class WorkflowInstance:
    """An instance as Cloudflare's Python binding gives it: `.id`, `await status()`, lifecycle methods."""

    def __init__(self, instance: Any):
        self._i = instance
        self.id = instance.id

    async def status(self) -> JsObject:
        return JsObject(await self._i.status())

    async def send_event(self, event: Any = None, /, **keywords: Any) -> None:
        type, payload = event_options(event, keywords)
        await self._i.send_event(type=type, payload=payload)

    sendEvent = send_event

    async def pause(self) -> None:
        await self._i.pause()

    async def resume(self) -> None:
        await self._i.resume()

    async def terminate(self, given: Any = None, /, **keywords: Any) -> None:
        opts = options(given, keywords, ("rollback",), "terminate()")
        await self._i.terminate(rollback=bool(opts.get("rollback")))

    async def restart(self, given: Any = None, /, **keywords: Any) -> None:
        opts = options(given, keywords, ("from",), "restart()")
        await self._i.restart(opts.get("from"))

    async def delete(self) -> None:
        await self._i.delete()

    async def subscribe(self, given: Any = None, /, **keywords: Any) -> Subscription:
        """`subscription = await instance.subscribe(to_js({"filter": [...], "cursor": n}, ...))`,
        then `await subscription.next()` (or `async for event in subscription`)."""
        opts = options(given, keywords, ("filter", "cursor"), "subscribe()")
        return Subscription(self._i.subscribe(types=opts.get("filter"), after=opts.get("cursor")))

    def __repr__(self) -> str:
        return f"WorkflowInstance({self.id!r})"


def _entry(item: Any) -> dict:
    """One `{id, params}` entry of a batch, from Cloudflare's options object."""
    params, id = create_options(item)
    retention = create_retention(item)
    return {k: v for k, v in (("params", params), ("id", id), ("retention", retention)) if v is not None}


class Subscription:
    """Cloudflare's subscription: `await subscription.next()` gives `{value, done}` (`value` an
    instance event, whose keys read as attributes); `done` once the instance has ended. Also an
    async iterator, and disposable (`with` / `dispose()`), as Cloudflare's is with `using`."""

    def __init__(self, events: AsyncIterator[dict]):
        self._events: Any = events
        self._done = False

    async def next(self) -> JsObject:
        if not self._done:
            try:
                return JsObject(value=JsObject(await self._events.__anext__()), done=False)
            except StopAsyncIteration:
                self._done = True
        return JsObject(value=None, done=True)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> JsObject:
        result = await self.next()
        if result.done:
            raise StopAsyncIteration
        return result.value

    def dispose(self) -> None:
        """Stop reading (Cloudflare's `subscription[Symbol.dispose]()`)."""
        self._done = True

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.dispose()


class WorkflowBinding:
    """`env.MY_WORKFLOW` in a Worker: create, create_batch (also createBatch), get."""

    def __init__(self, binding: Any):
        self._b = binding

    async def create(self, given: Any = None, /, **keywords: Any) -> WorkflowInstance:
        params, id = create_options(given, keywords)
        retention = create_retention(given, keywords)
        return WorkflowInstance(await self._b.create(params=params, id=id, retention=retention))

    async def create_batch(self, batch: Any) -> Any:
        """A list of options objects (the instances created), or `{count, params}` / `{instances}`
        (`{created, errors}`), as Cloudflare's `createBatch`."""
        if not isinstance(batch, (list, tuple)):
            opts = options(batch, {}, ("count", "params", "instances"), "create_batch()")
            if "instances" in opts and isinstance(opts["instances"], (list, tuple)):
                opts["instances"] = [_entry(item) for item in opts["instances"]]
            made = await self._b.create_batch(opts)
            return {"created": [WorkflowInstance(i) for i in made["created"]], "errors": made["errors"]}
        items = [_entry(item) for item in batch]
        return [WorkflowInstance(i) for i in await self._b.create_batch(items)]

    async def delete_batch(self, ids: Any) -> dict:
        """Cloudflare's `deleteBatch`: `{deleted, errors}`, one entry per id given."""
        if isinstance(ids, Mapping) or isinstance(ids, JsObject):
            ids = options(ids, {}, ("instances",), "delete_batch()").get("instances")
        return await self._b.delete_batch(plain(ids) if isinstance(ids, (list, tuple)) else ids)

    createBatch = create_batch
    deleteBatch = delete_batch

    async def get(self, id: str) -> WorkflowInstance:
        return WorkflowInstance(await self._b.get(id))

    def __repr__(self) -> str:
        return f"WorkflowBinding({getattr(self._b, 'name', '?')!r})"


class WorkerEnv(Values):
    """A Worker's `env`: the config's vars as they are, each workflow binding in Cloudflare's shape."""

    def __init__(self, env: Any):
        config = env.config
        self._values = {name: getattr(env, name) for name in config.vars}
        for workflow in config.workflows:
            self._values[workflow.binding] = WorkflowBinding(getattr(env, workflow.binding))


__all__ = [
    "Subscription",
    "WorkerEnv",
    "WorkflowBinding",
    "WorkflowInstance",
    "create_options",
    "create_retention",
    "event_options",
]
