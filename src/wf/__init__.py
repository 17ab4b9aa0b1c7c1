"""wf: Cloudflare Workflows for Python, run anywhere.

    from wf import WorkflowEntrypoint, WorkflowEvent, WorkflowStep, NonRetryableError

    class OrderWorkflow(WorkflowEntrypoint):
        async def run(self, event, step):
            order = event.payload
            await step.do("charge", lambda: charge(order))
"""

from .client import Env, connect, connect_sync
from .errors import (ConfigError, ConflictError, LoaderError, NonRetryableError, NotFoundError, StoreError,
                     ValidationError, WfError, WorkflowFatalError, WorkflowTimeoutError)
from .runtime.engine import StepContext, WorkflowStep
from .runtime.entrypoint import StepEvent, WorkflowEntrypoint, WorkflowEvent

__version__ = "0.1.0"

__all__ = [
    "WorkflowEntrypoint", "WorkflowEvent", "WorkflowStep", "StepEvent", "StepContext",
    "NonRetryableError", "WorkflowTimeoutError", "WorkflowFatalError",
    "WfError", "ConfigError", "LoaderError", "ValidationError", "NotFoundError", "ConflictError", "StoreError",
    "Env", "connect", "connect_sync", "__version__",
]
