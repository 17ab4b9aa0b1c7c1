"""A Workflow and the Worker that starts and reads it: Cloudflare's Python Workflows starter.

GET /?name=Ada         start an instance         -> {"id": ..., "details": {"status": ...}}
GET /?instanceId=ID    read an instance's status -> {"status": {"status": ..., "output": ...}}
"""

from urllib.parse import parse_qs, urlparse

from js import Object
from pyodide.ffi import to_js
from workers import Response, WorkerEntrypoint, WorkflowEntrypoint


class MyWorkflow(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do("my first step")
        async def my_first_step():
            return {"inputParams": event["payload"]}

        first = await my_first_step()

        await step.sleep("wait on something", event["payload"].get("wait", "10 seconds"))

        @step.do("make a call", config={"retries": {"limit": 5, "delay": "5 seconds", "backoff": "exponential"}})
        async def make_a_call():
            return {"greeting": f"Hello, {first['inputParams'].get('name', 'world')}!"}

        return await make_a_call()


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        query = parse_qs(urlparse(request.url).query)
        if "instanceId" in query:
            instance = await self.env.MY_WORKFLOW.get(query["instanceId"][0])
            return Response.json({"status": await instance.status()})

        params = {key: values[0] for key, values in query.items()}
        instance = await self.env.MY_WORKFLOW.create(to_js({"params": params}, dict_converter=Object.fromEntries))
        return Response.json({"id": instance.id, "details": await instance.status()})
