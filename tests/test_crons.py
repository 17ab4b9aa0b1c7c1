"""Cron `schedules`: the expressions (cronsim), the scheduler on a fake clock, `wf.testing`
driving schedules, and exactly one instance per tick however many runners share a store:
two in one process on a fake clock, two `wf worker` processes on one SQLite file and on one
PostgreSQL database, and `wf dev` catching up a missed tick once."""

from __future__ import annotations

import asyncio
import calendar
import dataclasses
import json
import math
import time
from pathlib import Path

import httpx
import pytest
from devserver import API, DevProcesses, copy_devapp, wait_for
from pgtest import Schema, require_base_url

from wf.client import Client
from wf.config import load_config
from wf.errors import ConfigError
from wf.runtime.clock import FakeClock
from wf.runtime.cron import CronScheduler, instance_id, latest_tick, next_tick
from wf.runtime.store import open_store
from wf.runtime.store.aio import AsyncStore
from wf.service import build_runner
from wf.testing import from_config

T0 = calendar.timegm((2026, 11, 25, 12, 3, 30))  # a Wednesday, UTC


def utc(*fields: int) -> float:
    return float(calendar.timegm((*fields, 0)[:6]))


# -- expressions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("*/5 * * * *", (2026, 11, 25, 12, 5)),
        ("0 9 * * mon-fri", (2026, 11, 26, 9, 0)),
        ("0 9 * * 0", (2026, 11, 29, 9, 0)),  # Sunday as 0
        ("0 9 * * 7", (2026, 11, 29, 9, 0)),  # and as 7
        ("30 2 1 * *", (2026, 12, 1, 2, 30)),
        ("0 0 29 2 *", (2028, 2, 29, 0, 0)),
        ("15,45 */6 * jan,dec *", (2026, 12, 1, 0, 15)),
        ("0 0 13 * fri", (2026, 11, 27, 0, 0)),  # both day fields restricted: either matches
        ("0 9 ? * 1", (2026, 11, 30, 9, 0)),  # "?" as Quartz writes "any"
        ("0 12 L * *", (2026, 11, 30, 12, 0)),  # last day of the month
        ("0 8 * * 5#4", (2026, 11, 27, 8, 0)),  # fourth Friday
        ("*/20 * * * * *", (2026, 11, 25, 12, 3, 40)),  # six fields: seconds first
    ],
)
def test_next_tick(text, expected):
    assert next_tick(text, T0) == utc(*expected)


def test_latest_tick_in_a_window():
    assert latest_tick("*/5 * * * *", T0 - 3 * 3600, T0) == utc(2026, 11, 25, 12, 0)
    assert latest_tick("*/5 * * * *", utc(2026, 11, 25, 12, 0), T0) is None  # (after, until]
    assert latest_tick("0 0 29 2 *", T0 - 86400 * 400, T0) is None
    assert latest_tick("* * * * * *", 100.5, 103.7) == 103.0


def test_instance_ids_name_the_tick():
    at = utc(2026, 11, 25, 12, 5)
    assert instance_id("quick", "*/5 * * * *", at).endswith("-20261125T1205Z")
    assert instance_id("quick", "* * * * * *", at + 7).endswith("-20261125T120507Z")
    assert instance_id("quick", "*/5 * * * *", at) != instance_id("other", "*/5 * * * *", at)


def project_with_schedule(tmp_path: Path, cron: str = "* * * * *") -> Path:
    project = copy_devapp(tmp_path / "devapp")
    config_file = project / "wrangler.jsonc"
    text = config_file.read_text()
    old = '{"name": "quick", "binding": "QUICK", "class_name": "QuickWorkflow"}'
    assert old in text
    config_file.write_text(text.replace(old, old[:-1] + f', "schedules": ["{cron}"]}}'))
    return project


