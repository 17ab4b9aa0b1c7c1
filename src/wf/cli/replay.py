"""`wf replay --check`: replay the current code against the stored history of instances, with no side
effects, before deploying it (or to see why a runner reported a divergence)."""

from __future__ import annotations

import contextlib
import sys

import typer

from .core import app, client, out_json, say

VERDICT_LABEL = {"matches": "✅ matches", "diverges": "❌ diverges", "error": "⚠️ error"}


@app.command()
def replay(
    workflow: str | None = typer.Argument(None, help="Only this workflow's instances (default: every workflow)."),
    check: bool = typer.Option(False, "--check", help="Check the code against the histories (the only mode)."),
    status: list[str] = typer.Option(
        [], "--status", "-s", help="Statuses to check, comma-separated or repeated (default: every unfinished one)."
    ),
    id: str | None = typer.Option(None, "--id", help="Only this instance."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
):
    """Replay the current code of instances against their stored histories, with no side effects.

    No step function runs: recorded steps return their stored results, and the replay stops where
    each instance is now. For each instance: matches, or diverges, with the first step that differs
    (what the history has next, what the code asks for) and what running the code would do. Exits 1
    when any instance diverges (or cannot be replayed).

    Example: wf replay --check order-processing --status waiting,paused
    """
    from ..errors import ValidationError

    if not check:
        raise ValidationError("wf replay needs --check (the only mode)", "run `wf replay --check [WORKFLOW]`")
    statuses = [s.strip() for value in status for s in value.split(",") if s.strip()]
    c = client()
    try:
        with contextlib.redirect_stdout(sys.stderr):  # lines run() prints while replayed stay off stdout
            verdicts = c.replay_check(workflow, statuses or None, id)
    finally:
        c.close()
    counts = {k: sum(1 for v in verdicts if v["verdict"] == k) for k in VERDICT_LABEL}
    if as_json:
        out_json({"checked": len(verdicts), **counts, "instances": verdicts})
    else:
        _show(verdicts, counts)
    if counts["diverges"] or counts["error"]:
        raise typer.Exit(1)


def _show(verdicts: list[dict], counts: dict[str, int]) -> None:
    from rich.table import Table

    from ..runtime.replay import detail
    from .manage import _console

    console = _console()
    if verdicts:
        table = Table(show_lines=False, pad_edge=False, box=None)
        for column in ("Instance", "Workflow", "Status", "Verdict", "Detail"):
            table.add_column(column, overflow="fold")
        for v in verdicts:
            table.add_row(v["id"], v["workflow"], v["status"], VERDICT_LABEL[v["verdict"]], detail(v))
        console.print(table)
    console.print(
        f"{len(verdicts)} instance(s) checked: {counts['matches']} match, {counts['diverges']} diverge"
        + (f", {counts['error']} could not be replayed" if counts["error"] else "")
    )
    if counts["diverges"]:
        say("hint: keep the old code for these instances behind `if await step.patched(...)` (README: Changing code)")
