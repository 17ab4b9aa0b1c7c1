"""The `wf` command line.

This module stays light on purpose: the read commands (`wf status ID --json`, which scripts
call in loops, `wf instances list`, `wf instances describe`, `wf workflows list`) are answered
by `fast.py` without importing typer, asyncio or the engine (rich only for human output), and
`wf worker` starts there without typer.
Everything else goes to the typer app in `core.py`, whose modules (one per command group)
only parse, call `wf.client`, and render.
"""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    from .fast import run

    answered = run(args)
    if answered is not None:
        # a read command run as the console script: nothing is left but the interpreter's teardown
        # (a worker's end keeps it: it waits for any thread a step left behind)
        if argv is None and answered != ("worker",):
            _leave()
        return
    from .core import main as full

    full(args)


def _leave() -> None:
    """Exit 0 now that a read command has written its answer and closed its store, without the
    interpreter tearing down every module it imported (a tenth of the command's time). If the
    output cannot be flushed (a closed pipe, say), the usual exit goes on and says so as ever."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        return
    os._exit(0)


def __getattr__(name: str):
    """`from wf.cli import app` and the rest of the typer side, loaded on first use."""
    if name.startswith("__") or name in ("core", "fast", "views", "plain", "runlog", "serve"):  # submodules
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(".core", __name__), name)


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
