"""Order processing: validate inventory, charge, wait, ship, confirm.

Every external call goes to the `API_BASE` var; when it is empty the calls are simulated,
so the project runs offline as soon as it is created.
"""

import ssl

import httpx

from wf import NonRetryableError, WorkflowEntrypoint

# One TLS context for every call: building one costs about 20 ms of CPU, which a new
# httpx client per call would otherwise pay each time.
TLS = ssl.create_default_context()


class OrderWorkflow(WorkflowEntrypoint):
    async def run(self, event, step):
        order = event.payload
        if not order.get("orderId") or not order.get("items"):
            raise NonRetryableError("an order needs an orderId and items")
        api = Api(self.env.get("API_BASE", ""))

        async def validate():
            checks = [await api.get(f"/inventory/check/{item['productId']}") for item in order["items"]]
            return all(check.get("available", False) for check in checks)

        if not await step.do("validate-inventory", validate):
            await step.do(
                "notify-out-of-stock",
                lambda: api.post("/notifications/send", {"userId": order["userId"], "message": "Items out of stock"}),
            )
            return {"status": "cancelled", "reason": "out_of_stock"}

        payment = await step.do(
            "process-payment",
            lambda: api.post("/payments/charge", {"orderId": order["orderId"], "userId": order["userId"]}),
            config={"retries": {"limit": 3, "delay": "2 seconds", "backoff": "exponential"}, "timeout": "30 seconds"},
        )

        await step.sleep("wait-before-fulfillment", order.get("fulfillmentDelay", "2 seconds"))

        shipment = await step.do(
            "create-shipment",
            lambda: api.post("/shipping/create", {"orderId": order["orderId"], "items": order["items"]}),
        )

        await step.do(
            "send-confirmation",
            lambda: api.post(
                "/notifications/send",
                {
                    "userId": order["userId"],
                    "message": f"Order {order['orderId']} shipped! Tracking: {shipment['trackingNumber']}",
                },
            ),
        )

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
        async with httpx.AsyncClient(verify=TLS) as http:
            response = await http.get(self.base + path, timeout=10)
            response.raise_for_status()
            return response.json()

    async def post(self, path: str, body: dict) -> dict:
        if not self.base:
            return simulate(path, body)
        async with httpx.AsyncClient(verify=TLS) as http:
            response = await http.post(self.base + path, json=body, timeout=10)
            response.raise_for_status()
            return response.json()


def simulate(path: str, body: dict) -> dict:
    if path == "/payments/charge":
        return {"transactionId": f"txn-{body['orderId']}"}
    if path == "/shipping/create":
        return {"trackingNumber": f"TRK-{body['orderId']}"}
    return {"sent": True}
