"""Durations as Cloudflare writes them, in Python's units.

A duration is a number of seconds (int or float), a `timedelta`, or a string
`"<number> <unit>[s]"` with unit second, minute, hour, day, week, month (30 days) or
year (365 days). Anything else is refused with the value named.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from ..errors import ValidationError

UNITS = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": 7 * 86400,
    "month": 30 * 86400,
    "year": 365 * 86400,
}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-z]+?)s?\s*$")
_HINT = "write a number of seconds, a timedelta, or a string such as '30 seconds', '5 minutes' or '1 day'"
MAX_SLEEP = 365 * 86400


def parse_duration(value: object, what: str = "duration") -> float:
    """Seconds for `value`; ValidationError naming it when it is not a duration."""
    if isinstance(value, bool):
        raise ValidationError(f"{what} {value!r} is not a duration", _HINT)
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:
            raise ValidationError(f"{what} of {len(str(value))} digits is too large", _HINT) from None
    elif isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        seconds = _parse_text(value, what)
    else:
        raise ValidationError(f"{what} {value!r} is not a duration ({type(value).__name__})", _HINT)
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        raise ValidationError(f"{what} {value!r} must be a finite, non-negative duration", _HINT)
    return seconds


def _parse_text(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    match = _PATTERN.match(text.lower())
    if not match or match.group(2) not in UNITS:
        raise ValidationError(f"{what} {text!r} is not a duration", _HINT)
    return float(match.group(1)) * UNITS[match.group(2)]


RETENTION_DEFAULT = 7 * 86400  # Cloudflare's default for a new Workflow (Workers Paid, 2026-09-10)
RETENTION_KEYS = ("success_retention", "error_retention")
_RETENTION_CAMEL = {"successRetention": "success_retention", "errorRetention": "error_retention"}


def parse_retention(value: object, what: str, *, milliseconds: bool = False) -> dict[str, float]:
    """`{"success_retention": s, "error_retention": e}` (either may be left out), each a duration,
    as seconds; Cloudflare's camelCase keys are taken too. A number is seconds, as every `wf`
    duration, or milliseconds where Cloudflare's API and config take numbers (`milliseconds`)."""
    hint = 'e.g. {"success_retention": "3 days", "error_retention": "30 days"}'
    if not isinstance(value, dict):
        raise ValidationError(f"{what} {value!r} must be an object with success_retention / error_retention", hint)
    out = {}
    for key, item in value.items():
        name = _RETENTION_CAMEL.get(key, key)
        if name not in RETENTION_KEYS:
            raise ValidationError(
                f"{what} has an unknown key {key!r}", f"use success_retention and error_retention, {hint}"
            )
        if item is None:
            continue
        number = isinstance(item, (int, float)) and not isinstance(item, bool)
        out[name] = parse_duration(item, f"{what}: {name}") / (1000 if number and milliseconds else 1)
    return out


def parse_instant(value: object, what: str = "time") -> float:
    """Epoch seconds for a datetime or a number of epoch seconds.

    A naive datetime is read as `datetime.timestamp()` reads it, in local time: Cloudflare's docs
    write `datetime.now() + timedelta(...)`, which means the same instant on Cloudflare (where
    local time is UTC) and here. An aware datetime means the same instant everywhere."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ValidationError(
        f"{what} {value!r} is not a point in time", "pass a datetime (a naive one is local time) or epoch seconds"
    )


def timed_out(seconds: float) -> str:
    """The start of a timeout's message, in Cloudflare's words ("Execution timed out after 600000ms");
    what timed out follows it."""
    return f"Execution timed out after {round(seconds * 1000)}ms"


def format_duration(seconds: float) -> str:
    """A short human form: 250ms, 4.2s, 3m10s, 2h5m, 3d4h."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def iso_time(ts: float | None) -> str | None:
    """Epoch seconds as ISO 8601 in UTC with milliseconds (`2026-11-01T09:30:00.000Z`), as the
    explorer API and the command line's JSON write times."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
