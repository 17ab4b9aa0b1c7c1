"""worker, trigger, status, send-event: the commands needed to use wf end to end."""

from __future__ import annotations

import json
import sys
import time

import typer

from .core import app, client, load, out_json, read_json_arg, say

TERMINAL = ("complete", "errored", "terminated")
LOG_FORMAT = typer.Option("human", "--log-format", help="Instance events on stderr as human lines or json lines.")
QUIET = typer.Option(False, "--quiet", "-q", help="Log no instance events (nor HTTP requests); errors still show.")


@app.command()
def worker(
    concurrency: int = typer.Option(1000, "--concurrency", min=1, help="Most instances this runner executes at once."),
    replay_always: bool = typer.Option(
        False, "--replay-always", hidden=True, help="Suspend and replay after every step (tests)."
    ),
    lease: float | None = typer.Option(
        None,
        "--lease",
        min=0.5,
        help="Seconds a PostgreSQL worker's claims outlive its last heartbeat (default: $WF_LEASE or 30).",
    ),
    log_format: str = LOG_FORMAT,
    quiet: bool = QUIET,
    reap_interval: float = typer.Option(
        1.0, "--reap-interval", min=0.01, hidden=True, help="Seconds between looks for dead runners' work (tests)."
    ),
):
    """Run the runner: execute instances, fire timers and cron schedules. Stop with Ctrl-C.

    It logs one line per instance event on stderr (started, a step attempt failed with its error
    and traceback and when it is retried, sleeping until, waiting for an event, completed,
    errored); --log-format json writes them as JSON lines, --quiet leaves them out.

    Example: wf worker --concurrency 200 --log-format json
    """
    from .serve import worker as serve

    serve(lambda: load(warn=True), concurrency, replay_always, lease, log_format, quiet, reap_interval)


