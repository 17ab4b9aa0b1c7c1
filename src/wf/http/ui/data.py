"""Every read and write the web UI makes on stored data, in one place, through `wf.client.Client`.

The UI never opens the store: each method here runs Client calls on the store's own thread
(`call`, the same executor the explorer API uses), and a page that needs several reads gets
them in one hop. Writes (trigger, pause, send event, ...) go through the explorer API from the
browser, so they have one implementation and one set of refusals.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from ...client import Client
from ...errors import ValidationError

LOG_LIMIT = 5000  # event-log entries read for one instance page (the page shows the newest of them)
PER_PAGE = (25, 50, 100)
WITHIN = {"": None, "1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}

Key = tuple[float, int]  # (created_at, seq): where an instance sits in the newest-first order


@dataclass(frozen=True)
class InstanceQuery:
    """What the instances page asks for: filters, and a position in the newest-first order."""

    workflow: str | None = None
    status: str | None = None
    id_prefix: str | None = None
    within: str = ""  # a key of WITHIN: created in the last hour, day, ...
    before: Key | None = None  # the page just older than this key
    after: Key | None = None  # the page just newer than this key
    per_page: int = PER_PAGE[0]

    def moved(self, **changes: Any) -> InstanceQuery:
        return replace(self, **{"before": None, "after": None, **changes})


def parse_key(text: str | None, name: str) -> Key | None:
    """A page position from the URL (`<created_at>_<seq>`), or a sentence saying what is wrong."""
    if not text:
        return None
    created, _, seq = text.partition("_")
    try:
        return float(created), int(seq)
    except ValueError:
        raise ValidationError(
            f"{text!r} ({name}=) is not a position in the instance list", "use the Newer and Older links"
        ) from None


def format_key(key: Key) -> str:
    return f"{key[0]!r}_{key[1]}"


class UiData:
    """The web UI's reads, each awaited off the event loop on the store's thread."""

    def __init__(self, client: Client, call: Callable[..., Awaitable[Any]]):
        self.client, self.call = client, call

    @property
    def config(self):
        return self.client.config

    def now(self) -> float:
        return self.client.now()

    # -- workflows ------------------------------------------------------------------------

    async def workflows(self) -> list[dict]:
        """Each declared workflow with its settings and its instance count per status."""

        def load() -> list[dict]:
            return [
                {
                    "name": w.name,
                    "binding": w.binding,
                    "class_name": w.class_name,
                    "schedules": list(w.schedules),
                    "concurrency": w.concurrency_limit,
                    "step_limit": w.step_limit,
                    "counts": self.client.count_by_status(w.name),
                }
                for w in self.config.workflows
            ]

        return await self.call(load)

    # -- instances ------------------------------------------------------------------------

    async def instances(self, q: InstanceQuery) -> dict:
        """One page of instances (plus whether there are newer and older ones) and the counts
        per status of the workflow filtered on (or of all workflows)."""

        def load() -> dict:
            window = WITHIN.get(q.within)
            since = self.now() - window if window else None
            rows = self.client.page_instances(
                q.workflow, q.status, q.id_prefix, since, None, q.before, q.after, q.per_page + 1
            )
            newer, older = q.before is not None, q.before is not None or q.after is not None
            if q.after is not None:  # the extra row, if any, is the newest: there are newer ones still
                newer, rows = len(rows) > q.per_page, rows[-q.per_page :]
            else:
                older, rows = len(rows) > q.per_page, rows[: q.per_page]
            names = [q.workflow] if q.workflow else [w.name for w in self.config.workflows]
            counts: dict[str, int] = {}
            for name in names:
                for status, n in self.client.count_by_status(name).items():
                    counts[status] = counts.get(status, 0) + n
            return {
                "rows": rows,
                "newer": (rows[0].created_at, rows[0].seq) if rows and newer else None,
                "older": (rows[-1].created_at, rows[-1].seq) if rows and older else None,
                "counts": counts,
            }

        return await self.call(load)

    # -- one instance -----------------------------------------------------------------------

    async def instance(self, workflow: str, id: str) -> dict:
        """Everything the instance page shows: describe(), the events sent to it, and its event log."""

        def load() -> dict:
            row = self.client.get(id, workflow)
            return {
                "describe": self.client.describe(id, workflow),
                "events": self.client.events(id, workflow),
                "log": self.client.history(instance=row, limit=LOG_LIMIT),
            }

        return await self.call(load)

    # -- the event log, for live pages ----------------------------------------------------

    async def last_seq(self) -> int:
        return await self.call(self.client.last_history_seq)

    async def changes(self, after: int, limit: int) -> list:
        return await self.call(lambda: self.client.history(after, limit=limit))
