"""Find the wrangler-style config and resolve it, once, into a frozen `Config`.

Precedence, highest first:

* `vars`: `.dev.vars.<env>` else `.dev.vars`; only when neither exists, `.env` then
  `.env.<env>`; then the config's `vars` (of the selected `env.<name>` section, if any).
* `env.<name>` sections: `name`, `main`, `compatibility_date` and `compatibility_flags` are
  inherited from the top level unless the section overrides them; `vars` and `workflows` are
  not inherited (as in wrangler): the section's own, or empty.
* state: `persist_to` (relative to cwd), else `<config dir>/.wf`.
* store URL: the `store` argument, else `$WF_STORE`, else None.
* runtime settings (`wf.runtime.settings`): from the environment, once, here.
"""

from __future__ import annotations

import json
import keyword
import os
import re
from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any

from wf import config_keys, jsonc
from wf.errors import ConfigError, NotFoundError, ValidationError
from wf.records import dataclass, field
from wf.runtime.durations import RETENTION_DEFAULT
from wf.runtime.settings import Settings

CONFIG_NAMES = ("wrangler.jsonc", "wrangler.json", "wrangler.toml")
INHERITABLE = ("name", "main", "compatibility_date", "compatibility_flags")
# What wf reads; every other key wrangler accepts (kv_namespaces, routes, observability, ...) is kept
# out of the way: accepted, listed in `Config.ignored`, and named in a warning by `wf dev` / `wf worker`.
READ = frozenset({*INHERITABLE, "vars", "workflows", "env", "$schema"})
DEFAULT_STEP_LIMIT = 10_000

NAME_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9\-_]*$")
NAME_RULE = (
    "Workflow names must be 1-64 characters long, start with a letter, number, or underscore, "
    "and may only contain letters, numbers, underscores, or hyphens."
)
DOTTED_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_MISSING = object()


@dataclass(frozen=True)
class WorkflowConfig:
    name: str
    binding: str
    class_name: str
    step_limit: int = DEFAULT_STEP_LIMIT
    concurrency_limit: int | None = None
    schedules: tuple[str, ...] = ()
    script_name: str | None = None
    success_retention: float = RETENTION_DEFAULT  # seconds an instance that completed is kept
    error_retention: float = RETENTION_DEFAULT  # seconds an errored or terminated one is kept


@dataclass(frozen=True)
class Config:
    path: Path
    root: Path
    name: str | None
    main: str
    compatibility_date: str | None
    compatibility_flags: tuple[str, ...]
    vars: Mapping[str, Any] = field(hash=False)
    workflows: tuple[WorkflowConfig, ...]
    env_name: str | None
    state_dir: Path
    store_url: str | None
    settings: Settings = field(default_factory=Settings)  # runtime settings from the environment
    warnings: tuple[str, ...] = field(default=(), compare=False)  # unknown keys, with a suggestion (config_keys)
    ignored: tuple[str, ...] = ()  # keys of the config that wf accepts and does not use

    def ignored_warnings(self) -> list[str]:
        """One sentence naming what wf ignores in the config, if anything."""
        if not self.ignored:
            return []
        keys = ", ".join(self.ignored)
        verb = "it takes" if len(self.ignored) == 1 else "they take"
        return [
            f"{self.path.name}: wf ignores {keys} ({verb} effect on Cloudflare only; "
            "wf runs the workflows, the Worker's fetch handler and vars)"
        ]

    def workflow(self, name: str) -> WorkflowConfig:
        return self._find("name", name, "named")

    def by_binding(self, binding: str) -> WorkflowConfig:
        return self._find("binding", binding, "with binding")

    def _find(self, attr: str, value: str, what: str) -> WorkflowConfig:
        for wf in self.workflows:
            if getattr(wf, attr) == value:
                return wf
        declared = ", ".join(getattr(wf, attr) for wf in self.workflows)
        hint = f"declared: {declared}" if declared else f"{self.path} declares no workflows"
        raise NotFoundError(f"No workflow {what} {value!r} in {self.path}.", hint=hint)


# ---------------------------------------------------------------- finding and parsing


