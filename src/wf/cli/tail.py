"""`wf tail`: follow instances live, from the store's event log.

`--json` streams one object per line, shaped like Cloudflare's instance events
(`{"type": "step_started", "instanceId": ..., "stepName": ..., "timestamp": ...}`). The
human view keeps a small model of each instance (steps, attempts, timers, printed lines)
and redraws it as the log grows; the log is read every 0.1 s, so what happens shows within
a quarter of a second.
"""

from __future__ import annotations

import json
import sys
import time
from collections import OrderedDict, deque

import typer

from ..runtime import steps as kinds
from ..runtime.events import InstanceEvent, instance_event
from .core import app, client

POLL = 0.1
ENDS = tuple(e.value for e in InstanceEvent if e.ends)


def event_json(h, id: int | None = None) -> dict:
    """A history row as Cloudflare's instance event shape (times in ISO 8601), with its event id."""
    from ..runtime.events import event_json as shaped

    return shaped(h, id)


@app.command()
def tail(
    id: str | None = typer.Argument(
        None, help="Follow only this instance (or 'latest'); end when it ends (a restart does not end it)."
    ),
    workflow: str | None = typer.Option(None, "--workflow", "-w", help="Only instances of this workflow."),
    as_json: bool = typer.Option(False, "--json", help="Stream one JSON event per line."),
    from_start: bool = typer.Option(False, "--from-start", help="Without ID: replay the whole log first."),
    limit: int = typer.Option(8, "--limit", min=1, help="Instances shown in the live view."),
):
    """Follow instances live: steps, attempts, retries, sleeps, waits and printed lines.

    Example: wf tail latest --json
    """
    c = client()
    instance = None
    cursor = 0
    if id is not None:
        instance, workflow = c.get(id, workflow), None
    elif not from_start:
        cursor = max(0, c.last_history_seq() - (0 if as_json else 2000))
    follow = _follow_json if as_json else _follow_view
    try:
        follow(c, cursor, instance, workflow, limit)
    except KeyboardInterrupt:
        pass


def _batches(c, cursor: int, instance, workflow: str | None):
    """Yield lists of new history rows forever (empty lists while idle)."""
    while True:
        rows = c.history(cursor, instance=instance, workflow=workflow, limit=2000)
        if rows:
            cursor = rows[-1].seq
        yield rows
        if len(rows) < 2000:
            time.sleep(POLL)


def _follow_json(c, cursor, instance, workflow, limit) -> None:
    if instance is not None:  # one instance: its subscription, as `instance.subscribe()` gives it
        for event in c.subscribe(instance.id, instance.workflow, iso=True):
            sys.stdout.write(json.dumps(event, default=str) + "\n")
            sys.stdout.flush()
        return
    from ..runtime.events import numbered

    for rows in _batches(c, cursor, instance, workflow):
        for h, id in numbered(rows):
            sys.stdout.write(json.dumps(event_json(h, id), default=str) + "\n")
        if rows:
            sys.stdout.flush()


def _follow_view(c, cursor, instance, workflow, limit) -> None:
    from rich.console import Console
    from rich.live import Live

    model = TailModel()
    console = Console(stderr=False)
    view = lambda: model.render(time.time(), limit, console)  # noqa: E731
    with Live(view(), console=console, refresh_per_second=8, transient=False, vertical_overflow="crop") as live:
        for rows in _batches(c, cursor, instance, workflow):
            for h in rows:
                model.apply(h)
            live.update(view())
            if instance is not None and rows and _ended(c, instance, rows[-1]):
                return


def _ended(c, instance, last) -> bool:
    """The instance ended with `last` (a run a restart replaced has not ended it), or is gone."""
    from ..errors import NotFoundError
    from ..runtime.status import TERMINAL

    if last.type not in ENDS:
        return False
    try:
        return c.get(instance.id, instance.workflow).status in TERMINAL
    except NotFoundError:
        return True


class StepView:
    """One step as the live view shows it; `facts` holds what its kind shows besides (a retry's
    time, a wake time, an awaited event type); `traceback` the last failed attempt's."""

    __slots__ = ("kind", "name", "n", "state", "start", "end", "error", "facts", "logs", "traceback")

    def __init__(self, kind: kinds.StepKind, name: str, n: int, start: float):
        self.kind, self.name, self.n, self.start = kind, name, n, start
        self.state, self.end, self.error, self.traceback = "running", None, None, None
        self.facts: dict = {}
        self.logs: deque = deque(maxlen=3)


class InstanceView:
    def __init__(self, id: str, workflow: str, at: float):
        self.id, self.workflow, self.status, self.updated = id, workflow, "queued", at
        self.steps: OrderedDict = OrderedDict()
        self.logs: deque = deque(maxlen=3)
        self.error = None
        self.traceback: str | None = None


