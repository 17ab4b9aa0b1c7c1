"""The Workflow and the Worker, tested offline with wf.testing: a fake clock skips the sleep.

Run: pytest (wf must be installed: `pip install wf`).
"""

from pathlib import Path

from wf.testing import from_config

CONFIG = Path(__file__).resolve().parent.parent / "wrangler.jsonc"


async def test_the_workflow_greets_by_name():
    async with from_config(CONFIG) as t:
        instance = await t.create("my-workflow", {"name": "Ada"})
        await instance.wait_for_status("complete")
        assert await instance.get_output() == {"greeting": "Hello, Ada!"}


async def test_a_failing_call_is_retried():
    async with from_config(CONFIG) as t:
        instance = t.introspect_instance("my-workflow", "flaky")
        instance.modify(lambda m: m.mock_step_error("make a call", ConnectionError("down"), times=2))
        await t.create("my-workflow", {}, id="flaky")
        await instance.wait_for_status("complete")
        assert await instance.get_output() == {"greeting": "Hello, world!"}


async def test_the_worker_starts_an_instance_and_reads_it():
    async with from_config(CONFIG) as t:
        started = await (await t.fetch("/?name=Grace")).json()
        instance = t.get(started["id"])
        await instance.wait_for_status("complete")
        read = await (await t.fetch(f"/?instanceId={instance.id}")).json()
        assert read["status"]["status"] == "complete"
        assert read["status"]["output"] == {"greeting": "Hello, Grace!"}
