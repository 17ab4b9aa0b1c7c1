"""Runtime settings: one frozen object, resolved once from the environment (and the config).

Nothing below `wf.runtime` reads an environment variable: the command line, `wf.connect()` and
`wf.testing` resolve a `Settings` here and pass it down.

| variable | setting | default |
|---|---|---|
| WF_DURABILITY | power-loss: what wf acknowledges is on disk first (grouped syncs); process: faster, | power-loss |
|               | survives a crash of wf but not of the machine | |
| WF_SQLITE_SYNC | the older spelling: full means power-loss, normal means process | |
| WF_PG_POOL | PostgreSQL connections per process | 4 |
| WF_PG_PIPELINE | 0 to send a PostgreSQL transaction's statements one wait at a time (no pipeline mode) | 1 |
| WF_LEASE | seconds a PostgreSQL worker's claims outlive its last heartbeat | 30 |
| WF_MAX_RECOVERY_ATTEMPTS | runner deaths in a row, with no step finishing, before an instance fails | 100 |
| WF_CRASH_AT | crash points for tests: `before-commit:STEP,...` (see crash.py) | none |
| WF_ON_DIVERGENCE | what a runner about to run new code does with instances whose history the code | warn |
|                  | diverges from (the replay check): warn (report them loudly, run them anyway) or hold | |
|                  | (report them and pause them, to be resumed once the code handles them) | |
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..errors import ConfigError
from ..records import dataclass

DURABILITY = ("power-loss", "process")
ON_DIVERGENCE = ("warn", "hold")
_SQLITE_SYNC = {"full": "power-loss", "normal": "process", "extra": "power-loss"}


@dataclass(frozen=True)
class Settings:
    durability: str = "power-loss"
    pg_pool: int = 4
    pg_pipeline: bool = True
    lease: float = 30.0
    max_recovery_attempts: int = 100
    crash_at: frozenset[str] = frozenset()
    on_divergence: str = "warn"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        return cls(
            durability=_durability(environ),
            pg_pool=_number(environ, "WF_PG_POOL", 4, int, 1, 1000),
            pg_pipeline=bool(_number(environ, "WF_PG_PIPELINE", 1, int, 0, 1)),
            lease=_number(environ, "WF_LEASE", 30.0, float, 0.5, 86400.0),
            max_recovery_attempts=_number(environ, "WF_MAX_RECOVERY_ATTEMPTS", 100, int, 1, 1_000_000),
            crash_at=frozenset(p.strip() for p in environ.get("WF_CRASH_AT", "").split(",") if p.strip()),
            on_divergence=_on_divergence(environ),
        )


def _on_divergence(environ: Mapping[str, str]) -> str:
    mode = environ.get("WF_ON_DIVERGENCE", "").strip().lower() or "warn"
    if mode not in ON_DIVERGENCE:
        raise ConfigError(
            f"WF_ON_DIVERGENCE={mode!r} is not a choice",
            "use warn (the default: report instances the new code diverges from, run them anyway) or hold "
            "(report them and pause them)",
        )
    return mode


def _durability(environ: Mapping[str, str]) -> str:
    mode = environ.get("WF_DURABILITY", "").strip().lower()
    if mode:
        if mode not in DURABILITY:
            raise ConfigError(
                f"WF_DURABILITY={mode!r} is not a durability mode",
                "use power-loss (the default: what wf acknowledges survives a power cut) or process "
                "(faster: survives a crash of wf, not of the machine)",
            )
        return mode
    sync = environ.get("WF_SQLITE_SYNC", "").strip().lower()
    if sync and sync not in _SQLITE_SYNC:
        raise ConfigError(
            f"WF_SQLITE_SYNC={sync!r} is not a SQLite synchronous mode",
            "set WF_DURABILITY=power-loss or WF_DURABILITY=process instead",
        )
    return _SQLITE_SYNC.get(sync, "power-loss")


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
            f"{name}={text!r} is not {what} from {low:,g} to {high:,g}",
            f"set {name} to {what} in that range, or unset it for the default ({default})",
        )
    return value
