"""The web UI without a browser: its pages over ASGI (what they list, filter, page through and
refuse), the session cookie that stands in for WF_TOKEN, wrangler's Local Explorer endpoint, and
its live stream from a real `wf dev` subprocess. tests/test_ui_browser.py drives it in Chromium."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

import httpx
import pytest
from devserver import DevProcesses, wait_for

from wf.client import Client
from wf.config import load_config
from wf.http import create_app
from wf.http.ui import views
from wf.service import build_runner, run_until_done

UIAPP = Path(__file__).parent / "fixtures" / "uiapp"
UI = "/cdn-cgi/explorer"
API = UI + "/api"
QUICK_ORDER = {"orderId": "o-1", "retry_delay": 0.01, "sleep": 0.01}


@pytest.fixture
def project(tmp_path) -> Path:
    return Path(shutil.copytree(UIAPP, tmp_path / "uiapp", ignore=shutil.ignore_patterns(".wf", "__pycache__")))


@pytest.fixture
def config(project):
    return load_config(project / "wrangler.jsonc")


@pytest.fixture
def client(config):
    c = Client(config)
    yield c
    c.close()


def browser_like(app, **kw) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1", **kw)


@pytest.fixture
async def ui(config):
    async with browser_like(create_app(config)) as c:
        yield c


async def run(config, seq: int) -> str:
    """Run the project's workflows in this process until instance `seq` ends."""
    return await asyncio.wait_for(run_until_done(build_runner(config), seq), 60)


def ids_on(html: str) -> list[str]:
    return re.findall(r'<tr data-id="([^"]+)"', html)


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#39;", "'").replace("&#34;", '"')


# ---------------------------------------------------------------- where it lives


