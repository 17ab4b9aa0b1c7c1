"""wf's stand-in for `pyodide.http`: `pyfetch` is wf's httpx-based `fetch`."""

from wf.cloudflare.http import Response as FetchResponse
from wf.cloudflare.http import fetch as pyfetch

__all__ = ["FetchResponse", "pyfetch"]
