"""The web UI in a real browser: headless Chromium (Debian's `chromium` package; `.ci/run` installs
it) driven by Playwright for Python, against `wf dev` run as a subprocess on the uiapp fixture.

Nothing is downloaded: Playwright starts /usr/bin/chromium itself, each launch on a fresh temporary
profile. Every wait is on page state (Playwright's auto-waiting `expect`), never a fixed sleep.
The run also refreshes the README's screenshots of the instance page (docs/ui-instance-*.png).
"""

from __future__ import annotations

import os
import re
import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from devserver import DevProcesses, wait_for

from wf.client import Client
from wf.config import load_config

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
UIAPP = Path(__file__).parent / "fixtures" / "uiapp"
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UI = "/cdn-cgi/explorer"
WAIT_MS = 20_000  # a ceiling for a busy 2-core machine; every wait ends as soon as the page is right


def _require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    why = f"the browser tests need Debian's chromium at {CHROMIUM} (apt-get install -y chromium; .ci/run does it)"
    if os.environ.get("CI"):
        pytest.fail(why, pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser():
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """`wf dev` on a copy of the uiapp fixture, and a Client on the same store for setting up."""
    work = tmp_path_factory.mktemp("ui")
    project = Path(shutil.copytree(UIAPP, work / "uiapp", ignore=shutil.ignore_patterns(".wf", "__pycache__")))
    devs = DevProcesses(work)
    dev = devs.start(project).wait_ready()
    client = Client(load_config(project / "wrangler.jsonc"))
    yield dev, client
    client.close()
    devs.cleanup()


@pytest.fixture
def page(browser, shop):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def step(page, name: str):
    return page.locator("li.step", has=page.locator(".step-name", has_text=re.compile(rf"^{re.escape(name)}\b")))


def step_badge(page, name: str):
    return step(page, name).locator(".step-row > .badge")


def status_badge(page):
    return page.locator('[data-live="summary"] .badge')


def quick_order(order_id: str, **extra) -> dict:
    return {"orderId": order_id, "retry_delay": 0.05, "sleep": 0.05, **extra}


def done(client: Client, id: str, status: str = "complete"):
    return wait_for(lambda: client.status(id)["status"] == status, WAIT_MS / 1000, f"{id} to be {status}")


def reached(client: Client, id: str, step_name: str):
    def there():
        return any(s["name"] == step_name and s["status"] == "waiting" for s in client.describe(id)["steps"])

    return wait_for(there, WAIT_MS / 1000, f"{id} to wait in {step_name}")


# ---------------------------------------------------------------- the order, from the form to complete


def test_trigger_from_the_form_watch_steps_live_send_the_approval_and_see_it_complete(page, shop):
    from playwright.sync_api import expect

    dev, client = shop
    streams = []  # the page's requests for its live stream: one, held open, no polling
    page.on("request", lambda r: streams.append(r.url) if r.headers.get("accept") == "text/event-stream" else None)
    page.goto(dev.url + "/")  # the project has no app: / opens the UI
    expect(page).to_have_url(dev.url + UI + "/")
    form = page.locator('form.trigger[data-workflow="order-processing"]')
    form.get_by_label("Params (JSON)").fill('{"orderId": "o-ui-1", "retry_delay": 0.05, "sleep": 0.05}')
    form.get_by_label("Instance id").fill("order-ui-1")
    form.get_by_role("button", name="Trigger order-processing").click()
    expect(page).to_have_url(f"{dev.url}{UI}/workflows/order-processing/order-ui-1")
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    # the steps arrive as the runner moves: the retry of charge, the sleep, then the wait
    expect(step_badge(page, "charge")).to_have_text("Complete")
    expect(step_badge(page, "cool-off")).to_have_text("Complete")
    expect(step_badge(page, "wait-for-approval")).to_have_text("Waiting")
    expect(step(page, "wait-for-approval").locator(".pending")).to_contain_text("waiting for event 'approval'")
    expect(status_badge(page)).to_have_text("Waiting")
    expect(page.locator("li.step")).to_have_count(4)

    # the failed first attempt of charge, and what validate printed
    step(page, "charge").get_by_role("button").first.click()
    panel = step(page, "charge").locator(".step-detail")
    expect(panel).to_be_visible()
    expect(panel.locator(".attempt-failed")).to_contain_text("ConnectionError: card API timed out (attempt 1)")
    expect(panel.locator(".attempt-ok")).to_contain_text("Attempt 2")
    step(page, "validate").get_by_role("button").first.click()
    expect(step(page, "validate").locator("pre.lines")).to_contain_text("validating order o-ui-1")

    page.get_by_label("Type", exact=True).fill("approval")
    page.get_by_label("Payload (JSON, optional)").fill('{"approved": true, "by": "ann"}')
    page.get_by_role("button", name="Send event").click()
    expect(page.locator("#action-result")).to_have_text('Event "approval" sent.')
    expect(status_badge(page)).to_have_text("Complete")
    expect(step_badge(page, "ship")).to_have_text("Complete")  # a step that could not exist before
    expect(page.locator('[data-live="io"]')).to_contain_text("TRK-o-ui-1")
    expect(page.locator('[data-live="events"]')).to_contain_text('"by": "ann"')
    expect(step(page, "charge").locator(".step-detail")).to_be_visible()  # open panels stay open
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"
    assert [u for u in streams if "/workflows/order-processing/order-ui-1" in u] == [
        f"{dev.url}{UI}/workflows/order-processing/order-ui-1?since={page.evaluate('document.body.dataset.seq')}"
    ]

    # an event to a finished instance: refused in place, nothing stored
    page.get_by_role("button", name="Send event").click()
    expect(page.locator("#action-result")).to_contain_text("is complete; it cannot receive events")
    assert len(client.events("order-ui-1")) == 1


def test_open_a_failed_step_and_read_its_traceback(page, shop):
    from playwright.sync_api import expect

    dev, client = shop
    client.create("order-processing", quick_order("o-tb"), "order-tb")
    page.goto(f"{dev.url}{UI}/workflows/order-processing/order-tb")
    expect(step_badge(page, "charge")).to_have_text("Complete")
    step(page, "charge").get_by_role("button").first.click()
    traceback = step(page, "charge").locator(".attempt-failed pre.traceback")
    expect(traceback).to_contain_text("index.py")
    expect(traceback).to_contain_text("ConnectionError: card API timed out")


def test_restart_from_a_step_runs_it_again_and_its_running_time_ticks(page, shop):
    from playwright.sync_api import expect

    dev, client = shop
    client.create("order-processing", quick_order("o-rs"), "order-rs")
    client.send_event("order-rs", "approval", {"first": True})  # kept until the wait takes it
    done(client, "order-rs")
    page.goto(f"{dev.url}{UI}/workflows/order-processing/order-rs")
    expect(status_badge(page)).to_have_text("Complete")
    validate_started = step(page, "validate").locator(".step-detail time").first.get_attribute("data-ts")

    wait = step(page, "wait-for-approval")
    wait.get_by_role("button").first.click()
    page.get_by_label("Payload (JSON, optional)").fill('{"typed": "before the restart"}')
    wait.get_by_role("button", name="Restart from this step").click()
    expect(page.locator("#action-result")).to_have_text('Restarted from step "wait-for-approval".')
    # the wait runs again: the event it took went with it, so it waits anew, and its clock ticks
    expect(status_badge(page)).to_have_text("Waiting")
    expect(wait.locator(".step-row > .badge")).to_have_text("Waiting")
    expect(page.locator("li.step")).to_have_count(4)
    ticking = wait.locator(".step-row .took [data-since]")
    first = ticking.inner_text()
    expect(ticking).not_to_have_text(first)
    expect(page.locator('[data-live="log"]')).to_contain_text("workflow_restarted")
    expect(page.get_by_label("Payload (JSON, optional)")).to_have_value('{"typed": "before the restart"}')

    page.get_by_label("Type", exact=True).fill("approval")
    page.get_by_label("Payload (JSON, optional)").fill('{"second": true}')
    page.get_by_role("button", name="Send event").click()
    expect(status_badge(page)).to_have_text("Complete")
    expect(page.locator('[data-live="io"]')).to_contain_text('"second": true')
    assert step(page, "validate").locator(".step-detail time").first.get_attribute("data-ts") == validate_started


def test_lifecycle_buttons_pause_resume_terminate_and_delete_with_confirmation(page, shop):
    from playwright.sync_api import expect

    dev, client = shop
    client.create("order-processing", quick_order("o-lc"), "order-lc")
    page.goto(f"{dev.url}{UI}/workflows/order-processing/order-lc")
    expect(status_badge(page)).to_have_text("Waiting")
    page.get_by_role("button", name="Pause").click()
    expect(status_badge(page)).to_have_text("Paused")
    expect(page.get_by_role("button", name="Pause")).to_be_disabled()
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#action-result")).to_have_text("Resumed.")
    expect(status_badge(page)).to_have_text("Waiting")
    page.get_by_role("button", name="Terminate").click()
    expect(status_badge(page)).to_have_text("Terminated")
    expect(page.get_by_role("button", name="Terminate")).to_be_disabled()

    page.get_by_role("button", name="Delete…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert client.status("order-lc")["status"] == "terminated"
    page.get_by_role("button", name="Delete…").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(page.locator(".notice")).to_contain_text("order-lc was deleted")
    assert client.page_instances(id_prefix="order-lc") == []


def test_terminate_with_rollback_shows_the_rollback_step_on_the_timeline(page, shop):
    from playwright.sync_api import expect

    dev, client = shop
    client.create("order-processing", quick_order("o-rb"), "order-rb")
    page.goto(f"{dev.url}{UI}/workflows/order-processing/order-rb")
    expect(status_badge(page)).to_have_text("Waiting")
    page.get_by_role("button", name="Roll back & stop").click()
    expect(page.locator("#action-result")).to_contain_text("the rollback handlers run first")
    expect(status_badge(page)).to_have_text("Terminated")
    undo = page.locator('li.step[data-step="rollback:charge:1"]')
    expect(undo.locator(".step-name")).to_have_text("↩ undo charge")
    expect(undo.locator(".step-row > .badge")).to_have_text("Complete")
    expect(undo.locator(".seg-rollback")).to_have_count(1)
    undo.get_by_role("button").first.click()
    expect(undo.locator(".step-detail")).to_contain_text("txn-o-rb")
    expect(page.locator('[data-live="log"]')).to_contain_text("rollback_completed")


# ---------------------------------------------------------------- the instances list


def test_filter_the_list_by_status_and_search_by_id_prefix(page, shop):
    from playwright.sync_api import expect

    dev, client = shop
    for i in range(3):
        client.create("refunds", {}, f"refund-{i}")
    client.create("noop", {"n": 1}, "refund-look-alike")
    done(client, "refund-2", "errored")
    done(client, "refund-look-alike")
    page.goto(f"{dev.url}{UI}/instances")
    page.get_by_label("Id starts with").fill("refund-")
    page.get_by_label("Status", exact=True).select_option("errored")
    page.get_by_role("button", name="Apply").click()
    rows = page.locator('[data-live="rows"] tbody tr')
    expect(rows).to_have_count(3)
    expect(rows.locator(".badge")).to_have_text(["Errored"] * 3)
    expect(rows.locator("td.id code")).to_have_text(["refund-2", "refund-1", "refund-0"])
    page.get_by_label("Status", exact=True).select_option("complete")
    page.get_by_role("button", name="Apply").click()
    expect(rows.locator("td.id code")).to_have_text(["refund-look-alike"])
    page.get_by_label("Id starts with").fill("no such id")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("alert")).to_contain_text("'no such id' cannot start an instance id")


def test_page_through_1000_instances(page, shop):
    from playwright.sync_api import expect

    dev, client = shop
    for batch in range(10):
        client.create_batch("noop", [{"id": f"p-{i:04d}"} for i in range(batch * 100, batch * 100 + 100)])
    page.goto(f"{dev.url}{UI}/instances?workflow=noop&q=p-&per_page=100")
    seen: list[str] = []
    ids = page.locator('[data-live="rows"] td.id code')
    for n in range(10):
        expect(ids).to_have_count(100)
        seen += ids.all_inner_texts()
        if n < 9:
            last = seen[-1]
            page.get_by_role("link", name="Older →").click()
            expect(ids.first).not_to_have_text(last)
    expect(page.get_by_role("link", name="Older →")).to_have_count(0)  # the end: no link, just a label
    assert seen == [f"p-{i:04d}" for i in reversed(range(1000))]
    page.get_by_role("link", name="← Newer").click()
    expect(ids.first).to_have_text("p-0199")


# ---------------------------------------------------------------- bad input


def test_bad_input_in_the_forms_says_what_is_wrong_and_stores_nothing(page, shop):
    from playwright.sync_api import expect

    dev, client = shop
    client.create("noop", {}, "taken-id")
    before = sum(client.count_by_status("noop").values())
    page.goto(dev.url + UI + "/")
    form = page.locator('form.trigger[data-workflow="noop"]')
    params, instance_id = form.get_by_label("Params (JSON)"), form.get_by_label("Instance id")
    submit = form.get_by_role("button", name="Trigger noop")
    params.fill('{"n": 1,}')
    submit.click()
    expect(form.locator("#" + params.get_attribute("aria-describedby"))).to_contain_text("Params is not valid JSON")
    expect(params).to_have_attribute("aria-invalid", "true")
    params.fill('{"n": 1}')
    instance_id.fill("bad id!")
    submit.click()
    expect(form.locator("#" + instance_id.get_attribute("aria-describedby"))).to_contain_text(
        '"bad id!" is not a valid instance id'
    )
    instance_id.fill("taken-id")
    submit.click()
    expect(form.locator(".form-error")).to_contain_text("'taken-id' already exists")
    assert sum(client.count_by_status("noop").values()) == before
    expect(page).to_have_url(dev.url + UI + "/")

    page.goto(f"{dev.url}{UI}/workflows/noop/taken-id")
    page.get_by_label("Type", exact=True).fill("approval")
    page.get_by_label("Payload (JSON, optional)").fill("{nope}")
    page.get_by_role("button", name="Send event").click()
    expect(page.locator("#ev-payload-error")).to_contain_text("The payload is not valid JSON")
    assert client.events("taken-id") == []


# ---------------------------------------------------------------- with WF_TOKEN


def test_with_wf_token_the_browser_signs_in_once_by_address(browser, tmp_path):
    from playwright.sync_api import expect

    project = Path(shutil.copytree(UIAPP, tmp_path / "uiapp", ignore=shutil.ignore_patterns(".wf", "__pycache__")))
    devs = DevProcesses(tmp_path)
    try:
        token = "a-long-random-secret"
        dev = devs.start(project, env={"WF_TOKEN": token}).wait_ready(headers={"Authorization": f"Bearer {token}"})
        context = browser.new_context()
        page = context.new_page()
        refused = page.goto(dev.url + UI + "/")
        assert refused.status == 401
        expect(page.locator("body")).to_contain_text("?token=")
        page.goto(f"{dev.url}{UI}/?token={token}")
        expect(page).to_have_url(dev.url + UI + "/")  # the token leaves the address bar at once
        [cookie] = [c for c in context.cookies() if c["name"] == "wf_ui"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and token not in cookie["value"]
        form = page.locator('form.trigger[data-workflow="noop"]')
        form.get_by_label("Instance id").fill("with-token")
        form.get_by_role("button", name="Trigger noop").click()
        expect(page).to_have_url(f"{dev.url}{UI}/workflows/noop/with-token")
        expect(status_badge(page)).to_have_text("Complete")
        context.close()
    finally:
        devs.cleanup()


# ---------------------------------------------------------------- keyboard, narrow, time zone, themes


def test_keyboard_a_narrow_window_and_the_readers_time_zone(browser, shop):
    from playwright.sync_api import expect

    dev, client = shop
    client.create("order-processing", quick_order("o-kb"), "order-kb")
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-GB", timezone_id="Asia/Tokyo")
    page = context.new_page()
    for path in ("/", "/instances"):  # nothing wider than the window: tables scroll inside themselves
        page.goto(dev.url + UI + path)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), f"{path} scrolls sideways"
    page.goto(f"{dev.url}{UI}/workflows/order-processing/order-kb")
    expect(step_badge(page, "wait-for-approval")).to_have_text("Waiting")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "the page scrolls sideways"

    for _ in range(60):  # Tab to the first step's button, open it with the keyboard
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('step-toggle')"):
            break
    page.keyboard.press("Enter")
    expect(step(page, "validate").locator(".step-detail")).to_be_visible()
    expect(step(page, "validate").get_by_role("button").first).to_have_attribute("aria-expanded", "true")

    created = page.locator('[data-live="summary"] time').first
    ts = float(created.get_attribute("data-ts"))
    tokyo = datetime.fromtimestamp(ts, ZoneInfo("Asia/Tokyo")).strftime("%H:%M:%S")
    expect(created).to_contain_text(tokyo)
    context.close()


def test_screenshots_of_the_instance_page_light_and_dark_for_the_readme(browser, shop):
    from playwright.sync_api import expect

    dev, client = shop
    client.create("order-processing", quick_order("o-1001", failures=2), "order-1001")
    reached(client, "order-1001", "wait-for-approval")
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    for scheme in ("light", "dark"):
        context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme=scheme, locale="en-GB")
        page = context.new_page()
        page.goto(f"{dev.url}{UI}/workflows/order-processing/order-1001")
        expect(step_badge(page, "wait-for-approval")).to_have_text("Waiting")
        step(page, "charge").get_by_role("button").first.click()
        expect(step(page, "charge").locator(".attempt-failed")).to_have_count(2)
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert (background == "rgb(20, 22, 26)") == (scheme == "dark"), background
        shot = {"x": 0, "y": 0, "width": 1280, "height": 1040}  # the summary, the timeline, a step opened
        page.screenshot(path=str(docs / f"ui-instance-{scheme}.png"), full_page=True, clip=shot)
        context.close()


