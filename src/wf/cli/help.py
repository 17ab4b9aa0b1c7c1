"""Help text as a person reads it: `--wait` not `--wait <bool>`, `--workflow NAME` not `<str>`,
`wf trigger WORKFLOW [PARAMS_JSON]` not `{workflow} [[PARAMS_JSON]]`.

typer labels every parameter with its Python type and wraps argument names in its own braces.
`TidyGroup`, the root command's class, walks the whole command tree once it is built (by
`wf` itself and by typer's CliRunner alike) and gives each parameter a plain metavar instead.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperArgument, TyperGroup

try:  # typer 0.2x carries its own copy of click; older ones use click itself
    from typer._click import exceptions as click_errors  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - depends on the typer installed
    from click import exceptions as click_errors  # type: ignore[no-redef,unused-ignore]

__all__ = ["TidyGroup", "click_errors", "tidy"]

# what a value option takes, by parameter name; others show their own name in capitals
METAVARS = {
    "config": "PATH",
    "persist_to": "DIR",
    "store": "URL",
    "params": "FILE",
    "payload_file": "FILE",
    "payload": "JSON",
    "workflow": "NAME",
    "limit": "N",
    "count": "N",
    "concurrency": "N",
    "lease": "SECONDS",
    "log_format": "human|json",
}


class TidyGroup(TyperGroup):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        tidy(self)

    def get_params(self, ctx: Any) -> list:
        params = super().get_params(ctx)  # typer adds --install-completion and the like after __init__
        for param in params:
            _tidy_param(param)
        return params


def tidy(command: Any) -> None:
    for param in command.params:
        _tidy_param(param)
    make_help = command.get_help_option  # --help is made on demand, not kept in params

    def get_help_option(ctx: Any) -> Any:
        option = make_help(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = get_help_option
    for sub in getattr(command, "commands", {}).values():
        tidy(sub)


def _tidy_param(param: Any) -> None:
    if isinstance(param, TyperArgument):
        name = param.metavar or (param.name or "").upper()
        param.metavar = name
        shown = name if param.required else f"[{name}]"
        param._usage_display_name = lambda: shown  # type: ignore[method-assign]
        param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
    elif param.param_type_name == "option" and param.metavar is None:
        param.metavar = "" if param.is_flag else METAVARS.get(param.name or "", (param.name or "").upper())
