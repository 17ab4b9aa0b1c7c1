"""How a browser gets in when `WF_TOKEN` is set (wf dev bound beyond loopback).

A browser cannot send an `Authorization` header on a navigation, so the token comes once in
the address: `http://host:8787/cdn-cgi/explorer/?token=SECRET`. The server answers with a
redirect to the same page without it, setting a cookie that carries not the token but a MAC
of it (a leaked cookie is not the API token), `HttpOnly` (page scripts cannot read it),
`SameSite=Strict` (no other site's page or link sends it) and `Path=/cdn-cgi/`.

The cookie is accepted only for the UI's own pages and for API calls that carry the
`X-WF-Request: 1` header the UI's scripts send: another site cannot add that header without a
CORS preflight, which `wf dev` never grants. The user's app at `/` never sees it accepted.
"""

from __future__ import annotations

import hashlib
import hmac
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

COOKIE = "wf_ui"
UI_BASE = "/cdn-cgi/explorer"
REQUEST_HEADER = b"x-wf-request"


def cookie_value(token: bytes) -> str:
    return hmac.new(token, b"wf-ui-session", hashlib.sha256).hexdigest()


def is_ui_path(path: str) -> bool:
    return path == UI_BASE or (path.startswith(UI_BASE + "/") and not path.startswith(UI_BASE + "/api"))


def _cookie(headers: dict) -> str | None:
    raw = headers.get(b"cookie")
    if not raw:
        return None
    jar = SimpleCookie()
    try:
        jar.load(raw.decode("latin-1"))
    except Exception:  # a malformed Cookie header is simply no session
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel else None


def session_ok(path: str, headers: dict, token: bytes, api_paths: tuple[str, ...]) -> bool:
    """Does this request's cookie let it in (in place of the bearer token)?"""
    value = _cookie(headers)
    if value is None or not hmac.compare_digest(value, cookie_value(token)):
        return False
    if is_ui_path(path):
        return True
    on_api = any(path == base or path.startswith(base + "/") for base in api_paths)
    return on_api and headers.get(REQUEST_HEADER) == b"1"


def login_redirect(scope: dict, token: bytes) -> list[dict] | None:
    """For `<ui page>?token=<the token>`: a redirect to the page without it, setting the cookie."""
    path = scope.get("path", "")
    if not is_ui_path(path):
        return None
    query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    given = [v for k, v in query if k == "token"]
    if not given or not hmac.compare_digest(given[0].encode(), token):
        return None
    rest = urlencode([(k, v) for k, v in query if k != "token"])
    location = path + (f"?{rest}" if rest else "")
    cookie = f"{COOKIE}={cookie_value(token)}; Path=/cdn-cgi/; HttpOnly; SameSite=Strict"
    return [
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [
                (b"location", location.encode()),
                (b"set-cookie", cookie.encode()),
                (b"cache-control", b"no-store"),
                (b"referrer-policy", b"no-referrer"),
                (b"content-length", b"0"),
            ],
        },
        {"type": "http.response.body", "body": b""},
    ]
