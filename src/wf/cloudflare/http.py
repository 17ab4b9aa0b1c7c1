"""`Request`, `Response` and `fetch` as Cloudflare's Python SDK shapes them, on CPython.

A Worker's `fetch(self, request)` gets a `Request` (`.url`, `.method`, `.headers`, `await
.json()` / `.text()` / `.bytes()`) and returns a `Response` (`Response("text")`,
`Response.json(data)`, `Response(body, status=..., headers=...)`), which `wf dev` sends as the
HTTP response. `fetch(url, method=..., headers=..., body=...)` makes an outgoing request with
httpx and returns the same `Response`, read the JS way: `.status`, `.ok`, `await .json()`,
`await .text()`.

`Response.json` is two things, as on Cloudflare: called on the class it builds a JSON response;
called on a response it reads the body as JSON.
"""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterable, Mapping
from http import HTTPMethod, HTTPStatus
from typing import Any

from .ffi import JsObject

Bytes = bytes  # the builtin, for annotations inside classes whose `bytes()` method shadows it
TEXT = "text/plain;charset=UTF-8"  # what a JS Response gives a string body
_TLS: ssl.SSLContext | None = None  # built once: a TLS context costs about 20 ms of CPU


def _tls() -> ssl.SSLContext:
    global _TLS
    if _TLS is None:
        _TLS = ssl.create_default_context()
    return _TLS


def _header_list(headers: Any) -> list[tuple[str, str]]:
    """Headers given as a dict, a list of pairs or a `Headers`-like mapping, names lower-cased (as JS does)."""
    if headers is None:
        return []
    items: Iterable = headers.items() if isinstance(headers, Mapping) or hasattr(headers, "items") else headers
    try:
        return [(str(k).lower(), str(v)) for k, v in items]
    except (TypeError, ValueError):
        raise TypeError(f"headers must be a dict or a list of (name, value) pairs, got {headers!r}") from None


def _body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    raise TypeError(f"Unsupported type in Response: {type(body).__name__} (pass str or bytes)")


class _JsonMethod:
    """`Response.json(data)` builds a response; `response.json()` reads one (a coroutine)."""

    def __get__(self, instance: Response | None, owner: type[Response]):
        if instance is None:
            return owner.from_json
        return instance._read_json


class _Body:
    """A body read once, as the JavaScript Request and Response read theirs."""

    _body: Bytes
    body_used: bool

    def _take(self) -> Bytes:
        if self.body_used:
            raise OSError("Body already used")
        self.body_used = True
        return self._body

    async def bytes(self) -> Bytes:
        return self._take()

    async def buffer(self) -> Bytes:
        return self._take()

    async def text(self) -> str:
        return self._take().decode()


