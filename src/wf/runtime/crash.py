"""Named crash points, for tests that SIGKILL a runner at an exact moment.

A runner started with `WF_CRASH_AT=<point>:<step name>` (several separated by commas; read into
`Settings.crash_at`) arms them; the process kills itself with SIGKILL when it reaches that point
of that step. Points: `before-commit` (the attempt ran, its outcome is not stored),
`after-commit` (stored, not yet returned to run()), `sleeping`, `waiting` (a sleep or
wait_for_event is recorded and pending), `retry-delay` (a failed attempt is recorded and the
retry is pending).

`WF_CRASH_AT=claimed:stop` makes the runner stop itself (SIGSTOP, as a frozen VM would be), once,
right after a claim of instances returned and before it runs any of them.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable

_points: frozenset[str] = frozenset()


def arm(points: Iterable[str]) -> None:
    global _points
    _points = frozenset(points)


def crash_point(point: str, step: str) -> None:
    if _points and f"{point}:{step}" in _points:
        os.kill(os.getpid(), signal.SIGKILL)


def stop_point(point: str) -> None:
    global _points
    key = f"{point}:stop"
    if _points and key in _points:
        _points = _points - {key}
        os.kill(os.getpid(), signal.SIGSTOP)
