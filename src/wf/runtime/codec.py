"""JSON in and out of the store, with Cloudflare's size limit. Never pickle."""

from __future__ import annotations

import json
from typing import Any

from ..errors import ValidationError

MAX_BYTES = 1024 * 1024  # 1 MiB, Cloudflare's limit for results, params and payloads

_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_decode = json.JSONDecoder().decode


def encode(value: Any, what: str, limit: int = MAX_BYTES) -> str:
    """Serialize `value`; ValidationError naming `what` when it is not JSON or too large."""
    try:
        text = _encoder.encode(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{what} is not JSON-serializable: {exc}",
                              "return only dicts, lists, strings, numbers, booleans and None") from None
    except RecursionError:
        raise ValidationError(f"{what} is not JSON-serializable: it refers to itself",
                              "return a tree of dicts and lists without cycles") from None
    if len(text) > limit // 4 and len(text.encode()) > limit:
        size = len(text.encode())
        raise ValidationError(f"{what} is {size:,} bytes serialized, over the 1 MiB limit",
                              "store large data elsewhere and pass a reference")
    return text


def decode(text: str | None) -> Any:
    return None if text is None else _decode(text)
