"""Cloudflare's Python Workers modules, on CPython: the file you deploy is the file wf runs.

A Python Worker on Cloudflare imports `workers` (WorkflowEntrypoint, WorkerEntrypoint, Response,
fetch, ...), `workers.workflows` (NonRetryableError), `pyodide.ffi` (to_js) and `js` (Object,
console, ...). Those modules exist inside Cloudflare's runtime only. When wf imports a
project's `main` it first puts `install()`'s import hook at the head of `sys.meta_path`, so those
names resolve to wf's stand-ins in `wf/cloudflare/modules/` (thin re-exports of `ffi.py`,
`http.py`, `worker.py` and `bindings.py` here), for the rest of the process.

Which wins when a package of the same name is installed: wf's stand-ins. The installed ones
cannot serve a Worker on CPython: `workers-runtime-sdk` (the `workers` module Cloudflare's docs
suggest installing for editor hints) and `pyodide-py` (`pyodide`) need Pyodide's JavaScript
bridge and fail to import or to work without it, and the other PyPI packages with those names
(`workers`, a 2011 thread pool; `js`, Fanstatic's namespace) are not what a Worker file means.
The hook is installed only by wf's loader (wf dev, wf worker, wf trigger, wf.testing), so plain
`python` and your editor still see the installed packages; and a module already imported
before wf loads the project (say a test file that imports `workers` first) stays as imported.
One consequence: a library that detects Pyodide by trying `import pyodide` (rather than
`sys.platform == "emscripten"`, the usual test, which urllib3 uses) would think it runs in
Pyodide inside a wf process; none of wf's dependencies does that.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from pathlib import Path

MODULES = Path(__file__).parent / "modules"
NAMES = frozenset({"workers", "pyodide", "js", "asgi"})  # their submodules follow from the package


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the top-level names of Cloudflare's runtime in wf's `modules/` folder, before sys.path."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in NAMES:
            return None
        return importlib.machinery.PathFinder.find_spec(fullname, [str(MODULES)])


def install() -> None:
    """Make `import workers` (and the rest of NAMES) give wf's stand-ins from now on; idempotent."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


def installed() -> bool:
    return any(isinstance(finder, _Finder) for finder in sys.meta_path)


__all__ = ["install", "installed", "NAMES", "MODULES"]
