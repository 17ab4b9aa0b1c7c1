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

TYPE_CHECKING = False  # (typing.TYPE_CHECKING without importing typing)
if TYPE_CHECKING:
    from .env import Env, connect, connect_sync
    from .runtime.engine import WorkflowStep
    from .runtime.entrypoint import StepEvent, WorkflowEntrypoint, WorkflowEvent
    from .runtime.steps.do import StepContext

# Imported on first use, so that `import wf` (and the read commands of `wf`) stays light.
_LAZY = {
    "WorkflowEntrypoint": "runtime.entrypoint",
    "WorkflowEvent": "runtime.entrypoint",
    "StepEvent": "runtime.entrypoint",
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
