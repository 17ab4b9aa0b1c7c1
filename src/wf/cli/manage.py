"""instances list/describe, pause/resume/terminate/restart/delete, workflows list/describe.

Human output is rendered with rich, imported inside the commands so that `wf status --json`
starts without it; `--json` prints data only on stdout. Messages follow wrangler's wording.
"""

from __future__ import annotations

import sys

import typer

from . import views
from .core import app, client, load, out_json, say
from .views import (  # noqa: F401  (the rendering helpers, shared with instances.py and the fast path)
    COUNTED_STATUSES,
    STATUS_LABEL,
    STATUS_STYLE,
    TRUNCATE_AT,
    _console,
    _duration,
    _error_text,
    _fields,
    _relative,
    _shown,
    _span,
    _status_text,
    _when,
)

instances_app = typer.Typer(no_args_is_help=True, help="List instances and show their step timeline.")
workflows_app = typer.Typer(no_args_is_help=True, help="The workflows the config declares.")
app.add_typer(instances_app, name="instances")
app.add_typer(workflows_app, name="workflows")


_json = typer.Option(False, "--json", help="Print JSON only.")
_workflow = typer.Option(None, "--workflow", "-w", help="Workflow, when ids clash (or to scope 'latest').")


# ---------------------------------------------------------------- lifecycle


def _done(row, status: str, as_json: bool, message: str, c=None) -> None:
    if as_json:
        out_json({"id": row.id, "workflow": row.workflow, "status": status})
    else:
        say(message)
    if c is not None and status == "queued" and not c.runner_alive():
        say(f"note: no runner is active, so instance {row.id} stays queued. Start one with `wf worker` (or `wf dev`).")


@app.command()
def pause(
    id: str = typer.Argument(..., help="Instance id, or 'latest'."),
    workflow: str | None = _workflow,
    as_json: bool = _json,
):
    """Pause an instance: a running step finishes first, then nothing runs until `wf resume`.

    Example: wf pause latest --workflow order-processing
    """
    c = client()
    try:
        row = c.get(id, workflow)
        status = c.pause(row.id, row.workflow)
    finally:
        c.close()
    who = f'The instance "{row.id}" from {row.workflow}'
    if status == "paused":
        msg = f"⏸️ {who} was paused successfully"
    elif status == "waitingForPause":
        msg = f"⏱️ {who} will pause as soon as its running step finishes"
    else:
        msg = f"note: {who} is {status}; there was nothing to pause"
    _done(row, status, as_json, msg)


@app.command()
def resume(
    id: str = typer.Argument(..., help="Instance id, or 'latest'."),
    workflow: str | None = _workflow,
    as_json: bool = _json,
):
    """Resume a paused instance (timers are shifted by the time spent paused).

    Example: wf resume latest
    """
    c = client()
    try:
        row = c.get(id, workflow)
        status = c.resume(row.id, row.workflow)
        who = f'The instance "{row.id}" from {row.workflow}'
        if row.status in ("paused", "waitingForPause"):
            msg = f"🔄 {who} was resumed successfully"
        else:
            msg = f"note: {who} is {status}, not paused; there was nothing to resume"
        _done(row, status, as_json, msg, c if row.status == "paused" else None)
    finally:
        c.close()


@app.command()
def terminate(
    id: str = typer.Argument(..., help="Instance id, or 'latest'."),
    workflow: str | None = _workflow,
    rollback: bool = typer.Option(
        False, "--rollback", help="Run the instance's rollback handlers (newest step first) before terminating."
    ),
    as_json: bool = _json,
):
    """Terminate an instance that has not finished; it never runs again (unless restarted).

    Example: wf terminate 5f2c0d7e-... --workflow order-processing [--rollback]
    """
    c = client()
    try:
        row = c.get(id, workflow)
        c.terminate(row.id, row.workflow, rollback=rollback)
        alive = c.runner_alive() if rollback else True
    finally:
        c.close()
    who = f'The instance "{row.id}" from {row.workflow}'
    if not rollback:
        _done(row, "terminated", as_json, f"🥷 {who} was terminated successfully")
        return
    _done(row, "running", as_json, f"🥷 {who} is terminating: its rollback handlers run first, then it ends terminated")
    if not alive:
        say(f"note: no runner is active, so the rollback of {row.id} waits. Start one with `wf worker` (or `wf dev`).")