async def test_root_redirects_to_the_ui_when_the_project_has_no_app(ui):
    r = await ui.get("/")
    assert r.status_code == 307 and r.headers["location"] == UI + "/"
    r = await ui.get(UI)
    assert r.status_code in (307, 308) and r.headers["location"].endswith(UI + "/")
    page = await ui.get(UI + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"


async def test_the_ui_has_the_apis_guards_a_foreign_host_name_is_refused(config):
    app = create_app(config, allowed_hosts=frozenset({"127.0.0.1", "localhost"}))
    async with browser_like(app) as c:
        assert (await c.get(UI + "/", headers={"host": "localhost:8787"})).status_code == 200
        assert (await c.get(UI + "/", headers={"host": "rebound.example:8787"})).status_code == 403


async def test_the_ui_fetches_nothing_from_elsewhere_and_ships_its_assets(ui):
    """Offline: every script, style and icon is the UI's own (no CDN, no font service)."""
    page = (await ui.get(UI + "/")).text
    for asset in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert asset.startswith(("/", "#")), f"{asset} is not served by wf dev"
    for name in ("ui.js", "ui.css", "favicon.svg"):
        r = await ui.get(f"{UI}/static/{name}")
        assert r.status_code == 200 and r.content, name
        assert not re.search(rb"https?://(?!www\.w3\.org/2000/svg)", r.content), f"{name} names another host"


# ---------------------------------------------------------------- the workflows page


async def test_workflows_page_shows_each_workflow_its_settings_counts_and_a_trigger_form(ui, client, config):
    await run(config, client.create("refunds", {}, "r1").seq)
    client.create("order-processing", {"orderId": "a"}, "a1")  # no runner from here on: they stay queued
    client.create("order-processing", {"orderId": "b"}, "a2")
    html = (await ui.get(UI + "/")).text
    text = text_of(html)
    for expected in ("order-processing", "ORDERS", "OrderWorkflow", "REFUNDS", "0 3 * * *", "Concurrency limit 50"):
        assert expected in text, expected
    assert "2 instances" in text and "Queued 2" in text  # order-processing: two queued
    assert "1 instance " in text and "Errored 1" in text  # refunds: one errored
    assert html.count('<form class="trigger"') == 3
    assert 'data-pattern="^[a-zA-Z0-9_][a-zA-Z0-9\\-_]*$"' in html


# ---------------------------------------------------------------- the instances page


async def test_instances_newest_first_filtered_by_workflow_status_and_id_prefix(ui, client, config):
    await run(config, client.create("refunds", {}, "refund-1").seq)
    for i in range(3):
        client.create("order-processing", {"orderId": f"o-{i}"}, f"order-{i}")
    assert ids_on((await ui.get(UI + "/instances")).text) == ["order-2", "order-1", "order-0", "refund-1"]
    assert ids_on((await ui.get(UI + "/instances?workflow=order-processing")).text) == ["order-2", "order-1", "order-0"]
    assert ids_on((await ui.get(UI + "/instances?status=errored")).text) == ["refund-1"]
    assert ids_on((await ui.get(UI + "/instances?q=order-1")).text) == ["order-1"]
    assert ids_on((await ui.get(UI + "/instances?q=ord&status=errored")).text) == []
    assert ids_on((await ui.get(UI + "/instances?within=1h")).text) == ["order-2", "order-1", "order-0", "refund-1"]
    page = (await ui.get(UI + "/instances?workflow=refunds")).text
    assert f'href="{UI}/workflows/refunds/refund-1"' in page
    assert 'data-copy="refund-1"' in page  # the full id, copyable
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT[^"]+Z" data-ts="[\d.]+" data-rel>', page)
    moved = await ui.get(UI + "/workflows/refunds")  # where Cloudflare's explorer keeps a workflow's list
    assert moved.status_code == 303 and moved.headers["location"] == UI + "/instances?workflow=refunds"


@pytest.mark.parametrize(
    "query, says",
    [
        ("q=a%20b", "'a b' cannot start an instance id"),
        ("status=done", "'done' is not an instance status"),
        ("workflow=nope", "No workflow named 'nope'"),
        ("before=yesterday", "'yesterday' (before=) is not a position in the instance list"),
        ("per_page=7", "'7' instances per page is not offered"),
        ("within=forever", "'forever' is not one of the time ranges offered"),
    ],
)
async def test_bad_filters_get_a_sentence_in_the_page_not_a_crash(ui, query, says):
    r = await ui.get(f"{UI}/instances?{query}")
    assert r.status_code == 400
    problem = re.search(r'<p class="problem" role="alert">(.*?)</p>', r.text).group(1)
    assert says in problem.replace("&#39;", "'"), problem
    assert '<form class="filters"' in r.text  # the filters stay, to fix the value


async def test_paging_by_key_visits_every_instance_once_both_ways(ui, client):
    client.create_batch("noop", [{"id": f"n-{i:03d}"} for i in range(60)])
    seen, url, pages = [], f"{UI}/instances?workflow=noop&per_page=25", []
    while url:
        html = (await ui.get(url)).text
        pages.append(ids_on(html))
        seen += pages[-1]
        found = re.search(r'<a href="([^"]+)" rel="next">', html)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert [len(p) for p in pages] == [25, 25, 10]
    assert seen == [f"n-{i:03d}" for i in reversed(range(60))]
    back = re.search(r'<a href="([^"]+)" rel="prev">', html).group(1).replace("&amp;", "&")
    assert ids_on((await ui.get(back)).text) == pages[1]
    assert 'rel="prev"' not in (await ui.get(f"{UI}/instances?workflow=noop")).text


# ---------------------------------------------------------------- the instance page


async def test_instance_page_shows_params_output_steps_attempts_events_and_log(ui, client, config):
    row = client.create("order-processing", QUICK_ORDER, "o-1")
    client.send_event("o-1", "approval", {"approved": True}, "order-processing")  # kept until the wait
    assert await run(config, row.seq) == "complete"
    html = (await ui.get(f"{UI}/workflows/order-processing/o-1")).text
    text = text_of(html)
    steps = re.findall(r'data-step="([^"]+)"', html)
    assert steps == [
        "step:validate:1",
        "step:charge:1",
        "sleep:cool-off:1",
        "waitForEvent:wait-for-approval:1",
        "step:ship:1",
    ]
    assert "Complete" in text and '"tracking": "TRK-o-1"' in html.replace("&#34;", '"')
    assert "ConnectionError: card API timed out (attempt 1)" in text  # the failed first attempt of charge
    assert "Attempt 2 succeeded" in text
    assert "validating order o-1" in text and "WARNING shop: stock is low for o-1" in text  # printed, logged
    assert "approval" in text and "wait-for-approval" in text  # the event, and the wait that took it
    assert 'data-action="restart-from" data-name="charge" data-count="1" data-type="do"' in html
    assert 'data-action="restart-from" data-name="cool-off" data-count="1" data-type="sleep"' in html
    assert re.search(r'data-action="pause" disabled', html) and re.search(r'data-action="terminate" disabled', html)
    assert "workflow_completed" in text and "step_completed" in text


async def test_unknown_instance_and_workflow_are_404_pages_with_a_sentence(ui, client):
    client.create("noop", {}, "here")
    for path, says in (
        (f"{UI}/workflows/noop/nope", "Instance 'nope' was not found in workflow 'noop'"),
        (f"{UI}/workflows/nowhere/here", "No workflow named 'nowhere'"),
        (f"{UI}/no/such/page", "There is no page at /cdn-cgi/explorer/no/such/page"),
    ):
        r = await ui.get(path)
        assert r.status_code == 404 and says in text_of(r.text), (path, text_of(r.text)[-300:])


def test_a_failed_attempts_traceback_and_a_sensitive_output_are_drawn_as_describe_gives_them():
    """describe() carries a traceback per failed attempt once issue 18 stores them; the panel shows it.
    A step marked `sensitive: "output"` shows [REDACTED], in its panel and in the event log."""
    from wf.runtime.store.base import HistoryRow

    d = {
        "status": "errored",
        "output": None,
        "error": {"name": "ValueError", "message": "bad card"},
        "id": "x",
        "workflow": "w",
        "params": {},
        "created": 10.0,
        "start": 10.0,
        "end": 14.0,
        "steps": [
            {
                "name": "secret",
                "count": 1,
                "type": "step",
                "status": "complete",
                "start": 10.0,
                "end": 11.0,
                "output": {"token": "hunter2"},
                "error": None,
                "config": {"sensitive": "output"},
                "next_retry": None,
                "attempts": [{"attempt": 1, "start": 10.0, "end": 11.0, "success": True, "error": None}],
            },
            {
                "name": "charge",
                "count": 1,
                "type": "step",
                "status": "errored",
                "start": 11.0,
                "end": 14.0,
                "output": None,
                "error": {"name": "ValueError", "message": "bad card"},
                "config": {},
                "next_retry": None,
                "attempts": [
                    {
                        "attempt": 1,
                        "start": 11.0,
                        "end": 12.0,
                        "success": False,
                        "error": {"name": "ValueError", "message": "bad card"},
                        "traceback": 'File "src/index.py", line 12, in charge\nValueError: bad card\n',
                    }
                ],
            },
            {"name": "later", "count": 1, "type": "checkpoint", "status": "complete", "start": 14.0, "end": 14.0},
        ],
    }
    log = [HistoryRow(1, 1, "w", "x", 11.0, "step_completed", "secret", 1, {"output": {"token": "hunter2"}})]
    page = views.instance_page({"describe": d, "events": [], "log": log}, now=20.0)
    secret, charge, later = page["timeline"]["steps"]
    assert secret["output"] == views.REDACTED and "hunter2" not in json.dumps(page["log"])
    assert charge["attempts"][0]["traceback"].startswith('File "src/index.py", line 12')
    assert [s["kind"] for s in charge["segments"]] == ["failed"]
    assert later["segments"][0]["kind"] == "other"  # a kind the UI does not know is still drawn


# ---------------------------------------------------------------- the token and the session cookie


async def test_with_a_token_the_browser_gets_in_once_by_address_then_by_cookie(config):
    app = create_app(config, token="s3cret-token")
    async with browser_like(app) as c:
        refused = await c.get(UI + "/")
        assert refused.status_code == 401 and "?token=" in refused.json()["errors"][0]["message"]
        assert (await c.get(UI + "/instances?token=wrong")).status_code == 401
        login = await c.get(UI + "/instances?status=queued&token=s3cret-token")
        assert login.status_code == 303 and login.headers["location"] == UI + "/instances?status=queued"
        cookie = login.headers["set-cookie"]
        for part in ("HttpOnly", "SameSite=Strict", "Path=/cdn-cgi/"):
            assert part in cookie, cookie
        assert "s3cret-token" not in cookie  # a MAC of the token, not the token
        assert (await c.get(UI + "/instances?status=queued")).status_code == 200  # the cookie jar sends it
        made = await c.post(API + "/workflows/noop/instances", json={"id": "by-ui"}, headers={"X-WF-Request": "1"})
        assert made.status_code == 200, made.text
        # the cookie alone is no API token: without the UI's header, and outside /cdn-cgi/, it opens nothing
        assert (await c.post(API + "/workflows/noop/instances", json={})).status_code == 401
        assert (await c.get(API + "/workflows")).status_code == 401
        assert (await c.get("/")).status_code == 401
        bearer = {"Authorization": "Bearer s3cret-token"}
        assert (await c.get(API + "/workflows", headers=bearer)).status_code == 200


# ---------------------------------------------------------------- speaking wrangler's Local Explorer


async def test_local_workers_lists_the_project_and_its_workflow_bindings_as_wranglers_ui_expects(ui):
    body = (await ui.get(API + "/local/workers")).json()
    assert body["success"] is True
    [worker] = body["result"]
    assert worker["isSelf"] is True and worker["name"] == "uiapp"
    assert {"id": "refunds", "bindingName": "REFUNDS", "className": "RefundWorkflow", "scriptName": "uiapp"} in (
        worker["bindings"]["workflows"]
    )
    assert (await ui.get("/cdn-cgi/local/explorer/api/local/workers")).json()["result"] == body["result"]


# ---------------------------------------------------------------- live, from a real wf dev


@pytest.fixture
def devs(tmp_path):
    procs = DevProcesses(tmp_path)
    yield procs
    procs.cleanup()


def events_of(lines):
    """(event, data) pairs from a server-sent-events line iterator."""
    kind = None
    for line in lines:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: ") and kind:
            yield kind, json.loads(line[6:])
            kind = None


@pytest.mark.slow
def test_an_open_instance_page_gets_each_change_from_the_log_and_the_server_still_stops_at_once(project, devs, client):
    dev = devs.start(project).wait_ready()
    dev.wait_output("ready on")
    assert f"UI:        {dev.url}/cdn-cgi/explorer/" in dev.output()  # the banner links it
    client.create("order-processing", {"orderId": "o-9", "retry_delay": 0.01, "sleep": 0.01}, "o-9")
    url = f"{dev.url}{UI}/workflows/order-processing/o-9"
    wait_for(lambda: client.status("o-9")["status"] == "waiting", 20, "the order to wait for approval")
    with httpx.stream("GET", url, headers={"Accept": "text/event-stream"}, timeout=30) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        updates = events_of(stream.iter_lines())
        client.send_event("o-9", "approval", {"ok": True})
        for kind, data in updates:
            assert kind == "update"
            if 'data-status="complete"' in data["main"]:
                break
        assert "Complete" in data["main"] and "ship" in data["main"]
        client.delete("o-9")
        assert next(updates)[0] == "gone"
    with httpx.stream("GET", f"{dev.url}{UI}/", headers={"Accept": "text/event-stream"}, timeout=30) as s:
        next(s.iter_lines())  # the stream is open: the server must still stop without waiting on it
        assert dev.stop() == 0
    assert "graceful shutdown exceeded" not in dev.output(), dev.output()


@pytest.mark.slow
def test_a_page_drawn_while_a_resumed_instance_was_queued_shows_it_waiting_again(project, devs, client):
    """A resumed instance goes back to running when a runner takes it, and waiting again where it
    waited, without a new step event: that return must be in the log too. It was not, and a page
    drawn while the instance was queued (its live stream follows the log) said Queued for ever
    (the browser test of the lifecycle buttons, on a loaded machine)."""
    dev = devs.start(project).wait_ready()
    client.create("order-processing", {"orderId": "o-8", "retry_delay": 0.01, "sleep": 0.01}, "o-8")

    def waits_for_approval() -> bool:
        return any(h.type == "wait_started" for h in client.history(instance=client.get("o-8")))

    wait_for(waits_for_approval, 20, "the order to wait for approval")  # not for a retry: no step runs after
    client.pause("o-8")
    wait_for(lambda: client.status("o-8")["status"] == "paused", 20, "the order to be paused")
    client.resume("o-8")
    wait_for(lambda: client.status("o-8")["status"] == "waiting", 20, "the order to wait for approval again")
    [resumed] = [h.seq for h in client.history(instance=client.get("o-8")) if h.type == "workflow_resumed"]
    # the page as drawn at the resume, Queued: its stream must bring what happened since
    url = f"{dev.url}{UI}/workflows/order-processing/o-8?since={resumed}"
    # a read timeout under the stream's 20 s keepalive: a stream with nothing to say fails the test
    with httpx.stream("GET", url, headers={"Accept": "text/event-stream"}, timeout=15) as stream:
        try:
            kind, data = next(events_of(stream.iter_lines()))
        except httpx.ReadTimeout:
            raise AssertionError("the page still says Queued: its stream sent nothing in 15 s") from None
    assert kind == "update"
    assert 'data-status="waiting"' in data["main"], data["main"]
