"""Importing `main` and finding the workflow classes, and every way that can fail."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from pathlib import Path

import pytest

from wf.config import load_config
from wf.errors import LoaderError
from wf.loader import load_main, load_workflow_classes
from wf.runtime.entrypoint import WorkflowEntrypoint

ORDER_WORKFLOW = """
    from wf.runtime.entrypoint import WorkflowEntrypoint

    class OrderWorkflow(WorkflowEntrypoint):
        async def run(self, event, step):
            return {"project": PROJECT}

    PROJECT = %r
"""


@pytest.fixture(autouse=True)
def restore_import_state():
    """Projects imported by a test must not leak into the next one."""
    path, modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        if name.startswith(("_wf_project_", "shop", "workflows", "hello")):
            del sys.modules[name]


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def layout(tag: str) -> dict[str, str]:
    """`src/index.py` re-exporting a class from `src/workflows/order_processing.py` (no __init__.py)."""
    return {
        "src/index.py": "from .workflows.order_processing import OrderWorkflow\n",
        "src/workflows/order_processing.py": ORDER_WORKFLOW % tag,
    }


def make(root: Path, files: dict[str, str], **kwargs):
    workflow = {
        "name": "order-processing",
        "binding": "ORDERS",
        "class_name": kwargs.pop("class_name", "OrderWorkflow"),
    }
    main = kwargs.pop("main", "src/index.py")
    write(root, "wrangler.jsonc", json.dumps({"main": main, "workflows": [workflow]}))
    for rel, text in files.items():
        write(root, rel, text)
    return load_config(cwd=root, environ={})


def run(cls: type[WorkflowEntrypoint]):
    return asyncio.run(cls().run(None, None))


def load_error(tmp_path: Path, files: dict[str, str], **kwargs) -> LoaderError:
    config = make(tmp_path, files, **kwargs)
    with pytest.raises(LoaderError) as info:
        load_workflow_classes(config)
    return info.value


# ---------------------------------------------------------------- success


def test_file_main_with_relative_imports_from_a_namespace_package(tmp_path):
    classes = load_workflow_classes(make(tmp_path, layout("one")))
    assert list(classes) == ["order-processing"]
    cls = classes["order-processing"]
    assert cls.__name__ == "OrderWorkflow" and issubclass(cls, WorkflowEntrypoint)
    assert run(cls) == {"project": "one"}


def test_file_main_with_regular_packages_and_parent_relative_import(tmp_path):
    files = {
        "app/__init__.py": "",
        "app/main.py": "from .flows import OrderWorkflow\n",
        "app/flows/__init__.py": "from .orders import OrderWorkflow\n",
        "app/flows/orders.py": ORDER_WORKFLOW % "pkg",
    }
    classes = load_workflow_classes(make(tmp_path, files, main="app/main.py"))
    assert run(classes["order-processing"]) == {"project": "pkg"}


def test_file_main_at_the_project_root(tmp_path):
    classes = load_workflow_classes(make(tmp_path, {"index.py": ORDER_WORKFLOW % "root"}, main="index.py"))
    assert run(classes["order-processing"]) == {"project": "root"}


def test_dotted_module_main(tmp_path):
    files = {
        "shop/__init__.py": "",
        "shop/app.py": "from shop.flows import OrderWorkflow\n",
        "shop/flows.py": ORDER_WORKFLOW % "dotted",
    }
    classes = load_workflow_classes(make(tmp_path, files, main="shop.app"))
    assert run(classes["order-processing"]) == {"project": "dotted"}


def test_two_projects_with_the_same_layout_get_their_own_classes(tmp_path):
    first = load_workflow_classes(make(tmp_path / "one", layout("one")))["order-processing"]
    second = load_workflow_classes(make(tmp_path / "two", layout("two")))["order-processing"]
    assert first is not second
    assert (run(first), run(second)) == ({"project": "one"}, {"project": "two"})


def test_two_dotted_projects_with_the_same_package_name_get_their_own_classes(tmp_path):
    def files(tag):
        return {"shop/__init__.py": "", "shop/app.py": ORDER_WORKFLOW % tag}

    first = load_workflow_classes(make(tmp_path / "one", files("one"), main="shop.app"))["order-processing"]
    second = load_workflow_classes(make(tmp_path / "two", files("two"), main="shop.app"))["order-processing"]
    assert (run(first), run(second)) == ({"project": "one"}, {"project": "two"})


def test_loading_the_same_project_twice_gives_the_same_class(tmp_path):
    config = make(tmp_path, layout("same"))
    assert load_workflow_classes(config)["order-processing"] is load_workflow_classes(config)["order-processing"]


def test_load_main_returns_the_module_with_its_other_exports(tmp_path):
    files = {**layout("app"), "src/index.py": "from .workflows.order_processing import OrderWorkflow\napp = 'asgi'\n"}
    module = load_main(make(tmp_path, files))
    assert module.app == "asgi" and module.OrderWorkflow.__name__ == "OrderWorkflow"


def test_no_workflows_means_no_classes_and_no_import(tmp_path):
    write(tmp_path, "wrangler.jsonc", '{"main": "missing.py"}')
    assert load_workflow_classes(load_config(cwd=tmp_path, environ={})) == {}


# ---------------------------------------------------------------- import errors


def test_missing_main_file(tmp_path):
    err = load_error(tmp_path, {}, main="src/nope.py")
    assert "'src/nope.py'" in str(err) and "OrderWorkflow" in str(err)
    assert str(tmp_path / "src" / "nope.py") in str(err) and "does not exist" in str(err)


def test_syntax_error_names_file_and_line(tmp_path):
    files = {**layout("x"), "src/workflows/order_processing.py": "class OrderWorkflow(:\n    pass\n"}
    err = load_error(tmp_path, files)
    bad = tmp_path / "src" / "workflows" / "order_processing.py"
    assert f"syntax error at {bad}:1" in str(err)
    assert "'src/index.py'" in str(err) and "OrderWorkflow" in str(err)


def test_exception_during_import_names_type_message_and_place(tmp_path):
    files = {
        **layout("x"),
        "src/index.py": "from .workflows.order_processing import OrderWorkflow\nLIMIT = int('ten')\n",
    }
    err = load_error(tmp_path, files)
    assert "ValueError: invalid literal for int() with base 10: 'ten'" in str(err)
    assert f"{tmp_path / 'src' / 'index.py'}:2" in str(err)
    assert isinstance(err.__cause__, ValueError)


def test_absolute_imports_of_the_main_files_siblings_work_as_on_cloudflare(tmp_path):
    """Cloudflare runs `src/entry.py` with src/ on the path: `from workflows.x import Y` is its form."""
    files = {
        "src/index.py": "from workflows.order_processing import OrderWorkflow\nfrom hello import greet\n",
        "src/workflows/order_processing.py": ORDER_WORKFLOW % "absolute",
        "src/hello.py": "def greet():\n    return 'hi'\n",
    }
    assert run(load_workflow_classes(make(tmp_path, files))["order-processing"]) == {"project": "absolute"}


def test_two_projects_with_the_same_absolute_sibling_names_get_their_own_classes(tmp_path):
    def files(tag):
        return {
            "src/index.py": "from workflows.order_processing import OrderWorkflow\n",
            "src/workflows/order_processing.py": ORDER_WORKFLOW % tag,
        }

    first = load_workflow_classes(make(tmp_path / "one", files("one")))["order-processing"]
    second = load_workflow_classes(make(tmp_path / "two", files("two")))["order-processing"]
    assert (run(first), run(second)) == ({"project": "one"}, {"project": "two"})


def test_a_missing_module_of_the_project_is_named(tmp_path):
    files = {**layout("x"), "src/index.py": "from workflows.nothing_here import OrderWorkflow\n"}
    err = load_error(tmp_path, files)
    assert "No module named 'workflows.nothing_here'" in str(err)
    assert "'workflows.nothing_here' is not" in err.hint


def test_missing_third_party_module(tmp_path):
    err = load_error(tmp_path, {"src/index.py": "import surely_not_installed_pkg\n"})
    assert "No module named 'surely_not_installed_pkg'" in str(err)
    assert "install" in err.hint


def test_dotted_main_that_does_not_exist(tmp_path):
    err = load_error(tmp_path, {}, main="shop.nothing")
    assert "'shop.nothing'" in str(err) and "ModuleNotFoundError" in str(err)
    assert str(tmp_path.resolve()) in err.hint


# ---------------------------------------------------------------- class errors


def test_missing_class_lists_the_exported_workflow_classes(tmp_path):
    err = load_error(tmp_path, layout("x"), class_name="OrdersWorkflow")
    assert "no attribute 'OrdersWorkflow'" in str(err) and "'src/index.py'" in str(err)
    assert "'order-processing'" in str(err)
    assert err.hint == "it exports these WorkflowEntrypoint subclasses: OrderWorkflow"


def test_missing_class_when_module_exports_none(tmp_path):
    err = load_error(tmp_path, {"src/index.py": "x = 1\n"})
    assert "no attribute 'OrderWorkflow'" in str(err)
    assert "exports no WorkflowEntrypoint subclass" in err.hint


def test_attribute_that_is_not_a_class(tmp_path):
    err = load_error(tmp_path, {"src/index.py": "def OrderWorkflow():\n    pass\n"})
    assert "src/index.py:OrderWorkflow is a function, not a class" in str(err)


def test_class_that_is_not_a_workflow_entrypoint(tmp_path):
    err = load_error(tmp_path, {"src/index.py": "class OrderWorkflow:\n    async def run(self, e, s): pass\n"})
    assert "OrderWorkflow is not a subclass of WorkflowEntrypoint" in str(err)
    assert "class OrderWorkflow(WorkflowEntrypoint)" in err.hint


@pytest.mark.parametrize("body", ["pass", "def run(self, event, step):\n        return 1"])
def test_class_without_an_async_run(tmp_path, body):
    source = (
        f"from wf.runtime.entrypoint import WorkflowEntrypoint\nclass OrderWorkflow(WorkflowEntrypoint):\n    {body}\n"
    )
    err = load_error(tmp_path, {"src/index.py": source})
    assert "OrderWorkflow does not define `async def run(self, event, step)`" in str(err)
    assert "'order-processing'" in str(err)
