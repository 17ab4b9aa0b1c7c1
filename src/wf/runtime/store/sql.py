"""The named queries of `queries.sql`, turned into each dialect's SQL text.

A query is written once. What differs between SQLite and PostgreSQL in the text itself is
small and spelled as tokens: parameters (`:name` becomes `?`-style named `:name` for sqlite3 and
`%(name)s` for psycopg), list membership (`{in:name}`), and row locks (`{for_update}`,
`{skip_locked}`), which SQLite does not need because its writers are serialized.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

_BLOCK = re.compile(r"^-- name: (\w+)\s*$", re.M)
_TOKEN = re.compile(r"\{(\w+)(?::(\w+))?\}")
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def shipped_text(*parts: str) -> str:
    """A file shipped in this package (queries.sql, schema/*.sql): read beside this module, as
    the package is installed as files; through importlib.resources (a zip, say) otherwise. Not
    importing importlib.resources otherwise keeps the command line's start short."""
    try:
        return Path(__file__).parent.joinpath(*parts).read_text(encoding="utf-8")
    except FileNotFoundError:
        from importlib import resources

        return resources.files(__package__).joinpath(*parts).read_text(encoding="utf-8")


@cache
def _blocks() -> dict[str, str]:
    text = shipped_text("queries.sql")
    parts = _BLOCK.split(text)
    blocks = {}
    for name, body in zip(parts[1::2], parts[2::2]):
        lines = [line for line in body.splitlines() if not line.lstrip().startswith("--")]
        blocks[name] = " ".join(" ".join(lines).split())
    return blocks


class Dialect:
    """How one database spells the tokens of `queries.sql`."""

    name = ""
    for_update = ""
    skip_locked = ""
    db_now = ":now"
    id_prefix = "id >= :prefix AND id < :prefix_end"  # a range on the id index: exact for binary text
    plan_hints = False  # SQLite keeps no statistics: a unary + keeps its planner off an index
    no_index = ""  # `{no_index}column`: where that column's index must not be the one chosen (SQLite: "+")

    def param(self, name: str) -> str:
        raise NotImplementedError

    def member(self, name: str, negate: bool) -> str:
        raise NotImplementedError

    def list_value(self, values: list) -> object:
        """How a list parameter is passed to the driver."""
        return list(values)

    @cache  # noqa: B019 - one instance per dialect, kept for the life of the process
    def query(self, name: str, **parts: str) -> tuple[str, frozenset[str]]:
        """The SQL text of query `name`, with `parts` filling `{where}`-style holes, and the
        names of its list parameters."""
        lists: set[str] = set()
        blocks = _blocks()
        if name not in blocks:
            raise KeyError(f"no query named {name!r} in queries.sql")

        def token(match: re.Match) -> str:
            word, arg = match.group(1), match.group(2)
            if word in ("in", "not_in") and arg:
                lists.add(arg)
                return self.member(arg, negate=word == "not_in")
            if word in ("for_update", "skip_locked", "db_now", "id_prefix", "no_index"):
                return getattr(self, word)
            if word in parts:
                return _TOKEN.sub(token, parts[word])
            if word in blocks:
                return blocks[word]
            raise KeyError(f"query {name!r} has an unfilled {{{word}}}")

        text = _TOKEN.sub(token, blocks[name])
        return _PARAM.sub(lambda m: self.param(m.group(1)), text), frozenset(lists)

    def prepare(self, name: str, params: dict, parts: dict[str, str]) -> tuple[str, dict]:
        text, lists = self.query(name, **parts)
        if lists:
            params = {k: (self.list_value(v) if k in lists else v) for k, v in params.items()}
        return text, params