def find_config(explicit: str | Path | None = None, cwd: Path | None = None) -> Path:
    """The config file: `explicit` (a file, or a directory holding one), else the first of
    CONFIG_NAMES in `cwd` or its nearest parent that has one."""
    cwd = Path(cwd or Path.cwd()).absolute()
    if explicit is not None:
        return _explicit_config(cwd / Path(explicit))
    for folder in (cwd, *cwd.parents):
        found = _config_in(folder)
        if found:
            return found
    raise ConfigError(
        f"No {', '.join(CONFIG_NAMES)} found in {cwd} or any parent directory.", hint="run `wf init` or pass -c PATH"
    )


def _explicit_config(path: Path) -> Path:
    if path.is_dir():
        found = _config_in(path)
        if found:
            return found
        raise ConfigError(
            f"The directory {path} holds none of {', '.join(CONFIG_NAMES)}.",
            hint="pass the config file itself with -c PATH",
        )
    if not path.is_file():
        raise ConfigError(f"The config file {path} does not exist.", hint="check the -c/--config path")
    return path.resolve()


def _config_in(folder: Path) -> Path | None:
    for name in CONFIG_NAMES:
        if (folder / name).is_file():
            return (folder / name).resolve()
    return None


def read_config_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line, col = _line_col(exc.object[: exc.start].decode("utf-8", "replace"), exc.start)
        raise ConfigError(
            f"The file is not UTF-8 text: byte {exc.object[exc.start]:#04x} cannot be read.",
            hint="save it as UTF-8 (wrangler reads it so too)",
            path=str(path),
            line=line,
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"The file cannot be read: {exc.strerror or exc}.", hint="check its permissions", path=str(path)
        ) from None


def parse_config_text(text: str, path: Path) -> dict:
    """Parse TOML (by suffix) or JSONC/JSON (comments and trailing commas allowed) into a dict."""
    data = _parse_toml(text, path) if Path(path).suffix == ".toml" else _parse_jsonc(text, path)
    if not isinstance(data, dict):
        raise ConfigError(
            f"The config must be an object of settings, but found {_describe(data)}.",
            hint='start the file with "{"',
            path=str(path),
        )
    return data


def _parse_jsonc(text: str, path: Path) -> Any:
    if not text.strip():
        raise ConfigError("The config file is empty.", hint="run `wf init` for a starting config", path=str(path))
    value = jsonc.read(text)  # the usual config, read by json; else pyjson5 (JSON5's extras, the error)
    if value is not jsonc.NOT_READ:
        return value
    import pyjson5  # its import costs more than reading a config: only configs beyond JSON with comments

    try:
        return pyjson5.loads(text)
    except pyjson5.Json5Exception as exc:
        why, offset = _jsonc_reason(str(exc.args[0]) if exc.args else str(exc))
        if offset is not None and isinstance(exc, pyjson5.Json5ExtraData):
            offset += len(text[offset:]) - len(text[offset:].lstrip())  # at the extra data itself
        elif offset:
            offset -= 1  # pyjson5 counts past the character it read
        line, col = _line_col(text, offset) if offset is not None else (None, None)
        raise ConfigError(
            f"Syntax error in the config: {why}.",
            path=str(path),
            line=line,
            column=col,
            hint="look for a missing comma, quote or bracket just before this point",
        ) from None


_TOKEN_NAMES = {
    "colon": "':'",
    "comma": "','",
    "array": "array",
    "object": "object",
    "string": "string",
    "NumericLiteral": "number",
}


def _jsonc_reason(message: str) -> tuple[str, int | None]:
    """pyjson5's "Expected b'colon' near 15, found U+0032" as ("expected ':', found '2'", 15)."""
    match = re.search(r" (?:starting )?near (\d+)", message)
    offset = int(match[1]) if match else None
    why = message.replace(match[0], "") if match else message
    why = re.sub(r"b'(\w+)'", lambda m: _TOKEN_NAMES.get(m[1], m[1]), why)
    why = re.sub(r"U\+([0-9a-fA-F]{4,6})", lambda m: repr(chr(int(m[1], 16))), why)
    return why[:1].lower() + why[1:], offset


def _parse_toml(text: str, path: Path) -> dict:
    import tomllib  # only TOML configs load it

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.match(r"(.*) \(at line (\d+), column (\d+)\)", str(exc))
        why, line, col = (match[1], int(match[2]), int(match[3])) if match else (str(exc), None, None)
        raise ConfigError(
            f"Syntax error in the config: {why}.",
            path=str(path),
            line=line,
            column=col,
            hint="check the TOML syntax near this point (quotes, `=`, brackets)",
        ) from None


