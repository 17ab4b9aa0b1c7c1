"""The read commands and `wf worker`, answered without typer.

`wf status ID --json` (what scripts call in loops), `wf instances list`, `wf instances describe`
and `wf workflows list` start here when their command line is a plain one (and `wf worker`, so that
a worker restarted after a crash runs again sooner): the global options,
the command's words, its own options spelled out (`--status errored`, `--per-page=50`) and its
arguments. Anything else — `--help`, an unknown or repeated-looking option, a value that looks
like an option, a number that does not parse, shell completion — returns None and the typer app
(core.py) handles it, so that help and usage errors stay exactly as typer says them. The
command bodies are the same functions the typer commands call (views.py, wf.client).
"""

from __future__ import annotations

import errno
import json
import os
import sys
from collections.abc import Callable

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (which `wf status` would pay for)
if TYPE_CHECKING:
    from typing import Any

# the options `wf` takes before a command (core.py's `_globals`): those with a value, and flags
GLOBAL_VALUES = {
    "-c": "config",
    "--config": "config",
    "-e": "env",
    "--env": "env",
    "--persist-to": "persist_to",
    "--store": "store",
}
GLOBAL_FLAGS = {"--verbose": "verbose"}


class Spec:
    """One command's words as its typer definition takes them: options with a value (their
    parameter, and how the value converts), flags, and positional arguments."""

    def __init__(
        self,
        values: dict[str, tuple[str, Callable[[str], Any]]],
        flags: dict[str, str],
        arguments: tuple[str, ...],
        required: int,
        defaults: dict[str, Any],
    ):
        self.values, self.flags, self.arguments, self.required = values, flags, arguments, required
        self.defaults = defaults


_JSON = {"--json": "as_json"}
_WORKFLOW: dict[str, tuple[str, Callable[[str], Any]]] = {"-w": ("workflow", str), "--workflow": ("workflow", str)}

COMMANDS: dict[tuple[str, ...], Spec] = {
    ("status",): Spec(_WORKFLOW, _JSON, ("id",), 1, {"workflow": None, "as_json": False}),
    ("instances", "list"): Spec(
        {
            "-s": ("status", str),
            "--status": ("status", str),
            "-n": ("per_page", int),
            "--per-page": ("per_page", int),
            "--limit": ("per_page", int),
            "--page": ("page", int),
            "--since": ("since", str),
            "--until": ("until", str),
        },
        {"--reverse": "reverse", **_JSON},
        ("workflow",),
        0,
        {
            "workflow": None,
            "status": None,
            "per_page": 25,
            "page": 1,
            "reverse": False,
            "since": None,
            "until": None,
            "as_json": False,
        },
    ),
    ("instances", "describe"): Spec(
        _WORKFLOW, {"--full": "full", **_JSON}, ("id",), 1, {"workflow": None, "full": False, "as_json": False}
    ),
    ("workflows", "list"): Spec({}, _JSON, (), 0, {"as_json": False}),
    ("worker",): Spec(
        {
            "--concurrency": ("concurrency", lambda v: _at_least(int(v), 1)),
            "--lease": ("lease", lambda v: _at_least(float(v), 0.5)),
            "--log-format": ("log_format", str),
            "--reap-interval": ("reap_interval", lambda v: _at_least(float(v), 0.01)),
        },
        {"--replay-always": "replay_always", "--quiet": "quiet", "-q": "quiet"},
        (),
        0,
        {
            "concurrency": 1000,
            "replay_always": False,
            "lease": None,
            "log_format": "human",
            "quiet": False,
            "reap_interval": 1.0,
        },
    ),
}


def _at_least(value: Any, least: float) -> Any:
    """A number within its option's range (commands.py's `min=`), else ValueError: typer says why."""
    if value != value or value < least:  # NaN too
        raise ValueError(value)
    return value


