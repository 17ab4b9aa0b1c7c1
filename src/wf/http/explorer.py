"""The local explorer API of wrangler's dev session, served by `wf dev`.

Same routes, envelope (`{success, errors, messages, result, result_info}`), error codes and
status codes as miniflare's `local-explorer/resources/workflows.ts`, so that
`wrangler workflows ... --local --port P` works against `wf dev` unchanged. Two deliberate
differences: a malformed request or a refused action (terminating a finished instance) is a
4xx with one clear sentence, never a 500; and the instance list is the store's, not a folder
of sqlite files.

Every handler runs the `Client` on the store's own thread (`AsyncClient.call`).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..client import AsyncClient, Client, check_instance_id
from ..errors import ConflictError, NotFoundError, UnknownKindError, ValidationError, WfError
from ..runtime import codec
from ..runtime import steps as kinds
from ..runtime.status import STATUSES

NOT_FOUND = 10501  # miniflare's WORKFLOW_ERROR_NOT_FOUND
INVALID = 10001  # miniflare's validation error code
CONFLICT = 10409
PER_PAGE_DEFAULT, PER_PAGE_MAX = 25, 100
BATCH_DELETE_MAX = 100
STEP_NAME = re.compile(r"^(.+)-([1-9][0-9]{0,8})$")  # a step as Cloudflare names it: <name>-<count>
KEEPALIVE = 20  # idle reads of a subscription stream between two comments (2 s)
COUNTED = ("complete", "errored", "paused", "queued", "running", "terminated", "waiting", "waitingForPause")
ACTIONS = ("pause", "resume", "restart", "terminate")
LIST_STATUSES = tuple(s for s in STATUSES if s != "unknown")


# ---------------------------------------------------------------- envelope


def envelope(result: Any, result_info: dict | None = None, status: int = 200) -> JSONResponse:
    body = {"success": True, "errors": [], "messages": [], "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return JSONResponse(body, status_code=status)


def error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None},
        status_code=status,
    )


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _invalid(message: str) -> ApiError:
    return ApiError(400, INVALID, message)


def _sentence(exc: WfError) -> str:
    text = exc.message[:1].upper() + exc.message[1:]
    if not text.endswith("."):
        text += "."
    return f"{text} Hint: {exc.hint}" if exc.hint else text


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---------------------------------------------------------------- the API


class Explorer:
    """The routes, on a `Client` whose store lives on its own thread."""

    def __init__(self, aclient: AsyncClient):
        self.aclient = aclient
        self.client: Client = aclient.client
        self.config = aclient.config

    async def call(self, fn: Callable, *args: Any) -> Any:
        return await self.aclient.call(fn, *args)

    def routes(self) -> list[Route]:
        h = self._handle
        return [
            Route("/", self.openapi, methods=["GET"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
            Route("/local/workers", h(self.local_workers), methods=["GET"]),
            Route("/workflows", h(self.list_workflows), methods=["GET"]),
            Route("/workflows/{name}", h(self.describe_workflow), methods=["GET"]),
            Route("/workflows/{name}", h(self.delete_workflow), methods=["DELETE"]),
            Route("/workflows/{name}/instances", h(self.list_instances), methods=["GET"]),
            Route("/workflows/{name}/instances", h(self.create_instance), methods=["POST"]),
            Route("/workflows/{name}/instances/batch", h(self.batch_create), methods=["POST"]),
            Route("/workflows/{name}/instances/batch/delete", h(self.batch_delete), methods=["POST"]),
            Route("/workflows/{name}/instances/{id}", h(self.describe_instance), methods=["GET"]),
            Route("/workflows/{name}/instances/{id}", h(self.delete_instance), methods=["DELETE"]),
            Route("/workflows/{name}/instances/{id}/step", h(self.step_output), methods=["GET"]),
            Route("/workflows/{name}/instances/{id}/status", h(self.change_status), methods=["PATCH"]),
            Route("/workflows/{name}/instances/{id}/events/{type}", h(self.send_event), methods=["POST"]),
            Route("/workflows/{name}/instances/{id}/subscribe", h(self.subscribe), methods=["GET"]),
        ]

    async def openapi(self, request: Request) -> Response:
        from .openapi import document

        return JSONResponse(document([w.name for w in self.config.workflows]))

    def _handle(self, fn):
        async def endpoint(request: Request) -> Response:
            try:
                return await fn(request)
            except ApiError as exc:
                return error(exc.status, exc.code, exc.message)
            except NotFoundError as exc:
                return error(404, NOT_FOUND, _sentence(exc))
            except ConflictError as exc:
                return error(409, CONFLICT, _sentence(exc))
            except UnknownKindError as exc:  # a stored step this server cannot show: not the request's fault
                return error(500, INVALID, _sentence(exc))  # 10001 is also Cloudflare's internal_server code
            except WfError as exc:  # ValidationError and the like: the request asked for something invalid
                return error(400, INVALID, _sentence(exc))
            except ClientDisconnect:  # the client left mid-body: nobody to answer, nothing to log
                return Response(status_code=400)

        endpoint.__name__ = fn.__name__
        return endpoint

    # -- helpers ----------------------------------------------------------------------

    def _workflow(self, request: Request):
        name = request.path_params["name"]
        for w in self.config.workflows:
            if w.name == name:
                return w
        raise ApiError(404, NOT_FOUND, f"Workflow '{name}' not found.")

    async def _instance(self, request: Request, workflow: str):
        instance_id = request.path_params["id"]
        try:
            if instance_id == "latest":
                raise NotFoundError("latest")  # wrangler resolves 'latest' itself; here it is just an id
            return await self.call(self.client.get, instance_id, workflow)
        except (NotFoundError, ValidationError):
            raise ApiError(404, NOT_FOUND, f"Workflow instance '{instance_id}' not found.") from None

    @staticmethod
    async def _json(request: Request, *, required: bool) -> Any:
        raw = await request.body()
        if not raw.strip():
            if required:
                raise _invalid("The request body is empty; send a JSON object.")
            return None
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, ValueError) as exc:
            raise _invalid(f"The request body is not valid JSON: {exc}.") from None
        except RecursionError:
            raise _invalid("The request body is JSON nested too deeply.") from None

    async def _object(self, request: Request, *, required: bool) -> dict:
        if not required and not (await request.body()).strip():  # no body at all: every field is optional
            return {}
        body = await self._json(request, required=True)
        if not isinstance(body, dict):
            raise _invalid(
                f"The request body must be a JSON object, got {type(body).__name__ if body is not None else 'null'}."
            )
        return body

    @staticmethod
    def _int_query(request: Request, key: str, default: int, low: int, high: float = math.inf) -> int:
        text = request.query_params.get(key)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise _invalid(f'{key}: Expected query param to be number but received "{text}"') from None
            if not number.is_integer():
                raise _invalid(f"{key}: Expected integer, received float") from None
            value = int(number)
        if value < low:
            raise _invalid(f"{key}: Number must be greater than or equal to {low}")
        if value > high:
            raise _invalid(f"{key}: Number must be less than or equal to {int(high)}")
        return value

    def _summary(self, w) -> dict:
        return {
            "name": w.name,
            "class_name": w.class_name,
            "script_name": w.script_name or self.config.name or self.config.root.name,
        }

    async def _counts(self, name: str) -> dict:
        counts = await self.call(self.client.count_by_status, name)
        return {status: counts.get(status, 0) for status in COUNTED}

    # -- Cloudflare's Local Explorer UI --------------------------------------------------

    async def local_workers(self, request: Request) -> Response:
        """What wrangler's Local Explorer UI asks first: the workers of the dev registry and their
        bindings. Here, one worker (the project) whose bindings are its workflows; the UI then
        drives them through the routes below."""
        script = self.config.name or self.config.root.name
        workflows = [
            {"id": w.name, "bindingName": w.binding, "className": w.class_name, "scriptName": w.script_name or script}
            for w in self.config.workflows
        ]
        worker = {
            "isSelf": True,
            "name": script,
            "bindings": {"kv": [], "d1": [], "r2": [], "do": [], "workflows": workflows},
        }
        return envelope([worker])

    # -- workflows ----------------------------------------------------------------------

    async def list_workflows(self, request: Request) -> Response:
        items = [self._summary(w) for w in self.config.workflows]
        return envelope(items, {"count": len(items)})

    async def describe_workflow(self, request: Request) -> Response:
        w = self._workflow(request)
        return envelope({**self._summary(w), "instances": await self._counts(w.name)})

    async def delete_workflow(self, request: Request) -> Response:
        w = self._workflow(request)

        await self.call(self.client.delete_all, w.name)
        return envelope({"status": "ok", "success": True})

    # -- instances ----------------------------------------------------------------------

    async def list_instances(self, request: Request) -> Response:
        w = self._workflow(request)
        page = self._int_query(request, "page", 1, 1, 1_000_000)
        per_page = self._int_query(request, "per_page", PER_PAGE_DEFAULT, 1, PER_PAGE_MAX)
        status = request.query_params.get("status")
        if status is not None and status not in LIST_STATUSES:
            raise _invalid(
                f"status: Invalid enum value. Expected {' | '.join(repr(s) for s in LIST_STATUSES)}, "
                f"received {status!r}"
            )
        counts = await self._counts(w.name)
        total = counts.get(status, 0) if status else sum(counts.values())
        rows = await self.call(self.client.list, w.name, status, per_page, (page - 1) * per_page)
        items = [{"id": r.id, "status": r.status, "created_on": iso(r.created_at)} for r in rows]
        info = {
            "page": page,
            "per_page": per_page,
            "total_count": total,
            "total_pages": max(1, math.ceil(total / per_page)),
            "status_counts": counts,
        }
        return envelope(items, info)

    async def create_instance(self, request: Request) -> Response:
        w = self._workflow(request)
        body = await self._object(request, required=False)
        instance_id = body.get("id")
        if instance_id is not None:
            check_instance_id(instance_id)
        retention = body.get("instance_retention", body.get("retention"))  # the API's name, the binding's
        if retention is not None:  # numbers are milliseconds, as Cloudflare's API reads them
            from ..runtime.durations import parse_retention

            retention = parse_retention(retention, "instance_retention", milliseconds=True)
        row = await self.call(lambda: self.client.create(w.name, body.get("params"), instance_id, retention=retention))
        return envelope({"id": row.id})

    async def batch_delete(self, request: Request) -> Response:
        w = self._workflow(request)
        body = await self._object(request, required=True)
        ids = body.get("instances")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise _invalid("instances: Expected an array of instance ids.")
        if not 1 <= len(ids) <= BATCH_DELETE_MAX:
            raise _invalid(f"instances: Provide between 1 and {BATCH_DELETE_MAX} instance ids, got {len(ids)}.")

        return envelope(await self.call(self.client.delete_batch, ids, w.name))

    async def batch_create(self, request: Request) -> Response:
        """Cloudflare's `POST …/instances/batch`: a list of `{id?, params?}` gives the `[{id}]` created
        (ids that exist skipped), `{count, params}` or `{instances}` gives `{created, errors}`."""
        w = self._workflow(request)
        body = await self._json(request, required=True)
        if isinstance(body, list):
            rows = await self.call(self.client.create_batch, w.name, body)
            return envelope([{"id": r.id} for r in rows])
        if not isinstance(body, dict):
            raise _invalid("The request body must be a list of {id, params} objects, or {count} or {instances}.")
        return envelope(await self.call(self.client.create_many, w.name, body))

    async def describe_instance(self, request: Request) -> Response:
        w = self._workflow(request)
        row = await self._instance(request, w.name)
        d = await self.call(self.client.describe, row.id, w.name)
        steps = [_step(s) for s in d["steps"]]
        result = {
            "status": d["status"],
            "params": d["params"],
            "queued": iso(d["created"]),
            "start": iso(d["start"]),
            "end": iso(d["end"]),
            "output": d["output"] if d["status"] == "complete" else None,
            "error": d["error"] if d["status"] == "errored" else None,
            "steps": steps,
            "step_count": len(steps),
        }
        if d.get("rollback"):  # handlers ran: Cloudflare's {outcome, error}, as status() reports it
            result["rollback"] = d["rollback"]
        source = (row.trigger or {}).get("source") if isinstance(row.trigger, dict) else None
        if source in ("api", "binding", "event", "cron", "unknown"):
            result["trigger"] = {"source": source}
        return envelope(result)

    async def step_output(self, request: Request) -> Response:
        """Cloudflare's full output of one step: `?name=<name>-<count>&type=step|waitForEvent&attempt=N`."""
        w = self._workflow(request)
        given = request.query_params.get("name")
        match = STEP_NAME.match(given or "")
        if match is None:
            raise _invalid(
                f"name: Expected the step's name with its counter, as the instance lists it (e.g. 'charge-1'), "
                f"got {given!r}."
            )
        kind = request.query_params.get("type", "step")
        attempt = self._int_query(request, "attempt", 0, 1, 10_001) if "attempt" in request.query_params else None
        row = await self._instance(request, w.name)
        step, count = match.group(1), int(match.group(2))
        return envelope(await self.call(self.client.step_output, row.id, step, count, kind, attempt, w.name))

    async def delete_instance(self, request: Request) -> Response:
        w = self._workflow(request)
        row = await self._instance(request, w.name)
        await self.call(self.client.delete, row.id, w.name)
        return envelope({"success": True})

    async def change_status(self, request: Request) -> Response:
        w = self._workflow(request)
        body = await self._object(request, required=True)
        action = body.get("action", body.get("status"))  # wrangler 4.86 sends `action`, later ones `status`
        if action not in ACTIONS:
            raise _invalid(f"Invalid action {action!r}. Must be one of: pause, resume, restart, terminate.")
        rollback = body.get("rollback")
        if rollback is not None and not isinstance(rollback, bool):
            raise _invalid("rollback: Expected boolean.")
        if rollback is not None and action != "terminate":
            raise _invalid("'rollback' is only valid when terminating.")
        start = body.get("from")
        if start is not None and action != "restart":
            raise _invalid("'from' is only valid when restarting.")
        target = None
        if start is not None:
            if not isinstance(start, dict) or not isinstance(start.get("name"), str) or not start["name"]:
                raise _invalid("'from.name' is required when restarting from a specific step.")
            count = start.get("count", 1)
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise _invalid("from.count: Expected a positive integer.")
            kind = start.get("type", "do")
            if kind not in kinds.names():
                raise _invalid(f"from.type: Expected one of {', '.join(kinds.names())}.")
            target = (start["name"], count, kind)
        row = await self._instance(request, w.name)
        c = self.client
        if action == "restart":
            await self.call(c.restart, row.id, w.name, *(target or (None, 1, "do")))
        elif action == "terminate":  # with rollback, a runner runs the rollback handlers first
            await self.call(c.terminate, row.id, w.name, bool(rollback))
        else:
            await self.call({"pause": c.pause, "resume": c.resume}[action], row.id, w.name)
        return envelope({"success": True})

    async def subscribe(self, request: Request) -> Response:
        """Cloudflare's `GET …/instances/{id}/subscribe`: the instance's events as server-sent events
        (`id:` the eventId, `data:` the event), history first, then live, ending with the instance.
        `?cursor=N` (or the `Last-Event-ID` header of a reconnecting client) resumes after event N;
        `?filter=a,b` (or repeated) keeps only those event types."""
        from starlette.responses import StreamingResponse

        from ..subscriptions import SUBSCRIBE_POLL, page, subscription_options

        w = self._workflow(request)
        row = await self._instance(request, w.name)
        given = request.headers.get("last-event-id")
        cursor = self._int_query(request, "cursor", int(given) if given and given.isdigit() else 0, 0)
        names = [n for v in request.query_params.getlist("filter") for n in v.split(",") if n]
        wanted, cursor = subscription_options(names or None, cursor)

        async def stream():
            after, over, idle = cursor, False, 0
            while not over:
                events, after, over = await self.call(page, self.client, row, after, wanted, True)
                for event in events:
                    yield f"id: {event['eventId']}\ndata: {json.dumps(event, default=str)}\n\n"
                if events or over:
                    idle = 0
                    continue
                idle += 1
                if idle % KEEPALIVE == 0:
                    yield ": waiting\n\n"  # a comment: a write finds a client that left, keeps proxies open
                await asyncio.sleep(SUBSCRIBE_POLL)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"cache-control": "no-cache"})

    async def send_event(self, request: Request) -> Response:
        w = self._workflow(request)
        from ..runtime.validate import check_event_type

        event_type = check_event_type(request.path_params["type"])
        payload = await self._json(request, required=False)
        row = await self._instance(request, w.name)
        await self.call(self.client.send_event, row.id, event_type, payload, w.name)
        return envelope({"success": True})


def _step(s: dict) -> dict:
    """A step in Cloudflare's shape, as its kind draws it."""
    return kinds.by_type(s["type"]).cloudflare(s, iso)


__all__ = ["Explorer", "envelope", "error", "iso", "codec"]
