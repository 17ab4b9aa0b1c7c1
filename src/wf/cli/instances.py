"""`wf instances list` and `wf instances describe`: pages of instances, and one instance's step timeline.

Ids are never cut (other columns wrap first), the JSON forms write times as ISO 8601, and
`describe` shows each failed attempt's traceback and the events nobody has taken yet.
"""

from __future__ import annotations

import typer

from . import views
from .core import client, out_json, say
from .manage import _json, _workflow, instances_app
from .views import (  # noqa: F401  (the helpers, for the commands of this group)
    PER_PAGE_MAX,
    TRACEBACK_LINES,
    TRUNCATE_AT,
    _check_page,
    _field,
    _iso,
    _show,
    _step_renderables,
    _table,
    _traceback,
    _when_arg,
    _with_iso_times,
)

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
    views.list_instances(client, workflow, status, per_page, page, reverse, since, until, as_json)


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
    views.describe_instance(client, id, workflow, full, as_json)


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
