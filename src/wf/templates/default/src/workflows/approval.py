"""Human approval: ask, wait for a decision (an `approval` event), give up after a timeout.

Approve from the command line:  wf send-event ID --type approval --payload '{"approved": true, "by": "ann"}'
or over HTTP (with `wf dev`):   curl -X POST localhost:8787/api/workflows/ID/approve
"""

from workers import WorkflowEntrypoint


class ApprovalWorkflow(WorkflowEntrypoint):
    async def run(self, event, step):
        request = event["payload"]

        @step.do("notify-approver")
        async def notify_approver():
            return {"notified": request.get("approver", "manager")}

        await notify_approver()
        try:
            decision = await step.wait_for_event(
                "wait-for-approval", "approval", timeout=request.get("timeout", "24 hours")
            )
        except Exception:  # the wait timed out (on Cloudflare the error keeps no Python type of its own)

            @step.do("escalate")
            async def escalate():
                return {"escalated": True}

            await escalate()
            return {"status": "timed_out"}
        approved = bool(decision["payload"].get("approved"))

        @step.do("record-decision")
        async def record_decision():
            return {"approved": approved}

        await record_decision()
        return {"status": "approved" if approved else "rejected", "by": decision["payload"].get("by")}
