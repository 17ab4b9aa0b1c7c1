"""JSON in and out of the store, with Cloudflare's size limit. Never pickle."""

from __future__ import annotations

import json

from ..errors import ValidationError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (which `wf status` would pay for)
if TYPE_CHECKING:
    from typing import Any

MAX_BYTES = 1024 * 1024  # 1 MiB, Cloudflare's limit for results, params and payloads


def _plain(value: Any) -> Any:
    """What an object that knows its JSON shape (`__json__`, as the events `run()` receives do) is
    stored as; anything else is not JSON."""
    shape = getattr(type(value), "__json__", None)
    if shape is None:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
    return shape(value)


_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_plain)
_decode = json.JSONDecoder().decode


def encode(value: Any, what: str, limit: int = MAX_BYTES) -> str:
    """Serialize `value`; ValidationError naming `what` when it is not JSON or too large."""
    try:
        text = _encoder.encode(value)
    except (TypeError, ValueError) as exc:
        bad = _non_finite(value) if isinstance(exc, ValueError) else None
        detail = f"it contains {bad}, and NaN/Infinity are not JSON numbers" if bad else str(exc)
        raise ValidationError(
            f"{what} is not JSON-serializable: {detail}",
            "return only dicts, lists, strings, numbers, booleans and None",
        ) from None
    except RecursionError:
        raise ValidationError(
            f"{what} is not JSON-serializable: it refers to itself", "return a tree of dicts and lists without cycles"
        ) from None
    try:
        size = len(text.encode())
    except UnicodeEncodeError as exc:
        raise ValidationError(
            f"{what} is not valid Unicode text: it contains the lone surrogate {text[exc.start : exc.end]!r}",
            "pass text as real characters, not halves of a UTF-16 pair",
        ) from None
    if size > limit:
        raise ValidationError(
            f"{what} is {size:,} bytes serialized, over the 1 MiB limit",
            "store large data elsewhere and pass a reference",
        )
    return text


def _non_finite(value: Any, path: str = "", depth: int = 0) -> str | None:
    """`nan at ["a"][0]` for the first NaN/Infinity float in `value` (the Python 3.11 json
    error does not say which value it was)."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return f"{value!r}" + (f" at {path}" if path else "")
    if depth > 50:
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for key, item in items:
        found = _non_finite(item, f"{path}[{key!r}]" if isinstance(key, str) else f"{path}[{key}]", depth + 1)
        if found:
            return found
    return None


def decode(text: str | None) -> Any:
    return None if text is None else _decode(text)
