"""wf's stand-in for Pyodide's `js` module: the few JavaScript globals Python Workers use.

Object (fromEntries, for `to_js`), JSON, console, Date.now, Response (`Response.new(...)`),
Request and fetch. Any other JavaScript global exists only on Cloudflare.
"""

from wf.cloudflare.ffi import JSON, Date, Object, console
from wf.cloudflare.http import Request, Response, fetch

__all__ = ["Date", "JSON", "Object", "Request", "Response", "console", "fetch"]


def __getattr__(name: str):
    raise AttributeError(
        f"js.{name} is a JavaScript global that wf's stand-in for `js` does not provide outside Cloudflare "
        f"(it has {', '.join(__all__)})"
    )
