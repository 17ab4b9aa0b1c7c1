"""`instance.subscribe()` (Cloudflare 2026-09): an instance's events, its history first and then
live, resumable from an `eventId`, filtered by type; and `wf tail ID --json`, built on it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import _wf_env, wait_until
from harness import harness_store  # noqa: F401  (the fixture: SQLite, then PostgreSQL)

import wf
from wf import WorkflowEntrypoint
from wf.errors import ValidationError
from wf.testing import WorkflowTest

WORKFLOW = """
from wf import WorkflowEntrypoint

class Approval(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.do("prepare", lambda: {"order": event.payload["order"]})
        approval = await step.wait_for_event("approval", "approval", timeout="1 hour")
        return {"by": approval.payload["by"]}
"""


def make_project(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src" / "index.py").write_text(WORKFLOW)
    (root / "wrangler.jsonc").write_text(
        json.dumps(
            {
                "name": "subscribe",
                "main": "src/index.py",
                "workflows": [{"name": "approval", "binding": "APPROVAL", "class_name": "Approval"}],
            }
        )
    )
    return root


def _waits(project: Path, runs: int) -> bool:
    """The instance waits for its event in its `runs`-th run (counted by the log's wait_started)."""
    from wf.client import Client
    from wf.config import load_config

    client = Client(load_config(project / "wrangler.jsonc"))
    try:
        row = client.get("s-1")
        started = [h for h in client.history(0, instance=row) if h.type == "wait_started"]
        return row.status == "waiting" and len(started) >= runs
    finally:
        client.close()


STARTED: list[subprocess.Popen] = []  # every `wf tail` a test started: killed at its end


@pytest.fixture(autouse=True)
def _no_tail_outlives_its_test():
    yield
    while STARTED:
        proc = STARTED.pop()
        proc.kill()
        proc.wait(10)


def _tail(project: Path, *options: str) -> subprocess.Popen:
    STARTED.append(proc := _popen(project, *options))
    return proc


def _popen(project: Path, *options: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "wf", "tail", "s-1", *(options or ("--json",))],
        cwd=project,
        env=_wf_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _lines(proc: subprocess.Popen, timeout: float = 20) -> list[dict]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.slow
def test_subscribe_streams_history_then_live_events_and_follows_a_restart_to_the_new_runs_end(tmp_path, wf_procs):
    project = make_project(tmp_path / "p")
    wf_procs.cli(project, "trigger", "approval", '{"order": "o-1"}', "--id", "s-1")
    wf_procs.worker(project).wait_ready()
    wait_until(lambda: _waits(project, 1), 20, "the first run to wait for its event")

    async def scenario() -> list[dict]:
        env = wf.connect(project / "wrangler.jsonc")
        instance = await env.APPROVAL.get("s-1")
        seen: list[dict] = []

        async def collect():
            async for event in instance.subscribe():
                seen.append(event)

        reader = asyncio.create_task(collect())
        await asyncio.to_thread(wait_until, lambda: any(e["type"] == "wait_started" for e in seen), 20, "history")
        assert not reader.done()  # history delivered, the subscription now waits for live events
        await instance.restart()  # a running instance restarted: the subscription follows the new run
        await asyncio.to_thread(wait_until, lambda: _waits(project, 2), 20, "the second run to wait")
        await instance.send_event(type="approval", payload={"by": "ann"})
        await asyncio.wait_for(reader, 20)
        return seen

    tail = _tail(project)  # started before the restart: it follows it too
    events = asyncio.run(scenario())
    types = [e["type"] for e in events]
    assert types[0] == "workflow_queued" and types[-1] == "workflow_completed"
    restart = types.index("workflow_restarted")
    assert "wait_started" in types[:restart] and "wait_started" in types[restart:]
    assert types.count("workflow_completed") == 1
    assert events[-1]["output"] == {"by": "ann"}
    assert all(e["instanceId"] == "s-1" for e in events)
    ids = [e["eventId"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # one id per event, increasing
    assert [e["type"] for e in _lines(tail)] == types  # `wf tail --json` is the same stream

    # the instance ended and is restarted: a subscription started now passes the old run's end
    wf_procs.cli(project, "restart", "s-1")
    tail, view = _tail(project), _tail(project, "--limit", "3")  # the JSON stream, and the live view
    wait_until(lambda: _waits(project, 3), 20, "the third run to wait")
    assert tail.poll() is None, "wf tail --json stopped at the old run's workflow_completed"
    assert view.poll() is None, "wf tail stopped at the old run's workflow_completed"
    wf_procs.cli(project, "send-event", "s-1", "--type", "approval", "--payload", '{"by": "bob"}')
    again = _lines(tail)
    try:
        out, err = view.communicate(timeout=20)  # the live view ends with the new run too
    finally:
        view.kill()
    assert view.returncode == 0 and "complete" in out, err
    assert [e["type"] for e in again].count("workflow_completed") == 2
    assert again[-1]["type"] == "workflow_completed" and again[-1]["output"] == {"by": "bob"}

    # resumable from a cursor, filtered by type; a subscription of an ended instance ends at once
    env = wf.connect_sync(project / "wrangler.jsonc")
    instance = env.APPROVAL.get("s-1")
    ends = list(instance.subscribe(types=["workflow_completed", "workflow_restarted"]))
    assert [e["type"] for e in ends] == [
        "workflow_restarted",
        "workflow_completed",
        "workflow_restarted",
        "workflow_completed",
    ]
    after_first = list(instance.subscribe(after=ends[1]["eventId"]))
    later = [e for e in again if e["eventId"] > ends[1]["eventId"]]
    assert [(e["eventId"], e["type"]) for e in after_first] == [(e["eventId"], e["type"]) for e in later]
    # times: epoch seconds in Python, ISO 8601 in the command line's JSON
    assert isinstance(after_first[0]["timestamp"], float) and later[0]["timestamp"].endswith("Z")
    assert list(instance.subscribe(after=again[-1]["eventId"])) == []
    # a step that succeeded at once is one log entry standing for four events: resuming after its
    # first event gives the other three
    started = next(e for e in again if e["type"] == "step_started")
    resumed = [e["type"] for e in instance.subscribe(after=started["eventId"])][:3]
    assert resumed == ["attempt_started", "attempt_completed", "step_completed"]


def test_subscribe_refuses_a_bad_cursor_or_filter(tmp_path):
    project = make_project(tmp_path / "p")
    env = wf.connect_sync(project / "wrangler.jsonc")
    instance = env.APPROVAL.create(id="s-1")
    with pytest.raises(ValidationError, match="cursor 'x' is not an eventId"):
        next(instance.subscribe(after="x"))
    with pytest.raises(ValidationError, match="must be event type names"):
        next(instance.subscribe(types=[3]))


async def test_the_explorer_api_streams_an_instances_events_as_server_sent_events(tmp_path):
    import httpx
    from devserver import API, copy_devapp

    from wf.client import Client
    from wf.config import load_config
    from wf.http import create_app

    config = load_config(copy_devapp(tmp_path / "devapp") / "wrangler.jsonc")
    client = Client(config)
    client.create("quick", {}, "e-1")
    client.terminate("e-1", "quick")  # ended: its stream is its whole log, then the end
    base = f"{API}/workflows/quick/instances/e-1/subscribe"
    transport = httpx.ASGITransport(app=create_app(config))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as api:

        async def stream(url: str, **headers: str) -> list[tuple[int, dict]]:
            answer = await api.get(url, headers=headers)
            assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
            frames = [f for f in answer.text.split("\n\n") if f.startswith("id: ")]
            return [(int(f.split("\n")[0][4:]), json.loads(f.split("\n")[1][6:])) for f in frames]

        events = await stream(base)
        assert [e["type"] for _, e in events] == ["workflow_queued", "workflow_terminated"]
        assert all(i == e["eventId"] and e["instanceId"] == "e-1" for i, e in events)
        first = events[0][0]
        assert [e["type"] for _, e in await stream(f"{base}?cursor={first}")] == ["workflow_terminated"]
        assert [e["type"] for _, e in await stream(base, **{"Last-Event-ID": str(first)})] == ["workflow_terminated"]
        assert [e["type"] for _, e in await stream(f"{base}?filter=workflow_queued")] == ["workflow_queued"]
        bad = await api.get(f"{base}?cursor=-1")
        assert bad.status_code == 400 and "cursor" in bad.json()["errors"][0]["message"]
        missing = await api.get(f"{API}/workflows/quick/instances/nope/subscribe")
        assert missing.status_code == 404
    client.close()


class Sleeper(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.do("before", lambda: 1)
        await step.sleep("nap", "1 day")
        return "rested"


async def test_wf_testing_subscribe_moves_the_fake_clock_until_the_instance_ends():
    async with WorkflowTest({"sleeper": Sleeper}) as t:
        inst = await t.create("sleeper", {}, "z-1")
        wanted = ["sleep_started", "sleep_completed", "workflow_completed"]
        assert [e["type"] async for e in inst.subscribe(types=wanted)] == wanted
        assert (await inst.status())["output"] == "rested"


@pytest.mark.slow
def test_wf_dev_streams_a_live_subscription_and_stops_with_streams_open(tmp_path):
    import httpx
    from devserver import API, DevProcesses, copy_devapp

    devs = DevProcesses(tmp_path)
    try:
        dev = devs.start(copy_devapp(tmp_path / "devapp")).wait_ready()
        base = f"{dev.url}{API}/workflows/order-processing/instances"
        for id in ("live-1", "open-1"):
            made = httpx.post(base, json={"id": id, "params": {"orderId": id}}, timeout=10)
            assert made.status_code == 200, made.text
        seen = []
        with httpx.stream("GET", f"{base}/live-1/subscribe", timeout=20) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data: "):
                    continue
                seen.append(json.loads(line[6:]))
                if seen[-1]["type"] == "wait_started":  # live now: the event arrives after we subscribed
                    sent = httpx.post(f"{base}/live-1/events/approval", json={"ok": True}, timeout=10)
                    assert sent.status_code == 200, sent.text
        types = [e["type"] for e in seen]
        assert types[0] == "workflow_queued" and types[-1] == "workflow_completed"
        assert types.index("wait_started") < types.index("event_received") < types.index("wait_completed")
        assert seen[-1]["output"]["approved"] == {"ok": True}

        # a stream that never ends (its instance waits an hour) does not hold up a graceful stop
        with httpx.stream("GET", f"{base}/open-1/subscribe", timeout=20) as stream:
            lines = stream.iter_lines()
            while "wait_started" not in next(lines):
                pass
            assert dev.stop(timeout=15) == 0
    finally:
        devs.cleanup()


class Approve(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.do("prepare", lambda: 1)
        approval = await step.wait_for_event("approval", "approval", timeout="1 hour")
        return approval.payload


@pytest.mark.usefixtures("harness_store")
async def test_subscribe_follows_restarts_on_both_stores(tmp_path):
    import harness  # its STORE_URL is the store of this run

    from wf.config import load_config
    from wf.service import build_runner

    config = load_config(harness.write_project(tmp_path, ["approve"]), store=harness.STORE_URL)
    runner = build_runner(config, {"approve": Approve})
    await runner.start()
    env = wf.connect(config)
    try:
        inst = await env.APPROVE.create(id="b-1")

        async def waits(runs: int) -> None:  # the instance waits for its event in its `runs`-th run
            deadline = asyncio.get_running_loop().time() + 20
            while True:
                status = (await inst.status())["status"]
                started = await asyncio.to_thread(_count, config, "b-1", "wait_started")
                if status == "waiting" and started >= runs:
                    return
                assert asyncio.get_running_loop().time() < deadline, f"run {runs} never waited"
                await asyncio.sleep(0.02)

        async def collect() -> list[dict]:
            return [e async for e in inst.subscribe()]

        reader = asyncio.create_task(collect())
        await waits(1)
        await inst.restart()
        await waits(2)
        await inst.send_event(type="approval", payload={"by": "ann"})
        first = [e["type"] for e in await asyncio.wait_for(reader, 20)]
        assert first.count("workflow_restarted") == 1 and first[-1] == "workflow_completed"

        await inst.restart()  # ended, then restarted: a new subscription passes the old end
        reader = asyncio.create_task(collect())
        await waits(3)
        assert not reader.done()
        await inst.send_event(type="approval", payload={"by": "bob"})
        events = await asyncio.wait_for(reader, 20)
        assert [e["type"] for e in events].count("workflow_completed") == 2
        assert events[-1]["output"] == {"by": "bob"}
    finally:
        await runner.stop()


def _count(config, id: str, type: str) -> int:
    from wf.client import Client

    client = Client(config)
    try:
        return sum(1 for h in client.history(0, instance=client.get(id)) if h.type == type)
    finally:
        client.close()
