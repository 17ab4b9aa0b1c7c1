"""What users subclass and what `run()` receives."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (which `wf status` would pay for)
if TYPE_CHECKING:
    from typing import Any


class WorkflowEntrypoint:
    """Subclass this and define `async def run(self, event, step)`.

    `self.env` holds the config's `vars` and one binding per declared workflow, so a workflow
    can start others: `await self.env.OTHER.create(params=...)`.
    """

    def __init__(self, ctx: Any = None, env: Any = None):
        self.ctx = ctx
        self.env = env

    async def run(self, event: WorkflowEvent, step: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define `async def run(self, event, step)`")


class WorkflowEvent(Mapping):
    """The instance's immutable trigger event: `payload`, `timestamp`, `instance_id`, `workflow_name`.

    Read it as attributes or as a dict (`event["payload"]`, also Cloudflare's `instanceId`).
    """

    _aliases = {"instanceId": "instance_id", "workflowName": "workflow_name"}

    def __init__(
        self, payload: Any, timestamp: float, instance_id: str, workflow_name: str, schedule: dict | None = None
    ):
        self.payload = payload
        self.timestamp = datetime.fromtimestamp(timestamp, tz=UTC)
        self.instance_id = instance_id
        self.workflow_name = workflow_name
        self.schedule = schedule

    def _keys(self) -> list[str]:
        keys = ["payload", "timestamp", "instance_id", "workflow_name"]
        return keys + (["schedule"] if self.schedule is not None else [])

    def __getitem__(self, key: str) -> Any:
        key = self._aliases.get(key, key)
        if key not in self._keys():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self):
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    def __json__(self) -> dict:
        """Stored as Cloudflare serialises its event (returned from `run()` or a step): its
        fields under Cloudflare's names, the timestamp as JSON writes a Date."""
        shape = {"payload": self.payload, "timestamp": _js_date(self.timestamp), "instanceId": self.instance_id}
        return {**shape, "workflowName": self.workflow_name}

    def __repr__(self) -> str:
        return (
            f"WorkflowEvent(instance_id={self.instance_id!r}, workflow_name={self.workflow_name!r}, "
            f"payload={self.payload!r})"
        )


class StepEvent(Mapping):
    """What `step.wait_for_event` returns: `payload`, `type`, `timestamp`."""

    def __init__(self, type: str, payload: Any, timestamp: float):
        self.type = type
        self.payload = payload
        self.timestamp = datetime.fromtimestamp(timestamp, tz=UTC)

    def __getitem__(self, key: str) -> Any:
        if key not in ("type", "payload", "timestamp"):
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self):
        return iter(("payload", "type", "timestamp"))

    def __len__(self) -> int:
        return 3

    def __json__(self) -> dict:
        """Stored as its plain shape, as Cloudflare serialises the event a wait returned."""
        return {"payload": self.payload, "type": self.type, "timestamp": _js_date(self.timestamp)}

    def __repr__(self) -> str:
        return f"StepEvent(type={self.type!r}, payload={self.payload!r})"


def _js_date(when: datetime) -> str:
    """A time as JSON writes a JavaScript Date: ISO 8601 in UTC, milliseconds, `Z`."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
