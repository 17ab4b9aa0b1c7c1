"""`wf worker`'s body, without typer: the fast path (fast.py) starts a worker from here on a plain
command line, so that a worker restarted after a crash is running instances again as soon as
Python and the engine are loaded (typer and what it imports cost a worker's start a third more).
The typer command (commands.py) calls the same function."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def worker(
    load: Callable[[], Any],
    concurrency: int = 1000,
    replay_always: bool = False,
    lease: float | None = None,
    log_format: str = "human",
    quiet: bool = False,
    reap_interval: float = 1.0,
) -> None:
    """Run a runner until SIGINT/SIGTERM (or until its store fails it); `load` gives the config
    (having said its warnings)."""
    from ..service import build_runner
    from . import runlog

    runlog.install(log_format, quiet)
    config = load()
    runner = build_runner(
        config, concurrency=concurrency, replay_always=replay_always, lease=lease, reap_interval=reap_interval
    )
    announce_crons()
    asyncio.run(_serve(runner, config))


async def _serve(runner, config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    from ..client import Client
    from ..errors import StoreError
    from ..service import check_before_running
    from . import runlog
    from .views import say

    log_to_stderr()
    await check_before_running(config, runner, say)  # new code: replay its unfinished instances first
    await runner.start()
    names = ", ".join(w.name for w in config.workflows) or "(none)"
    runlog.say(f"wf worker {runner.owner} ready: workflows {names}; state in {Client(config).store_name}")
    await asyncio.wait(
        [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(runner.failed.wait())],
        return_when=asyncio.FIRST_COMPLETED,
    )
    runlog.say("stopping: letting in-flight steps finish...")
    await runner.stop()
    if runner.failure:
        raise StoreError(f"the worker stopped: {runner.failure}", "start it again; it opens the store afresh")


def announce_crons() -> None:
    """Say on stderr each time a schedule fires (the runner logs it to `wf.cron`)."""
    import logging

    from . import runlog

    class Say(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            runlog.say(record.getMessage())

    logger = logging.getLogger("wf.cron")
    logger.setLevel(logging.INFO)
    logger.addHandler(Say())
    logger.propagate = False  # said once, here


def log_to_stderr() -> None:
    """The runtime's own messages (a store that fails, a runner taking over instances) go to
    stderr, whatever workflow code does with the root logger."""
    import logging

    from . import runlog

    logger = logging.getLogger("wf")
    handler = next((h for h in logger.handlers if getattr(h, "wf_stderr", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.wf_stderr = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    handler.setFormatter(runlog.formatter())
    logger.setLevel(logging.INFO)
    logger.propagate = False  # workflow code's root handlers (and the capture of printed lines) stay out
