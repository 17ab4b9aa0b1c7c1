"""The read commands' bodies and rendering, without typer: `wf instances list`, `wf instances
describe` and `wf workflows list` run from here both through the typer app (instances.py,
manage.py) and through the command line's fast path (fast.py), which answers them without
importing typer. Human output is built with plain.py's Text/Table/Group (rich's calls): off a
terminal plain.py writes it itself when it can lay it out as rich does, else rich renders it (in
colour in a terminal); `--json` prints data only on stdout. Messages follow wrangler's wording.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (which `wf status` would pay for)
if TYPE_CHECKING:
    from typing import Any

PER_PAGE_MAX = 1000
TRACEBACK_LINES = 12  # of an attempt's traceback in the human view; --full and --json show all

# wrangler's emojifyInstanceStatus
STATUS_LABEL = {
    "complete": "✅ Completed",
    "errored": "❌ Errored",
    "unknown": "❓ Unknown",
    "paused": "⏸️ Paused",
    "queued": "⌛ Queued",
    "running": "▶ Running",
    "terminated": "🚫 Terminated",
    "waiting": "⏰ Waiting",
    "waitingForPause": "⏱️ Waiting for Pause",
}
STATUS_STYLE = {
    "complete": "green",
    "errored": "red",
    "terminated": "red",
    "paused": "yellow",
    "waitingForPause": "yellow",
    "queued": "cyan",
    "running": "blue",
    "waiting": "magenta",
}
COUNTED_STATUSES = ("complete", "errored", "paused", "queued", "running", "terminated", "waiting", "waitingForPause")
TRUNCATE_AT = 500


def out_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def say(message: str) -> None:
    """Chatter for humans: stderr, so stdout stays data."""
    sys.stderr.write(message + "\n")


# ---------------------------------------------------------------- rendering helpers


def _console():
    from rich.console import Console

    tty = sys.stdout.isatty()
    plain = bool(os.environ.get("NO_COLOR")) or not tty
    return Console(
        file=sys.stdout,
        no_color=plain,
        color_system=None if plain else "auto",
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=False,
        width=None if tty or os.environ.get("COLUMNS") else 200,  # COLUMNS: the width asked for, as rich reads it
    )


def _printer():
    """The console of the read commands: plain.py's when the output is plain text (no terminal),
    which writes it without importing rich when it can."""
    from .plain import console

    return console(_console)


def _status_text(status: str):
    from .plain import Text

    return Text(STATUS_LABEL.get(status, f"❓ {status}"), style=STATUS_STYLE.get(status, ""))


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    from datetime import datetime  # here: `wf status --json` goes through this module and shows no time

    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _duration(start: float | None, end: float | None) -> str:
    if start is None:
        return "-"
    if end is None:
        return _span(time.time() - start) + " so far"
    return _span(end - start)


def _span(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} m {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} m"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def _relative(ts: float) -> str:
    delta = ts - time.time()
    return f"in {_span(delta)}" if delta >= 0 else f"{_span(-delta)} ago"


def _shown(value: Any, full: bool) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    if not full and len(text) > TRUNCATE_AT:
        return text[:TRUNCATE_AT] + f" [...output truncated at {TRUNCATE_AT} chars; --full shows all]"
    return text


def _error_text(error: dict | None):
    from .plain import Text

    if not error:
        return Text("-")
    return Text(f"{error.get('name', 'Error')}: {error.get('message', '')}", style="red")


def _fields(rows: list[tuple[str, Any]]):
    """Aligned `Key:  value` lines (no trailing padding, unlike a grid table)."""
    from .plain import Group, Text

    width = max((len(k) for k, _ in rows), default=0) + 3
    lines = []
    for key, value in rows:
        line = Text(f"{key}:".ljust(width), style="bold")
        line.append_text(value if isinstance(value, Text) else Text(str(value)))
        lines.append(line)
    return Group(*lines)


# ---------------------------------------------------------------- instances list


def list_instances(
    client: Callable[[], Any],
    workflow: str | None,
    status: str | None,
    per_page: int,
    page: int,
    reverse: bool,
    since: str | None,
    until: str | None,
    as_json: bool,
) -> None:
    """`wf instances list`; `client()` makes the command's client (its config said once)."""
    _check_page(page, per_page)
    start, end = _when_arg(since, "--since"), _when_arg(until, "--until")
    c = client()
    try:
        rows = c.list(workflow, status, per_page, (page - 1) * per_page, since=start, until=end)
    finally:
        c.close()
    if reverse:
        rows = rows[::-1]
    if as_json:
        out_json(
            [{"id": r.id, "workflow": r.workflow, "status": r.status, "created": _iso(r.created_at)} for r in rows]
        )
        return
    if not rows:
        return _nothing(workflow, status, page)
    _table(rows)
    if len(rows) == per_page:
        first = (page - 1) * per_page + 1
        say(f"page {page}: instances {first}-{first + per_page - 1}; --page {page + 1} shows older ones")


