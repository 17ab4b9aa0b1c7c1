"""Retention (Cloudflare 2026-09): an ended instance is kept for its `success_retention` /
`error_retention` (its own, from create, else its workflow's `default_retention`, 7 days unless
the config says otherwise); then the runner deletes it and its history in the background, a
bounded batch per transaction, on SQLite and on PostgreSQL; `wf gc` does it on demand."""

from __future__ import annotations

import asyncio
import json
import math
import time

import harness
import pytest
from conftest import _wf_env
from harness import harness_store, write_project  # noqa: F401  (the fixture)

import wf
from wf import NonRetryableError, WorkflowEntrypoint
from wf.client import Client
from wf.config import load_config
from wf.errors import ConfigError, NotFoundError, ValidationError
from wf.runtime.clock import FakeClock
from wf.service import build_runner

HOUR, DAY = 3600.0, 86400.0


class Cquick(WorkflowEntrypoint):
    async def run(self, event, step):
        if event.payload.get("wait"):
            await step.wait_for_event("never", "never", timeout="365 days")
        return await step.do("done", lambda: "ok")


class Cboom(WorkflowEntrypoint):
    async def run(self, event, step):
        async def fail():
            raise NonRetryableError("no")

        await step.do("fail", fail)


RETENTION = {"default_retention": {"success_retention": "1 hour", "error_retention": 2 * HOUR * 1000}}


def _config(tmp_path):
    path = write_project(tmp_path, ["quick", "boom"], {"quick": RETENTION, "boom": RETENTION})
    return load_config(path, store=harness.STORE_URL)


class _Hand:
    """A clock moved by hand, with no event loop (the client only reads `now()`)."""

    def __init__(self):
        self.at = 1_800_000_000.0

    def now(self) -> float:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += seconds