class Response(_Body):
    """An HTTP response: made by a Worker's handler, or returned by `fetch`."""

    def __init__(
        self,
        body: str | bytes | None = None,
        status: HTTPStatus | int | None = None,
        status_text: str = "",
        headers: Any = None,
        web_socket: Any = None,
    ):
        self._body = _body_bytes(body)
        self.status = int(status) if status else 200
        self.status_text = status_text or _reason(self.status)
        self._headers = _header_list(headers)
        if isinstance(body, str) and not any(k == "content-type" for k, _ in self._headers):
            self._headers.append(("content-type", TEXT))
        self.url, self.redirected, self.type, self.body_used = "", False, "default", False

    json = _JsonMethod()

    # -- building ----------------------------------------------------------------------------

    @classmethod
    def from_json(
        cls, data: Any, status: HTTPStatus | int = HTTPStatus.OK, status_text: str = "", headers: Any = None
    ) -> Response:
        listed = _header_list(headers)
        if not any(k == "content-type" for k, _ in listed):
            listed.append(("content-type", "application/json"))
        text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        return cls(text, status=status, status_text=status_text, headers=listed)

    @classmethod
    def redirect(cls, url: str, status: HTTPStatus | int = HTTPStatus.FOUND) -> Response:
        return cls(None, status=status, headers={"location": url})

    @classmethod
    def new(cls, body: Any = None, init: Mapping | None = None, **options: Any) -> Response:
        """The JS constructor, as `from js import Response` code calls it: `Response.new(body, {status})`."""
        given = {**(init or {}), **options}
        return cls(
            body,
            status=given.get("status"),
            status_text=given.get("statusText", given.get("status_text", "")),
            headers=given.get("headers"),
        )

    # -- reading -----------------------------------------------------------------------------

    @property
    def ok(self) -> bool:
        return 200 <= self.status <= 299

    @property
    def headers(self) -> dict[str, str]:
        """Lower-cased names, as Pyodide's FetchResponse gives them (repeated names joined with ", ")."""
        out: dict[str, str] = {}
        for k, v in self._headers:
            out[k] = f"{out[k]}, {v}" if k in out else v
        return out

    @property
    def header_list(self) -> list[tuple[str, str]]:
        """Every header as sent, repeats kept (Set-Cookie)."""
        return list(self._headers)

    @property
    def js_object(self) -> Response:
        return self

    async def _read_json(self) -> Any:
        return json.loads(self._take() or b"null", object_hook=JsObject)

    def clone(self) -> Response:
        if self.body_used:
            raise OSError("Body already used")
        twin = Response(self._body, status=self.status, status_text=self.status_text, headers=self._headers)
        twin.url, twin.redirected = self.url, self.redirected
        return twin

    def raise_for_status(self) -> None:
        if self.status >= 400:
            kind = "Client" if self.status < 500 else "Server"
            raise OSError(f"{self.status} {kind} Error: {self.status_text} for url: {self.url}")

    def __repr__(self) -> str:
        kind = self.headers.get("content-type")
        return f"Response(status={self.status}" + (f", content_type={kind!r}" if kind else "") + ")"


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class Request(_Body):
    """An HTTP request: what a Worker's `fetch(self, request)` receives, or one to pass to `fetch`."""

    url: str
    _method: str
    _headers: list[tuple[str, str]]
    _body: Bytes

    def __init__(self, input: Request | str, *, method: Any = "GET", headers: Any = None, body: Any = None, **_o):
        if isinstance(input, Request):
            self.url, self._method, self._headers, self._body = input.url, input._method, input._headers, input._body
        else:
            self.url, self._method = str(input), str(getattr(method, "value", method)).upper()
            self._headers, self._body = _header_list(headers), _body_bytes(body)
        self.body_used = False

    @classmethod
    def _received(cls, method: str, url: str, headers: list[tuple[str, str]], body: Bytes) -> Request:
        request = cls(url, method=method, headers=headers)
        request._body = body
        return request

    @property
    def method(self) -> HTTPMethod | str:
        """An `http.HTTPMethod` (a str: `request.method == "POST"` holds), as Cloudflare's SDK gives it."""
        try:
            return HTTPMethod[self._method]
        except KeyError:
            return self._method

    @property
    def headers(self) -> http.client.HTTPMessage:
        """Case-insensitive (`request.headers.get("Content-Type")`), as Cloudflare's SDK gives them."""
        message = http.client.HTTPMessage()
        for k, v in self._headers:
            message[k] = v.strip()
        return message

    @property
    def js_object(self) -> Request:
        return self

    async def json(self, **kwargs: Any) -> Any:
        """The body as JSON; objects read as dicts and as attributes (`(await request.json()).name`)."""
        return json.loads(self._take() or b"null", **{"object_hook": JsObject, **kwargs})

    def clone(self) -> Request:
        if self.body_used:
            raise OSError("Body already used")
        return Request(self)

    def __repr__(self) -> str:
        return f"Request(method={self._method!r}, url={self.url!r})"


async def fetch(resource: Request | str, **options: Any) -> Response:
    """An outgoing HTTP request with httpx, answered as Cloudflare's `fetch` answers: a `Response`.

    Options as on Cloudflare: `method`, `headers`, `body`, `redirect` ("follow", the default, or
    "manual"); others (`cf`, ...) only mean something on Cloudflare and are ignored."""
    import httpx

    request = resource if isinstance(resource, Request) else Request(resource, **_request_options(options))
    follow = options.get("redirect", "follow") != "manual"
    async with httpx.AsyncClient(verify=_tls(), follow_redirects=follow) as client:
        got = await client.request(request._method, request.url, headers=request._headers, content=request._body)
    made = Response(
        got.content, status=got.status_code, status_text=got.reason_phrase, headers=got.headers.multi_items()
    )
    made.url, made.redirected = str(got.url), bool(got.history)
    return made


def _request_options(options: Mapping[str, Any]) -> dict[str, Any]:
    return {k: options[k] for k in ("method", "headers", "body") if options.get(k) is not None}


__all__ = ["Request", "Response", "fetch"]