def _check_page(page: int, per_page: int) -> None:
    from ..errors import ValidationError

    if not 1 <= per_page <= PER_PAGE_MAX:
        raise ValidationError(f"--per-page {per_page} is out of range", f"use 1 to {PER_PAGE_MAX}, e.g. --per-page 50")
    if page < 1:
        raise ValidationError(f"--page {page} must be at least 1", "pages count from 1, the newest")


def _when_arg(text: str | None, option: str) -> float | None:
    """A time given on the command line: ISO 8601 (local time without an offset), or an age."""
    from ..errors import ValidationError
    from ..runtime.durations import parse_duration

    if text is None:
        return None
    try:
        return time.time() - parse_duration(text, option)
    except ValidationError:
        pass
    try:
        from datetime import datetime

        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise ValidationError(
            f"{option} {text!r} is neither a time nor an age",
            "write ISO 8601 such as 2026-11-01T09:00:00Z or 2026-11-01, or an age such as '2 hours'",
        ) from None


def _nothing(workflow: str | None, status: str | None, page: int) -> None:
    if page > 1:
        say(f"No instances found on page {page}. Please try a smaller page number.")
        return
    which = f"{status} instances" if status else "instances"
    if workflow:
        say(f'There are no {which} in workflow "{workflow}". You can trigger it with "wf trigger {workflow}"')
    else:
        say(f'There are no {which} in this project. You can trigger one with "wf trigger WORKFLOW"')


