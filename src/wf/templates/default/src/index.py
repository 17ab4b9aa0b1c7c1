"""The project's entry point: the workflow classes, and an HTTP app that `wf dev` serves at /.

POST /api/orders                   start an order      -> {"instanceId": ...}
GET  /api/workflows/{id}           an instance's status
POST /api/workflows/{id}/approve   approve a waiting approval instance
"""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from wf import NotFoundError

from .workflows.approval import ApprovalWorkflow
from .workflows.order_processing import OrderWorkflow

__all__ = ["OrderWorkflow", "ApprovalWorkflow", "app"]


def bindings(request: Request):
    """The workflow bindings `wf dev` hands to each request."""
    return request.scope["wf.env"]


async def find(request: Request):
    env, id = bindings(request), request.path_params["id"]
    for binding in (env.ORDERS, env.APPROVALS):
        try:
            return await binding.get(id)
        except NotFoundError:
            continue
    return None


async def create_order(request: Request) -> JSONResponse:
    try:
        order = await request.json()
    except ValueError:  # not JSON (or not UTF-8): the client's mistake, said as such
        return JSONResponse({"error": 'the body must be a JSON object, e.g. {"orderId": "o-1"}'}, status_code=400)
    if not isinstance(order, dict):
        return JSONResponse({"error": "the body must be a JSON object, not " + type(order).__name__}, status_code=400)
    instance = await bindings(request).ORDERS.create(params=order)
    return JSONResponse({"instanceId": instance.id}, status_code=201)


async def instance_status(request: Request) -> JSONResponse:
    instance = await find(request)
    if instance is None:
        return JSONResponse({"error": "instance not found"}, status_code=404)
    return JSONResponse(await instance.status())


async def approve(request: Request) -> JSONResponse:
    instance = await find(request)
    if instance is None:
        return JSONResponse({"error": "instance not found"}, status_code=404)
    await instance.send_event(type="approval", payload={"approved": True})
    return JSONResponse({"sent": True})


app = Starlette(
    routes=[
        Route("/api/orders", create_order, methods=["POST"]),
        Route("/api/workflows/{id}", instance_status, methods=["GET"]),
        Route("/api/workflows/{id}/approve", approve, methods=["POST"]),
    ]
)
