"""Named crash points, for tests that SIGKILL a runner at an exact moment.

Set `WF_CRASH_AT=<point>:<step name>` (several separated by commas) in a runner's environment;
the process kills itself with SIGKILL when it reaches that point of that step. Points:
`before-commit` (the attempt ran, its outcome is not stored), `after-commit` (stored, not yet
returned to run()), `sleeping`, `waiting` (a sleep or wait_for_event is recorded and pending),
`retry-delay` (a failed attempt is recorded and the retry is pending).
"""

from __future__ import annotations

import os
import signal

_POINTS = frozenset(p.strip() for p in os.environ.get("WF_CRASH_AT", "").split(",") if p.strip())


def crash_point(point: str, step: str) -> None:
    if _POINTS and f"{point}:{step}" in _POINTS:
        os.kill(os.getpid(), signal.SIGKILL)