# ---------------------------------------------------------------- Cloudflare's own Local Explorer UI


@pytest.fixture(scope="module")
def cloudflare_ui() -> Path:
    """The Local Explorer UI that wrangler 4.86.0's miniflare ships (a built single-page app),
    from the wrangler tests/install_wrangler.sh installs (it fails, never skips, without it)."""
    import subprocess

    done = subprocess.run(
        ["bash", str(Path(__file__).parent / "install_wrangler.sh")], capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        pytest.fail(f"cannot install wrangler (tests/install_wrangler.sh):\n{done.stderr[-3000:]}", pytrace=False)
    binary = Path(done.stdout.strip().splitlines()[-1])
    found = binary.parent.parent / "miniflare" / "dist" / "local-explorer-ui"
    assert (found / "index.html").is_file(), f"no local-explorer-ui in {found.parent}"
    return found


class SameOrigin:
    """Cloudflare's UI where it expects to be (/cdn-cgi/explorer/, its API beside it at .../api),
    with the API calls handed to `wf dev`: the UI fetches from its own origin only."""

    def __init__(self, ui_dir: Path, upstream: str):
        import threading

        import httpx
        import uvicorn
        from starlette.applications import Starlette
        from starlette.responses import FileResponse, Response
        from starlette.routing import Route

        async def api(request):
            async with httpx.AsyncClient(base_url=upstream) as http:
                answer = await http.request(
                    request.method,
                    request.url.path + (f"?{request.url.query}" if request.url.query else ""),
                    content=await request.body(),
                    headers={k: v for k, v in request.headers.items() if k in ("content-type", "accept")},
                )
            return Response(answer.content, answer.status_code, media_type=answer.headers.get("content-type"))

        async def app_file(request):
            path = ui_dir / request.path_params["path"]
            return FileResponse(path if path.is_file() and ui_dir in path.resolve().parents else ui_dir / "index.html")

        methods = ["GET", "POST", "PATCH", "DELETE"]
        app = Starlette(
            routes=[
                Route(UI + "/api/{path:path}", api, methods=methods),
                Route(UI + "/{path:path}", app_file),
            ]
        )
        from devserver import free_port

        self.url = f"http://127.0.0.1:{free_port()}"
        self.server = uvicorn.Server(uvicorn.Config(app, port=int(self.url.rsplit(":", 1)[1]), log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, 10, "the same-origin server")

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def test_cloudflares_local_explorer_ui_lists_and_shows_wf_instances(page, shop, cloudflare_ui):
    from playwright.sync_api import expect

    dev, client = shop
    client.create("order-processing", quick_order("o-cf"), "order-cf")
    client.send_event("order-cf", "approval", {"ok": True})
    done(client, "order-cf")
    front = SameOrigin(cloudflare_ui, dev.url)
    try:
        page.goto(front.url + UI + "/")
        page.get_by_role("link", name="ORDERS").click()  # from GET .../api/local/workers
        main = page.locator("main")
        expect(main).to_contain_text("order-processing")
        main.get_by_text("order-cf", exact=True).click()
        for name in ("validate", "charge", "cool-off", "wait-for-approval", "ship"):
            expect(main).to_contain_text(name)
        expect(main).to_contain_text("TRK-o-cf")
    finally:
        front.close()