def _table(rows) -> None:
    """Ids whole, always (they are there to be copied): a table when it fits the terminal with
    every id on one line, else each instance on two lines, its id alone on the first."""
    from .plain import Table, Text

    console = _printer()
    widest = max(len(r.id) for r in rows)
    others = max(len(r.workflow) for r in rows) + len("2026-11-01 09:30:00.000") + len("⏱️ Waiting for Pause")
    if widest + others + 13 > console.width:  # 13: the table's borders and padding
        for r in rows:
            console.print(Text(r.id, style="bold"), soft_wrap=True)
            line = Text(f"    {r.workflow}  {_when(r.created_at)}  ")
            line.append_text(_status_text(r.status))
            console.print(line, soft_wrap=True)
        return
    table = Table()
    table.add_column("Instance ID", no_wrap=True, min_width=widest)
    table.add_column("Workflow", no_wrap=True)
    table.add_column("Created", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    for r in rows:
        table.add_row(r.id, r.workflow, _when(r.created_at), _status_text(r.status))
    console.print(table)


def _iso(ts: float | None) -> str | None:
    from ..runtime.durations import iso_time

    return iso_time(ts)


# ---------------------------------------------------------------- instances describe


def describe_instance(client: Callable[[], Any], id: str, workflow: str | None, full: bool, as_json: bool) -> None:
    """`wf instances describe`."""
    c = client()
    try:
        d = c.describe(id, workflow)
        events = c.events(d["id"], d["workflow"])
    finally:
        c.close()
    if as_json:
        out_json(_with_iso_times(d, events))
        return
    _show(d, events, full)


def _with_iso_times(d: dict, events: list[dict]) -> dict:
    """describe() as the command line's JSON shows it: times in ISO 8601, and the events."""
    from ..runtime import steps as kinds

    out = {**d, "created": _iso(d["created"]), "start": _iso(d["start"]), "end": _iso(d["end"])}
    out["steps"] = [kinds.by_type(s["type"]).with_times(s, _iso) for s in d["steps"]]
    out["events"] = [{**e, "created": _iso(e["created"])} for e in events]
    return out


def _show(d: dict, events: list[dict], full: bool) -> None:
    from .plain import Group, Text

    console = _printer()
    rows: list[tuple[str, Any]] = [
        ("Workflow Name", d["workflow"]),
        ("Instance Id", d["id"]),
        ("Status", _status_text(d["status"])),
        ("Created", _when(d["created"])),
        ("Start", _when(d["start"])),
        ("End", _when(d["end"])),
        ("Duration", _duration(d["start"], d["end"]) if d["start"] else "-"),
        ("Params", Text(_shown(d["params"], full))),
    ]
    if d["status"] == "complete":
        rows.append(("Output", Text(_shown(d["output"], full))))
    if d["error"]:
        rows.append(("Error", _error_text(d["error"])))
    rollback = d.get("rollback")
    if rollback:  # handlers ran (steps/rollback.py): how the rollback ended
        if rollback["outcome"] == "complete":
            rows.append(("Rollback", Text("↩ complete: every handler ran")))
        else:
            rows.append(("Rollback", Text("❌ failed: ").append(_error_text(rollback["error"] or {}))))
    pending = [e for e in events if not e["consumed"]]
    if pending:
        rows.append(("Pending Events", Text(", ".join(f"{e['type']} ({_when(e['created'])})" for e in pending))))
    console.print(_fields(rows))
    steps = d["steps"]
    console.print()
    console.print(Text(f"Steps ({len(steps)}):" if steps else "Steps: none yet", style="bold"))
    for n, s in enumerate(steps, 1):
        console.print()
        console.print(Text(f"Step {n} of {len(steps)}", style="dim"))
        console.print(Group(*_step_renderables(s, full)))
    if pending:
        console.print()
        console.print(Text(f"Events not taken by any step ({len(pending)}):", style="bold"))
        for e in pending:
            console.print(Text(f"  {e['type']}  sent {_when(e['created'])}  payload {_shown(e['payload'], full)}"))


def _step_renderables(s: dict, full: bool) -> list:
    from ..runtime import steps as kinds
    from .plain import Table, Text

    kind = kinds.by_type(s["type"])
    name = s["name"] + (f" (#{s['count']})" if s["count"] > 1 else "")
    status = s["status"]
    style = STATUS_STYLE.get(status, "") if status != "retrying" else "yellow"
    rows: list[tuple[str, Any]] = [
        ("Name", name),
        ("Type", kind.label),
        ("Start", _when(s["start"])),
        ("End", _when(s["end"])),
        ("Duration", _duration(s["start"], s["end"])),
        ("Status", Text(kind.status(status).label, style=style)),
    ]
    rows += [(label, _field(how, value, full)) for label, how, value in kind.human(s)]
    out: list = [_fields(rows)]
    attempts = s.get("attempts") or []
    if attempts:
        table = Table(title=None, show_edge=True)
        for col in ("Attempt", "Start", "End", "Duration", "State", "Error"):
            table.add_column(col, no_wrap=col != "Error", overflow="fold")
        for a in attempts:
            table.add_row(
                str(a["attempt"]),
                _when(a["start"]),
                _when(a["end"]),
                _duration(a["start"], a["end"]),
                _attempt_state(a),
                _error_text(a["error"]) if a["error"] else Text(""),
            )
        out.append(table)
        out += [_traceback(a, full) for a in attempts if a.get("traceback")]
    return out


def _attempt_state(a: dict):
    from .plain import Text

    if a["end"] is None:
        return Text("🔄 Working", style="blue")
    if a["success"]:
        return Text("✅ Success", style="green")
    return Text("❌ Error", style="red")


def _traceback(a: dict, full: bool):
    """An attempt's traceback under the table, the user's frames first (as stored)."""
    from .plain import Text

    lines = a["traceback"].rstrip("\n").splitlines()
    if not full and len(lines) > TRACEBACK_LINES:
        cut = len(lines) - TRACEBACK_LINES
        lines = lines[: TRACEBACK_LINES - 1] + [f"  ... {cut} more lines (--full shows them)", lines[-1]]
    text = Text(f"Attempt {a['attempt']} traceback:\n", style="bold red")
    text.append("\n".join("  " + line for line in lines), style="red")
    return text


def _field(how: str, value: Any, full: bool):
    """One of a step kind's own fields (`StepKind.human`), rendered as its kind asks."""
    from .plain import Text

    if how == "when":
        return f"{_when(value)} ({_relative(value)})"
    if how == "json":
        return Text(_shown(value, full))
    if how == "error":
        return _error_text(value)
    if how == "text":
        return str(value)
    raise ValueError(f"a step field shown as {how!r}: expected when, json, error or text")


# ---------------------------------------------------------------- workflows list


def list_workflows(config: Any, as_json: bool) -> None:
    """`wf workflows list`, of a loaded config."""
    if as_json:
        out_json([{"name": w.name, "binding": w.binding, "class_name": w.class_name} for w in config.workflows])
        return
    if not config.workflows:
        say(f'There are no workflows in {config.path}. Declare one under "workflows".')
        return
    from .plain import Table

    table = Table()
    for col in ("Name", "Binding", "Class name"):
        table.add_column(col, no_wrap=True)
    for w in config.workflows:
        table.add_row(w.name, w.binding, w.class_name)
    _printer().print(table)
