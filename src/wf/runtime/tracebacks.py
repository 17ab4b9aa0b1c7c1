"""A failed attempt's traceback as it is stored and shown: the user's frames, bounded in size.

A step's exception travels through wf's engine, asyncio and (for a sync step) a worker thread
before it is caught; those frames say nothing about the user's bug. They are left out and
counted in a last line, so the traceback starts at the user's own code (file, line, source) and
ends with the exception. Chained exceptions (`raise ... from`, or raised while handling another)
keep their parts. When no frame is the user's (a timeout, a result that is not JSON), every frame
is kept. At most `MAX_CHARS` characters are stored: a longer one keeps its end, where the
exception is.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import wf

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (which `wf status` would pay for)
if TYPE_CHECKING:
    import traceback

MAX_CHARS = 8000


@cache
def _hidden() -> tuple[tuple[str, ...], str]:
    """The folders of wf, asyncio and concurrent.futures and threading's file; and wf's templates
    (user code). Found on first use: `wf instances describe` imports this module, not asyncio."""
    import asyncio
    import concurrent.futures
    import threading

    hidden = tuple(
        str(Path(p).resolve().parent) + "/"
        for p in (wf.__file__, asyncio.__file__, concurrent.futures.__file__)  # wf, asyncio, concurrent
    ) + (str(Path(threading.__file__).resolve()),)
    return hidden, str(Path(wf.__file__).resolve().parent / "templates") + "/"


def is_internal(filename: str) -> bool:
    """A frame of wf itself, asyncio or the thread pool (not of the user's code or libraries)."""
    try:
        path = str(Path(filename).resolve())
    except (OSError, ValueError):
        return False
    hidden, templates = _hidden()
    return path.startswith(hidden) and not path.startswith(templates)


def format_traceback(exc: BaseException, max_chars: int = MAX_CHARS) -> str | None:
    """`exc`'s traceback with wf's own frames left out (None when it has no frame at all)."""
    if exc.__traceback__ is None and exc.__cause__ is None and exc.__context__ is None:
        return None
    import traceback  # here: `wf instances describe` imports this module and formats no traceback

    te = traceback.TracebackException.from_exception(exc, capture_locals=False)
    hidden = 0
    for part in _chain(te):
        frames = list(part.stack)
        mine = [f for f in frames if not is_internal(f.filename)]
        if mine:
            hidden += len(frames) - len(mine)
            part.stack = traceback.StackSummary.from_list(mine)
    text = "".join(te.format())
    if hidden:
        text += f"({hidden} frame{'s' * (hidden != 1)} of wf, asyncio and its thread pool left out)\n"
    if len(text) > max_chars:
        text = f"[the first {len(text) - max_chars} characters are cut]\n" + text[-max_chars:]
    return text


def _chain(te: traceback.TracebackException):
    seen: set[int] = set()
    while te is not None and id(te) not in seen:
        seen.add(id(te))
        yield te
        te = te.__cause__ or (None if te.__suppress_context__ else te.__context__)  # type: ignore[assignment]
