"""Cross-site request protection for wf dev's own routes (the explorer API and the web UI).

A web page on any site can make a developer's browser send a "simple" request to
127.0.0.1: a POST with a text/plain, form or multipart body, or with no body at all, is sent
without a CORS preflight. Such requests are refused when they change state:

- a request whose `Origin` is not this server (or whose `Sec-Fetch-Site` says cross-site):
  browsers always send these on cross-origin requests; the wrangler CLI and curl send neither;
- a body whose Content-Type is not JSON: a cross-site page can send JSON only after a preflight,
  which wf dev never grants.

Reads (GET, HEAD, OPTIONS) are not state changes and stay open to any same-host client.
"""

from __future__ import annotations

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def cross_site_refusal(method: str, headers: dict[bytes, bytes], has_body: bool) -> tuple[int, str] | None:
    """(status, sentence) when a state-changing request may come from another site; else None."""
    if method in SAFE_METHODS:
        return None
    origin = headers.get(b"origin", b"").decode("latin-1").strip()
    host = headers.get(b"host", b"").decode("latin-1").strip().lower()
    if origin and origin != "null" and _authority(origin) != host or origin == "null":
        return 403, (
            f"Forbidden: a {method} from the web page at {origin} cannot change this server's workflows; "
            "only wf's own pages and non-browser clients may."
        )
    if headers.get(b"sec-fetch-site", b"") == b"cross-site":
        return 403, f"Forbidden: a cross-site {method} cannot change this server's workflows."
    kind = headers.get(b"content-type", b"").decode("latin-1").split(";", 1)[0].strip().lower()
    if has_body and kind != "application/json" and not kind.endswith("+json"):
        shown = kind or "none"
        return 415, (
            f"Unsupported Media Type: the request body's Content-Type is {shown}; send it as application/json."
        )
    return None


def _authority(origin: str) -> str:
    """`http://127.0.0.1:8787` -> `127.0.0.1:8787` (what a same-origin request's Host holds)."""
    rest = origin.split("://", 1)[-1]
    authority = rest.split("/", 1)[0].lower()
    if origin.startswith("http://") and authority.endswith(":80"):
        authority = authority[:-3]
    return authority
