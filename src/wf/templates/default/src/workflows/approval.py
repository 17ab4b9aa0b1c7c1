"""Human approval: ask, wait for a decision (an `approval` event), give up after a timeout.

Approve from the command line:  wf send-event ID --type approval --payload '{"approved": true, "by": "ann"}'
or over HTTP (with `wf dev`):   curl -X POST localhost:8787/api/workflows/ID/approve
"""

from wf import WorkflowEntrypoint, WorkflowTimeoutError


class ApprovalWorkflow(WorkflowEntrypoint):
    async def run(self, event, step):
        request = event.payload
        await step.do("notify-approver", lambda: {"notified": request.get("approver", "manager")})
        try:
            decision = await step.wait_for_event(
                "wait-for-approval", "approval", timeout=request.get("timeout", "24 hours")
            )
        except WorkflowTimeoutError:
            await step.do("escalate", lambda: {"escalated": True})
            return {"status": "timed_out"}
        approved = bool(decision.payload.get("approved"))
        await step.do("record-decision", lambda: {"approved": approved})
        return {"status": "approved" if approved else "rejected", "by": decision.payload.get("by")}
