"""Cron `schedules` under `wf dev`: parsing, firing on time (fake clock), one fire for a
schedule missed while down, and the event carrying `{cron, scheduledTime}`."""

from __future__ import annotations

import asyncio
import calendar
import json
import time

import httpx
import pytest
from devserver import API, DevProcesses, copy_devapp, wait_for

from wf.client import Client
from wf.config import load_config
from wf.errors import ValidationError
from wf.http import crons
from wf.http.crons import Cron, CronScheduler, instance_id

T0 = calendar.timegm((2026, 11, 25, 12, 3, 30))  # a Wednesday, UTC


@pytest.mark.parametrize(
    "text, after, expected",
    [
        ("*/5 * * * *", T0, (2026, 11, 25, 12, 5)),
        ("0 9 * * mon-fri", T0, (2026, 11, 26, 9, 0)),
        ("0 9 * * 0", T0, (2026, 11, 29, 9, 0)),  # Sunday as 0
        ("0 9 * * 7", T0, (2026, 11, 29, 9, 0)),  # and as 7
        ("30 2 1 * *", T0, (2026, 12, 1, 2, 30)),
        ("0 0 29 2 *", T0, (2028, 2, 29, 0, 0)),
        ("15,45 */6 * jan,dec *", T0, (2026, 12, 1, 0, 15)),
        ("0 0 13 * fri", T0, (2026, 11, 27, 0, 0)),  # both day fields restricted: either matches
    ],
)
def test_cron_next_time(text, after, expected):
    assert Cron(text).next_after(after) == calendar.timegm((*expected, 0))


@pytest.mark.parametrize(
    "text", ["* * * *", "60 * * * *", "* 24 * * *", "*/0 * * * *", "a * * * *", "5-1 * * * *", "* * 0 * *"]
)
def test_bad_crons_are_one_clear_error(text):
    with pytest.raises(ValidationError, match="cron"):
        Cron(text)


def test_latest_missed_time():
    cron = Cron("*/5 * * * *")
    assert cron.latest_in(T0 - 3 * 3600, T0) == calendar.timegm((2026, 11, 25, 12, 0, 0))
    assert cron.latest_in(calendar.timegm((2026, 11, 25, 12, 0, 0)), T0) is None  # (after, until]
    assert Cron("0 0 29 2 *").latest_in(T0 - 86400 * 400, T0) is None


def project_with_schedule(tmp_path, cron: str = "* * * * *"):
    project = copy_devapp(tmp_path / "devapp")
    config_file = project / "wrangler.jsonc"
    text = config_file.read_text()
    old = '{"name": "quick", "binding": "QUICK", "class_name": "QuickWorkflow"}'
    assert old in text
    config_file.write_text(text.replace(old, old[:-1] + f', "schedules": ["{cron}"]}}'))
    return project


class Recorder:
    def __init__(self):
        self.made: list[tuple[str, str, dict]] = []

    def create(self, workflow, iid, trigger):
        self.made.append((workflow, iid, trigger))

    async def call(self, fn, *args):
        return fn(*args)


async def test_first_start_fires_nothing_and_a_missed_schedule_fires_once(tmp_path):
    config = load_config(project_with_schedule(tmp_path, "*/5 * * * *") / "wrangler.jsonc")
    rec = Recorder()
    first = CronScheduler(config, rec.call, rec.create, now=lambda: T0 - 3 * 3600)
    await first.catch_up()
    assert rec.made == []  # nothing back-filled on a first start
    marks = json.loads((config.state_dir / "crons.json").read_text())
    assert marks == {"quick\t*/5 * * * *": T0 - 3 * 3600}

    later = CronScheduler(config, rec.call, rec.create, now=lambda: T0)  # down for 3 hours: 36 misses
    await later.catch_up()
    at = calendar.timegm((2026, 11, 25, 12, 0, 0))
    assert rec.made == [
        (
            "quick",
            instance_id("quick", "*/5 * * * *", at),
            {"source": "cron", "schedule": {"cron": "*/5 * * * *", "scheduledTime": at * 1000}},
        )
    ]


async def test_a_schedule_fires_when_its_minute_comes(tmp_path, monkeypatch):
    config = load_config(project_with_schedule(tmp_path) / "wrangler.jsonc")
    rec = Recorder()
    base = time.time()
    boundary = (int(base // 60) + 1) * 60
    offset = boundary - base - 0.3  # the fake clock reaches the next minute 0.3 s from now
    monkeypatch.setattr(crons, "MAX_SLEEP", 0.05)
    scheduler = CronScheduler(config, rec.call, rec.create, now=lambda: time.time() + offset)
    task = asyncio.ensure_future(scheduler.run())
    try:
        for _ in range(100):
            if rec.made:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [(w, t["schedule"]) for w, _, t in rec.made] == [
        ("quick", {"cron": "* * * * *", "scheduledTime": boundary * 1000})
    ]


def test_wf_dev_fires_the_missed_schedule_once_and_the_event_carries_it(tmp_path):
    project = project_with_schedule(tmp_path)
    config = load_config(project / "wrangler.jsonc")
    config.state_dir.mkdir(parents=True, exist_ok=True)
    (config.state_dir / "crons.json").write_text(json.dumps({"quick\t* * * * *": time.time() - 600}))
    client = Client(config)
    devs = DevProcesses(tmp_path)
    try:
        launched = time.time()
        dev = devs.start(project).wait_ready()

        def missed():
            return [r for r in client.list("quick") if r.trigger["schedule"]["scheduledTime"] / 1000 <= launched]

        wait_for(lambda: missed() and missed()[0].status == "complete", 10, "the cron instance to complete")
        assert len(missed()) == 1, [r.id for r in missed()]  # ten missed minutes, one instance
        [row] = missed()
        assert row.id.startswith("cron-") and row.trigger["source"] == "cron"
        output = json.loads(row.output)
        assert output["schedule"]["cron"] == "* * * * *"
        assert output["schedule"]["scheduledTime"] % 60_000 == 0
        assert time.time() - 660 < output["schedule"]["scheduledTime"] / 1000 <= time.time()
        described = httpx.get(f"{dev.url}{API}/workflows/quick/instances/{row.id}").json()["result"]
        assert described["trigger"] == {"source": "cron"}
        assert "cron '* * * * *' fired quick" in dev.output()
        assert dev.stop() == 0
    finally:
        client.close()
        devs.cleanup()
