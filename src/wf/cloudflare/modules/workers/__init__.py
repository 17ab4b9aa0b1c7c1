"""wf's stand-in for Cloudflare's `workers` module (see `wf.cloudflare` for when it is used).

from workers import WorkflowEntrypoint, WorkerEntrypoint, Response, fetch
"""

from wf.cloudflare.ffi import import_from_javascript, python_from_rpc, python_to_rpc
from wf.cloudflare.http import Request, Response, fetch
from wf.cloudflare.worker import Context, DurableObject, WorkerEntrypoint, handler
from wf.runtime.entrypoint import WorkflowEntrypoint

FetchResponse = Response  # what `fetch` returns on Cloudflare: a Response with the same reading methods

__all__ = [
    "Context",
    "DurableObject",
    "FetchResponse",
    "Request",
    "Response",
    "WorkerEntrypoint",
    "WorkflowEntrypoint",
    "fetch",
    "handler",
    "import_from_javascript",
    "python_from_rpc",
    "python_to_rpc",
]


def __getattr__(name: str):
    if name in ("env", "waitUntil", "wait_until"):
        raise AttributeError(
            f"workers.{name} is Cloudflare's module-level {name} and is not available under wf: "
            f"use self.env / self.ctx in a WorkerEntrypoint or WorkflowEntrypoint instead"
        )
    raise AttributeError(f"module 'workers' (wf's stand-in for Cloudflare's) has no attribute {name!r}")
