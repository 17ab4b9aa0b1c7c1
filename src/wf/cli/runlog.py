"""The log of `wf worker` and `wf dev` on stderr: one line per instance event, and (`wf dev`) per
HTTP request.

The runner reports events on the `wf.events` logger (runtime/report.py), `wf dev` its requests
on `wf.http`. Here they become lines for a person (time, instance, workflow, what happened;
coloured on a terminal unless NO_COLOR is set; a failed attempt's traceback indented under it)
or, with `--log-format json`, one JSON object per line in the shape `wf tail --json` streams.
`--quiet` leaves both loggers silent (wf's own warnings and errors still show).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from datetime import datetime
from typing import Any

from ..runtime.durations import format_duration, iso_time
from ..runtime.events import shape as instance_event_json

FORMATS = ("human", "json")
TRACEBACK_LINES = 12  # a traceback longer than this shows its first lines and its last

_mode = {"format": "human"}  # what install() chose, for the lines the commands say themselves

_COLOURS = {"red": "31", "green": "32", "yellow": "33", "blue": "34", "magenta": "35", "cyan": "36", "dim": "2"}


def install(log_format: str = "human", quiet: bool = False, stream=None) -> None:
    """Send instance events and HTTP requests to stderr (or `stream`) in `log_format`."""
    from ..errors import ValidationError

    if log_format not in FORMATS:
        raise ValidationError(f"--log-format {log_format!r} is not known", "use --log-format human or json")
    _mode["format"] = log_format
    stream = stream or sys.stderr
    colour = log_format == "human" and stream.isatty() and not os.environ.get("NO_COLOR")
    formatter = JsonLines() if log_format == "json" else HumanLines(colour)
    for name in ("wf.events", "wf.http"):
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if getattr(h, "wf_runlog", False)]:
            logger.removeHandler(old)
        handler = logging.StreamHandler(stream)
        handler.wf_runlog = True  # type: ignore[attr-defined]
        handler.setFormatter(formatter)
        logger.addHandler(handler)
        logger.setLevel(logging.CRITICAL + 1 if quiet else logging.INFO)
        logger.propagate = False  # said once, here (not again by the `wf` logger's handler)


def say(message: str) -> None:
    """A line of the runner's own (ready, stopping, a schedule fired) in the log's format, so that
    with --log-format json every line on stderr is JSON."""
    if _mode["format"] == "json":
        line = {"level": "info", "type": "message", "timestamp": iso_time(time.time()), "message": message}
        sys.stderr.write(json.dumps(line) + "\n")
    else:
        sys.stderr.write(message + "\n")
    sys.stderr.flush()


def formatter() -> logging.Formatter:
    """For wf's own log records (a store that fails, instances taken over), in the log's format."""
    if _mode["format"] == "json":
        return JsonLines()
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


# ---------------------------------------------------------------- JSON


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        found = getattr(record, "wf_event", None)
        if found is not None:
            return json.dumps({"level": record.levelname.lower(), **event_json(found)}, default=str)
        request = getattr(record, "wf_request", None)
        if request is not None:
            return json.dumps(
                {"level": "info", "type": "http_request", "timestamp": iso_time(record.created), **request}
            )
        when = iso_time(record.created)
        line = {"level": record.levelname.lower(), "type": "message", "timestamp": when, "message": record.getMessage()}
        return json.dumps(line)


def event_json(found: dict) -> dict:
    """An instance event the runner reported, as `wf tail --json` shows it."""
    event = found["event"]
    return instance_event_json(event.type, event.at, found["id"], found["workflow"], event.step, event.n, event.data)


# ---------------------------------------------------------------- for people


class HumanLines(logging.Formatter):
    """`12:00:01.250  order-17  order-processing  step 'charge' attempt 2 failed: ConnectionError: down; retry in 4s`"""

    def __init__(self, colour: bool):
        super().__init__()
        self.colour = colour

    def paint(self, text: str, colour: str | None) -> str:
        return f"\x1b[{_COLOURS[colour]}m{text}\x1b[0m" if self.colour and colour else text

    def format(self, record: logging.LogRecord) -> str:
        found = getattr(record, "wf_event", None)
        request = getattr(record, "wf_request", None)
        when = self.when(found["event"].at if found is not None else record.created)
        if found is not None:
            return f"{when}  {found['id']}  {found['workflow']}  " + self.event(found["event"])
        if request is not None:
            status = request["status"]
            colour = "red" if status >= 500 else "yellow" if status >= 400 else None
            took = f"{request['ms']:.0f} ms" if request["ms"] >= 1 else f"{request['ms']:.2f} ms"
            return f"{when}  {request['method']} {request['path']} {self.paint(str(status), colour)} {took}"
        return f"{when}  {record.getMessage()}"

    def when(self, at: float) -> str:
        return self.paint(datetime.fromtimestamp(at).strftime("%H:%M:%S.%f")[:-3], "dim")

    def event(self, event) -> str:
        data = event.data or {}
        step = f"step {event.step!r}" + (f" #{event.n}" if event.n and event.n > 1 else "")
        kind = event.type
        if kind == "workflow_started":
            return self.paint("started", "cyan")
        if kind == "workflow_completed":
            return self.paint("completed", "green") + f": {_short(data.get('output'))}"
        if kind == "workflow_paused":
            return self.paint("paused", "yellow")
        if kind in ("workflow_errored", "workflow_terminated"):
            return self.paint(kind.removeprefix("workflow_"), "red") + f": {_error(data)}" + self.trace(data)
        if kind == "attempt_errored":
            return self.failed(step, data, event.at)
        if kind == "sleep_started":
            wake = data.get("wakeAt")
            span = format_duration(max(0.0, wake - event.at)) + ", " if isinstance(wake, (int, float)) else ""
            return self.paint(f"{step} sleeping", "blue") + f" {span}until {_clock(wake)}"
        if kind == "wait_started":
            awaited = repr(data["eventType"]) if data.get("eventType") else "any event"
            return self.paint(f"{step} waiting for {awaited}", "magenta") + f" until {_clock(data.get('timeoutAt'))}"
        if kind == "wait_completed":
            return f"{step} took an event"
        if kind == "wait_timed_out":
            return self.paint(f"{step} timed out waiting", "red") + (f": {_error(data)}" if data.get("error") else "")
        if kind == "rollback_started":
            return self.paint("rolling back: the rollback handlers run, newest step first", "yellow")
        if kind == "rollback_attempt_errored":
            return self.failed(f"rollback of {step}", data, event.at)
        if kind == "rollback_completed":
            return self.paint("rolled back", "green") + ": every handler ran"
        if kind == "rollback_errored":
            return self.paint(f"rollback stopped: the handler of {step} failed for good", "red") + f": {_error(data)}"
        if kind == "log":
            return self.paint(f"{step + ' ' if event.step else ''}│ {data.get('line', '')}", "dim")
        return f"{step} {kind}" if event.step else kind

    def failed(self, step: str, data: dict, at: float) -> str:
        attempt = f" attempt {data['attempt']}" if data.get("attempt") else ""
        line = self.paint(f"{step}{attempt} failed", "red") + f": {_error(data)}"
        retry_at = data.get("nextRetryAt")
        if retry_at is not None:
            line += self.paint(f"; retry in {format_duration(max(0.0, retry_at - at))}", "yellow")
            line += f" (at {_clock(retry_at)})"
        else:
            line += self.paint("; no retries left", "red")
        return line + self.trace(data)

    def trace(self, data: dict) -> str:
        traceback = data.get("traceback")
        if not traceback:
            return ""
        # the frames, under the line that names the error (the "Traceback (most recent call last)"
        # header would read like wf itself crashing)
        lines = [line for line in traceback.rstrip("\n").splitlines() if not line.startswith("Traceback (")]
        if len(lines) > TRACEBACK_LINES:
            lines = lines[: TRACEBACK_LINES - 2] + [f"... {len(lines) - TRACEBACK_LINES + 1} more lines"] + lines[-1:]
        return "\n" + "\n".join(self.paint("    " + line, "dim") for line in lines)


def _error(data: dict) -> str:
    error = data.get("error") or {}
    return f"{error.get('name', 'Error')}: {error.get('message', '')}"


def _clock(ts: Any) -> str:
    if not isinstance(ts, (int, float)):
        return "?"
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def _short(value: Any, most: int = 200) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= most else text[: most - 3] + "..."
