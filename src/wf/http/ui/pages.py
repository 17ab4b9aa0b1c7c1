"""The web UI's pages: server-rendered Jinja2 templates, each also a live stream at the same URL.

    /cdn-cgi/explorer/                               workflows: settings, counts, trigger forms
    /cdn-cgi/explorer/instances?workflow=&status=&q=&within=&before=|after=&per_page=
    /cdn-cgi/explorer/workflows/{name}               -> the instances of that workflow
    /cdn-cgi/explorer/workflows/{name}/{id}          one instance: timeline, events, log, actions
    /cdn-cgi/explorer/static/...                     ui.css, ui.js (shipped in the wheel)

A page asked for with `Accept: text/event-stream` (what `EventSource` sends) is its live
stream instead: its `<main>` re-rendered whenever the event log shows a change it concerns;
the browser swaps in the regions marked `data-live`, leaving forms as the user left them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ...errors import NotFoundError, ValidationError, WfError
from ...runtime.validate import ID_PATTERN
from .data import PER_PAGE, WITHIN, InstanceQuery, UiData, format_key, parse_key
from .live import LogWatch, stream_response, wants_stream
from .session import UI_BASE
from .views import STATUS, badge, duration, instance_page, iso

HERE = Path(__file__).parent
API = UI_BASE + "/api"
HEADERS = {
    # no inline script, nothing from elsewhere: the UI works offline and a stored value cannot run
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def _version() -> str:
    digest = hashlib.sha256()
    for path in sorted((HERE / "static").iterdir()):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(iso=iso, duration=duration)
    env.globals.update(
        base=UI_BASE,
        api=API,
        static=UI_BASE + "/static",
        version=_version(),
        statuses=[(s, badge(s)) for s in STATUS if s != "unknown"],
        id_pattern=ID_PATTERN.pattern,
        per_page_choices=PER_PAGE,
        within_choices=[
            ("", "any time"),
            ("1h", "last hour"),
            ("24h", "last 24 hours"),
            ("7d", "last 7 days"),
            ("30d", "last 30 days"),
        ],
        badge=badge,
    )
    return env


class Page:
    """A rendered page, and how to render its `<main>` again for the live stream."""

    def __init__(self, template: str, context: dict, status: int = 200):
        self.template, self.context, self.status = template, context, status


class UI:
    """The web UI's ASGI app (its routes carry the full `/cdn-cgi/explorer` path)."""

    def __init__(self, data: UiData, project: str):
        self.data, self.project = data, project
        self.env = _environment()
        self.watch = LogWatch(data)
        self.app = Starlette(
            routes=[
                Route(UI_BASE, lambda r: RedirectResponse(UI_BASE + "/", 308)),
                Route(UI_BASE + "/", self._page(self.workflows, "*")),
                Route(UI_BASE + "/instances", self._page(self.instances, "workflow")),
                Route(UI_BASE + "/workflows/{name}", self.workflow_instances),
                Route(UI_BASE + "/workflows/{name}/{id}", self._page(self.instance, "instance")),
                Mount(UI_BASE + "/static", StaticFiles(directory=HERE / "static"), name="static"),
            ],
            exception_handlers=dict[Any, Any]({HTTPException: self._http_error}),
        )

    async def __call__(self, scope, receive, send) -> None:
        async def with_headers(message):
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k.encode(), v.encode()) for k, v in HEADERS.items() if k.encode() not in names]
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        await self.app(scope, receive, with_headers)

    async def close(self) -> None:
        await self.watch.close()

    # -- rendering --------------------------------------------------------------------------

    def _render(self, page: Page, block: str | None = None) -> str:
        template = self.env.get_template(page.template)
        context = {"project": self.project, **page.context}
        if block is None:
            return template.render(context)
        return "".join(template.blocks[block](template.new_context(context)))

    def _page(self, build: Callable[[Request], Awaitable[Page]], scope: str) -> Callable:
        """A route: the page, or (for EventSource) its live stream. `scope` says which log rows
        concern it: any ("*"), those of the workflow filtered on, or those of one instance."""

        async def endpoint(request: Request) -> Response:
            if wants_stream(request):
                return self._stream(request, build, scope)
            started = time.perf_counter()
            seq = await self.data.last_seq()  # read first: a change after it reaches the stream
            page = await self._build(build, request)
            page.context.setdefault("seq", seq)
            page.context.setdefault("server_now", self.data.now())
            html = self._render(page)
            took = (time.perf_counter() - started) * 1000  # what bench/ reads: the server's own time
            return HTMLResponse(html, status_code=page.status, headers={"server-timing": f"page;dur={took:.2f}"})

        return endpoint

    async def _build(self, build, request: Request) -> Page:
        try:
            return await build(request)
        except (NotFoundError, ValidationError) as exc:
            return self._error_page(exc, 404 if isinstance(exc, NotFoundError) else 400)

    def _stream(self, request: Request, build, scope: str) -> Response:
        workflow = request.path_params.get("name") or request.query_params.get("workflow") or None
        instance_id = request.path_params.get("id")

        def concerns(rows) -> bool:
            if rows is None:
                return True
            if scope == "instance":
                return any(r.instance_id == instance_id and r.workflow == workflow for r in rows)
            return any(r.type != "log" and (workflow is None or r.workflow == workflow) for r in rows)

        async def render() -> dict | None:
            page = await self._build(build, request)
            if page.status == 404 and scope == "instance":
                return None
            return {"main": self._render(page, "main"), "now": self.data.now()}

        return stream_response(request, self.watch, concerns, render)

    def _error_page(self, exc: WfError, status: int) -> Page:
        return Page(
            "error.html", {"message": _sentence(exc), "title": "Not found" if status == 404 else "Bad request"}, status
        )

    async def _http_error(self, request: Request, exc: HTTPException) -> Response:
        message = f"There is no page at {request.url.path}." if exc.status_code == 404 else str(exc.detail)
        context = {"message": message, "title": "Not found", "seq": 0, "server_now": self.data.now()}
        page = Page("error.html", context, exc.status_code)
        return HTMLResponse(self._render(page), status_code=exc.status_code)

    # -- pages ------------------------------------------------------------------------------

    async def workflows(self, request: Request) -> Page:
        workflows = await self.data.workflows()
        return Page("workflows.html", {"nav": "workflows", "workflows": workflows, "live": True})

    async def workflow_instances(self, request: Request) -> Response:
        name = request.path_params["name"]
        return RedirectResponse(f"{UI_BASE}/instances?{urlencode({'workflow': name})}", 303)

    async def instances(self, request: Request) -> Page:
        p = request.query_params
        form = {k: p.get(k, "") for k in ("workflow", "status", "q", "within", "per_page")}
        context = {
            "nav": "instances",
            "form": form,
            "live": True,
            "deleted": p.get("deleted"),
            "workflow_names": [w.name for w in self.data.config.workflows],
        }
        try:
            query = _query(p)
        except (ValidationError, NotFoundError) as exc:
            return Page("instances.html", {**context, "problem": _sentence(exc), "page": None}, 400)
        try:
            page = await self.data.instances(query)
        except (ValidationError, NotFoundError) as exc:
            return Page("instances.html", {**context, "problem": _sentence(exc), "page": None}, 400)
        link = lambda **kw: f"{UI_BASE}/instances?" + urlencode(_params(query.moved(**kw)))  # noqa: E731
        return Page(
            "instances.html",
            {
                **context,
                "problem": None,
                "page": page,
                "query": query,
                "newer_url": link(after=page["newer"]) if page["newer"] else None,
                "older_url": link(before=page["older"]) if page["older"] else None,
                "newest_url": link() if page["newer"] else None,
                "status_url": lambda status: f"{UI_BASE}/instances?" + urlencode(_params(query.moved(status=status))),
                "now": self.data.now(),
            },
        )

    async def instance(self, request: Request) -> Page:
        name, id = request.path_params["name"], request.path_params["id"]
        self.data.config.workflow(name)
        data = await self.data.instance(name, id)
        view = instance_page(data, self.data.now())
        return Page("instance.html", {"nav": "instances", "live": True, "workflow": name, "id": id, **view})


