"""The pytest plugin of `wf.testing` (entry point `wf`, loaded when wf is installed).

    async def test_order(wf_test):             # the project's wrangler config, found upward from the test file
        inst = await wf_test.create("order-processing", {"orderId": "o-1"})
        await inst.wait_for_status("complete")

    async def test_classes(wf_test_factory):   # any number of harnesses, on classes or configs
        t = wf_test_factory({"my-workflow": MyWorkflow})

A harness starts inside the test's event loop on first use and is closed after the test. The
plugin needs no async plugin: an `async def` test that no other plugin runs (pytest-asyncio in
its default strict mode without `@pytest.mark.asyncio`, or no async plugin at all) is run here
with `asyncio.run`. Tests that pytest-asyncio (auto mode, or marked), anyio or trio run are
left to them.
"""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import pytest

from .config import load_config
from .testing import WorkflowTest


def pytest_addoption(parser) -> None:
    parser.addini(
        "wf_config",
        "the wrangler config the wf_test fixture loads, relative to the rootdir "
        "(default: the nearest one above the test file)",
        default="",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Run an `async def` test nobody else runs; None leaves the test to pytest and its plugins.
    (pytest-asyncio hands pytest a synchronous wrapper for the tests it runs, so those are not
    coroutine functions by the time they get here.)"""
    test = pyfuncitem.obj
    if not inspect.iscoroutinefunction(test) or any(pyfuncitem.get_closest_marker(m) for m in ("anyio", "trio")):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(test(**kwargs))
    return True


@pytest.fixture
def wf_test_factory():
    """`wf_test_factory(workflows=None, **options)` -> a `wf.testing.WorkflowTest`, closed after the test."""
    made: list[WorkflowTest] = []

    def make(workflows=None, **options) -> WorkflowTest:
        made.append(WorkflowTest(workflows, **options))
        return made[-1]

    yield make
    for t in reversed(made):
        t.close_sync()


@pytest.fixture
def wf_test(request, wf_test_factory) -> WorkflowTest:
    """A `wf.testing.WorkflowTest` of this project's workflows on a temporary store and a fake clock."""
    ini = request.config.getini("wf_config")
    if ini:
        config = load_config(Path(request.config.rootpath) / ini)
    else:
        config = load_config(None, cwd=Path(request.path).parent)
    return wf_test_factory(config=config)
