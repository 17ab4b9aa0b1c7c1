"""wf's stand-ins for the modules of Cloudflare's Python runtime (`workers`, `pyodide`, `js`, `asgi`).

Not imported under this package's name: wf's import hook (`wf.cloudflare.install`) finds them here
under their own top-level names. Each is a thin re-export of `wf.cloudflare`.
"""
