"""JSONC (JSON with comments and trailing commas, wrangler.jsonc's form) read by the json module.

pyjson5 reads JSON5, a superset, but importing it costs more than the rest of a read command of
`wf`; config.py reads the usual config through `as_json` and json, and hands anything else to
pyjson5 (which also says what is wrong with a config that does not parse).
"""

from __future__ import annotations

import re

# JSONC read as JSON: strings, comments, whitespace, the punctuation, anything else (a run)
_JSONC_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|//[^\n\r\u2028\u2029]*|/\*.*?\*/|\s+|[,\[\]{}:]|[^"/\s,\[\]{}:]+|.', re.S)


def as_json(text: str) -> str | None:
    """JSONC as plain JSON for the json module (the config's usual form: comments and trailing
    commas), so that a config is read without importing pyjson5; None when it has surrogate
    escapes (which pyjson5 refuses and json takes). Comments become a space; a comma is dropped
    only where JSON5 allows it (after a value, before `]` or `}`), so a text json then reads is
    read by pyjson5 to the same value, and one it refuses goes to pyjson5 for the error."""
    if "\\ud" in text.lower():
        return None
    out: list[str] = []
    last = ""  # the last significant token
    comma = -1  # where in `out` a comma that may be trailing is
    for token in _JSONC_TOKEN.findall(text):
        if token[:2] in ("//", "/*"):  # a whole comment: `/` alone is a token of its own
            out.append(" ")
            continue
        if token.isspace():
            out.append(token)
            continue
        if token in ("]", "}") and comma >= 0:
            out[comma] = " "
        comma = len(out) if token == "," and last not in ("", "[", "{", ",", ":") else -1
        out.append(token)
        last = token
    return "".join(out)


def finite(number: str) -> float:
    """json's float, refusing one too large for a float (pyjson5 refuses it too)."""
    value = float(number)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{number} is out of range")
    return value


NOT_READ = object()  # what `read` gives for a text it leaves to pyjson5


def read(text: str):
    """The value of a JSONC text that `as_json` and json read (as pyjson5 would), else NOT_READ."""
    import json

    plain = as_json(text)
    if plain is None:
        return NOT_READ
    try:
        return json.loads(plain, parse_float=finite)
    except (ValueError, RecursionError):
        return NOT_READ