class TailModel:
    """What the live view shows, built only from history rows (so it can be tested offline).

    Instances keep the order they were first seen in (newest at the bottom); when they do not all
    fit, the ones with the latest activity are shown, so whatever just happened is on screen."""

    def __init__(self):
        self.instances: OrderedDict[int, InstanceView] = OrderedDict()
        self.activity = 0  # a counter: which instance changed last

    def apply(self, h) -> None:
        inst = self.instances.get(h.instance)
        if inst is None:
            inst = self.instances[h.instance] = InstanceView(h.instance_id or "?", h.workflow or "?", h.at)
        self.activity += 1
        inst.updated = self.activity
        data = h.data or {}
        event = instance_event(h.type)
        if event is not None and event.status is not None:
            inst.status = event.status
            if event is InstanceEvent.ERRORED:
                inst.error, inst.traceback = data.get("error"), data.get("traceback")
            if event is InstanceEvent.RESTARTED:
                inst.steps.clear()
                inst.error = inst.traceback = None
            return
        if event is InstanceEvent.LOG:
            # the newest step of that name and count: a rollback handler's run prints under its step's name
            same = [s for key, s in inst.steps.items() if key[1:] == (h.step, h.n)] if h.step else []
            target = same[-1] if same else None
            (target.logs if target else inst.logs).append(data.get("line", ""))
            return
        if event is not None or h.step is None:
            return
        self._apply_step(inst, h, data)

    def _apply_step(self, inst: InstanceView, h, data: dict) -> None:
        kind, spec = kinds.event(h.type)  # an event no kind declares stops the view, naming it
        step = inst.steps.get((kind.name, h.step, h.n))  # by kind too: a rollback run shares its step's name
        if step is None:
            step = inst.steps[(kind.name, h.step, h.n)] = StepView(kind, h.step, h.n, h.at)
        if inst.status not in ("paused", "waitingForPause"):
            inst.status = "running"
        if kind.follow(step, spec, h.at, data):
            inst.status = "waiting"
        if "traceback" in data:
            step.traceback = data["traceback"]

    def render(self, now: float, limit: int = 8, console=None):
        """The view; given a console, cut to its height with the latest activity kept."""
        from rich.console import Group
        from rich.text import Text

        if not self.instances:
            return Text("waiting for instances... (trigger one with `wf trigger WORKFLOW`)", style="dim")
        latest = sorted(self.instances.values(), key=lambda i: i.updated)[-limit:]
        shown = [i for i in self.instances.values() if i in latest]  # first-seen order
        blocks = [_block(inst, now) for inst in shown]
        if console is None:
            return Group(*blocks)
        return _fit(blocks, shown, console, len(self.instances) - len(shown))


def _block(inst: InstanceView, now: float):
    """One instance: its title line, its error (even with no step yet), its steps, printed lines."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list = [_title(inst)]
    if inst.error:
        parts.append(Text(f"  {inst.error.get('name')}: {inst.error.get('message')}", style="red"))
    if inst.traceback and not any(s.traceback for s in inst.steps.values()):
        parts.append(_traceback_text(inst.traceback))
    if inst.steps or inst.logs:
        table = Table(expand=False, show_edge=False, pad_edge=False)
        for column in ("step", "state", "attempt", "time"):
            table.add_column(column, no_wrap=True)
        table.add_column("detail", overflow="fold")
        for step in inst.steps.values():
            table.add_row(
                _step_label(step),
                Text(step.state, style=_STYLE.get(step.state, "")),
                step.kind.attempt(step),
                _fmt_duration((step.end or now) - step.start),
                step.kind.detail(step, now),
            )
            if step.traceback and step.state in ("retrying", "errored"):
                table.add_row("", "", "", "", _traceback_text(step.traceback))
            for line in step.logs:
                table.add_row("", "", "", "", Text(f"│ {line}", style="dim"))
        for line in inst.logs:
            table.add_row("", "", "", "", Text(f"│ {line}", style="dim"))
        parts.append(table)
    return Group(*parts)


TRACEBACK_SHOWN = 4  # lines of a traceback in the live view: the innermost frame, where it was raised


def _traceback_text(traceback: str):
    """The end of the user's frames (the error itself is on the line above); the whole one is in
    `wf instances describe`."""
    from rich.text import Text

    lines = [
        line
        for line in traceback.rstrip("\n").splitlines()
        if line.startswith(" ")
        and not line.startswith("  ...")  # frames only: not the header, error, note
        and line.strip(" ^~")  # nor the carets under the source
    ]
    if len(lines) > TRACEBACK_SHOWN:
        lines = ["  ..."] + lines[-TRACEBACK_SHOWN:]
    return Text("\n".join(lines), style="red dim")


def _fit(blocks: list, shown: list, console, hidden: int):
    """The blocks that fit the console's height, newest activity first in, drawn in their order; the
    top of the one that does not fit whole is cut, so its latest lines stay on screen."""
    from rich.console import Group
    from rich.segment import Segment, Segments
    from rich.text import Text

    height = max(3, console.size.height - 1)
    options = console.options.update(height=None)
    rendered = [console.render_lines(b, options, pad=False) for b in blocks]
    order = sorted(range(len(blocks)), key=lambda i: shown[i].updated, reverse=True)
    keep: set[int] = set()
    used = 0
    for i in order:
        if used + len(rendered[i]) > height and keep:
            continue
        keep.add(i)
        used += len(rendered[i])
    lines = [line for i in sorted(keep) for line in rendered[i]]
    hidden += len(blocks) - len(keep)
    cut = max(0, len(lines) - height)
    parts: list = [Text(f"... {hidden} more instance(s) not shown", style="dim")] if hidden else []
    parts.append(Segments([seg for line in lines[cut:] for seg in (*line, Segment.line())]))
    return Group(*parts)


_STYLE = {
    "complete": "green",
    "errored": "red",
    "timed out": "red",
    "retrying": "yellow",
    "running": "cyan",
    "sleeping": "blue",
    "waiting": "magenta",
    "terminated": "red",
    "paused": "yellow",
    "queued": "dim",
}


def _title(inst: InstanceView):
    from rich.text import Text

    title = Text(inst.id, style="bold")
    title.append(f"  {inst.workflow}  ")
    title.append(inst.status, style=_STYLE.get(inst.status, ""))
    return title


def _step_label(step: StepView) -> str:
    return f"{step.kind.icon} {step.name}" + (f" #{step.n}" if step.n > 1 else "")


def _fmt_duration(seconds: float) -> str:
    from ..runtime.durations import format_duration

    return format_duration(seconds)
