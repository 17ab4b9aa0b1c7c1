"""`step.patched` and `step.deprecate_patch`: change a workflow's code under instances already running.

    if await step.patched("ship-in-one-step"):      # the new code
        await step.do("ship", ship_all)
    else:                                           # what instances that went past here before the patch did
        await step.do("pack", pack)
        await step.do("send", send)

`patched(id)` is True for an instance that reaches this point on code that has the patch: a new
instance, or one that had not got this far when the code changed. It is False for an instance
whose history already goes on past this point without the patch: it went the old way, and must
keep going the old way when it is replayed. The first True is recorded in the history (a `patch`
step), so every replay of that instance decides the same; a run decides once per id.

Once no instance that went the old way is left (`wf replay --check` tells), replace the `if` with
`await step.deprecate_patch(id)` and keep only the new code: it records the same mark for
instances reaching it, accepts histories with or without it, and the replay check reports any
instance that still went the old way. Later still, remove the call.
"""

from __future__ import annotations

from ...errors import ValidationError
from ..store.base import StepWrite
from . import register
from .kind import EventSpec, StepKind, StepStatus

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (which `wf status` would pay for)
if TYPE_CHECKING:
    from typing import Any

    from ..engine import Execution


class PatchStatus(StepStatus):
    APPLIED = "applied", "🩹 Applied"


class Decision:
    """What `step.patched(id)` returns: await it for the bool. Used as a bool without `await` it
    would always be true (a coroutine is), so it refuses."""

    def __init__(self, coro, patch_id: str):
        self._coro, self._id = coro, patch_id

    def __await__(self):
        return self._coro.__await__()

    def __bool__(self) -> bool:
        self._coro.close()
        raise TypeError(f"step.patched({self._id!r}) must be awaited: write `if await step.patched({self._id!r}):`")


@register
class Patch(StepKind):
    name = "patch"
    display = "patch"
    label = "🩹 Patch"
    icon = "+"
    methods = ("patched", "deprecate_patch")
    Status = PatchStatus
    final = frozenset({PatchStatus.APPLIED})
    events = (EventSpec("patch_applied", state="applied", progress=True, ends=True),)

    # -- the WorkflowStep methods ------------------------------------------------------------

    def patched(self, x: Execution, patch_id: str) -> Decision:
        return Decision(self._decide(x, patch_id), patch_id)

    async def deprecate_patch(self, x: Execution, patch_id: str) -> None:
        if not await self._decide(x, patch_id, deprecated=True):
            x.missing_patch(self, patch_id)

    async def _decide(self, x: Execution, patch_id: str, deprecated: bool = False) -> bool:
        if not isinstance(patch_id, str) or not patch_id:
            raise ValidationError(f"patch id {patch_id!r} must be a non-empty string", "e.g. 'ship-in-one-step'")
        decided = x.scratch.setdefault("patch", {})
        if patch_id in decided:
            return decided[patch_id]
        key = (self.name, patch_id, 1)
        if key in x.history:  # recorded: this instance took the new way
            x.lookup(self, patch_id)
            decided[patch_id] = True
        elif x.history_ahead():  # it went on past this point before the patch: the old way
            decided[patch_id] = False
        else:
            decided[patch_id] = True
            await self._record(x, patch_id, deprecated)
        return decided[patch_id]

    async def _record(self, x: Execution, patch_id: str, deprecated: bool) -> None:
        key, _ = x.lookup(self, patch_id)
        now = x.clock.now()
        rec = x.new_step(key, status=PatchStatus.APPLIED.value, started_at=now, ended_at=now)
        rec.config = {"deprecated": True} if deprecated else None
        event = self.log(rec, now, "patch_applied", {"deprecated": deprecated} if deprecated else None)
        await x.commit(StepWrite(rec, None, *x.instance_state(), events=[event]))
        x.after_step()

    # -- describe ----------------------------------------------------------------------------

    def details(self, s) -> dict:
        return {}

    def cloudflare(self, d: dict, iso: Any) -> dict:
        return {
            "name": f"{d['name']}-{d['count']}",
            "start": iso(d["start"]),
            "end": iso(d["end"]),
            "finished": True,
            "type": self.display,
            "error": None,
        }

    def human(self, d: dict) -> list[tuple[str, str, Any]]:
        return [("Meaning", "text", "this instance took the new code of the patch")]