def _sentence(exc: WfError) -> str:
    text = exc.message[:1].upper() + exc.message[1:]
    text = text if text.endswith(".") else text + "."
    if exc.hint:
        text += f" Hint: {exc.hint}" + ("" if exc.hint.endswith(".") else ".")
    return text


def _query(p) -> InstanceQuery:
    """The instances page's query string, checked; a bad value is a sentence naming it."""
    within = p.get("within", "")
    if within not in WITHIN:
        raise ValidationError(f"{within!r} is not one of the time ranges offered", "pick one from the Created list")
    per_page = p.get("per_page") or str(PER_PAGE[0])
    if per_page not in {str(n) for n in PER_PAGE}:
        raise ValidationError(f"{per_page!r} instances per page is not offered", "use 25, 50 or 100")
    status = p.get("status") or None
    if status is not None and status not in STATUS:
        raise ValidationError(f"{status!r} is not an instance status", "pick one from the Status list")
    return InstanceQuery(
        workflow=p.get("workflow") or None,
        status=status,
        id_prefix=(p.get("q") or "").strip() or None,
        within=within,
        before=parse_key(p.get("before"), "before"),
        after=parse_key(p.get("after"), "after"),
        per_page=int(per_page),
    )


def _params(q: InstanceQuery) -> dict:
    out = {
        "workflow": q.workflow,
        "status": q.status,
        "q": q.id_prefix,
        "within": q.within or None,
        "per_page": q.per_page if q.per_page != PER_PAGE[0] else None,
        "before": format_key(q.before) if q.before else None,
        "after": format_key(q.after) if q.after else None,
    }
    return {k: v for k, v in out.items() if v is not None}
