"""Order processing: validate inventory, charge, wait, ship, confirm; a failed shipment refunds.

Every external call goes to the `API_BASE` var; when it is empty the calls are simulated,
so the project runs offline as soon as it is created. Written as Cloudflare's Python SDK
wants it (steps as `@step.do(...)` functions, `fetch` from `workers`), so that this same file
deploys with `npx wrangler deploy`.
"""

import json

from workers import WorkflowEntrypoint, fetch
from workers.workflows import NonRetryableError


class OrderWorkflow(WorkflowEntrypoint):
    async def run(self, event, step):
        order = event["payload"]
        if not order.get("orderId") or not order.get("items"):
            raise NonRetryableError("an order needs an orderId and items")
        api = Api(getattr(self.env, "API_BASE", ""))

        @step.do("validate-inventory")
        async def validate_inventory():
            checks = [await api.get(f"/inventory/check/{item['productId']}") for item in order["items"]]
            return all(check.get("available", False) for check in checks)

        if not await validate_inventory():

            @step.do("notify-out-of-stock")
            async def notify_out_of_stock():
                notice = {"userId": order["userId"], "message": "Items out of stock"}
                return await api.post("/notifications/send", notice)

            await notify_out_of_stock()
            return {"status": "cancelled", "reason": "out_of_stock"}

        @step.with_rollback(
            "process-payment",
            config={"retries": {"limit": 3, "delay": "2 seconds", "backoff": "exponential"}, "timeout": "30 seconds"},
        )
        async def process_payment():
            return await api.post("/payments/charge", {"orderId": order["orderId"], "userId": order["userId"]})

        @process_payment.undo
        async def refund_payment(error, payment):  # the compensation: runs once if a later step fails for good
            return await api.post("/payments/refund", {"transactionId": payment["transactionId"]})

        payment = await process_payment()

        try:
            await step.sleep("wait-before-fulfillment", order.get("fulfillmentDelay", "2 seconds"))

            @step.do("create-shipment")
            async def create_shipment():
                return await api.post("/shipping/create", {"orderId": order["orderId"], "items": order["items"]})

            shipment = await create_shipment()

            @step.do("send-confirmation")
            async def send_confirmation():
                message = f"Order {order['orderId']} shipped! Tracking: {shipment['trackingNumber']}"
                return await api.post("/notifications/send", {"userId": order["userId"], "message": message})

            await send_confirmation()
        except Exception as error:
            await step.rollback_all(error)  # refund the payment (newest step first), then fail the order
            raise
        return {
            "status": "completed",
            "transactionId": payment["transactionId"],
            "trackingNumber": shipment["trackingNumber"],
        }


class Api:
    """The shop's services at `base`, or a simulation of them when `base` is empty."""

    def __init__(self, base: str):
        self.base = base.rstrip("/")

    async def get(self, path: str) -> dict:
        if not self.base:
            return {"available": True}
        return await self.answer(await fetch(self.base + path), path)

    async def post(self, path: str, body: dict) -> dict:
        if not self.base:
            return simulate(path, body)
        response = await fetch(
            self.base + path, method="POST", headers={"content-type": "application/json"}, body=json.dumps(body)
        )
        return await self.answer(response, path)

    @staticmethod
    async def answer(response, path: str) -> dict:
        if not response.ok:  # the step fails and is retried
            raise OSError(f"{path} answered {response.status}")
        return await response.json()


def simulate(path: str, body: dict) -> dict:
    if path == "/payments/charge":
        return {"transactionId": f"txn-{body['orderId']}"}
    if path == "/payments/refund":
        return {"refunded": body["transactionId"]}
    if path == "/shipping/create":
        return {"trackingNumber": f"TRK-{body['orderId']}"}
    return {"sent": True}
