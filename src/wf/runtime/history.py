"""Reading the event log: compact rows expanded into Cloudflare's instance events.

The engine writes a step that succeeds at its first attempt as one `step_ok` row (the
hot path pays for one row, not four); readers see the four events Cloudflare reports.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from .store.base import HistoryRow


def expand(rows: Iterable[HistoryRow]) -> list[HistoryRow]:
    out: list[HistoryRow] = []
    for row in rows:
        if row.type != "step_ok":
            out.append(row)
            continue
        data = row.data or {}
        started = data.get("startedAt", row.at)
        out += [
            replace(row, at=started, type="step_started", data=None),
            replace(row, at=started, type="attempt_started", data={"attempt": 1}),
            replace(row, type="attempt_completed", data={"attempt": 1}),
            replace(row, type="step_completed", data={"output": data.get("output")}),
        ]
    return out


# Entries that mean an instance moved forward: after one of them, a runner dying while holding
# the instance no longer counts towards the poison-step guard (Runner.max_losses).
PROGRESS_EVENTS = (
    "step_ok",
    "step_completed",
    "step_errored",
    "attempt_errored",
    "sleep_completed",
    "wait_completed",
    "wait_timed_out",
    "workflow_restarted",
)
