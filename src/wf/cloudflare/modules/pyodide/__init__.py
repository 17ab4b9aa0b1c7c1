"""wf's stand-in for Pyodide's `pyodide` package: `pyodide.ffi` and `pyodide.http` (see `wf.cloudflare`)."""

__version__ = "0.0.0+wf"  # not a Pyodide: code that checks the version sees it is not running in one