async def _until(what: str, check, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def _exists(client: Client, id: str) -> bool:
    try:
        client.get(id)
        return True
    except NotFoundError:
        return False


@pytest.mark.usefixtures("harness_store")
async def test_the_runner_deletes_instances_past_their_retention_and_their_history_in_the_background(tmp_path):
    config = _config(tmp_path)
    clock = FakeClock()
    client = Client(config, clock=clock)
    runner = build_runner(config, {"quick": Cquick, "boom": Cboom}, clock=clock, gc_interval=60.0)
    await runner.start()
    try:
        a = client.create("quick", {}, "a")  # the workflow's default: kept 1 hour once complete
        client.create("quick", {}, "b", retention={"success_retention": "1 day"})  # its own retention
        client.create("boom", {}, "c")  # errored: the default error_retention, 2 hours (milliseconds in config)
        client.create("quick", {"wait": True}, "d")  # never ends: never deleted
        ended = ("complete", "errored")
        await _until("the instances to end", lambda: all(client.get(i).status in ended for i in "abc"))
        assert [h.type for h in client.history(0, instance=a)][-1] == "workflow_completed"

        clock.advance(HOUR + 1)
        await _until("a to be deleted", lambda: not _exists(client, "a"))
        assert all(_exists(client, i) for i in "bcd")
        assert client.history(0, instance=a) == []  # its event log went with it

        clock.advance(HOUR)
        await _until("c to be deleted", lambda: not _exists(client, "c"))
        clock.advance(DAY)
        await _until("b to be deleted", lambda: not _exists(client, "b"))
        clock.advance(30 * DAY)
        await asyncio.sleep(0.2)
        assert client.get("d").status == "waiting"
    finally:
        await runner.stop()
        client.close()


@pytest.mark.usefixtures("harness_store")
def test_collect_expired_deletes_in_bounded_batches_and_a_dry_run_deletes_nothing(tmp_path):
    config = _config(tmp_path)
    clock = _Hand()
    client = Client(config, clock=clock)
    try:
        for i in range(230):
            client.create("quick", {}, f"t-{i}")
            client.terminate(f"t-{i}")  # terminated: kept for the error retention
        client.create("quick", {}, "queued")  # not ended: never collected
        assert client.collect_expired() == []
        clock.advance(2 * HOUR + 1)
        would = client.collect_expired(dry_run=True)
        assert len(would) == 230 and {w["status"] for w in would} == {"terminated"}
        assert _exists(client, "t-0")

        batches = []
        delete_expired = client.store.delete_expired

        def spy(*args):
            rows, woken = delete_expired(*args)
            batches.append(len(rows))
            return rows, woken

        client.store.delete_expired = spy
        gone = client.collect_expired("quick")
        assert len(gone) == 230 and batches == [100, 100, 30]
        assert not _exists(client, "t-229") and _exists(client, "queued")
    finally:
        client.close()


@pytest.mark.slow
def test_wf_gc_on_demand_and_retention_on_trigger(tmp_path, wf_procs):
    config = _config(tmp_path)
    project = config.root
    (project / "src").mkdir(exist_ok=True)
    (project / "src" / "index.py").write_text(
        "from wf import WorkflowEntrypoint\n"
        "class Cquick(WorkflowEntrypoint):\n"
        "    async def run(self, event, step):\n"
        "        return 1\n"
        "class Cboom(WorkflowEntrypoint):\n"
        "    async def run(self, event, step):\n"
        "        return 2\n"
    )
    wf_procs.cli(project, "trigger", "quick", "--id", "kept", "--wait")
    # the runner `--wait` starts collects once as it starts, before this one ends: it stays
    wf_procs.cli(project, "trigger", "quick", "--id", "gone", "--success-retention", "0 seconds", "--wait")
    dry = json.loads(wf_procs.cli(project, "gc", "--dry-run", "--json").stdout)
    assert dry["dry_run"] is True and [i["id"] for i in dry["instances"]] == ["gone"]
    assert dry["instances"][0]["status"] == "complete" and dry["instances"][0]["ended"].endswith("Z")
    assert wf_procs.cli(project, "status", "gone", check=False).returncode == 0
    done = json.loads(wf_procs.cli(project, "gc", "--json").stdout)
    assert [i["id"] for i in done["instances"]] == ["gone"]
    assert wf_procs.cli(project, "status", "gone", check=False).returncode != 0
    assert wf_procs.cli(project, "status", "kept", check=False).returncode == 0

    described = json.loads(wf_procs.cli(project, "workflows", "describe", "quick", "--json").stdout)
    assert described["default_retention"] == {"success_retention": HOUR, "error_retention": 2 * HOUR}
    assert "Retention" in wf_procs.cli(project, "workflows", "describe", "quick").stdout
    bad = wf_procs.cli(project, "trigger", "quick", "--success-retention", "soon", check=False)
    assert bad.returncode != 0 and "success_retention 'soon' is not a duration" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_retention_is_checked_on_create_and_in_the_config(tmp_path):
    config = _config(tmp_path)
    assert (config.workflow("quick").success_retention, config.workflow("quick").error_retention) == (HOUR, 2 * HOUR)
    client = Client(config)
    try:
        with pytest.raises(ValidationError, match="unknown key 'success'"):
            client.create("quick", {}, "x", retention={"success": "1 day"})
    finally:
        client.close()
    path = write_project(tmp_path / "bad", ["quick"], {"quick": {"default_retention": {"success_retention": "later"}}})
    with pytest.raises(ConfigError, match="success_retention 'later' is not a duration"):
        load_config(path)
    plain = load_config(write_project(tmp_path / "plain", ["quick"]))
    assert plain.workflow("quick").success_retention == 7 * DAY  # Cloudflare's default since 2026-09
    assert math.isfinite(plain.workflow("quick").error_retention)
    assert _wf_env()  # the subprocess environment helper is importable here


async def test_create_takes_cloudflare_retention_in_milliseconds_over_http_and_from_a_worker(tmp_path):
    import httpx
    from devserver import API, copy_devapp

    from wf.cloudflare.bindings import WorkflowBinding
    from wf.http import create_app

    config = load_config(copy_devapp(tmp_path / "devapp") / "wrangler.jsonc")
    transport = httpx.ASGITransport(app=create_app(config))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as api:
        body = {"id": "r-1", "instance_retention": {"success_retention": "1 day", "error_retention": 1000}}
        made = await api.post(f"{API}/workflows/quick/instances", json=body)
        assert made.status_code == 200, made.text
        bad = await api.post(f"{API}/workflows/quick/instances", json={"instance_retention": {"error_retention": "x"}})
        assert bad.status_code == 400
        assert "error_retention 'x' is not a duration" in bad.json()["errors"][0]["message"]
    env = wf.connect(config)
    binding = WorkflowBinding(env.QUICK)  # a Worker's env.QUICK, Cloudflare's camelCase options
    await binding.create({"id": "r-2", "retention": {"errorRetention": 1000, "successRetention": "1 day"}})
    await binding.create_batch([{"id": "r-3", "retention": {"errorRetention": 1000}}])

    clock = _Hand()
    clock.at = time.time()
    client = Client(config, clock=clock)
    try:
        for id in ("r-1", "r-2", "r-3"):
            client.terminate(id)  # ended now: kept 1000 ms, as Cloudflare reads a number
        clock.advance(2)
        assert sorted(i["id"] for i in client.collect_expired(dry_run=True)) == ["r-1", "r-2", "r-3"]
    finally:
        client.close()


async def test_wf_testing_collects_expired_instances_on_its_fake_clock():
    from wf.testing import WorkflowTest

    async with WorkflowTest({"quick": Cquick}) as t:
        kept = await t.create("quick", {}, "kept")  # the default: 7 days
        brief = await t.create("quick", {}, "brief", retention={"success_retention": "1 hour"})
        for inst in (kept, brief):
            await inst.wait_for_status("complete")
        await t.advance(HOUR)
        assert [i["id"] for i in await t.collect_expired()] == ["brief"]
        await t.advance(7 * DAY)
        assert [i["id"] for i in await t.collect_expired()] == ["kept"]
        with pytest.raises(NotFoundError):
            t.get("kept")
