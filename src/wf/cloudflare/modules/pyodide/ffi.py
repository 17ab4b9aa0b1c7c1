"""wf's stand-in for `pyodide.ffi`: `to_js` and friends, which CPython needs (almost) none of."""

from wf.cloudflare.ffi import (
    JsException,
    JsProxy,
    create_once_callable,
    create_proxy,
    destroy_proxies,
    jsnull,
    to_js,
)

__all__ = ["JsException", "JsProxy", "create_once_callable", "create_proxy", "destroy_proxies", "jsnull", "to_js"]
