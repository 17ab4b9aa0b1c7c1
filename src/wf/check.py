"""`wf check`: find a project's mistakes before an instance is queued on them.

It reads the config as every command does (syntax, fields, values), checks its keys against
wf's and wrangler's (a misspelt `limts` or `schedule` is named, with the key meant), imports
`main` and each workflow's `class_name` the way a runner will, looks at the bindings, and
works out when each cron schedule fires next. Nothing touches the store.

    report = check_project("wrangler.jsonc")
    report.ok, report.problems, report.workflows
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import config_keys
from .config import Config, find_config, load_config, parse_config_text, read_config_text
from .errors import ConfigError, LoaderError


@dataclass
class Problem:
    level: str  # "error" (the project cannot run as written), "warning" or "note"
    message: str
    hint: str | None = None
    workflow: str | None = None  # the workflow it stops, when it stops one


@dataclass
class Report:
    config: str | None
    problems: list[Problem] = field(default_factory=list)
    workflows: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(p.level == "error" for p in self.problems)

    def count(self, level: str) -> int:
        return sum(p.level == level for p in self.problems)

    def as_json(self) -> dict:
        return {
            "ok": self.ok,
            "config": self.config,
            "workflows": self.workflows,
            "problems": [asdict(p) for p in self.problems],
        }


def check_project(
    path: str | Path | None = None, *, env: str | None = None, cwd: Path | None = None, now: float | None = None
) -> Report:
    """Everything that can be checked about a project without running it."""
    report = Report(None)
    try:
        file = find_config(path, cwd)
        report.config = str(file)
        text = read_config_text(file)
        data = parse_config_text(text, file)
    except ConfigError as exc:
        report.problems.append(Problem("error", str(exc), exc.hint))
        return report
    _keys(report, data, text, str(file))
    try:
        config = load_config(file, cwd=cwd, env=env)
    except ConfigError as exc:
        report.problems.append(Problem("error", str(exc), exc.hint))
        return report
    _classes(report, config)
    _bindings(report, config)
    _schedules(report, config, time.time() if now is None else now)
    return report


def _keys(report: Report, data: dict, text: str, path: str) -> None:
    for note in config_keys.key_notes(data, text):
        if note.kind == "unknown":
            hint = f'rename it to "{note.suggestion}"' if note.suggestion else "remove it, or check its spelling"
            report.problems.append(Problem("warning", note.sentence(path), hint))
        else:
            report.problems.append(Problem("note", note.sentence(path)))


def _classes(report: Report, config: Config) -> None:
    """Import main, then find each workflow's class in it, as a runner does before it runs anything."""
    from .loader import load_main, workflow_class

    for wf in config.workflows:
        report.workflows.append(
            {"name": wf.name, "binding": wf.binding, "class_name": wf.class_name, "main": config.main, "schedules": []}
        )
    if not config.workflows:
        report.problems.append(
            Problem("warning", f"{config.path} declares no workflows", 'add one under "workflows"; see `wf init`')
        )
        return
    try:
        module = load_main(config)
    except LoaderError as exc:
        report.problems.append(Problem("error", str(exc), exc.hint))
        for entry in report.workflows:
            entry["ok"] = False
        return
    for entry, wf in zip(report.workflows, config.workflows):
        try:
            workflow_class(config, module, wf)
            entry["ok"] = True
        except LoaderError as exc:
            entry["ok"] = False
            report.problems.append(Problem("error", str(exc), exc.hint, wf.name))


def _bindings(report: Report, config: Config) -> None:
    for wf in config.workflows:
        if wf.binding in config.vars:
            report.problems.append(
                Problem(
                    "warning",
                    f"binding {wf.binding!r} of workflow {wf.name!r} has the name of a var: "
                    f"self.env.{wf.binding} is the binding, and the var cannot be read",
                    "rename the var or the binding",
                )
            )


def _schedules(report: Report, config: Config, now: float) -> None:
    from .runtime.cron import next_tick

    for entry, wf in zip(report.workflows, config.workflows):
        for cron in wf.schedules:
            tick = next_tick(cron, now)
            entry["schedules"].append({"cron": cron, "next": _iso(tick)})


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def summary(report: Report) -> dict[str, Any]:
    return {level: report.count(level) for level in ("error", "warning", "note")}
