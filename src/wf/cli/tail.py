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
from datetime import UTC, datetime

import typer

from ..runtime import steps as kinds
from ..runtime.events import InstanceEvent, instance_event
from .core import app, client

POLL = 0.1
ENDS = tuple(e.value for e in InstanceEvent if e.ends)


def event_json(h) -> dict:
    """A history row as Cloudflare's instance event shape."""
    out = {
        "type": h.type,
        "eventId": h.seq,
        "instanceId": h.instance_id,
        "workflow": h.workflow,
        "timestamp": datetime.fromtimestamp(h.at, tz=UTC).isoformat(timespec="milliseconds"),
    }
    if h.step is not None:
        out["stepName"], out["count"] = h.step, h.n
    for key, value in (h.data or {}).items():
        out.setdefault(key, value)
    return out


@app.command()
def tail(
    id: str | None = typer.Argument(None, help="Follow only this instance (or 'latest'); end when it ends."),
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
    for rows in _batches(c, cursor, instance, workflow):
        for h in rows:
            sys.stdout.write(json.dumps(event_json(h), default=str) + "\n")
        if rows:
            sys.stdout.flush()
        if instance is not None and any(h.type in ENDS for h in rows):
            return


def _follow_view(c, cursor, instance, workflow, limit) -> None:
    from rich.console import Console
    from rich.live import Live

    model = TailModel()
    console = Console(stderr=False)
    with Live(model.render(time.time(), limit), console=console, refresh_per_second=8, transient=False) as live:
        for rows in _batches(c, cursor, instance, workflow):
            for h in rows:
                model.apply(h)
            live.update(model.render(time.time(), limit))
            if instance is not None and any(h.type in ENDS for h in rows):
                return


class StepView:
    """One step as the live view shows it; `facts` holds what its kind shows besides (a retry's
    time, a wake time, an awaited event type)."""

    __slots__ = ("kind", "name", "n", "state", "start", "end", "error", "facts", "logs")

    def __init__(self, kind: kinds.StepKind, name: str, n: int, start: float):
        self.kind, self.name, self.n, self.start = kind, name, n, start
        self.state, self.end, self.error = "running", None, None
        self.facts: dict = {}
        self.logs: deque = deque(maxlen=3)


class InstanceView:
    def __init__(self, id: str, workflow: str, at: float):
        self.id, self.workflow, self.status, self.updated = id, workflow, "queued", at
        self.steps: OrderedDict = OrderedDict()
        self.logs: deque = deque(maxlen=3)
        self.error = None


class TailModel:
    """What the live view shows, built only from history rows (so it can be tested offline)."""

    def __init__(self):
        self.instances: OrderedDict[int, InstanceView] = OrderedDict()

    def apply(self, h) -> None:
        inst = self.instances.get(h.instance)
        if inst is None:
            inst = self.instances[h.instance] = InstanceView(h.instance_id or "?", h.workflow or "?", h.at)
        self.instances.move_to_end(h.instance)
        inst.updated = h.at
        data = h.data or {}
        event = instance_event(h.type)
        if event is not None and event.status is not None:
            inst.status = event.status
            if event is InstanceEvent.ERRORED:
                inst.error = data.get("error")
            if event is InstanceEvent.RESTARTED:
                inst.steps.clear()
            return
        if event is InstanceEvent.LOG:
            target = inst.steps.get((h.step, h.n)) if h.step else None
            (target.logs if target else inst.logs).append(data.get("line", ""))
            return
        if event is not None or h.step is None:
            return
        self._apply_step(inst, h, data)

    def _apply_step(self, inst: InstanceView, h, data: dict) -> None:
        kind, spec = kinds.event(h.type)  # an event no kind declares stops the view, naming it
        step = inst.steps.get((h.step, h.n))
        if step is None:
            step = inst.steps[(h.step, h.n)] = StepView(kind, h.step, h.n, h.at)
        if inst.status not in ("paused", "waitingForPause"):
            inst.status = "running"
        if kind.follow(step, spec, h.at, data):
            inst.status = "waiting"

    def render(self, now: float, limit: int = 8):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        if not self.instances:
            return Text("waiting for instances... (trigger one with `wf trigger WORKFLOW`)", style="dim")
        parts = []
        for inst in list(self.instances.values())[-limit:]:
            table = Table(
                title=_title(inst),
                title_justify="left",
                expand=False,
                show_edge=False,
                pad_edge=False,
                min_width=len(inst.id) + len(inst.workflow) + len(inst.status) + 4,
            )  # title on one line
            for column in ("step", "state", "attempt", "time", "detail"):
                table.add_column(column)
            for step in inst.steps.values():
                table.add_row(
                    _step_label(step),
                    Text(step.state, style=_STYLE.get(step.state, "")),
                    step.kind.attempt(step),
                    _fmt_duration((step.end or now) - step.start),
                    step.kind.detail(step, now),
                )
                for line in step.logs:
                    table.add_row("", "", "", "", Text(f"│ {line}", style="dim"))
            for line in inst.logs:
                table.add_row("", "", "", "", Text(f"│ {line}", style="dim"))
            parts.append(table)
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


def _title(inst: InstanceView) -> str:
    color = _STYLE.get(inst.status, "")
    title = (
        f"[bold]{inst.id}[/bold]  {inst.workflow}  [{color}]{inst.status}[/{color}]"
        if color
        else f"[bold]{inst.id}[/bold]  {inst.workflow}  {inst.status}"
    )
    if inst.error:
        title += f"  [red]{inst.error.get('name')}: {inst.error.get('message')}[/red]"
    return title


def _step_label(step: StepView) -> str:
    return f"{step.kind.icon} {step.name}" + (f" #{step.n}" if step.n > 1 else "")


def _fmt_duration(seconds: float) -> str:
    from ..runtime.durations import format_duration

    return format_duration(seconds)
