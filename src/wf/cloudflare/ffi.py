"""What Pyodide's FFI and the `js` globals come to on CPython: plain Python values.

On Cloudflare a Python Worker talks to JavaScript through Pyodide: `to_js` turns a dict into a
JS object (with `dict_converter=Object.fromEntries`) or a JS `Map` (without it), and the values a
binding returns are proxies that `python_from_rpc` turns back. Under wf there is no JavaScript on
the other side, so these are (nearly) the identity: `to_js` returns a `JsObject` (a dict whose
keys are also attributes, as a JS object's are) and every `python_*_rpc` helper returns its
argument. The one difference kept on purpose: `to_js(dict)` *without* `Object.fromEntries` gives
a `JsMap`, and a wf binding refuses it with the reason, because on Cloudflare a binding reads no
`id` or `params` from a Map (the instance would silently start with no params).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any


class JsObject(dict):
    """A JS object as Python sees it here: a dict whose keys read as attributes too (`o.params`)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def to_py(self, **_options: Any) -> dict:
        """Pyodide's `JsProxy.to_py()`: the plain Python value."""
        return plain(self)


class JsMap(dict):
    """What `to_js(dict)` makes without a `dict_converter`: a JS `Map` on Cloudflare."""

    def to_py(self, **_options: Any) -> dict:
        return plain(self)


class JsProxy:
    """Pyodide's proxy of a JS value. Nothing is a JS value under wf: `isinstance(x, JsProxy)` is False."""


class JsException(Exception):  # noqa: N818 - Pyodide's name
    """Pyodide's error for an exception thrown in JavaScript (never raised under wf)."""


jsnull = None  # Pyodide's JS `null`; here, as everywhere in Python, None


def plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def to_js(
    obj: Any,
    *,
    depth: int = -1,
    pyproxies: Any = None,
    create_pyproxies: bool = True,
    dict_converter: Callable[[Iterable[tuple[Any, Any]]], Any] | None = None,
    default_converter: Callable | None = None,
    eager_converter: Callable | None = None,
) -> Any:
    """Pyodide's `to_js`: dicts become `JsObject`s with `dict_converter=Object.fromEntries`, `JsMap`s
    without one (see the module docstring); lists and tuples become lists; other values stay."""
    convert = dict_converter or JsMap

    def walk(value: Any, level: int) -> Any:
        if level == 0:
            return value
        if isinstance(value, dict):
            return convert((k, walk(v, level - 1)) for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return [walk(v, level - 1) for v in value]
        return value

    return walk(obj, depth)


def create_proxy(obj: Any, **_options: Any) -> Any:
    """Pyodide keeps a Python object alive for JavaScript; here there is nothing to keep it from."""
    return obj


def create_once_callable(obj: Callable, **_options: Any) -> Callable:
    return obj


def destroy_proxies(_proxies: Any) -> None:
    """Nothing to free: no proxies are made under wf."""


def python_from_rpc(obj: Any) -> Any:
    """Cloudflare converts a JS value received over RPC; under wf it is already a Python value."""
    return obj


def python_to_rpc(obj: Any) -> Any:
    """Cloudflare converts a Python value to send over RPC; under wf it is sent as it is."""
    return obj


def import_from_javascript(module_name: str) -> Any:
    """Cloudflare imports a JavaScript module; there is none to import outside Cloudflare."""
    raise ImportError(
        f"import_from_javascript({module_name!r}) is not available outside Cloudflare: wf runs your Worker on "
        "CPython, where there is no JavaScript module to import. Keep the call in code that only runs on "
        "Cloudflare, or reach what you need through self.env."
    )


# -- the few JavaScript globals Python Workers use -----------------------------------------


class Object:
    """`js.Object`: `Object.fromEntries(pairs)` (what `to_js` takes as `dict_converter`), keys, values,
    entries, assign."""

    @staticmethod
    def fromEntries(entries: Iterable[tuple[Any, Any]]) -> JsObject:  # noqa: N802 - JavaScript's name
        return JsObject(entries.items() if isinstance(entries, dict) else entries)

    @staticmethod
    def keys(obj: dict) -> list:
        return list(obj)

    @staticmethod
    def values(obj: dict) -> list:
        return list(obj.values())

    @staticmethod
    def entries(obj: dict) -> list:
        return [[k, v] for k, v in obj.items()]

    @staticmethod
    def assign(target: dict, *sources: dict) -> dict:
        for source in sources:
            target.update(source)
        return target

    @staticmethod
    def new(*_args: Any) -> JsObject:
        return JsObject()


class JSON:
    """`js.JSON`: parse (objects read as attributes too) and stringify."""

    @staticmethod
    def parse(text: str | bytes) -> Any:
        return json.loads(text, object_hook=JsObject)

    @staticmethod
    def stringify(value: Any, _replacer: Any = None, space: int | str | None = None) -> str:
        if space:
            return json.dumps(value, indent=space, ensure_ascii=False)
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _text(*args: Any) -> str:
    return " ".join(
        a if isinstance(a, str) else JSON.stringify(a) if isinstance(a, (dict, list)) else str(a) for a in args
    )


class console:  # noqa: N801 - JavaScript's name
    """`js.console`: log, info and debug print to stdout; warn and error to stderr (where wf's
    event log picks up lines printed by workflow code)."""

    @staticmethod
    def log(*args: Any) -> None:
        print(_text(*args))

    info = debug = log

    @staticmethod
    def warn(*args: Any) -> None:
        print(_text(*args), file=sys.stderr)

    error = warn


class Date:
    """`js.Date.now()`: milliseconds since the epoch."""

    @staticmethod
    def now() -> float:
        return time.time() * 1000


__all__ = [
    "JsObject",
    "JsMap",
    "JsProxy",
    "JsException",
    "jsnull",
    "to_js",
    "create_proxy",
    "create_once_callable",
    "destroy_proxies",
    "python_from_rpc",
    "python_to_rpc",
    "import_from_javascript",
    "Object",
    "JSON",
    "console",
    "Date",
]
