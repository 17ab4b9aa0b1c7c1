"""`step.wait_for_instance`: wait, durably, for another instance (any workflow, same store) to end.

    result = await step.wait_for_instance("wait-for-invoice", self.env.INVOICES, invoice_id, timeout="2 hours")
    result["status"], result["output"], result["error"]      # the awaited instance's status() shape

The wait is registered in the store while the awaited instance's row is locked, and whatever ends
that instance (a runner finishing it, a client terminating or deleting it) wakes the waiter in the
same transaction, through the runners' notes (store/waits.py): nothing polls. Like
`wait_for_event` it survives restarts: a waiter released to the store is made due by the end, and
one held in memory is poked. A timeout raises `WorkflowTimeoutError`; waiting for an id that does
not exist raises an error named `NotFoundError`, as does the awaited instance being deleted.

`step.create_and_wait(name, binding, params, ...)` is a `step.do` that creates the instance (with
an id fixed by this step, so a retried attempt does not make a second one) and then this wait.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from ...errors import ConflictError, ValidationError, rebuild_error
from .. import codec
from ..crash import crash_point
from ..durations import MAX_SLEEP, format_duration, parse_duration
from ..store.base import StepRow, StepWrite
from ..validate import check_instance_id
from . import register
from .kind import EventSpec, StepKind, StepStatus, Wake, error_line

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (which `wf status` would pay for)
if TYPE_CHECKING:
    from typing import Any

    from ..engine import Execution

ENDED = ("complete", "errored", "terminated")
_IDS = "6f1d2b4e-9a53-4c1e-8d2f-3b7a0e5c9d10"  # namespace (a UUID) of the ids create_and_wait makes


class InstanceWaitStatus(StepStatus):
    WAITING = "waiting", "⏰ Waiting"
    COMPLETE = "complete", "✅ Success"
    ERRORED = "errored", "❌ Error"


def workflow_name(workflow: Any) -> str:
    """The workflow named by a binding (`self.env.ORDERS`) or given by name."""
    name = workflow if isinstance(workflow, str) else getattr(workflow, "name", None)
    if not isinstance(name, str) or not name:
        raise ValidationError(
            f"wait_for_instance needs a workflow binding or name, got {workflow!r}",
            "pass the binding (self.env.ORDERS) or the workflow's name ('order-processing')",
        )
    return name


@register
class WaitForInstance(StepKind):
    name = "waitForInstance"
    display = "waitForInstance"
    label = "🔗 Waiting for instance"
    icon = "&"
    methods = ("wait_for_instance", "create_and_wait")
    Status = InstanceWaitStatus
    final = frozenset({InstanceWaitStatus.COMPLETE, InstanceWaitStatus.ERRORED})
    wakes = frozenset({Wake.TIMER, Wake.INSTANCE})  # the timeout, or the end of the awaited instance
    events = (
        EventSpec(
            "instance_wait_started",
            state="waiting",
            waits=True,
            shows={"workflow": "workflow", "instance": "instance", "wake_at": "timeoutAt"},
        ),
        EventSpec("instance_wait_completed", state="complete", progress=True, ends=True, shows={"ended": "status"}),
        EventSpec("instance_wait_failed", state="errored", progress=True, ends=True),
        EventSpec("instance_wait_timed_out", state="timed out", progress=True, ends=True),
    )

    # -- the WorkflowStep methods ------------------------------------------------------------

    async def wait_for_instance(
        self, x: Execution, name: str, workflow: Any, instance_id: str, *, timeout: Any = "24 hours"
    ) -> dict:
        target = {"workflow": workflow_name(workflow), "id": check_instance_id(instance_id)}
        seconds = parse_duration(timeout, f"timeout of wait_for_instance {name!r}")
        if seconds > MAX_SLEEP:
            raise ValidationError(
                f"timeout of wait_for_instance {name!r} is longer than 365 days", "wait at most 365 days"
            )
        key, rec = x.lookup(self, name)
        if self.finished(rec):
            return self.replay(rec)
        recorded = rec is not None
        if rec is None:
            if target == {"workflow": x.row.workflow, "id": x.row.id}:
                raise ValidationError(
                    f"wait_for_instance {name!r}: instance {x.row.id!r} cannot wait for itself",
                    "wait for another instance",
                )
            now = x.clock.now()
            rec = x.new_step(key, status=InstanceWaitStatus.WAITING.value, started_at=now, wake_at=now + seconds)
            rec.config = target
        return await self._await(x, rec, recorded)

    async def create_and_wait(
        self,
        x: Execution,
        name: str,
        workflow: Any,
        params: Any = None,
        *,
        id: str | None = None,
        timeout: Any = "24 hours",
        config: dict | None = None,
    ) -> dict:
        """Create an instance of `workflow` in a `step.do` called `name`, then wait for it to end."""
        if isinstance(workflow, str) or not callable(getattr(workflow, "create", None)):
            raise ValidationError(
                f"create_and_wait {name!r} needs a workflow binding, got {workflow!r}",
                "pass the binding, e.g. self.env.INVOICES",
            )
        child = id if id is not None else self._child_id(x, name)
        check_instance_id(child)

        async def create() -> str:
            try:
                made = await workflow.create(params=params, id=child)
            except ConflictError:  # made by an earlier attempt of this step, cut off before its commit
                return child
            return made.id

        created = await kinds_of_do().run(x, name, create, config)
        return await self.wait_for_instance(x, name, workflow, created, timeout=timeout)

    def _child_id(self, x: Execution, name: str) -> str:
        """An id fixed by this step of this run: a retried attempt makes no second instance, and a
        restarted parent (a new start time) makes a new one."""
        n = x.counters[("do", name)] + 1
        import uuid  # here: `wf instances describe` reads this kind and makes no id

        return uuid.uuid5(uuid.UUID(_IDS), f"{x.row.workflow}/{x.row.id}/{x.row.started_at}/{name}/{n}").hex

    def result(self, value: Any) -> dict:
        return value

    # -- running -----------------------------------------------------------------------------

    async def _await(self, x: Execution, rec: StepRow, recorded: bool) -> dict:
        target = rec.config or {}
        while True:
            seen = x.poke_count
            ops = x.host.store_ops
            found = await x.store_write(
                ops.watch_instance, x.host.owner, x.seq, x.gen, rec.pos, target["workflow"], target["id"],
                target.get("seq"),
            )  # fmt: skip
            if found is False:
                from ..engine import Interrupt

                raise Interrupt("lost")
            now = x.clock.now()
            if found is None:
                await self._fail(x, rec, recorded, now, self._missing(rec))
            elif found[1] in ENDED:
                return await self._complete(x, rec, recorded, now, found)
            elif now >= (rec.wake_at or now):
                await self._fail(x, rec, recorded, now, self._timed_out(rec), timed_out=True)
            elif target.get("seq") is None:  # first registration: the step is recorded as waiting
                target["seq"] = found[0]
                status, wake = x.instance_state(rec.wake_at)
                await x.commit(StepWrite(rec, None, status, wake, events=self._started(rec, recorded, now)))
                recorded = True
                crash_point("waiting", rec.name)
            elif x.active_attempts == 0 and not x.deadlines:
                await x.hold_waiting(rec)
            if x.poke_count != seen:
                continue
            await x.wait(self, rec.wake_at or now)

    async def _complete(self, x: Execution, rec: StepRow, recorded: bool, now: float, found: tuple) -> dict:
        _, status, output, error = found
        result = '{"status":%s,"output":%s,"error":%s}' % (  # noqa: UP031 - JSON built from JSON parts
            json.dumps(status),
            output or "null",
            error or "null",
        )
        rec.status, rec.output, rec.ended_at, rec.wake_at = InstanceWaitStatus.COMPLETE.value, result, now, None
        events = self._started(rec, recorded, now) + [self.log(rec, now, "instance_wait_completed", {"status": status})]
        await x.commit(StepWrite(rec, None, *x.instance_state(), events=events), x.host.store_ops.commit_wait_end)
        x.after_step()
        return codec.decode(result)

    async def _fail(self, x: Execution, rec: StepRow, recorded: bool, now: float, info: dict, timed_out=False):
        rec.status, rec.error, rec.ended_at, rec.wake_at = InstanceWaitStatus.ERRORED.value, info, now, None
        event = "instance_wait_timed_out" if timed_out else "instance_wait_failed"
        events = self._started(rec, recorded, now) + [self.log(rec, now, event, {"error": info})]
        await x.commit(StepWrite(rec, None, *x.instance_state(), events=events), x.host.store_ops.commit_wait_end)
        x.after_step()
        raise rebuild_error(info)

    def _missing(self, rec: StepRow) -> dict:
        t = rec.config or {}
        what = f"instance {t.get('id')!r} of workflow {t.get('workflow')!r}"
        gone = "was deleted while it waited" if t.get("seq") is not None else "does not exist"
        return {"name": "NotFoundError", "message": f"wait_for_instance {rec.name!r}: {what} {gone}"}

    def _timed_out(self, rec: StepRow) -> dict:
        t = rec.config or {}
        return {
            "name": "WorkflowTimeoutError",
            "message": f"wait_for_instance {rec.name!r} timed out: instance {t.get('id')!r} of workflow "
            f"{t.get('workflow')!r} did not end in time",
        }

    def _started(self, rec: StepRow, recorded: bool, now: float) -> list:
        if recorded:
            return []
        t = rec.config or {}
        data = {"workflow": t.get("workflow"), "instance": t.get("id"), "timeoutAt": rec.wake_at}
        return [self.log(rec, rec.started_at or now, "instance_wait_started", data)]

    # -- describe ----------------------------------------------------------------------------

    def details(self, s: StepRow) -> dict:
        t = s.config or {}
        return {
            "instance": {"workflow": t.get("workflow"), "id": t.get("id")},
            "output": codec.decode(s.output),
            "error": s.error,
            "timeout_at": s.wake_at if s.status == InstanceWaitStatus.WAITING else None,
        }

    def cloudflare(self, d: dict, iso: Callable) -> dict:
        return {**super().cloudflare(d, iso), "instance": d.get("instance")}

    def human(self, d: dict) -> list[tuple[str, str, Any]]:
        t = d.get("instance") or {}
        fields: list[tuple[str, str, Any]] = [("Instance", "text", f"{t.get('id')} ({t.get('workflow')})")]
        if d.get("timeout_at"):
            fields.append(("Times Out At", "when", d["timeout_at"]))
        if d["status"] == InstanceWaitStatus.COMPLETE:
            fields.append(("Result", "json", d.get("output")))
        if d.get("error"):
            fields.append(("Error", "error", d["error"]))
        return fields

    # -- wf tail -----------------------------------------------------------------------------

    def detail(self, view: Any, now: float) -> str:
        if view.state == "waiting":
            timeout_at = view.facts.get("wake_at")
            left = format_duration(max(0.0, (timeout_at or now) - now))
            return f"waiting for {view.facts.get('instance')} ({view.facts.get('workflow')}), times out in {left}"
        if view.state == "complete" and view.facts.get("ended"):
            return f"it ended {view.facts['ended']}"
        if view.state == "timed out":
            return error_line(view.error).strip()
        return super().detail(view, now)


def kinds_of_do():
    """The `do` kind (create_and_wait's first step), from the registry."""
    from .. import steps

    return steps.kind("do")
