"""`wf instances list` and `wf instances describe`: pages of instances, and one instance's step timeline.

Ids are never cut (other columns wrap first), the JSON forms write times as ISO 8601, and
`describe` shows each failed attempt's traceback and the events nobody has taken yet.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import typer

from .core import client, out_json, say
from .manage import (
    STATUS_STYLE,
    TRUNCATE_AT,
    _console,
    _duration,
    _error_text,
    _fields,
    _json,
    _relative,
    _shown,
    _status_text,
    _when,
    _workflow,
    instances_app,
)

PER_PAGE_MAX = 1000
TRACEBACK_LINES = 12  # of an attempt's traceback in the human view; --full and --json show all


# ---------------------------------------------------------------- list


@instances_app.command("list")
def instances_list(
    workflow: str | None = typer.Argument(None, help="Only this workflow's instances."),
    status: str | None = typer.Option(None, "--status", "-s", help="Only instances with this status (e.g. errored)."),
    per_page: int = typer.Option(25, "--per-page", "--limit", "-n", metavar="N", help="Instances per page."),
    page: int = typer.Option(1, "--page", metavar="N", help="Which page: 1 is the newest."),
    reverse: bool = typer.Option(False, "--reverse", help="Show the page oldest first (as wrangler's --reverse)."),
    since: str | None = typer.Option(
        None,
        "--since",
        metavar="WHEN",
        help="Created at or after WHEN: ISO 8601 (2026-11-01T09:00Z) or an age ('2 hours').",
    ),
    until: str | None = typer.Option(None, "--until", metavar="WHEN", help="Created before WHEN (same forms)."),
    as_json: bool = _json,
):
    """List instances, newest first, a page at a time (--page, --per-page) within a time range.

    A time without an offset is local time; an age such as '30 minutes' counts back from now.

    Example: wf instances list order-processing --status errored --since '1 day' --page 2
    """
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
    from rich.table import Table
    from rich.text import Text

    console = _console()
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


# ---------------------------------------------------------------- describe


@instances_app.command("describe")
def instances_describe(
    id: str = typer.Argument(..., help="Instance id, or 'latest'."),
    workflow: str | None = _workflow,
    full: bool = typer.Option(
        False, "--full", help=f"Do not cut outputs past {TRUNCATE_AT} characters, nor tracebacks."
    ),
    as_json: bool = _json,
):
    """Show an instance and its step timeline: attempts with their errors and tracebacks, durations,
    retries, sleeps, waits, outputs, and the events sent to it that no step has taken yet.

    Example: wf instances describe latest --workflow order-processing --full
    """
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


@instances_app.command("step-output")
def instances_step_output(
    id: str = typer.Argument(..., help="Instance id, or 'latest'."),
    name: str = typer.Argument(..., help="Step name, as given to step.do (without a counter)."),
    count: int = typer.Option(1, "--count", help="1-based occurrence of the step name (a step in a loop)."),
    type: str = typer.Option("step", "--type", help="Step type: step (step.do, default), waitForEvent, sleep..."),
    attempt: int | None = typer.Option(None, "--attempt", help="One attempt of a step.do: its error or output."),
    workflow: str | None = _workflow,
    as_json: bool = _json,
):
    """Print one step's full output, never cut (describe cuts long outputs); a sensitive output
    prints as "[REDACTED]". --json prints Cloudflare's {status, error, output}.

    Example: wf instances step-output latest fetch-report --count 2
    """
    c = client()
    try:
        got = c.step_output(id, name, count, type, attempt, workflow)
    finally:
        c.close()
    if as_json:
        out_json(got)
        return
    if got["status"] == "complete":
        out_json(got["output"])
        return
    error = f": {got['error'].get('name')}: {got['error'].get('message')}" if got.get("error") else ""
    say(f"step {name!r} #{count} is {got['status']}{error}; it has no output")
    if got["status"] == "errored":
        raise typer.Exit(1)


def _with_iso_times(d: dict, events: list[dict]) -> dict:
    """describe() as the command line's JSON shows it: times in ISO 8601, and the events."""
    from ..runtime import steps as kinds

    out = {**d, "created": _iso(d["created"]), "start": _iso(d["start"]), "end": _iso(d["end"])}
    out["steps"] = [kinds.by_type(s["type"]).with_times(s, _iso) for s in d["steps"]]
    out["events"] = [{**e, "created": _iso(e["created"])} for e in events]
    return out


def _show(d: dict, events: list[dict], full: bool) -> None:
    from rich.console import Group
    from rich.text import Text

    console = _console()
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
    from rich.table import Table
    from rich.text import Text

    from ..runtime import steps as kinds

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
    from rich.text import Text

    if a["end"] is None:
        return Text("🔄 Working", style="blue")
    if a["success"]:
        return Text("✅ Success", style="green")
    return Text("❌ Error", style="red")


def _traceback(a: dict, full: bool):
    """An attempt's traceback under the table, the user's frames first (as stored)."""
    from rich.text import Text

    lines = a["traceback"].rstrip("\n").splitlines()
    if not full and len(lines) > TRACEBACK_LINES:
        cut = len(lines) - TRACEBACK_LINES
        lines = lines[: TRACEBACK_LINES - 1] + [f"  ... {cut} more lines (--full shows them)", lines[-1]]
    text = Text(f"Attempt {a['attempt']} traceback:\n", style="bold red")
    text.append("\n".join("  " + line for line in lines), style="red")
    return text


def _field(how: str, value: Any, full: bool):
    """One of a step kind's own fields (`StepKind.human`), rendered as its kind asks."""
    from rich.text import Text

    if how == "when":
        return f"{_when(value)} ({_relative(value)})"
    if how == "json":
        return Text(_shown(value, full))
    if how == "error":
        return _error_text(value)
    if how == "text":
        return str(value)
    raise ValueError(f"a step field shown as {how!r}: expected when, json, error or text")