@app.command()
def restart(
    id: str = typer.Argument(..., help="Instance id, or 'latest'."),
    workflow: str | None = _workflow,
    from_step: str | None = typer.Option(
        None, "--from-step", help="Re-run from this step; earlier results are reused."
    ),
    count: int | None = typer.Option(None, "--count", help="1-based occurrence of the step name (default 1)."),
    type: str | None = typer.Option(
        None, "--type", help="Step kind: do (default), sleep, waitForEvent, waitForInstance or patch."
    ),
    as_json: bool = _json,
):
    """Restart an instance from the beginning, or from one step keeping the results before it.

    Example: wf restart latest --from-step charge-card
    """
    from ..errors import ValidationError
    from ..runtime import steps as kinds

    if type is not None and type not in kinds.names():
        known = ", ".join(kinds.names())
        raise ValidationError(f"step type {type!r} is not one of {known}", f"pass --type as one of {known}")
    if from_step is None and (count is not None or type is not None):
        raise ValidationError("--count and --type need --from-step NAME", "e.g. --from-step charge-card --count 2")
    c = client()
    try:
        row = c.get(id, workflow)
        c.restart(row.id, row.workflow, from_step, 1 if count is None else count, type or "do")
        where = (
            ""
            if from_step is None
            else f" from step {from_step!r}"
            + (f" (#{count})" if count and count > 1 else "")
            + (f" ({type})" if type and type != "do" else "")
        )
        _done(
            row,
            "queued",
            as_json,
            f'🥷 The instance "{row.id}" from {row.workflow} was restarted successfully{where}',
            c,
        )
    finally:
        c.close()


@app.command()
def delete(
    ids: list[str] = typer.Argument(..., help="Instance ids (up to 100), or 'latest'."),
    workflow: str | None = _workflow,
    as_json: bool = _json,
):
    """Delete instances and all their state; a running execution stops without rollback.

    Several ids are deleted as Cloudflare's deleteBatch does: each once, every one reported.

    Example: wf delete old-order-17 old-order-18 --workflow order-processing
    """
    c = client()
    try:
        if len(ids) == 1:
            row = c.get(ids[0], workflow)
            c.delete(row.id, row.workflow)
        else:
            result = c.delete_batch(ids, workflow)
    finally:
        c.close()
    if len(ids) == 1:
        _done(row, "deleted", as_json, f'🗑️ The instance "{row.id}" from {row.workflow} was deleted successfully')
        return
    _batch_deleted(result, workflow, as_json)


def _batch_deleted(result: dict, workflow: str | None, as_json: bool) -> None:
    """wrangler's report of a batch delete; exit 1 when some ids were not deleted."""
    if as_json:
        out_json(result)
    elif result["deleted"]:
        names = ", ".join(f'"{d["id"]}"' for d in result["deleted"])
        say(f"🗑️ Deleted workflow instances{f' from {workflow!r}' if workflow else ''}: {names}")
    if result["errors"]:
        lines = "\n".join(f"  - {e['id']}: {e['message']}" for e in result["errors"])
        print(f"Failed to delete {len(result['errors'])} workflow instance(s):\n{lines}", file=sys.stderr)
        raise typer.Exit(1)


# ---------------------------------------------------------------- workflows


@workflows_app.command("list")
def workflows_list(as_json: bool = _json):
    """List the workflows declared in the config.

    Example: wf workflows list --json
    """
    views.list_workflows(load(), as_json)


@workflows_app.command("describe")
def workflows_describe(name: str = typer.Argument(..., help="Name of the workflow."), as_json: bool = _json):
    """Show a workflow's config and how many of its instances are in each status.

    Example: wf workflows describe order-processing
    """
    c = client()
    try:
        w = c.config.workflow(name)
        found = c.count_by_status(name)
    finally:
        c.close()
    counts = {s: int(found.get(s, 0)) for s in COUNTED_STATUSES}
    counts.update({s: int(n) for s, n in found.items() if s not in counts})
    data = {
        "name": w.name,
        "binding": w.binding,
        "class_name": w.class_name,
        "script_name": w.script_name,
        "step_limit": w.step_limit,
        "concurrency_limit": w.concurrency_limit,
        "schedules": list(w.schedules),
        "default_retention": {"success_retention": w.success_retention, "error_retention": w.error_retention},
        "instances": counts,
    }
    if as_json:
        out_json(data)
        return
    from rich.table import Table
    from rich.text import Text

    console = _console()
    console.print(
        _fields(
            [
                ("Name", w.name),
                ("Binding", w.binding),
                ("Class Name", w.class_name),
                ("Script Name", w.script_name or "-"),
                ("Step Limit", str(w.step_limit)),
                ("Concurrency Limit", "-" if w.concurrency_limit is None else str(w.concurrency_limit)),
                ("Schedules", ", ".join(w.schedules) or "-"),
                ("Retention", f"{_span(w.success_retention)} complete, {_span(w.error_retention)} errored"),
            ]
        )
    )
    console.print()
    console.print(Text("Instance Status Counts:", style="bold"))
    table = Table()
    table.add_column("Status", no_wrap=True)
    table.add_column("Count", justify="right")
    for status, n in counts.items():
        table.add_row(_status_text(status), str(n))
    console.print(table)