@app.command()
def trigger(
    workflow: str = typer.Argument(..., help="Name of the workflow."),
    params_json: str | None = typer.Argument(None, metavar="PARAMS_JSON", help="Params as a JSON string."),
    params: str | None = typer.Option(None, "--params", "-p", help="Params file: .json, .yaml/.yml, or - for stdin."),
    id: str | None = typer.Option(None, "--id", help="Instance id (default: a random UUID)."),
    wait: bool = typer.Option(False, "--wait", help="Block until the instance ends; exit 1 if it errored."),
    count: int | None = typer.Option(
        None, "--count", help="Create this many instances (1-100) with these params and generated ids."
    ),
    success_retention: str | None = typer.Option(
        None, "--success-retention", help="Keep it this long once complete, e.g. '2 days' (default: the workflow's)."
    ),
    error_retention: str | None = typer.Option(
        None, "--error-retention", help="Keep it this long once errored or terminated (default: the workflow's)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
):
    """Create an instance of WORKFLOW and print its id (with --count, that many: one id a line).

    Example: wf trigger order-processing --params order.json --wait
    """
    from ..errors import ValidationError

    if count is not None and (id is not None or wait):
        raise ValidationError("--count creates instances with generated ids", "leave out --id and --wait")
    c = client()
    payload = read_json_arg(params_json, params, "params")
    kept = {"success_retention": success_retention, "error_retention": error_retention}
    retention = {k: v for k, v in kept.items() if v is not None} or None
    if not c.runner_alive():  # import the code first: broken code must not leave a queued orphan
        from ..loader import load_workflow_classes

        load_workflow_classes(c.config)
    if count is not None:  # Cloudflare's createBatch({count, params})
        made = c.create_many(workflow, {"count": count, "params": payload}, retention=retention)
        out_json(made) if as_json else print("\n".join(m["id"] for m in made["created"]))
        if not c.runner_alive():
            say(f"note: no runner is active, so these {count} instances stay queued. Start one with `wf worker`.")
        return
    row = c.create(workflow, payload, id, retention=retention)
    if not wait:
        out_json({"id": row.id}) if as_json else print(row.id)
        if not c.runner_alive():
            say(
                f"note: no runner is active, so instance {row.id} stays queued. Start one with `wf worker` "
                f"(or `wf dev`), or trigger with --wait to run it here."
            )
        return
    if not as_json:
        print(row.id, flush=True)
    from .waiting import wait_for

    final = wait_for(c, row, quiet=as_json)
    status = c.status(row.id, workflow)
    if as_json:
        out_json({"id": row.id, **status})
    else:
        say(f"{final}: " + json.dumps(status["output"] if final == "complete" else status["error"]))
    if final != "complete":
        raise typer.Exit(1)


@app.command()
def status(
    id: str = typer.Argument(..., help="Instance id, or 'latest'."),
    workflow: str | None = typer.Option(None, "--workflow", "-w", help="Workflow, when ids clash."),
    watch: bool = typer.Option(False, "--watch", help="Keep printing as it changes, until it ends."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only (the default form is JSON too)."),
):
    """Print an instance's status, output and error: {"status", "output", "error"}.

    With --watch, print the status again each time it changes, until the instance is complete,
    errored or terminated (one JSON object per change).

    Example: wf status latest --watch
    """
    c = client()
    result = c.status(id, workflow)
    if not watch:
        return out_json(result)
    row = c.get(id, workflow)
    last = None
    while True:
        if result != last:
            if as_json or not sys.stdout.isatty():
                sys.stdout.write(json.dumps(result) + "\n")
                sys.stdout.flush()
            else:
                out_json(result)
            last = result
        if result["status"] in TERMINAL:
            return
        time.sleep(0.1)
        result = c.status(row.id, row.workflow)


@app.command("send-event")
def send_event(
    id: str = typer.Argument(..., help="Instance id, or 'latest'."),
    type: str | None = typer.Option(
        None, "--type", "-t", help="Event type (needed unless the instance waits for exactly one type)."
    ),
    payload: str | None = typer.Option(None, "--payload", help="Payload as a JSON string."),
    payload_file: str | None = typer.Option(None, "--payload-file", help="Payload file (JSON/YAML, - for stdin)."),
    workflow: str | None = typer.Option(None, "--workflow", "-w", help="Workflow, when ids clash."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
):
    """Deliver an event to an instance (kept until a wait_for_event takes it).

    --type is required, as wrangler's; without it, an instance waiting for exactly one event
    type gets that type (and the command says so).

    Example: wf send-event latest --type approval --payload '{"approved": true}'
    """
    c = client()
    data = read_json_arg(payload, payload_file, "payload")
    row = c.get(id, workflow)
    if type is None:
        type = _awaited_type(c, row)
    c.send_event(row.id, type, data, row.workflow)
    if as_json:
        out_json({"id": row.id, "type": type, "sent": True})
    else:
        say(f"sent event {type!r} to {row.id}")


def _awaited_type(c, row) -> str:
    """The event type the instance waits for, when it waits for exactly one; else a usage error."""
    from ..errors import UsageError

    steps = c.describe(row.id, row.workflow)["steps"]  # a step that waits on events describes its event_type
    types = sorted({s["event_type"] or "(any type)" for s in steps if "event_type" in s and s["status"] == "waiting"})
    if len(types) == 1 and types[0] != "(any type)":
        say(f"note: no --type given; instance {row.id} waits for {types[0]!r}, so the event is of that type")
        return types[0]
    waiting = f"it waits for {', '.join(types)}" if types else "it is not waiting for an event now"
    raise UsageError(
        f"send-event needs --type: {waiting}",
        f"e.g. wf send-event {row.id} --type {types[0] if types and types[0] != '(any type)' else 'approval'}",
    )


@app.command()
def gc(
    workflow: str | None = typer.Option(None, "--workflow", "-w", help="Only instances of this workflow."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be deleted; delete nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
):
    """Delete now the ended instances kept past their retention (a runner does it in the background).

    An instance that completed is kept for its success_retention, one that errored or was
    terminated for its error_retention: its own (set on create) or its workflow's
    default_retention (7 days unless the config says otherwise).

    Example: wf gc --dry-run
    """
    c = client()
    try:
        gone = c.collect_expired(workflow, dry_run=dry_run)
    finally:
        c.close()
    from ..runtime.durations import iso_time

    gone = [{**item, "ended": iso_time(item["ended"])} for item in gone]  # JSON output's times: ISO 8601
    if as_json:
        out_json({"dry_run": dry_run, "instances": gone})
        return
    verb = "would delete" if dry_run else "deleted"
    for item in gone:
        print(f"{item['id']}  {item['workflow']}  {item['status']}  ended {item['ended']}")
    say(f"{verb} {len(gone)} instance(s) kept past their retention")