@pytest.mark.parametrize(
    "cron, reason",
    [
        ("* * * *", "it has 4 fields"),
        ("60 * * * *", "bad minute field"),
        ("* 24 * * *", "bad hour field"),
        ("*/0 * * * *", "bad minute field"),
        ("a * * * *", "bad minute field"),
        ("5-1 * * * *", "bad minute field"),
        ("* * 0 * *", "bad day-of-month field"),
        ("0 0 30 2 *", "bad day-of-month field"),
    ],
)
def test_a_bad_cron_is_a_config_error_naming_the_field_and_why(tmp_path, cron, reason):
    project = project_with_schedule(tmp_path, cron)
    with pytest.raises(ConfigError) as info:
        load_config(project / "wrangler.jsonc")
    err = info.value
    assert err.field == "workflows[1].schedules[0]" and f'found "{cron}"' in str(err), str(err)
    assert err.line == 8 and reason in err.hint, (err.line, err.hint)


# -- the scheduler on a store and a fake clock ---------------------------------------------


async def test_first_start_fires_nothing_and_a_missed_schedule_fires_once(tmp_path):
    schedules = [("quick", "*/5 * * * *")]
    for now, fired in ((T0 - 3 * 3600, []), (T0, [utc(2026, 11, 25, 12, 0)])):  # then down 3 hours: 36 misses
        astore = await AsyncStore(lambda: open_store(tmp_path)).open()
        try:
            clock = FakeClock(now)
            scheduler = CronScheduler(schedules, astore, clock)
            assert await scheduler.fire_due() == next_tick("*/5 * * * *", now)
            rows = await astore.call(astore.store.list_instances, "quick", None, 100)
        finally:
            await astore.close()
        assert [r.trigger["schedule"]["scheduledTime"] / 1000 for r in rows] == fired
    [row] = rows
    assert row.id == instance_id("quick", "*/5 * * * *", fired[0]) and row.params == "{}"
    assert row.trigger == {"source": "cron", "schedule": {"cron": "*/5 * * * *", "scheduledTime": int(fired[0]) * 1000}}


async def test_a_tick_fired_while_the_runner_stops_is_still_logged(tmp_path, caplog):
    """The runner's loop is cancelled on stop; a tick the store commits at that moment still gets
    its "fired" line (two workers' logs once summed to one tick fewer than the instances made)."""
    import threading

    astore = await AsyncStore(lambda: open_store(tmp_path)).open()
    try:
        clock = FakeClock(T0 - 3600)
        scheduler = CronScheduler([("quick", "*/5 * * * *")], astore, clock)
        await scheduler.fire_due()  # the first start only marks where the schedule is
        entered, release = threading.Event(), threading.Event()
        fire = astore.store.fire_cron

        def slow_fire(*args):
            entered.set()
            release.wait(10)
            return fire(*args)

        astore.store.fire_cron = slow_fire
        clock.set(T0)
        caplog.set_level("INFO", logger="wf")
        task = asyncio.ensure_future(scheduler.fire_due())
        assert await asyncio.to_thread(entered.wait, 10), "the store never began to fire the tick"
        task.cancel()  # as Runner.stop cancels its loop
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        rows = await astore.call(astore.store.list_instances, "quick", None, 100)
    finally:
        await astore.close()
    assert len(rows) == 1
    assert [r.getMessage() for r in caplog.records if "fired" in r.getMessage()] == [
        f"cron '*/5 * * * *' fired quick: instance {rows[0].id}"
    ]


async def test_wf_testing_fake_clock_drives_schedules(tmp_path):
    project = project_with_schedule(tmp_path, "*/5 * * * *")
    async with from_config(project / "wrangler.jsonc", start_time=T0) as t:
        await t.advance(60)  # 12:04:30: no tick yet
        assert t.client.list("quick") == []
        await t.advance(60)  # 12:05:30: the 12:05 tick has fired
        [row] = t.client.list("quick")
        final = await t.run_until(row.id, workflow="quick")
    tick = utc(2026, 11, 25, 12, 5)
    assert row.id == instance_id("quick", "*/5 * * * *", tick)
    assert final["status"] == "complete", final
    assert final["output"]["schedule"] == {"cron": "*/5 * * * *", "scheduledTime": int(tick * 1000)}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request):
    """None (the project's SQLite file) or a PostgreSQL URL on a scratch schema."""
    if request.param == "sqlite":
        yield None
        return
    schema = Schema(require_base_url())
    yield schema.url
    schema.drop()


