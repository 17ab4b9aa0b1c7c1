"""wf's stand-ins for Cloudflare's Python modules (`workers`, `workers.workflows`, `pyodide.ffi`, `js`,
`asgi`), the Worker half and the Cloudflare-shaped bindings, through what a Worker file does with them.

The examples Cloudflare publishes run in test_cloudflare_examples.py; here: which module wins over
an installed package of the same name, the FFI helpers, Request/Response/fetch, the bindings'
argument forms and their refusals, the Worker's loader errors, and config keys wf ignores.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from stub_service import StubService

from wf.cloudflare.asgi import fetch as asgi_fetch
from wf.cloudflare.ffi import JSON, JsMap, JsObject, Object, import_from_javascript, to_js
from wf.cloudflare.http import Request, Response, fetch
from wf.config import load_config
from wf.errors import LoaderError, ValidationError
from wf.testing import from_config

EXAMPLES = Path(__file__).parent / "fixtures" / "cfexamples" / "wrangler.jsonc"


def project(root: Path, entry: str, config: dict | None = None) -> Path:
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "src" / "entry.py").write_text(textwrap.dedent(entry))
    data = {
        "name": "p",
        "main": "src/entry.py",
        "compatibility_flags": ["python_workers", "python_workflows"],
        "workflows": [{"name": "hello", "binding": "HELLO", "class_name": "Hello"}],
        **(config or {}),
    }
    (root / "wrangler.jsonc").write_text(json.dumps(data))
    return root / "wrangler.jsonc"


HELLO = """
    from workers import Response, WorkerEntrypoint, WorkflowEntrypoint
    from workers.workflows import NonRetryableError
    from pyodide.ffi import to_js
    from js import Object

    class Hello(WorkflowEntrypoint):
        async def run(self, event, step):
            @step.do("greet")
            async def greet():
                return "hi " + event["payload"].get("name", "you")

            return await greet()