# ---------------------------------------------------------------- loading


def load_config(
    path: str | Path | None = None,
    *,
    cwd: Path | None = None,
    env: str | None = None,
    persist_to: str | Path | None = None,
    store: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Find, parse and validate the config; see the module docstring for precedence."""
    cwd = Path(cwd or Path.cwd()).absolute()
    environ = os.environ if environ is None else environ
    file = find_config(path, cwd)
    text = read_config_text(file)
    check = _Checker(file, text)
    parsed = parse_config_text(text, file)
    data, at = _select_env(parsed, env, check)
    return Config(
        path=file,
        root=file.parent,
        name=_opt_str(data, "name", at("name"), check),
        main=_main(data, at("main"), check),
        compatibility_date=_compat_date(data, at("compatibility_date"), check),
        compatibility_flags=_str_list(data, "compatibility_flags", at("compatibility_flags"), check),
        vars=MappingProxyType({**_vars(data, at("vars"), check), **read_dev_vars(file.parent, env)}),
        workflows=_workflows(data, at("workflows"), check),
        env_name=env,
        state_dir=(cwd / Path(persist_to)).resolve() if persist_to else file.parent / ".wf",
        store_url=store or environ.get("WF_STORE") or None,
        settings=Settings.from_env(environ),
        warnings=config_keys.warnings(parsed, text, str(file)),
        ignored=tuple(at(key) for key in data if key not in READ),
    )


def _select_env(data: dict, env: str | None, check: _Checker) -> tuple[dict, Callable[[str], str]]:
    """The effective settings, and a function giving each key's field path in the file."""
    if env is None:
        return data, lambda key: key
    envs = data.get("env")
    if not isinstance(envs, dict) or env not in envs:
        known = ", ".join(envs) if isinstance(envs, dict) and envs else ""
        hint = f"declared environments: {known}" if known else "the config declares no `env` sections"
        raise ConfigError(
            f"No environment named {env!r} in the config.", hint=hint, path=str(check.path), field=f"env.{env}"
        )
    section = envs[env]
    if not isinstance(section, dict):
        check.fail(f"env.{env}", "an object of settings", section, key=env)
    inherited = {key: data[key] for key in INHERITABLE if key in data}
    return {**inherited, **section}, lambda key: f"env.{env}.{key}" if key in section else key


def _main(data: dict, field: str, check: _Checker) -> str:
    main = data.get("main", _MISSING)
    if not isinstance(main, str) or not main.strip():
        check.fail(field, 'a string naming the entry module, e.g. "src/index.py" or "shop.app"', main, key="main")
    if not (main.endswith(".py") or DOTTED_RE.match(main)):
        check.fail(field, "a path to a .py file or a dotted module name", main, key="main")
    return main


def _compat_date(data: dict, field: str, check: _Checker) -> str | None:
    value = data.get("compatibility_date")
    if isinstance(value, date):  # an unquoted TOML date
        return value.isoformat()
    return _opt_str(data, "compatibility_date", field, check)


def _opt_str(data: dict, key: str, field: str, check: _Checker) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        check.fail(field, "a string", value, key=key)
    return value


def _str_list(data: dict, key: str, field: str, check: _Checker) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        check.fail(field, "a list of strings", value, key=key)
    return tuple(value)


def _vars(data: dict, field: str, check: _Checker) -> dict:
    value = data.get("vars", {})
    if not isinstance(value, dict):
        check.fail(field, "an object of NAME: value pairs", value, key="vars")
    return dict(value)


# ---------------------------------------------------------------- workflows


def _workflows(data: dict, field: str, check: _Checker) -> tuple[WorkflowConfig, ...]:
    items = data.get("workflows", [])
    if not isinstance(items, list):
        check.fail(field, "a list of workflow objects", items, key="workflows")
    parsed = tuple(_workflow(item, f"{field}[{i}]", check) for i, item in enumerate(items))
    _no_duplicates(parsed, "name", field, check)
    _no_duplicates(parsed, "binding", field, check)
    return parsed


def _workflow(item: Any, where: str, check: _Checker) -> WorkflowConfig:
    if not isinstance(item, dict):
        check.fail(where, "an object with name, binding and class_name", item)
    name = _required_str(item, "name", where, check)
    if len(name) > 64 or not NAME_RE.match(name):
        check.error(
            f"{where}.name",
            f"{where}.name {json.dumps(name)} is invalid: {NAME_RULE}",
            key="name",
            value=name,
            hint='for example "order-processing"',
        )
    return WorkflowConfig(
        name=name,
        binding=_identifier(item, "binding", where, check),
        class_name=_identifier(item, "class_name", where, check),
        step_limit=_positive(item, "limits", "steps", where, check) or DEFAULT_STEP_LIMIT,
        concurrency_limit=_positive(item, "concurrency", "limit", where, check),
        schedules=_schedules(item, where, check),
        script_name=_opt_str(item, "script_name", f"{where}.script_name", check),
        **_retention(item, where, check),
    )


def _retention(item: dict, where: str, check: _Checker) -> dict[str, float]:
    """`default_retention: {"success_retention": "3 days", "error_retention": 604800000}`, as
    wrangler takes it: duration strings, or whole numbers of milliseconds."""
    value = item.get("default_retention", _MISSING)
    if value is _MISSING:
        return {}
    from .runtime.durations import parse_retention

    try:
        return parse_retention(value, f"{where}.default_retention", milliseconds=True)
    except ValidationError as exc:
        check.error(f"{where}.default_retention", exc.message, key="default_retention", hint=exc.hint)
        raise


def _required_str(item: dict, key: str, where: str, check: _Checker) -> str:
    value = item.get(key, _MISSING)
    if not isinstance(value, str) or not value:
        check.fail(f"{where}.{key}", "a non-empty string", value, key=key)
    return value


def _identifier(item: dict, key: str, where: str, check: _Checker) -> str:
    value = _required_str(item, key, where, check)
    if not value.isidentifier() or keyword.iskeyword(value):
        check.fail(f"{where}.{key}", "a Python identifier (letters, digits, underscores)", value, key=key)
    return value


def _positive(item: dict, table: str, key: str, where: str, check: _Checker) -> int | None:
    section = item.get(table, {})
    if not isinstance(section, dict):
        check.fail(f"{where}.{table}", f'an object like {{"{key}": 10}}', section, key=table)
    value = section.get(key)
    if value is not None and (type(value) is not int or value <= 0):
        check.fail(f"{where}.{table}.{key}", "a positive integer", value, key=key)
    return value


def _schedules(item: dict, where: str, check: _Checker) -> tuple[str, ...]:
    value = item.get("schedules", _MISSING)
    if value is _MISSING:
        return ()
    crons = [value] if isinstance(value, str) else value
    if not isinstance(crons, list) or not crons:
        check.fail(f"{where}.schedules", "a cron string or a non-empty list of them", value, key="schedules")
    from .runtime.cron import check as cron_problem  # only projects with schedules load cronsim

    for i, cron in enumerate(crons):
        problem = cron_problem(cron) if isinstance(cron, str) else "it is not a string"
        if problem is not None:
            path = f"{where}.schedules" + (f"[{i}]" if isinstance(value, list) else "")
            hint = f"{problem}: minute hour day-of-month month day-of-week, in UTC (wf also takes seconds first)"
            check.fail(path, 'a cron expression like "*/5 * * * *"', cron, key="schedules", value=cron, hint=hint)
    return tuple(crons)


def _no_duplicates(workflows: tuple[WorkflowConfig, ...], attr: str, field: str, check: _Checker) -> None:
    seen: dict[str, int] = {}
    for i, wf in enumerate(workflows):
        value = getattr(wf, attr)
        if value in seen:
            check.fail(
                f"{field}[{i}].{attr}",
                f"unique across workflows ({field}[{seen[value]}] has it already)",
                value,
                key=attr,
                last=True,
            )
        seen[value] = i


# ---------------------------------------------------------------- errors with positions


class _Checker:
    """Raises validation errors, pointing at the offending text when it can be found."""

    def __init__(self, path: Path, text: str):
        self.path, self.text = path, text

    def fail(
        self,
        field: str,
        expected: str,
        found: Any,
        *,
        key: str | None = None,
        value: Any = _MISSING,
        hint: str | None = None,
        last: bool = False,
    ) -> None:
        self.error(
            field,
            f"{field} must be {expected}, but found {_describe(found)}.",
            key=key,
            value=found if value is _MISSING else value,
            hint=hint,
            last=last,
        )

    def error(
        self,
        field: str,
        message: str,
        *,
        key: str | None = None,
        value: Any = _MISSING,
        hint: str | None = None,
        last: bool = False,
    ) -> None:
        line, col = self.locate(key, value, last)
        raise ConfigError(
            message,
            hint=hint or f"fix `{field}` in {self.path.name}",
            path=str(self.path),
            line=line,
            column=col,
            field=field,
        )

    def locate(self, key: str | None, value: Any, last: bool) -> tuple[int | None, int | None]:
        """Best effort: where `key` is set to `value` (else where `key` is set) in the text."""
        if key is None:
            return None, None
        pattern = rf"""(?<![\w-])["']?{re.escape(key)}["']?\s*[:=]\s*"""
        literal = _literal(value)
        hits = list(re.finditer(pattern + f"(?P<v>{literal})", self.text)) if literal else []
        if not hits:  # the key alone, only when it is unambiguous
            hits = list(re.finditer(pattern, self.text)) if value is not _MISSING else []
            if len(hits) != 1:
                return None, None
        hit = hits[-1 if last else 0]
        return _line_col(self.text, hit.start("v") if "v" in hit.groupdict() else hit.start())


def _literal(value: Any) -> str:
    """A regex for how `value` is likely written, or '' when it cannot be guessed."""
    if isinstance(value, str):
        return rf"""(?P<q>["']){re.escape(value)}(?P=q)"""
    if isinstance(value, (bool, int, float)):
        return re.escape(json.dumps(value)) + r"(?![\w.])"
    return ""


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _describe(value: Any) -> str:
    if value is _MISSING:
        return "nothing (the field is missing)"
    kind = {
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        list: "a list",
        dict: "an object",
        type(None): "null",
    }.get(type(value), type(value).__name__)
    try:
        shown = json.dumps(value, default=str)
    except (TypeError, ValueError):
        shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return shown if value is None else f"{shown} ({kind})"


# ---------------------------------------------------------------- .dev.vars / .env


def read_dev_vars(root: Path, env: str | None = None) -> dict[str, str]:
    """Local secrets beside the config: `.dev.vars[.<env>]`, else `.env` + `.env.<env>`."""
    dev = [root / f".dev.vars.{env}"] if env else []
    for candidate in (*dev, root / ".dev.vars"):
        if candidate.is_file():
            return parse_dotenv(candidate)
    values: dict[str, str] = {}
    for candidate in (root / ".env", *([root / f".env.{env}"] if env else [])):
        if candidate.is_file():
            values.update(parse_dotenv(candidate))
    return values


_ASSIGN = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.\-]*)\s*=\s*(.*)$")


