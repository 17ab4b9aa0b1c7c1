"""Reading the event log: compact rows expanded into Cloudflare's instance events.

A step kind may log one row that stands for several events (the `do` kind writes a step that
succeeds at its first attempt as one `step_ok` row: the hot path pays for one row, not four);
its declaration says how to expand it, and readers see the events Cloudflare reports. A row
whose type neither the instance nor any registered step kind declares stops the reader
(`UnknownKindError`).
"""

from __future__ import annotations

from collections.abc import Iterable

from . import steps
from .events import instance_event
from .store.base import HistoryRow


def expand(rows: Iterable[HistoryRow]) -> list[HistoryRow]:
    out: list[HistoryRow] = []
    for row in rows:
        if instance_event(row.type) is not None:
            out.append(row)
            continue
        _, spec = steps.event(row.type)
        if spec.expand is None:
            out.append(row)
        else:
            out += spec.expand(row)
    return out
