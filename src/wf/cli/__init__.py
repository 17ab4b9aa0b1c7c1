"""The `wf` command line.

This module stays light on purpose: `wf status ID --json`, the command scripts call in loops,
is answered here without importing typer, rich, asyncio or the engine. Everything else goes
to the typer app in `core.py`, whose modules (one per command group) only parse, call
`wf.client`, and render.
"""

from __future__ import annotations

import json
import os
import sys

_GLOBAL_OPTIONS = {
    "-c": "config",
    "--config": "config",
    "-e": "env",
    "--env": "env",
    "--persist-to": "persist_to",
    "--store": "store",
}


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    if _fast_status(args):
        return
    from .core import main as full

    full(args)


def __getattr__(name: str):
    """`from wf.cli import app` and the rest of the typer side, loaded on first use."""
    if name.startswith("__") or name == "core":
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(".core", __name__), name)


def _parse_status(args: list[str]) -> tuple[dict, str, str | None] | None:
    """(global options, id, workflow) for a plain `[globals] status ID [--json] [-w W]`, else None."""
    options, i = {}, 0
    while i < len(args) and args[i] in _GLOBAL_OPTIONS:
        if i + 1 >= len(args):
            return None
        options[_GLOBAL_OPTIONS[args[i]]] = args[i + 1]
        i += 2
    rest = args[i:]
    if not rest or rest[0] != "status":
        return None
    id, workflow, j = None, None, 1
    while j < len(rest):
        word = rest[j]
        if word == "--json":
            j += 1
        elif word in ("-w", "--workflow") and j + 1 < len(rest):
            workflow, j = rest[j + 1], j + 2
        elif word.startswith("-") or id is not None:
            return None  # --watch, --help, --verbose...: the full command line handles it
        else:
            id, j = word, j + 1
    return (options, id, workflow) if id is not None else None


def _fast_status(args: list[str]) -> bool:
    parsed = _parse_status(args)
    if parsed is None:
        return False
    options, id, workflow = parsed

    def status() -> None:
        from ..client import Client
        from ..config import load_config

        config = load_config(
            options.get("config"),
            env=options.get("env"),
            persist_to=options.get("persist_to"),
            store=options.get("store"),
        )
        for warning in config.warnings:  # as every command does (cli/core.py's warn_config)
            sys.stderr.write(f"warning: {warning}\n")
        result = Client(config).status(id, workflow)
        sys.stdout.write(json.dumps(result, indent=2, default=str) + "\n")

    guarded(status, as_json="--json" in args)
    return True


def guarded(command, verbose: object = False, as_json: bool = False) -> None:
    """The command line's one error boundary: a `WfError` (the user can act on it) becomes one
    sentence and a hint on stderr and its exit code; anything else is a bug, said plainly. A
    traceback only with --verbose (or WF_VERBOSE=1)."""
    from ..errors import WfError

    try:
        command()
    except WfError as exc:
        fail(exc, str(exc), exc.hint, exc.exit_code, verbose, as_json)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug: say so plainly, details with --verbose
        hint = "run again with --verbose and report it"
        fail(exc, f"unexpected error: {type(exc).__name__}: {exc}", hint, 1, verbose, as_json)


def fail(
    exc: BaseException, message: str, hint: str | None, code: int, verbose: object = False, as_json: bool = False
) -> None:
    """The end of every failed command: one sentence and a hint on stderr (one JSON object with
    --json: `{"error": {"name", "message", "hint", "exit_code"}}`), an exit code."""
    if verbose or os.environ.get("WF_VERBOSE"):
        import traceback

        traceback.print_exception(exc)
    if as_json:
        error = {"name": type(exc).__name__, "message": message, "hint": hint, "exit_code": code}
        sys.stderr.write(json.dumps({"error": error}) + "\n")
    else:
        sys.stderr.write(f"error: {message}\n")
        if hint:
            sys.stderr.write(f"hint: {hint}\n")
    sys.exit(code)
