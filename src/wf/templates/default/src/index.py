"""The project's entry point: the workflow classes, and the Worker that answers HTTP at /.

`wf dev` serves the Worker locally; `npx wrangler deploy` runs this same file on Cloudflare.

POST /api/orders                   start an order      -> {"instanceId": ...}
GET  /api/workflows/{id}           an instance's status
GET  /api/workflows/{id}/result    how it ended, waiting for its end (instance.subscribe())
POST /api/workflows/{id}/approve   approve a waiting approval instance
"""

from urllib.parse import urlparse

from js import Object
from pyodide.ffi import to_js
from workers import Response, WorkerEntrypoint
from workflows.approval import ApprovalWorkflow
from workflows.order_processing import OrderWorkflow

__all__ = ["OrderWorkflow", "ApprovalWorkflow", "Default"]


def js_object(value):
    """Cloudflare's bindings take JavaScript objects: to_js builds one (wf takes it as it is)."""
    return to_js(value, dict_converter=Object.fromEntries)


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = [part for part in urlparse(request.url).path.split("/") if part]
        if path == ["api", "orders"] and request.method == "POST":
            try:
                order = await request.json()
            except ValueError:  # not JSON (or not UTF-8): the client's mistake, said as such
                return Response.json({"error": 'the body must be a JSON object, e.g. {"orderId": "o-1"}'}, status=400)
            if not isinstance(order, dict):
                return Response.json({"error": "the body must be a JSON object"}, status=400)
            instance = await self.env.ORDERS.create(js_object({"params": order}))
            return Response.json({"instanceId": instance.id}, status=201)
        if len(path) in (3, 4) and path[:2] == ["api", "workflows"]:
            instance = await self.find(path[2])
            if instance is None:
                return Response.json({"error": "instance not found"}, status=404)
            if len(path) == 3 and request.method == "GET":
                return Response.json(await instance.status())
            if path[3:] == ["result"] and request.method == "GET":
                return Response.json(await self.result(instance))
            if path[3:] == ["approve"] and request.method == "POST":
                await instance.send_event(js_object({"type": "approval", "payload": {"approved": True}}))
                return Response.json({"sent": True})
        return Response.json({"error": "not found"}, status=404)

    async def result(self, instance):
        """The instance's end event (workflow_completed with its output, workflow_errored with its
        error, or workflow_terminated): its event subscription, filtered to those, read once. The
        subscription streams the history first, so an instance that already ended answers at once."""
        ends = ["workflow_completed", "workflow_errored", "workflow_terminated"]
        subscription = await instance.subscribe(js_object({"filter": ends}))
        result = await subscription.next()
        if result.done:  # the subscription ended with no end event: the instance was deleted
            return {"type": None}
        return result.value.to_py()

    async def find(self, id):
        for binding in (self.env.ORDERS, self.env.APPROVALS):
            try:
                return await binding.get(id)
            except Exception:  # no such instance in this workflow (Cloudflare raises a plain Error)
                continue
        return None
