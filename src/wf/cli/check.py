"""`wf check`: the project's config, code, bindings and schedules, checked before anything runs."""

from __future__ import annotations

import typer

from .core import app, out_json, state


@app.command()
def check(as_json: bool = typer.Option(False, "--json", help="Print the report as JSON only.")):
    """Check the project: config keys and values (with "did you mean"), main and every class_name
    imported as a runner would, bindings, and when each schedule fires next.

    Exits 2 when the project cannot run as written; warnings alone exit 0.

    Example: wf check --json
    """
    from ..check import check_project

    report = check_project(state.config, env=state.env)
    if as_json:
        out_json(report.as_json())
    else:
        _show(report)
    if not report.ok:
        raise typer.Exit(2)


def _show(report) -> None:
    from ..check import summary

    if report.config:
        print(f"checked {report.config}")
    for w in report.workflows:
        mark = "✓" if w.get("ok") else "✗"
        print(f"  {mark} {w['name']}: binding {w['binding']}, class {w['main']}:{w['class_name']}")
        for s in w["schedules"]:
            print(f"      schedule {s['cron']!r}: next at {s['next'] or 'never'}")
    for p in report.problems:
        print(f"{p.level}: {p.message}")
        if p.hint:
            print(f"hint: {p.hint}")
    counts = summary(report)
    print(
        ("ok" if report.ok else "not ok")
        + f": {counts['error']} error(s), {counts['warning']} warning(s)"
        + (f", {counts['note']} note(s)" if counts["note"] else "")
    )
