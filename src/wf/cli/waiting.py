"""`wf trigger --wait`: follow the new instance until it ends, saying what it does meanwhile.

Each notable entry of the instance's event log (a step attempt that failed, with its error,
traceback and when it is retried; a sleep; a wait for an event; the end) is printed on stderr as
the runner's log prints it; on a terminal a spinner line below shows the current step, attempt
and the countdown to the next retry. With no runner alive, the instance (and no other) runs in
this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time

from ..runtime.durations import format_duration
from .core import say
from .runlog import HumanLines

TERMINAL = ("complete", "errored", "terminated")
SHOWN = frozenset(
    {"attempt_errored", "sleep_started", "wait_started", "wait_completed", "wait_timed_out", "workflow_paused"}
    | {"rollback_started", "rollback_attempt_errored", "rollback_completed", "rollback_errored"}
)


def wait_for(c, row, quiet: bool = False) -> str:
    """Block until instance `row` ends; its final status."""
    with Progress(c, row, quiet) as progress:
        while c.runner_alive():  # if the runner goes away meanwhile, finish the instance here
            current = c.get(row.id, row.workflow)
            progress.update(current)
            if current.status in TERMINAL:
                return current.status
            time.sleep(0.05)
        from ..service import build_runner, run_until_done
        from . import runlog

        progress.note(f"no runner is active: running {row.id} here until it ends")
        runlog.install(quiet=True)  # what this runner does is told by the lines above, once
        # this instance alone: no schedules, no other queued instance (a worker runs those)
        runner = build_runner(c.config, crons=False, only=[row.seq])
        with contextlib.redirect_stdout(sys.stderr):  # what the workflow prints is chatter: stdout is data
            return asyncio.run(run_until_done(runner, row.seq, on_tick=progress.update))


class Progress:
    """The instance's log lines on stderr, and on a terminal a spinner with where it is now."""

    def __init__(self, c, row, quiet: bool):
        self.c, self.row, self.quiet = c, row, quiet
        self.cursor, self.spinner, self.console = 0, None, None
        tty = sys.stderr.isatty() and not quiet
        self.lines = HumanLines(colour=tty and not os.environ.get("NO_COLOR"))
        self.step: tuple[str, int] | None = None  # (name, attempt) of the step last heard of
        self.retry_at: float | None = None

    def __enter__(self):
        if sys.stderr.isatty() and not self.quiet:
            from rich.console import Console

            self.console = Console(stderr=True)
            self.spinner = self.console.status(f"{self.row.id}: queued")
            self.spinner.__enter__()
        return self

    def update(self, current) -> None:
        if self.quiet:
            return
        for h in self.c.history(self.cursor, instance=self.row, limit=500):
            self.cursor = h.seq
            self.follow(h)
            if h.type in SHOWN:
                self._print(f"{self.lines.when(h.at)}  {self.lines.event(h)}")
        if self.spinner is not None:
            self.spinner.update(self.state(current.status))

    def follow(self, h) -> None:
        data = h.data or {}
        if h.step is not None and "attempt" in data:
            self.step = (h.step, data["attempt"])
        if h.type == "attempt_errored":
            self.retry_at = data.get("nextRetryAt")
        elif h.type in ("attempt_started", "step_started", "step_ok", "step_completed"):
            self.retry_at = None
            if h.type == "step_started":
                self.step = (h.step, 1)

    def state(self, status: str) -> str:
        text = f"{self.row.id}: {status}"
        if self.step is not None and status not in TERMINAL:
            text += f" · step {self.step[0]!r} attempt {self.step[1]}"
            if self.retry_at is not None:
                text += f" · retry in {format_duration(max(0.0, self.retry_at - time.time()))}"
        return text

    def _print(self, line: str) -> None:
        if self.console is not None:
            from rich.text import Text

            self.console.print(Text.from_ansi(line))  # the line's own colours, above the spinner
        else:
            say(line)

    def note(self, message: str) -> None:
        if self.quiet:
            return
        if self.console is not None:
            self.console.print(message + "...", style="dim", markup=False, highlight=False)
        else:
            say(message + "...")

    def __exit__(self, *exc):
        if self.spinner is not None:
            self.spinner.__exit__(*exc)
        return False
