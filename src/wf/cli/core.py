"""The `wf` command line (the typer side): parse, resolve the config, call the client, render. Nothing else.

One error boundary (`main`) turns every `WfError` into one sentence on stderr with a hint and
the error's exit code; a traceback appears only with `--verbose`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from . import guarded
from .help import TidyGroup
from .views import out_json, say  # noqa: F401  (the commands' output, shared with the fast path)

app = typer.Typer(
    cls=TidyGroup,
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
    help="wf: Cloudflare Workflows for Python, run anywhere.",
)


class State:
    config: str | None = None
    env: str | None = None
    persist_to: str | None = None
    store: str | None = None
    verbose: bool = False


state = State()


@app.callback()
def _globals(
    config: str | None = typer.Option(None, "--config", "-c", help="Path to wrangler.jsonc/.json/.toml."),
    env: str | None = typer.Option(None, "--env", "-e", help="Use the env.<NAME> section of the config."),
    persist_to: str | None = typer.Option(None, "--persist-to", help="Folder for local state (default .wf)."),
    store: str | None = typer.Option(None, "--store", help="Store URL (default: $WF_STORE or .wf/state.db)."),
    verbose: bool = typer.Option(False, "--verbose", help="Show tracebacks for errors."),
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=lambda shown: _version(shown), help="Print wf's version and exit."
    ),
):
    state.config, state.env, state.persist_to, state.store, state.verbose = config, env, persist_to, store, verbose


def _version(shown: bool) -> None:
    if shown:
        from .. import __version__

        print(f"wf {__version__}")
        raise typer.Exit()


def load(warn: bool = False):
    """The config, saying on stderr its unknown keys; with `warn` (the long-running commands), also
    the keys wrangler takes that wf ignores."""
    from ..config import load_config

    config = load_config(state.config, env=state.env, persist_to=state.persist_to, store=state.store)
    warn_config(config)
    for warning in config.ignored_warnings() if warn else ():
        say(f"warning: {warning}")
    return config


def warn_config(config) -> None:
    """The cheap part of `wf check`, on every command that reads the config: keys wf does not know."""
    for warning in config.warnings:
        say(f"warning: {warning}")


def client():
    from ..client import Client

    return Client(load())


def read_json_arg(text: str | None, file: str | None, what: str) -> Any:
    from ..errors import ValidationError

    if text is not None and file is not None:
        raise ValidationError(f"both an inline {what} and a {what} file were given", "pass only one of them")
    if file is not None:
        return read_data_file(file, what)
    if text is None or text == "":
        return None
    shown = text if len(text) <= 60 else text[:57] + "..."
    return parse_json(text, f"{what} {shown!r}", """quote it for the shell, e.g. '{"key": "value"}'""")


def parse_json(text: str, what: str, hint: str) -> Any:
    """JSON from the command line or a file; every way it can be bad is one sentence."""
    from ..errors import ValidationError

    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}", hint
        ) from None
    except RecursionError:
        raise ValidationError(f"{what} is JSON nested too deeply", "keep params under a few hundred levels") from None
    except ValueError as exc:  # an integer of more digits than Python converts (int_max_str_digits)
        reason = "it has an integer of more than 4,300 digits" if "digits" in str(exc) else str(exc)
        raise ValidationError(f"{what} is not usable JSON: {reason}", "send large numbers as strings") from None


def read_data_file(file: str, what: str) -> Any:
    """JSON or YAML by extension; `-` reads JSON (or YAML) from stdin."""
    from ..errors import ValidationError

    if file == "-":
        text, name = sys.stdin.read(), "stdin"
    else:
        path = Path(file)
        if not path.is_file():
            raise ValidationError(f"{what} file {file!r} does not exist", "check the path")
        text, name = read_text(path, f"{what} file"), file
    if name.endswith((".yaml", ".yml")) or (name == "stdin" and not text.lstrip().startswith(("{", "["))):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ValidationError(f"{what} file {name} is not valid YAML{where}", "fix the syntax") from None
    return parse_json(text, f"{what} file {name}", "fix the syntax, or use a .yaml file")


def read_text(path: Path, what: str) -> str:
    from ..errors import ValidationError

    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"{what} {str(path)!r} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})",
            "save it as UTF-8 JSON or YAML",
        ) from None
    except OSError as exc:
        raise ValidationError(f"{what} {str(path)!r} cannot be read: {exc.strerror or exc}", "check the path") from None


# the command modules register themselves on `app` (they import it from here)
from . import check, commands, dev, init, instances, manage, replay, tail  # noqa: E402,F401


def main(argv: list[str] | None = None) -> None:
    """Console entry point, inside the command line's one error boundary."""
    args = list(sys.argv[1:] if argv is None else argv)
    guarded(lambda: _run(args), _Verbose(), as_json="--json" in args)


def _run(args: list[str]) -> None:
    """The typer app in click's non-standalone mode, so that a usage error reaches the boundary
    and is said like every other error (`error:` and `hint:`, exit code 2), not in typer's box."""
    from ..errors import UsageError
    from .help import click_errors

    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="wf", standalone_mode=False)
    except click_errors.NoArgsIsHelpError:  # the help was printed already
        sys.exit(2)
    except click_errors.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "wf"
        raise UsageError(exc.format_message().rstrip("."), f"see `{where} --help`") from None
    except typer.Abort:
        raise KeyboardInterrupt from None
    if isinstance(code, int) and code:
        sys.exit(code)


class _Verbose:
    """True once `--verbose` has been parsed (the boundary asks only after a failure)."""

    def __bool__(self) -> bool:
        return state.verbose