async def test_two_runners_sharing_a_store_fire_each_tick_once(tmp_path, store_url):
    project = project_with_schedule(tmp_path, "* * * * *")
    config = dataclasses.replace(load_config(project / "wrangler.jsonc"), store_url=store_url)
    clock = FakeClock(T0)
    runners = [build_runner(config, clock=clock, reap_interval=math.inf) for _ in range(2)]
    client = Client(config, clock=clock)
    key = ("quick", "* * * * *")
    try:
        for runner in runners:
            await runner.start()
        await wait_on(lambda: all(r.crons.marks is not None for r in runners), "both runners to read the marks")
        ticks = [utc(2026, 11, 25, 12, 4 + i) for i in range(5)]
        for tick in ticks:
            clock.set(tick)  # both runners wake at the tick and race to fire it
            await wait_on(lambda t=tick: all(r.crons.marks[key] == t for r in runners), f"both runners at {tick}")
        rows = client.list("quick", limit=100)
    finally:
        for runner in runners:
            await runner.stop(grace=1)
        client.close()
    fired = sorted(r.trigger["schedule"]["scheduledTime"] / 1000 for r in rows)
    assert fired == ticks, fired  # each tick once: none lost, none twice


async def wait_on(predicate, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


# -- real processes ------------------------------------------------------------------------


def cron_rows(client: Client) -> list:
    return [r for r in client.list("quick", limit=1000) if (r.trigger or {}).get("source") == "cron"]


@pytest.mark.slow
def test_two_wf_workers_sharing_a_store_fire_each_tick_once(tmp_path, wf_procs, store_url):
    store = store_url
    project = project_with_schedule(tmp_path, "* * * * * *")  # every second
    config = dataclasses.replace(load_config(project / "wrangler.jsonc"), store_url=store)
    client = Client(config)
    try:
        workers = [wf_procs.worker(project, store=store) for _ in range(2)]
        for w in workers:
            w.wait_ready()
        both_up = time.time()
        wait_until_rows = lambda: len([r for r in cron_rows(client) if r.created_at > both_up]) >= 4  # noqa: E731
        wait_for(wait_until_rows, 30, "four ticks fired while both workers ran")
        for w in workers:
            w.proc.terminate()
        assert [w.wait_exit(15) for w in workers] == [0, 0], [w.output() for w in workers]
        rows = cron_rows(client)
        fired = sorted(int(r.trigger["schedule"]["scheduledTime"] / 1000) for r in rows)
        per_worker = [w.output().count("fired quick") for w in workers]
        assert fired == list(range(fired[0], fired[-1] + 1)), fired  # every second from the first, no gap
        assert sum(per_worker) == len(rows), (per_worker, len(rows))  # and each one fired by one worker
        done = [r for r in rows if r.status == "complete"]
        assert done, [r.status for r in rows]
        assert json.loads(done[0].output)["schedule"] == done[0].trigger["schedule"]
    finally:
        client.close()


@pytest.mark.slow
def test_wf_dev_fires_the_missed_schedule_once_and_the_event_carries_it(tmp_path):
    # daily at the minute an hour ago: its latest tick is that minute, its next one a day away,
    # so what wf dev fires cannot depend on how long it takes to start
    tick = (int(time.time()) - 3600) // 60 * 60
    at = time.gmtime(tick)
    cron = f"{at.tm_min} {at.tm_hour} * * *"
    project = project_with_schedule(tmp_path, cron)
    config = load_config(project / "wrangler.jsonc")
    store = open_store(config.state_dir)
    store.cron_marks([("quick", cron)], tick - 3 * 86400)  # last seen three days ago: three ticks missed
    store.close()
    client = Client(config)
    devs = DevProcesses(tmp_path)
    try:
        dev = devs.start(project).wait_ready()
        wait_for(lambda: cron_rows(client) and cron_rows(client)[0].status == "complete", 15, "the cron instance")
        [row] = cron_rows(client)  # three missed ticks, one instance: the latest
        assert row.id == instance_id("quick", cron, tick) and row.trigger["source"] == "cron"
        assert json.loads(row.output)["schedule"] == {"cron": cron, "scheduledTime": tick * 1000}
        described = httpx.get(f"{dev.url}{API}/workflows/quick/instances/{row.id}").json()["result"]
        assert described["trigger"] == {"source": "cron"}
        assert f"cron {cron!r} fired quick" in dev.output()
        assert dev.stop() == 0
    finally:
        client.close()
        devs.cleanup()
