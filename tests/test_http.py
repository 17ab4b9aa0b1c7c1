"""`wf dev`'s HTTP side: the explorer API (in process, over ASGI), the user's app with the
bindings, the guards (token, host, body size), a schemathesis fuzz run over the served OpenAPI
document, and `wf dev` itself as a subprocess (start time, template routes, graceful stop,
refusals, reload)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import httpx
import pytest
from devserver import API, DevProcesses, copy_devapp, port_free, wait_for

from wf.client import Client
from wf.config import load_config
from wf.http import create_app

OLD_API = "/cdn-cgi/explorer/api"


# ---------------------------------------------------------------- in-process fixtures


@pytest.fixture
def project(tmp_path) -> Path:
    return copy_devapp(tmp_path / "devapp")


@pytest.fixture
def config(project):
    return load_config(project / "wrangler.jsonc")


@pytest.fixture
def client(config):
    c = Client(config)
    yield c
    c.close()


def http(app, **kw) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1", **kw)


@pytest.fixture
async def api(config):
    async with http(create_app(config)) as c:
        yield c


JSON = {"content-type": "application/json"}


def ok(response: httpx.Response):
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["errors"] == [] and body["messages"] == [], body
    return body["result"]


def refused(response: httpx.Response, status: int, code: int | None = None, says: str = "") -> str:
    assert response.status_code == status, f"{response.status_code} {response.text}"
    body = response.json()
    assert body["success"] is False and body["result"] is None and body["messages"] == [], body
    message = body["errors"][0]["message"]
    if code is not None:
        assert body["errors"][0]["code"] == code, body
    assert says in message, message
    return message


# ---------------------------------------------------------------- the explorer API


async def test_both_base_paths_answer_with_the_envelope(api):
    for base in (API, OLD_API):
        body = (await api.get(base + "/workflows")).json()
        assert body == {
            "success": True,
            "errors": [],
            "messages": [],
            "result": [
                {"name": "order-processing", "class_name": "OrderWorkflow", "script_name": "devapp"},
                {"name": "quick", "class_name": "QuickWorkflow", "script_name": "devapp"},
                {"name": "slow", "class_name": "SlowWorkflow", "script_name": "devapp"},
            ],
            "result_info": {"count": 3},
        }


async def test_openapi_document_is_served_at_the_base_and_openapi_json(api):
    for path in (API, API + "/openapi.json", OLD_API + "/openapi.json"):
        doc = (await api.get(path)).json()
        assert doc["openapi"].startswith("3.")
        assert "/workflows/{name}/instances/{id}/status" in doc["paths"]
        name = doc["paths"]["/workflows/{name}"]["parameters"][0]
        assert name["schema"]["enum"] == ["order-processing", "quick", "slow"]


async def test_describe_workflow_counts_every_status(api, client):
    client.create("quick", {"n": 1}, "a")
    client.create("quick", {"n": 2}, "b")
    client.pause("b", "quick")
    result = ok(await api.get(API + "/workflows/quick"))
    assert result["name"] == "quick" and result["class_name"] == "QuickWorkflow"
    assert result["instances"] == {
        "complete": 0,
        "errored": 0,
        "paused": 1,
        "queued": 1,
        "running": 0,
        "terminated": 0,
        "waiting": 0,
        "waitingForPause": 0,
    }


async def test_unknown_workflow_instance_and_route_are_404_with_code_10501(api, client):
    refused(await api.get(API + "/workflows/nope"), 404, 10501, "Workflow 'nope' not found.")
    refused(await api.post(API + "/workflows/nope/instances", json={}), 404, 10501, "Workflow 'nope' not found.")
    refused(
        await api.get(API + "/workflows/quick/instances/missing"), 404, 10501, "Workflow instance 'missing' not found."
    )
    refused(
        await api.patch(API + "/workflows/quick/instances/missing/status", json={"action": "pause"}),
        404,
        10501,
        "Workflow instance 'missing' not found.",
    )
    refused(await api.post(API + "/workflows/quick/instances/missing/events/go", json={}), 404, 10501)
    refused(await api.delete(API + "/workflows/quick/instances/missing"), 404, 10501)
    refused(await api.get(API + "/no/such/route"), 404, 10501, "No explorer API route")
    refused(await api.put(API + "/workflows"), 405, None, "not allowed")


async def test_create_with_and_without_id_then_duplicate_is_409(api, client):
    made = ok(await api.post(API + "/workflows/quick/instances", json={"id": "q1", "params": {"n": 3}}))
    assert made == {"id": "q1"}
    assert client.get("q1", "quick").status == "queued"
    assert json.loads(client.get("q1", "quick").params) == {"n": 3}
    fresh = ok(await api.post(API + "/workflows/quick/instances"))  # no body: id and params are optional
    assert len(fresh["id"]) == 36
    refused(await api.post(API + "/workflows/quick/instances", json={"id": "q1"}), 409, None, "'q1' already exists")
    refused(await api.post(API + "/workflows/quick/instances", json={"id": "bad id"}), 400, 10001, "'bad id'")


async def test_list_pages_filters_and_validates(api, client):
    for i in range(5):
        client.create("quick", {}, f"i{i}")  # same created_at or not, newer ones come first
    client.pause("i0", "quick")
    page = await api.get(API + "/workflows/quick/instances", params={"per_page": 2, "page": 2})
    body = page.json()
    assert [r["id"] for r in body["result"]] == ["i2", "i1"]  # newest first
    assert body["result"][0]["status"] == "queued" and body["result"][0]["created_on"].endswith("Z")
    assert body["result_info"]["page"] == 2 and body["result_info"]["per_page"] == 2
    assert body["result_info"]["total_count"] == 5 and body["result_info"]["total_pages"] == 3
    assert body["result_info"]["status_counts"]["queued"] == 4
    paused = (await api.get(API + "/workflows/quick/instances", params={"status": "paused"})).json()
    assert [r["id"] for r in paused["result"]] == ["i0"] and paused["result_info"]["total_count"] == 1
    assert ok(await api.get(API + "/workflows/quick/instances", params={"page": 99})) == []
    for params, says in [
        ({"per_page": 101}, "less than or equal to 100"),
        ({"per_page": 0}, "greater than"),
        ({"page": "abc"}, 'received "abc"'),
        ({"page": "1.5"}, "page"),
        ({"status": "bogus"}, "status"),
    ]:
        refused(await api.get(API + "/workflows/quick/instances", params=params), 400, 10001, says)


async def test_status_actions_and_their_refusals(api, client):
    client.create("quick", {}, "s1")
    url = API + "/workflows/quick/instances/s1/status"
    assert ok(await api.patch(url, json={"action": "pause"})) == {"success": True}
    assert client.get("s1", "quick").status == "paused"
    assert ok(await api.patch(url, json={"status": "resume"})) == {"success": True}  # newer wrangler's key
    assert client.get("s1", "quick").status == "queued"
    refused(
        await api.patch(url, json={"action": "restart", "from": {"name": "double", "count": 1, "type": "do"}}),
        404,
        None,
        "not in the instance's execution history",
    )
    assert ok(await api.patch(url, json={"action": "restart"})) == {"success": True}
    ok(await api.patch(url, json={"action": "terminate"}))
    assert client.get("s1", "quick").status == "terminated"
    refused(await api.patch(url, json={"action": "terminate"}), 409, None, "already terminated")
    refused(await api.patch(url, json={"action": "explode"}), 400, 10001, "Invalid action 'explode'")
    refused(await api.patch(url, json={}), 400, 10001, "Invalid action")
    refused(
        await api.patch(url, json={"action": "pause", "rollback": True}),
        400,
        10001,
        "'rollback' is only valid when terminating.",
    )
    refused(await api.patch(url, json={"action": "terminate", "rollback": "yes"}), 400, 10001, "Expected boolean")
    refused(await api.patch(url, json={"action": "restart", "from": {"count": 2}}), 400, 10001, "'from.name'")
    refused(await api.patch(url, json={"action": "restart", "from": {"name": "x", "count": 0}}), 400, 10001)
    refused(await api.patch(url, json={"action": "restart", "from": {"name": "x", "type": "nap"}}), 400, 10001)


async def test_events_are_stored_and_bad_ones_refused(api, client):
    client.create("order-processing", {"orderId": "o"}, "e1")
    base = API + "/workflows/order-processing/instances/e1/events/"
    assert ok(await api.post(base + "approval", json={"ok": 1})) == {"success": True}
    assert ok(await api.post(base + "ping")) == {"success": True}  # no body: no payload
    events = [e for e, _ in client.store.events(client.get("e1", "order-processing").seq)]
    assert [(e.type, e.payload) for e in events] == [("approval", '{"ok":1}'), ("ping", None)]
    refused(await api.post(base + "bad%20type", json={}), 400, 10001, "Event type 'bad type' is invalid")
    refused(await api.post(base + "approval", content=b"{nope", headers=JSON), 400, 10001, "not valid JSON")


async def test_describe_instance_and_delete_one_many_and_all(api, client):
    client.create("quick", {"n": 1}, "d1")
    result = ok(await api.get(API + "/workflows/quick/instances/d1"))
    assert result == {
        "status": "queued",
        "params": {"n": 1},
        "queued": result["queued"],
        "start": None,
        "end": None,
        "output": None,
        "error": None,
        "steps": [],
        "step_count": 0,
    }
    assert ok(await api.delete(API + "/workflows/quick/instances/d1")) == {"success": True}
    refused(await api.get(API + "/workflows/quick/instances/d1"), 404, 10501)
    for i in range(3):
        client.create("quick", {}, f"m{i}")
    done = ok(await api.post(API + "/workflows/quick/instances/batch/delete", json={"instances": ["m0", "m1", "zz"]}))
    assert done["deleted"] == [{"id": "m0"}, {"id": "m1"}]
    # Cloudflare's deleteBatch entry for an id that is not there (workflows-shared binding.ts)
    assert done["errors"] == [{"id": "zz", "code": 10400, "message": "workflows.api.error.instance.not_found"}]
    refused(await api.post(API + "/workflows/quick/instances/batch/delete", json={"instances": []}), 400, 10001)
    refused(await api.post(API + "/workflows/quick/instances/batch/delete", json={"ids": ["m2"]}), 400, 10001)
    assert ok(await api.delete(API + "/workflows/quick")) == {"status": "ok", "success": True}
    assert client.list("quick") == []


@pytest.mark.parametrize(
    "body",
    [
        b"[",
        b"[]",
        b'"text"',
        b"42",
        b"null",
        b"[" * 50_000 + b"]" * 50_000,
        b'{"id": 5}',
        b'{"id": ["a"]}',
        b'{"params": NaN}',
        b"\xff\xfe",
        b'{"params": {"a": Infinity}}',
    ],
)
async def test_malformed_bodies_get_a_4xx_with_a_message_never_a_5xx(api, body):
    for method, path in [
        ("POST", "/workflows/quick/instances"),
        ("POST", "/workflows/quick/instances/batch/delete"),
        ("PATCH", "/workflows/quick/instances/x/status"),
    ]:
        response = await api.request(method, API + path, content=body, headers={"content-type": "application/json"})
        if response.status_code == 200:  # "null" is an empty body for create: allowed, as in miniflare
            assert (method, body) == ("POST", b"null") and path.endswith("/instances"), response.text
            continue
        assert 400 <= response.status_code < 500, (method, path, body[:20], response.text)
        assert response.json()["errors"][0]["message"]


async def test_body_size_limit_is_413_with_or_without_content_length(config):
    app = create_app(config, max_body=1000)
    async with http(app) as c:
        big = json.dumps({"params": {"blob": "x" * 2000}}).encode()
        refused(await c.post(API + "/workflows/quick/instances", content=big), 413, None, "1,000 byte limit")

        async def chunks():
            for _ in range(5):
                yield b"x" * 400

        refused(await c.post(API + "/workflows/quick/instances", content=chunks()), 413)
        refused(await c.post("/api/orders", content=big), 413)  # the user's app too
        ok(await c.post(API + "/workflows/quick/instances", json={"params": {"small": 1}}))


async def test_token_when_set_is_required_on_every_request(config):
    async with http(create_app(config, token="s3cret-token")) as c:
        for path in (API + "/workflows", OLD_API + "/workflows", "/api/workflows/x"):
            refused(await c.get(path), 401, None, "Authorization: Bearer")
            refused(await c.get(path, headers={"authorization": "Bearer wrong"}), 401)
            refused(await c.get(path, headers={"authorization": "Basic s3cret-token"}), 401)
        assert (await c.get(API + "/workflows", headers={"authorization": "Bearer s3cret-token"})).status_code == 200
        r = await c.post("/api/orders", json={"orderId": "t"}, headers={"authorization": "Bearer s3cret-token"})
        assert r.status_code == 201


async def test_loopback_host_check_refuses_other_host_names(config):
    app = create_app(config, allowed_hosts=frozenset({"127.0.0.1", "localhost"}))
    async with http(app) as c:
        assert (await c.get(API + "/workflows", headers={"host": "localhost:8787"})).status_code == 200
        refused(await c.get(API + "/workflows", headers={"host": "evil.example:8787"}), 403, None, "localhost")


# ---------------------------------------------------------------- the user's app


async def test_user_app_reaches_bindings_from_request_state_and_scope(api, client):
    r = await api.post("/api/orders", json={"orderId": "o-7"})  # request.state.env.ORDERS.create
    assert r.status_code == 201
    iid = r.json()["instanceId"]
    assert json.loads(client.get(iid, "order-processing").params) == {"orderId": "o-7"}
    status = await api.get(f"/api/workflows/{iid}")  # request.state.env.ORDERS.get(...).status()
    assert status.json() == {"status": "queued", "output": None, "error": None}
    assert (await api.post(f"/api/workflows/{iid}/approve")).json() == {"sent": True}  # scope["wf.env"]
    [(event, _)] = client.store.events(client.get(iid, "order-processing").seq)
    assert (event.type, json.loads(event.payload)) == ("approval", {"approved": True})
    assert (await api.get("/api/workflows/none")).status_code == 404


async def test_without_an_app_root_opens_the_ui_and_other_paths_are_a_json_404_naming_the_api(config):
    async with http(create_app(config, user_app=None)) as c:
        root = await c.get("/")
        assert root.status_code == 307 and root.headers["location"] == "/cdn-cgi/explorer/"
        message = refused(await c.get("/elsewhere"), 404, None, "main exports no ASGI `app`")
        assert API in message and "/cdn-cgi/explorer/" in message


async def test_user_app_lifespan_runs_inside_ours(config):
    events = []

    async def user_app(scope, receive, send):
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            events.append(message["type"])
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return

    app = create_app(config, user_app=user_app)
    to_app, from_app = asyncio.Queue(), asyncio.Queue()
    task = asyncio.ensure_future(app({"type": "lifespan", "state": {}}, to_app.get, from_app.put))
    await to_app.put({"type": "lifespan.startup"})
    assert (await from_app.get())["type"] == "lifespan.startup.complete"
    await to_app.put({"type": "lifespan.shutdown"})
    assert (await from_app.get())["type"] == "lifespan.shutdown.complete"
    await task
    assert events == ["lifespan.startup", "lifespan.shutdown"]


# ---------------------------------------------------------------- fuzz


@pytest.mark.slow
def test_fuzz_the_api_from_its_openapi_document_finds_no_5xx_and_no_schema_violation(config, client):
    """schemathesis generates valid and invalid requests for every operation in the served
    document; each answer must be no 5xx, a documented status, JSON that matches its schema,
    and a 4xx for invalid input. Bounded: a few dozen examples per operation and mode."""
    warnings.simplefilter("ignore")
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        negative_data_rejection,
        response_schema_conformance,
        status_code_conformance,
    )

    schema = schemathesis.openapi.from_asgi(API + "/openapi.json", create_app(config))
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        negative_data_rejection,
    ]
    known = ["fz-0", "fz-1", "fz-2"]
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=25, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
            )
            @given(case=operation.as_strategy(generation_mode=mode), pick=st.sampled_from(known + [None]))
            def run(case, pick):
                nonlocal calls
                calls += 1
                for workflow in ("quick", "order-processing"):  # instances to find, re-made after deletes
                    client.create_batch(workflow, [{"id": i, "params": {}} for i in known])
                if pick and case.path_parameters and "id" in case.path_parameters:
                    case.path_parameters["id"] = pick
                case.validate_response(case.call(), checks=checks)

            try:
                run()
            except Unsatisfiable:  # no invalid input exists for an operation without parameters
                assert mode == GenerationMode.NEGATIVE and operation.path in ("/workflows", "/local/workers")
    assert calls > 300, calls


# ---------------------------------------------------------------- wf dev as a subprocess


@pytest.fixture
def devs(tmp_path):
    procs = DevProcesses(tmp_path)
    yield procs
    procs.cleanup()


def wf_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wf", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def status_of(url: str, iid: str) -> dict:
    r = httpx.get(f"{url}/api/workflows/{iid}", timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.slow
def test_wf_dev_serves_the_init_template_routes_end_to_end(tmp_path, devs):
    made = wf_cli(tmp_path, "init", "shop")
    assert made.returncode == 0, made.stderr
    project = tmp_path / "shop"
    dev = devs.start(project).wait_ready()  # how fast it answers is bench/'s figure 8 (goal 1 s)
    dev.wait_output("ready on")
    banner = dev.output()
    for text in ("wf dev:", "order-processing", "approval", str(project / ".wf"), dev.url, "ready on"):
        assert text in banner, banner

    order = json.loads((project / "order.json").read_text())
    r = httpx.post(dev.url + "/api/orders", json=order, timeout=5)
    assert r.status_code == 201, r.text
    iid = r.json()["instanceId"]
    final = wait_for(lambda: (s := status_of(dev.url, iid))["status"] == "complete" and s, 15, "the order")
    assert final["output"]["status"] == "completed", final

    made = httpx.post(dev.url + API + "/workflows/approval/instances", json={"params": {"approver": "ann"}})
    aid = made.json()["result"]["id"]
    wait_for(lambda: status_of(dev.url, aid)["status"] == "waiting", 10, "the approval to wait")
    assert httpx.post(f"{dev.url}/api/workflows/{aid}/approve").json() == {"sent": True}
    final = wait_for(lambda: (s := status_of(dev.url, aid))["status"] == "complete" and s, 10, "the approval")
    assert final["output"]["status"] == "approved", final
    assert httpx.get(f"{dev.url}/api/workflows/nope").status_code == 404

    assert dev.stop() == 0
    assert port_free(dev.port), "the port is still taken after wf dev stopped"


@pytest.mark.slow
def test_sigterm_lets_the_in_flight_step_finish_then_it_completes_after_restart(project, devs, client):
    dev = devs.start(project).wait_ready()
    made = httpx.post(dev.url + API + "/workflows/slow/instances", json={"id": "s1", "params": {"seconds": 1.0}})
    assert made.status_code == 200, made.text
    wait_for(lambda: client.store.steps(client.get("s1", "slow").seq), 10, "the slow step to start")
    assert dev.stop(timeout=15) == 0
    out = dev.output()
    assert "stopping" in out and "stopped." in out, out
    assert port_free(dev.port)
    [step] = client.store.steps(client.get("s1", "slow").seq)
    assert step.status == "complete", step  # the attempt finished inside the grace period
    assert client.get("s1", "slow").status != "complete"  # the run itself was left for the next runner

    again = devs.start(project, port=dev.port).wait_ready()
    wait_for(lambda: client.get("s1", "slow").status == "complete", 10, "the instance to finish")
    assert json.loads(client.get("s1", "slow").output) == {"slow": "done", "version": "v1"}
    [step] = client.store.steps(client.get("s1", "slow").seq)
    assert step.attempts == 1, "the step ran again after the restart"
    again.stop()


def test_a_taken_port_is_one_clear_error(project, devs):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        dev = devs.start(project, port=s.getsockname()[1])
        assert dev.proc.wait(15) != 0
    out = dev.output()
    assert "already in use" in out and "--port" in out and "Traceback" not in out, out


def test_non_loopback_host_without_a_token_refuses_to_start(project, devs):
    dev = devs.start(project, ["--host", "0.0.0.0"])
    assert dev.proc.wait(15) != 0
    out = dev.output()
    assert "refusing to listen on '0.0.0.0' without a token" in out and "WF_TOKEN" in out, out
    assert "Traceback" not in out


@pytest.mark.slow
def test_non_loopback_host_with_a_token_needs_it_on_every_request(project, devs):
    dev = devs.start(project, ["--host", "0.0.0.0"], env={"WF_TOKEN": "t0ken-for-test"})
    dev.wait_ready(headers={"authorization": "Bearer t0ken-for-test"})
    assert httpx.get(dev.url + API + "/workflows").status_code == 401
    assert httpx.post(dev.url + "/api/orders", json={}).status_code == 401
    good = httpx.get(dev.url + API + "/workflows", headers={"authorization": "Bearer t0ken-for-test"})
    assert good.status_code == 200
    assert "Authorization: Bearer" in dev.output()
    assert dev.stop() == 0


@pytest.mark.slow
def test_reload_swaps_code_without_losing_instances(project, devs, client):
    dev = devs.start(project, ["--reload"]).wait_ready()
    assert httpx.get(dev.url + "/version").json() == {"version": "v1"}
    iid = httpx.post(dev.url + "/api/orders", json={"orderId": "r1"}).json()["instanceId"]
    wait_for(lambda: client.get(iid, "order-processing").status == "waiting", 10, "the order to wait")

    index = project / "src" / "index.py"
    source = index.read_text()
    index.write_text(source.replace('VERSION = "v1"', 'VERSION = "v2'))
    dev.wait_output("reload failed", 10)
    assert httpx.get(dev.url + "/version").json() == {"version": "v1"}  # the old code still serves

    index.write_text(source.replace('VERSION = "v1"', 'VERSION = "v2"'))
    dev.wait_output("reloaded", 10)
    assert httpx.get(dev.url + "/version").json() == {"version": "v2"}
    assert httpx.post(f"{dev.url}/api/workflows/{iid}/approve").json() == {"sent": True}
    final = wait_for(lambda: (s := status_of(dev.url, iid))["status"] == "complete" and s, 10, "the order")
    assert final["output"]["status"] == "shipped" and final["output"]["approved"] == {"approved": True}
    quick = httpx.post(dev.url + API + "/workflows/quick/instances", json={"params": {"n": 2}}).json()["result"]["id"]
    wait_for(lambda: client.get(quick, "quick").status == "complete", 10, "the quick instance")
    assert json.loads(client.get(quick, "quick").output) == {"value": 4, "version": "v2"}
    assert dev.stop() == 0


@pytest.mark.slow
def test_reload_follows_the_config_dev_vars_env_and_code(project, devs):
    """Each kind of file `--reload` watches, edited under a running `wf dev`: the effect shows."""
    dev = devs.start(project, ["--reload"]).wait_ready()
    get = lambda path: httpx.get(dev.url + path, timeout=5).json()  # noqa: E731
    assert get("/vars") == {}
    config = project / "wrangler.jsonc"
    original = config.read_text()
    quick = '{"name": "quick", "binding": "QUICK", "class_name": "QuickWorkflow"},'
    config.write_text(
        original.replace('"workflows": [', '"vars": {"GREETING": "hi"},\n  "workflows": [').replace(
            quick, quick + '\n    {"name": "quick-too", "binding": "QUICK_TOO", "class_name": "QuickWorkflow"},'
        )
    )
    wait_for(lambda: get("/vars") == {"GREETING": "hi"}, 10, "the new vars of wrangler.jsonc")
    names = [w["name"] for w in get(API + "/workflows")["result"]]
    assert "quick-too" in names, names
    made = httpx.post(dev.url + API + "/workflows/quick-too/instances", json={"params": {"n": 3}}).json()
    iid = made["result"]["id"]
    wait_for(lambda: get(f"{API}/workflows/quick-too/instances/{iid}")["result"]["status"] == "complete", 10, iid)

    (project / ".dev.vars").write_text("SECRET=s1\n")
    wait_for(lambda: get("/vars") == {"GREETING": "hi", "SECRET": "s1"}, 10, "the var from .dev.vars")
    (project / ".dev.vars").unlink()  # .dev.vars, when there is one, hides .env
    (project / ".env").write_text("FROM_ENV=e1\n")
    wait_for(lambda: get("/vars") == {"GREETING": "hi", "FROM_ENV": "e1"}, 10, "the var from .env")

    config.write_text(original.replace('"workflows": [', '"vars": {"GREETING": 1,'))  # broken: no reload
    dev.wait_output("reload failed", 10)
    assert get("/vars") == {"GREETING": "hi", "FROM_ENV": "e1"}  # the previous config still serves

    index = project / "src" / "index.py"
    index.write_text(index.read_text().replace('VERSION = "v1"', 'VERSION = "v3"'))
    config.write_text(original)
    wait_for(lambda: get("/version") == {"version": "v3"} and get("/vars") == {"FROM_ENV": "e1"}, 10, "code and config")
    assert dev.stop() == 0
