"""Subscriptions: an instance's events as Cloudflare's `instance.subscribe()` gives them, read
from the event log a page at a time (history first, then live by polling), resumable from an
`eventId`. `Client.subscribe` is the synchronous form; the bindings, `wf.testing` and the explorer's
stream read the same pages in their own way of waiting."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from .errors import ValidationError
from .runtime.status import TERMINAL

if TYPE_CHECKING:
    from .client import Client
    from .runtime.store.base import InstanceRow

SUBSCRIBE_PAGE = 1000  # log entries a subscription reads at once
SUBSCRIBE_POLL = 0.1  # seconds between reads of a subscription that has caught up


def follow(
    client: Client, row: InstanceRow, types: Iterable[str] | None, after: int | None, iso: bool
) -> Iterator[dict]:
    wanted, cursor = subscription_options(types, after)
    while True:
        events, cursor, over = page(client, row, cursor, wanted, iso)
        yield from events
        if over:
            return
        if len(events) < SUBSCRIBE_PAGE:
            time.sleep(SUBSCRIBE_POLL)


def page(
    client: Client, row: InstanceRow, after: int, types: frozenset[str] | None = None, iso: bool = False
) -> tuple[list[dict], int, bool]:
    """One read of a subscription: the events after `after` (of `types`, when given), where to
    read on from, and whether the subscription is over: the instance is gone, or has ended
    with nothing after its end. The status is read before the log, so an end written between
    the two reads is delivered before the subscription says it is over."""
    from .runtime.events import ID_SLOTS, event_json, instance_event, numbered
    from .runtime.history import expand

    now = client.store.get_by_seq(row.seq)
    entry = after // ID_SLOTS  # the log entry of the event `after` names: read it again, skip up to it
    raw = client.store.history(max(0, entry - 1), row.seq, None, SUBSCRIBE_PAGE)
    rows = [(h, i) for h, i in numbered(expand(raw)) if i > after]
    ended = now is None or now.status in TERMINAL
    if raw:
        last = instance_event(raw[-1].type)
        ended = ended and last is not None and last.ends and len(raw) < SUBSCRIBE_PAGE
    if rows:
        after = rows[-1][1]
    events = [event_json(h, i, iso) for h, i in rows if types is None or h.type in types]
    return events, after, ended


def subscription_options(types: Iterable[str] | str | None, after: int | None) -> tuple[frozenset[str] | None, int]:
    """`subscribe()`'s options, checked: the event types to keep (None: all) and the cursor."""
    if isinstance(types, str):
        types = [types]
    wanted = None
    if types is not None:
        wanted = frozenset(types)
        bad = [t for t in wanted if not isinstance(t, str) or not t]
        if bad or not wanted:
            raise ValidationError(
                f"subscribe types {sorted(map(str, bad)) if bad else []!r} must be event type names",
                'pass a list such as ["step_completed", "workflow_completed"], or None for every event',
            )
    if after is None:
        return wanted, 0
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise ValidationError(
            f"subscribe cursor {after!r} is not an eventId", "pass the eventId of the last event handled, or None"
        )
    return wanted, after
