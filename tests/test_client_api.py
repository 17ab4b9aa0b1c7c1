"""The Python client (SPEC §4): wf.connect() async bindings and wf.connect_sync()."""

from __future__ import annotations

import json

import pytest
from harness import write_project

import wf
from wf.errors import ConflictError, NotFoundError
from wf.service import build_runner, run_until_done


class Echo(wf.WorkflowEntrypoint):
    async def run(self, event, step):
        ev = await step.wait_for_event("go", "go", timeout="1 minute")
        return {"params": event.payload, "got": ev.payload, "var": self.env.GREETING}


@pytest.fixture
def project(tmp_path):
    path = write_project(tmp_path, ["echo"])
    data = json.loads(path.read_text())
    data["vars"] = {"GREETING": "hi"}
    path.write_text(json.dumps(data))
    return path


def test_connect_sync_drives_an_instance(project):
    env = wf.connect_sync(project)
    assert env.GREETING == "hi" and env["GREETING"] == "hi" and "ECHO" in env
    inst = env.ECHO.create(params={"n": 1}, id="s1")
    assert inst.id == "s1" and inst.status() == {"status": "queued", "output": None, "error": None}
    with pytest.raises(ConflictError):
        env.ECHO.create(id="s1")
    assert [i.id for i in env.ECHO.create_batch([{"id": "s1"}, {"id": "s2"}])] == ["s2"]
    with pytest.raises(NotFoundError):
        env.ECHO.get("nope")
    with pytest.raises(AttributeError, match="NOPE"):
        _ = env.NOPE
    env.ECHO.get("s1").send_event(type="go", payload={"ok": True})


async def test_connect_async_and_a_runner(project):
    from wf.config import load_config

    config = load_config(project)
    env = wf.connect(project)
    inst = await env.ECHO.create(params={"n": 2}, id="a1")
    assert (await inst.status())["status"] == "queued"
    await inst.send_event(type="go", payload={"early": 1})
    runner = build_runner(config, {"echo": Echo})
    row = await env.ECHO.get("a1")
    assert row.id == "a1"
    seq = wf.client.Client(config).get("a1").seq
    assert await run_until_done(runner, seq) == "complete"
    assert await inst.status() == {
        "status": "complete",
        "error": None,
        "output": {"params": {"n": 2}, "got": {"early": 1}, "var": "hi"},
    }
    await inst.restart()
    assert (await inst.status())["status"] == "queued"
    await inst.terminate()
    assert (await inst.status())["status"] == "terminated"
    await inst.delete()
    with pytest.raises(NotFoundError):
        await env.ECHO.get("a1")
