"""The `wf` command line (the typer side): parse, resolve the config, call the client, render. Nothing else.

One error boundary (`main`) turns every `WfError` into one sentence on stderr with a hint and
the error's exit code; a traceback appears only with `--verbose`.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import typer

from ..errors import WfError
from . import fail, store_name

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="wf: Cloudflare Workflows for Python, run anywhere.",
)


class State:
    config: str | None = None
    env: str | None = None
    persist_to: str | None = None
    store: str | None = None
    verbose: bool = False
    loaded = None  # the Config last loaded, to name its store in errors


state = State()


@app.callback()
def _globals(
    config: str | None = typer.Option(None, "--config", "-c", help="Path to wrangler.jsonc/.json/.toml."),
    env: str | None = typer.Option(None, "--env", "-e", help="Use the env.<NAME> section of the config."),
    persist_to: str | None = typer.Option(None, "--persist-to", help="Folder for local state (default .wf)."),
    store: str | None = typer.Option(None, "--store", help="Store URL (default: $WF_STORE or .wf/state.db)."),
    verbose: bool = typer.Option(False, "--verbose", help="Show tracebacks for errors."),
):
    state.config, state.env, state.persist_to, state.store, state.verbose = config, env, persist_to, store, verbose
    state.loaded = None


def load():
    from ..config import load_config

    state.loaded = load_config(state.config, env=state.env, persist_to=state.persist_to, store=state.store)
    return state.loaded


def client():
    from ..client import Client

    return Client(load())


def out_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def say(message: str) -> None:
    """Chatter for humans: stderr, so stdout stays data."""
    sys.stderr.write(message + "\n")


def announce_crons() -> None:
    """Say on stderr each time a schedule fires (the runner logs it to `wf.cron`)."""
    import logging

    class Say(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            say(record.getMessage())

    logger = logging.getLogger("wf.cron")
    logger.setLevel(logging.INFO)
    logger.addHandler(Say())
    logger.propagate = False  # said once, here


def read_json_arg(text: str | None, file: str | None, what: str) -> Any:
    from ..errors import ValidationError

    if text is not None and file is not None:
        raise ValidationError(f"both an inline {what} and a {what} file were given", "pass only one of them")
    if file is not None:
        return read_data_file(file, what)
    if text is None or text == "":
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"{what} {text!r} is not valid JSON: {exc.msg} at column {exc.colno}",
            """quote it for the shell, e.g. '{"key": "value"}'""",
        ) from None


def read_data_file(file: str, what: str) -> Any:
    """JSON or YAML by extension; `-` reads JSON (or YAML) from stdin."""
    from ..errors import ValidationError

    if file == "-":
        text, name = sys.stdin.read(), "stdin"
    else:
        path = Path(file)
        if not path.is_file():
            raise ValidationError(f"{what} file {file!r} does not exist", "check the path")
        text, name = path.read_text(encoding="utf-8"), file
    if name.endswith((".yaml", ".yml")) or (name == "stdin" and not text.lstrip().startswith(("{", "["))):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ValidationError(f"{what} file {name} is not valid YAML{where}", "fix the syntax") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"{what} file {name} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            "fix the syntax, or use a .yaml file",
        ) from None


# the command modules register themselves on `app` (they import it from here)
from . import commands, dev, init, manage, tail  # noqa: E402,F401


def main(argv: list[str] | None = None) -> None:
    """Console entry point, with the one error boundary."""
    try:
        app(args=argv, prog_name="wf")
    except WfError as exc:
        _fail(exc, str(exc), exc.hint, exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except sqlite3.DatabaseError as exc:  # damage found after opening: a bad page deep in the file
        _fail(
            exc,
            f"the state database {_store_name()} is damaged: {exc}",
            "move it aside and run again; wf starts a fresh one",
            5,
        )
    except Exception as exc:  # a bug: say so plainly, details with --verbose
        _fail(exc, f"unexpected error: {type(exc).__name__}: {exc}", "run again with --verbose and report it", 1)


def _store_name() -> str:
    return store_name(state.loaded)


def _fail(exc: BaseException, message: str, hint: str | None, code: int) -> None:
    fail(exc, message, hint, code, state.verbose)
