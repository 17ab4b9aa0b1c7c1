"""Lines printed or logged by workflow code, attributed to their instance and step.

While a runner runs, `sys.stdout`, `sys.stderr` and the root logger pass every line through
as usual and, when the line comes from workflow code, also hand it to the instance that
printed it (found through a context variable that follows tasks and worker threads).
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

current: ContextVar = ContextVar("wf_current_step", default=None)  # (execution, step name, n)


class _Tee:
    def __init__(self, stream, name: str):
        self._stream, self._name = stream, name

    def write(self, text: str) -> int:
        where = current.get()
        if where is not None and text:
            where[0].capture(where[1], where[2], self._name, text)
        return self._stream.write(text)

    def __getattr__(self, attr):
        return getattr(self._stream, attr)


class _Handler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        where = current.get()
        if where is not None:
            try:
                where[0].capture(
                    where[1], where[2], "log", f"{record.levelname} {record.name}: {record.getMessage()}\n"
                )
            except Exception:  # a log line must never break a step
                pass


_installed = 0
_saved: tuple | None = None
_handler = _Handler()


def install() -> None:
    global _installed, _saved
    _installed += 1
    if _installed == 1:
        _saved = (sys.stdout, sys.stderr)
        sys.stdout, sys.stderr = _Tee(sys.stdout, "stdout"), _Tee(sys.stderr, "stderr")
        logging.getLogger().addHandler(_handler)


def uninstall() -> None:
    global _installed, _saved
    _installed -= 1
    if _installed == 0 and _saved is not None:
        if isinstance(sys.stdout, _Tee):
            sys.stdout = _saved[0]
        if isinstance(sys.stderr, _Tee):
            sys.stderr = _saved[1]
        logging.getLogger().removeHandler(_handler)
        _saved = None
