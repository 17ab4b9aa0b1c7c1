"""wf: Cloudflare Workflows for Python, run anywhere.

from wf import WorkflowEntrypoint, WorkflowEvent, WorkflowStep, NonRetryableError

class OrderWorkflow(WorkflowEntrypoint):
    async def run(self, event, step):
        order = event.payload
        await step.do("charge", lambda: charge(order))
"""

from .errors import (
    ConfigError,
    ConflictError,
    LoaderError,
    NonRetryableError,
    NotFoundError,
    StoreError,
    ValidationError,
    WfError,
    WorkflowFatalError,
    WorkflowTimeoutError,
)
from .runtime.entrypoint import StepEvent, WorkflowEntrypoint, WorkflowEvent

# Imported on first use, so that `import wf` (and `wf status`) stays light.
_LAZY = {
    "Env": "env",
    "connect": "env",
    "connect_sync": "env",
    "WorkflowStep": "runtime.engine",
    "StepContext": "runtime.steps.do",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'wf' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "WorkflowEntrypoint",
    "WorkflowEvent",
    "WorkflowStep",
    "StepEvent",
    "StepContext",
    "NonRetryableError",
    "WorkflowTimeoutError",
    "WorkflowFatalError",
    "WfError",
    "ConfigError",
    "LoaderError",
    "ValidationError",
    "NotFoundError",
    "ConflictError",
    "StoreError",
    "Env",
    "connect",
    "connect_sync",
    "__version__",
]
