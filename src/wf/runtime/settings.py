"""Runtime settings: one frozen object, resolved once from the environment (and the config).

Nothing below `wf.runtime` reads an environment variable: the command line, `wf.connect()` and
`wf.testing` resolve a `Settings` here and pass it down.

| variable | setting | default |
|---|---|---|
| WF_SQLITE_SYNC | SQLite `synchronous` mode: normal or full | normal |
| WF_PG_POOL | PostgreSQL connections per process | 4 |
| WF_LEASE | seconds a PostgreSQL worker's claims outlive its last heartbeat | 30 |
| WF_MAX_RECOVERY_ATTEMPTS | runner deaths in a row, with no step finishing, before an instance fails | 100 |
| WF_CRASH_AT | crash points for tests: `before-commit:STEP,...` (see crash.py) | none |
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import ConfigError

SQLITE_MODES = ("normal", "full")


@dataclass(frozen=True)
class Settings:
    sqlite_synchronous: str = "normal"
    pg_pool: int = 4
    lease: float = 30.0
    max_recovery_attempts: int = 100
    crash_at: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        sync = environ.get("WF_SQLITE_SYNC", "normal").strip().lower() or "normal"
        if sync not in SQLITE_MODES:
            raise ConfigError(
                f"WF_SQLITE_SYNC={sync!r} is not a SQLite synchronous mode",
                "use normal (survives process crashes) or full (also survives power loss)",
            )
        return cls(
            sqlite_synchronous=sync,
            pg_pool=_number(environ, "WF_PG_POOL", 4, int, 1, 1000),
            lease=_number(environ, "WF_LEASE", 30.0, float, 0.5, 86400.0),
            max_recovery_attempts=_number(environ, "WF_MAX_RECOVERY_ATTEMPTS", 100, int, 1, 1_000_000),
            crash_at=frozenset(p.strip() for p in environ.get("WF_CRASH_AT", "").split(",") if p.strip()),
        )


def _number(environ: Mapping[str, str], name: str, default, kind: type, low: float, high: float):
    text = environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = kind(text.strip())
    except ValueError:
        value = None
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or not low <= value <= high:
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(
            f"{name}={text!r} is not {what} from {low:g} to {high:g}",
            f"set {name} to {what} in that range, or unset it for the default ({default})",
        )
    return value
