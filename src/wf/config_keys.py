"""Which keys a wrangler config may hold, and what to say about the others.

`load_config` reads only the keys wf uses and would otherwise pass over a misspelt one
(`limts`, `schedule`) in silence. This module walks the parsed config against the keys wf
reads plus the keys wrangler itself knows (a Worker project's config carries `routes`,
`kv_namespaces`...; wf accepts and ignores those), and returns a note per key that is neither,
with the closest known key as a suggestion and the line where it is written. Every command that
reads the config prints these notes as warnings; `wf check` also lists the wrangler keys wf
ignores.
"""

from __future__ import annotations

import re

from wf.records import dataclass

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (which `wf status` would pay for)
if TYPE_CHECKING:
    from typing import Any

# the keys wf reads (config.py), at the top level, in an `env.<name>` section, and per workflow
WF_TOP = frozenset({"name", "main", "compatibility_date", "compatibility_flags", "vars", "workflows", "env"})
WF_WORKFLOW = frozenset(
    {"name", "binding", "class_name", "limits", "concurrency", "schedules", "script_name", "default_retention"}
)
WF_NESTED = {
    "limits": frozenset({"steps"}),
    "concurrency": frozenset({"limit"}),
    "default_retention": frozenset({"success_retention", "error_retention"}),
}

# wrangler's own top-level settings (its config schema), accepted in the file and not used by wf
WRANGLER_TOP = frozenset(
    """$schema account_id ai alias analytics_engine_datasets assets base_dir browser build
    cloudchamber compliance_region containers d1_databases data_blobs define dev dispatch_namespaces
    durable_objects find_additional_modules first_party_worker hyperdrive images jsx_factory
    jsx_fragment keep_names kv_namespaces legacy_env limits logfwdr logpush migrations minify mtls_certificates
    no_bundle node_compat observability pipelines placement preserve_file_names preview_urls python_modules
    queues r2_buckets ratelimits route routes rules secrets_store_secrets send_email services site
    streaming_tail_consumers tail_consumers text_blobs triggers tsconfig unsafe upload_source_maps usage_model
    vectorize version_metadata vpc_services wasm_modules worker_loaders workers_dev""".split()
)
WRANGLER_WORKFLOW = frozenset({"remote", "experimental_remote"})
WHY_IGNORED = {
    "triggers": "a Worker's cron triggers; wf fires a workflow's own `schedules` instead",
    "limits": "a Worker's CPU limits; a workflow's step limit is workflows[].limits.steps",
}


@dataclass(frozen=True)
class KeyNote:
    """A key wf does not read: `unknown` (neither wf's nor wrangler's: probably misspelt) or
    `ignored` (a wrangler setting wf does not use)."""

    kind: str
    field: str  # its path in the file, e.g. workflows[0].limts
    key: str
    suggestion: str | None = None
    line: int | None = None
    column: int | None = None
    why: str | None = None

    def where(self, path: str) -> str:
        if self.line is None:
            return path
        return f"{path}:{self.line}" + (f":{self.column}" if self.column is not None else "")

    def sentence(self, path: str) -> str:
        if self.kind == "ignored":
            return f"{self.where(path)}: {self.field} is {self.why or 'a wrangler setting wf does not use'}"
        guess = f' (did you mean "{self.suggestion}"?)' if self.suggestion else ""
        return f"{self.where(path)}: unknown key {self.field}{guess}; wf ignores it"


def key_notes(data: dict, text: str = "") -> list[KeyNote]:
    """Notes on every key of a parsed config (and its `env.<name>` sections) that wf does not read."""
    notes = _level(data, "", WF_TOP, WRANGLER_TOP, text)
    envs = data.get("env")
    if isinstance(envs, dict):
        for name, section in envs.items():
            if isinstance(section, dict):
                notes += _level(section, f"env.{name}.", WF_TOP - {"env"}, WRANGLER_TOP, text)
    return notes


def _level(data: dict, prefix: str, ours: frozenset, theirs: frozenset, text: str) -> list[KeyNote]:
    notes = _keys(data, prefix, ours, theirs, text)
    workflows = data.get("workflows")
    if isinstance(workflows, list):
        for i, item in enumerate(workflows):
            if isinstance(item, dict):
                notes += _workflow(item, f"{prefix}workflows[{i}].", text)
    return notes


def _workflow(item: dict, prefix: str, text: str) -> list[KeyNote]:
    notes = _keys(item, prefix, WF_WORKFLOW, WRANGLER_WORKFLOW, text)
    for table, keys in WF_NESTED.items():
        section = item.get(table)
        if isinstance(section, dict):
            notes += _keys(section, f"{prefix}{table}.", keys, frozenset(), text)
    return notes


def _keys(data: dict, prefix: str, ours: frozenset, theirs: frozenset, text: str) -> list[KeyNote]:
    notes = []
    for key in data:
        if key in ours:
            continue
        line, column = locate(text, str(key))
        if key in theirs:
            notes.append(KeyNote("ignored", prefix + key, key, None, line, column, WHY_IGNORED.get(key)))
        else:
            import difflib  # only a config with an unknown key loads it

            guess = difflib.get_close_matches(str(key), sorted(ours | theirs), n=1, cutoff=0.6)
            notes.append(KeyNote("unknown", prefix + str(key), str(key), guess[0] if guess else None, line, column))
    return notes


def locate(text: str, key: str) -> tuple[int | None, int | None]:
    """Line and column where `key` is first set in JSONC or TOML text (best effort)."""
    match = re.search(rf"""(?<![\w$-])["']?{re.escape(key)}["']?\s*[:=]""", text)
    if match is None:
        return None, None
    line = text.count("\n", 0, match.start()) + 1
    return line, match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1


def warnings(data: Any, text: str, path: str) -> tuple[str, ...]:
    """The sentences every command prints for a config: its unknown keys only."""
    if not isinstance(data, dict):
        return ()
    return tuple(note.sentence(path) for note in key_notes(data, text) if note.kind == "unknown")