def parse_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; `export ` prefix, # comments, 'single' (literal) and "double" quotes
    (with \\n escapes, may span lines)."""
    lines = read_config_text(path).splitlines()
    values: dict[str, str] = {}
    number = 0
    while number < len(lines):
        start, text = number + 1, lines[number]
        number += 1
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        match = _ASSIGN.match(text)
        if not match:
            raise ConfigError(
                f"Expected KEY=VALUE in {path.name}, but found {text.strip()!r}.",
                hint="write one KEY=VALUE per line; start comments with #",
                path=str(path),
                line=start,
            )
        raw = match[2]
        while raw[:1] in ("'", '"') and not _closed(raw) and number < len(lines):
            raw, number = raw + "\n" + lines[number], number + 1
        values[match[1]] = _dotenv_value(raw, path, start)
    return values


def _closed(raw: str) -> bool:
    quote = raw[0]
    body = raw[1:] if quote == "'" else re.sub(r"\\.", "", raw[1:])
    return quote in body


def _dotenv_value(raw: str, path: Path, line: int) -> str:
    if raw[:1] in ("'", '"'):
        if not _closed(raw):
            raise ConfigError(
                f"Unclosed {raw[0]} quote in {path.name}.", path=str(path), line=line, hint="close the quoted value"
            )
        if raw[0] == "'":
            return raw[1 : raw.index("'", 1)]
        body = re.match(r'"((?:\\.|[^"\\])*)"', raw, re.S)[1]  # type: ignore[index]  # closed: checked above
        escapes = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
        return re.sub(r"\\(.)", lambda m: escapes.get(m[1], "\\" + m[1]), body)
    return re.split(r"\s+#", raw, maxsplit=1)[0].strip()