"""


# ---------------------------------------------------------------- which module wins


def test_wf_stand_ins_win_over_installed_packages_of_those_names_while_wf_loads_a_project(tmp_path):
    """A `workers` and a `js` package are installed (like workers-runtime-sdk, they need Pyodide):
    plain Python imports them and fails; wf's loader resolves the names to its stand-ins."""
    site = tmp_path / "site"
    for name in ("workers", "js"):
        (site / name).mkdir(parents=True)
        (site / name / "__init__.py").write_text("import _pyodide_entrypoint_helper  # only inside workerd\n")
    config = project(tmp_path / "proj", HELLO)
    script = f"""
import sys
sys.path.insert(0, {str(site)!r})
try:
    import workers
except ImportError as exc:
    print("plain python:", exc.name)
from wf.config import load_config
from wf.loader import load_workflow_classes
classes = load_workflow_classes(load_config({str(config)!r}))
import js, workers, workers.workflows, pyodide.ffi
from wf.errors import NonRetryableError
print("under wf:", workers.__file__.split("/wf/")[1], js.__file__.split("/wf/")[1])
print("same error class:", workers.workflows.NonRetryableError is NonRetryableError)
print("same base class:", classes["hello"].__mro__[1] is __import__("wf").WorkflowEntrypoint)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "plain python: _pyodide_entrypoint_helper",
        "under wf: cloudflare/modules/workers/__init__.py cloudflare/modules/js.py",
        "same error class: True",
        "same base class: True",
    ]


# ---------------------------------------------------------------- the FFI helpers


def test_to_js_with_object_fromentries_makes_objects_whose_keys_read_as_attributes():
    made = to_js({"params": {"order": {"id": 7}}, "list": ({"a": 1},)}, dict_converter=Object.fromEntries)
    assert isinstance(made, JsObject) and made.params.order.id == 7 and made.list[0].a == 1
    assert made.to_py() == {"params": {"order": {"id": 7}}, "list": [{"a": 1}]}
    assert isinstance(to_js({"x": 1}), JsMap)  # no dict_converter: a JS Map, as on Cloudflare
    assert to_js([1, "a"]) == [1, "a"] and to_js(3) == 3
    assert JSON.parse('{"a": {"b": 2}}').a.b == 2 and JSON.stringify({"a": [1, 2]}) == '{"a":[1,2]}'


def test_import_from_javascript_says_it_is_not_available_outside_cloudflare():
    with pytest.raises(ImportError, match=r"import_from_javascript\('cloudflare:sockets'\) is not available outside"):
        import_from_javascript("cloudflare:sockets")


def test_module_level_names_only_cloudflare_has_fail_with_the_reason(tmp_path):
    from wf import cloudflare

    cloudflare.install()
    import js
    import workers

    with pytest.raises(AttributeError, match="use self.env"):
        workers.env  # noqa: B018
    with pytest.raises(AttributeError, match=r"js\.WebSocketPair is a JavaScript global"):
        js.WebSocketPair  # noqa: B018


# ---------------------------------------------------------------- Request, Response, fetch


async def test_response_shapes_as_cloudflare_builds_them():
    text = Response("hello")
    assert (text.status, text.ok, text.headers["content-type"]) == (200, True, "text/plain;charset=UTF-8")
    made = Response.json({"a": [1]}, status=201, headers={"X-Id": "7"})
    assert (made.status, made.headers) == (201, {"x-id": "7", "content-type": "application/json"})
    assert (await made.json()) == {"a": [1]}  # on an instance, json() reads the body
    with pytest.raises(OSError, match="Body already used"):
        await made.text()
    old_style = Response.new("gone", {"status": 410, "statusText": "Gone"})
    assert (old_style.status, old_style.status_text, old_style.ok) == (410, "Gone", False)
    assert Response.redirect("/there").headers["location"] == "/there"
    with pytest.raises(TypeError, match="Unsupported type in Response: dict"):
        Response({"not": "a body"})


async def test_request_reads_as_cloudflares_python_sdk_gives_it():
    request = Request(
        "http://x/p?q=1", method="POST", headers={"Content-Type": "application/json"}, body='{"name": "Ada"}'
    )
    assert request.method == "POST" and request.headers.get("content-type") == "application/json"
    body = await request.json()
    assert body["name"] == body.name == "Ada"  # both forms Cloudflare's docs use


async def test_fetch_calls_out_with_httpx_and_answers_the_js_way(tmp_path):
    stub = StubService(tmp_path / "ledger.jsonl").start()
    try:
        charged = await fetch(
            stub.url + "/payments/charge",
            method="POST",
            headers={"content-type": "application/json"},
            body=json.dumps({"orderId": "o-1"}),
        )
        assert (charged.status, charged.ok, await charged.json()) == (200, True, {"transactionId": "TXN-o-1"})
        stub.fail_payments(1)
        failed = await fetch(Request(stub.url + "/payments/charge", method="POST", body="{}"))
        assert (failed.status, failed.ok) == (503, False)
        with pytest.raises(OSError, match="503"):
            failed.raise_for_status()
    finally:
        stub.stop()


async def test_the_default_templates_order_workflow_calls_real_services_through_fetch(tmp_path):
    from wf.cli import main

    try:
        main(["init", str(tmp_path / "shop")])
    except SystemExit as done:
        assert not done.code
    stub = StubService(tmp_path / "ledger.jsonl").start()
    stub.fail_payments(1)  # the payment step fails once, then is retried
    order = json.loads((tmp_path / "shop" / "order.json").read_text())
    try:
        async with from_config(tmp_path / "shop" / "wrangler.jsonc", vars={"API_BASE": stub.url}) as t:
            inst = await t.create("order-processing", order)
            await inst.wait_for_status("complete")
            assert (await inst.get_output())["transactionId"] == "TXN-o-1001"
            [payment] = [s for s in await inst.steps() if s["name"] == "process-payment"]
            assert payment["attempts"] == [False, True]
    finally:
        stub.stop()


async def test_asgi_fetch_runs_an_asgi_app_with_the_env_in_its_scope():
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def hello(request):
        return JSONResponse({"path": request.url.path, "greeting": request.scope["env"]["GREETING"]}, status_code=202)

    app = Starlette(routes=[Route("/hi/{name}", hello)])
    answer = await asgi_fetch(app, Request("http://localhost/hi/ada"), {"GREETING": "hey"})
    assert (answer.status, await answer.json()) == (202, {"path": "/hi/ada", "greeting": "hey"})


# ---------------------------------------------------------------- the bindings' argument forms


async def test_wf_bindings_take_cloudflares_options_object_and_the_worker_binding_refuses_a_map():
    async with from_config(EXAMPLES) as t:
        options = to_js({"id": "cf-1", "params": {"n": 1}}, dict_converter=Object.fromEntries)
        made = await t.env.PAYLOAD.create(options)  # wf's own binding (a workflow's self.env)
        assert made.id == "cf-1"
        await t.get("cf-1").wait_for_status("complete")
        assert (await t.get("cf-1").get_output())["payload"] == {"n": 1}

        waiter = await t.env.WAITER.create(id="w")
        await t.get("w").wait_for_status("waiting")
        await waiter.send_event(to_js({"type": "my-event-type", "payload": 5}, dict_converter=Object.fromEntries))
        await t.get("w").wait_for_status("complete")

        from wf.cloudflare.bindings import WorkerEnv

        worker_env = WorkerEnv(t.env)
        with pytest.raises(ValidationError, match="got a JS Map") as refused:
            await worker_env.PAYLOAD.create(to_js({"params": {"n": 2}}))
        assert "dict_converter=Object.fromEntries" in refused.value.hint
        with pytest.raises(ValidationError, match="unknown key 'param'"):
            await worker_env.PAYLOAD.create({"param": {}})
        with pytest.raises(ValidationError, match="takes an options object"):
            await worker_env.PAYLOAD.create("cf-2")
        plain = await worker_env.PAYLOAD.create({"id": "cf-3", "params": {"plain": True}})
        assert (plain.id, (await t.get("cf-3").status())["status"] in ("queued", "running", "complete")) == (
            "cf-3",
            True,
        )


# ---------------------------------------------------------------- the Worker half, when it is wrong


@pytest.mark.parametrize(
    "worker,message",
    [
        ("class Default:\n    async def fetch(self, request): ...\n", "not a WorkerEntrypoint subclass"),
        ("class Default(WorkerEntrypoint):\n    pass\n", "has no fetch method"),
        ("on_fetch = 3\n", "`on_fetch` in 'src/entry.py' is a int"),
    ],
)
def test_a_worker_that_cannot_serve_is_a_loader_error_naming_it(tmp_path, worker, message):
    from wf.http.app import find_user_app

    config = load_config(project(tmp_path, HELLO + textwrap.indent(worker, "    ")))
    with pytest.raises(LoaderError, match=message):
        find_user_app(config)


async def test_a_handler_that_returns_no_response_answers_500_with_the_reason(tmp_path, capsys):
    worker = "async def on_fetch(request, env):\n    return {'not': 'a Response'}\n"
    config = project(tmp_path, HELLO + textwrap.indent(worker, "    "))
    async with from_config(config) as t:
        answer = await t.fetch("/")
        assert answer.status == 500
        assert "src/entry.py:on_fetch returned dict, not a Response" in await answer.text()
    assert "returned dict" in capsys.readouterr().err


# ---------------------------------------------------------------- config as Cloudflare's Python projects have it


def test_keys_wrangler_accepts_and_wf_does_not_use_are_accepted_and_named(tmp_path):
    extra = {
        "kv_namespaces": [{"binding": "KV", "id": "x"}],
        "routes": ["example.com/*"],
        "$schema": "./node_modules/wrangler/config-schema.json",
        "env": {"staging": {"observability": {"enabled": True}}},
    }
    config = load_config(project(tmp_path, HELLO, extra))
    assert config.ignored == ("kv_namespaces", "routes")
    [warning] = config.ignored_warnings()
    assert "wf ignores kv_namespaces, routes" in warning and "Cloudflare only" in warning
    staging = load_config(tmp_path / "wrangler.jsonc", env="staging")
    assert staging.ignored == ("env.staging.observability",)
