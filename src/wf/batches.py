"""Cloudflare's batch forms, checked: `createBatch` by `{count, params}` or `{instances: [...]}`, and
the codes and messages of the entries a batch leaves out (workers-sdk workflows-shared binding.ts).
`Client.create_many` and `Client.delete_batch` use them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import ValidationError

BATCH_MAX = 100

# Cloudflare's codes and messages for the entries of a batch it leaves out
BATCH_DUPLICATE = (10415, "workflows.api.error.instance.duplicate_in_batch")
ALREADY_EXISTS = (10405, "workflows.api.error.instance.already_exists")
NOT_FOUND_IN_BATCH = (10400, "workflows.api.error.instance.not_found")
INTERNAL = (10001, "workflows.api.error.internal_server")
# Cloudflare's create options; `retention` is accepted as its binding accepts it, and not applied
BATCH_ENTRY_KEYS = ("id", "params", "retention")


def error(kind: tuple[int, str], id: str, index: int | None = None) -> dict:
    where = {} if index is None else {"index": index}
    return {**where, "id": id, "code": kind[0], "message": kind[1]}


def check_size(n: int, what: str) -> None:
    if not 1 <= n <= BATCH_MAX:
        raise ValidationError(f"a batch of {n} {what} is not allowed", f"give between 1 and {BATCH_MAX} per batch")


def entries(options: Any) -> list[dict]:
    """The entries of `{count, params}` (that many, sharing the params, ids generated) or
    `{instances: [{id?, params?}, ...]}`."""
    hint = "pass {'count': 10, 'params': {...}} or {'instances': [{'id': ..., 'params': ...}, ...]}"
    if not isinstance(options, Mapping) or ("count" in options) == ("instances" in options):
        raise ValidationError(f"a batch must give either count or instances, got {options!r}", hint)
    if "count" in options:
        count = options["count"]
        if set(options) - {"count", "params", "retention"}:
            raise ValidationError(f"a batch by count takes count, params and retention, got {sorted(options)}", hint)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValidationError(f"count {count!r} must be a positive integer", hint)
        check_size(count, "instances")
        shared = {k: v for k, v in options.items() if k != "count"}
        return [dict(shared) for _ in range(count)]
    given = options["instances"]
    if set(options) != {"instances"} or not isinstance(given, (list, tuple)):
        raise ValidationError(f"instances must be a list of {{id, params}} objects, got {given!r}", hint)
    check_size(len(given), "instances")
    return [entry(e) for e in given]


def entry(given: Any) -> dict:
    if not isinstance(given, Mapping) or set(given) - set(BATCH_ENTRY_KEYS):
        raise ValidationError(
            f"a batch entry must be an object of id and params, got {given!r}", "e.g. {'id': 'o-1', 'params': {}}"
        )
    return dict(given)