def parse(args: list[str]) -> tuple[dict[str, Any], tuple[str, ...], dict[str, Any]] | None:
    """(global options, command, its parameters) for a plain command line of COMMANDS, else None."""
    options: dict[str, Any] = {}
    i = 0
    while i < len(args) and (args[i] in GLOBAL_VALUES or args[i] in GLOBAL_FLAGS):
        if args[i] in GLOBAL_FLAGS:
            options[GLOBAL_FLAGS[args[i]]] = True
            i += 1
            continue
        if i + 1 >= len(args) or args[i + 1].startswith("-"):
            return None
        options[GLOBAL_VALUES[args[i]]] = args[i + 1]
        i += 2
    rest = args[i:]
    command = next((c for c in COMMANDS if tuple(rest[: len(c)]) == c), None)
    if command is None:
        return None
    spec = COMMANDS[command]
    params = dict(spec.defaults)
    positional: list[str] = []
    words = rest[len(command) :]
    j = 0
    while j < len(words):
        word = words[j]
        if word in spec.flags:
            params[spec.flags[word]] = True
            j += 1
            continue
        name, eq, inline = word.partition("=") if word.startswith("--") else (word, "", "")
        if name in spec.values:
            if eq:
                value, j = inline, j + 1
            elif j + 1 < len(words) and not words[j + 1].startswith("-"):
                value, j = words[j + 1], j + 2
            else:
                return None
            param, convert = spec.values[name]
            try:
                params[param] = convert(value)
            except ValueError:  # typer says how it is bad
                return None
            continue
        if word.startswith("-") or len(positional) == len(spec.arguments):
            return None  # --help, an option this path does not know, an extra argument: typer's
        positional.append(word)
        j += 1
    if len(positional) < spec.required:
        return None
    params.update(zip(spec.arguments, positional, strict=False))
    return options, command, params


def run(args: list[str]) -> tuple[str, ...] | None:
    """Answer a plain command line of COMMANDS: the command answered, or None when the typer app
    must handle it."""
    if "_WF_COMPLETE" in os.environ:  # shell completion: click's business
        return None
    parsed = parse(args)
    if parsed is None:
        return None
    options, command, p = parsed
    from . import guarded

    def load(warn: bool = False):
        from ..config import load_config

        config = load_config(
            options.get("config"),
            env=options.get("env"),
            persist_to=options.get("persist_to"),
            store=options.get("store"),
        )
        for warning in config.warnings:  # as every command does (cli/core.py's warn_config)
            sys.stderr.write(f"warning: {warning}\n")
        for warning in config.ignored_warnings() if warn else ():  # as the long-running commands do
            sys.stderr.write(f"warning: {warning}\n")
        return config

    def client():
        from ..client import Client

        return Client(load())

    def answer() -> None:
        if command == ("worker",):
            from .serve import worker

            worker(lambda: load(warn=True), **p)
            return
        if command == ("status",):  # as views.out_json writes it, without loading views
            c = client()
            try:
                result = c.status(p["id"], p["workflow"])
            finally:
                c.close()
            sys.stdout.write(json.dumps(result, indent=2, default=str) + "\n")
            return
        from . import views

        if command == ("instances", "list"):
            views.list_instances(
                client,
                p["workflow"],
                p["status"],
                p["per_page"],
                p["page"],
                p["reverse"],
                p["since"],
                p["until"],
                p["as_json"],
            )
        elif command == ("instances", "describe"):
            views.describe_instance(client, p["id"], p["workflow"], p["full"], p["as_json"])
        else:
            views.list_workflows(load(), p["as_json"])

    def answered() -> None:
        try:
            answer()
        except OSError as exc:
            if exc.errno != errno.EPIPE or command == ("status",):
                raise  # (status answered here before typer did anything: its boundary says it)
            # as click does for these commands in the typer app: the reader has gone, exit 1 quietly
            sys.stdout, sys.stderr = _Quiet(sys.stdout), _Quiet(sys.stderr)
            sys.exit(1)

    guarded(answered, options.get("verbose", False), as_json="--json" in args)
    return command


class _Quiet:
    """A stream whose flush ignores a reader that has gone (click's PacifyFlushWrapper)."""

    def __init__(self, stream: Any):
        self._stream = stream

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
