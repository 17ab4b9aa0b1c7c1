"""`wf dev`: run the runner and serve the HTTP API (and the project's ASGI `app`) in one process."""

from __future__ import annotations

import asyncio
import os

import typer

from .commands import LOG_FORMAT, QUIET
from .core import app, load
from .serve import announce_crons, log_to_stderr


@app.command()
def dev(
    port: int = typer.Option(8787, "--port", "-p", min=0, max=65535, help="Port to listen on."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on; beyond loopback only with WF_TOKEN set."
    ),
    reload: bool = typer.Option(
        False, "--reload", help="Reload on a change to a .py file, the config, .dev.vars or .env."
    ),
    concurrency: int = typer.Option(1000, "--concurrency", min=1, help="Most instances this runner executes at once."),
    log_format: str = LOG_FORMAT,
    quiet: bool = QUIET,
):
    """Run workflows and serve wrangler's local API and your app's routes. Stop with Ctrl-C.

    The API (for `wrangler workflows ... --local --port P`) is under /cdn-cgi/local/explorer/api;
    an ASGI `app` exported from main is served at /, with the bindings on each request
    (`request.state.env` or `request.scope["wf.env"]`). With WF_TOKEN set, every request must
    send `Authorization: Bearer $WF_TOKEN`.

    On stderr: one line per instance event, as `wf worker` logs them, and one per HTTP request
    (method, path, status, time); --log-format json for JSON lines, --quiet for neither.

    Example: wf dev --port 8787
    """
    from ..http.server import serve_dev
    from . import runlog

    runlog.install(log_format, quiet)
    config = load(warn=True)
    token = os.environ.get("WF_TOKEN") or None
    log_to_stderr()
    announce_crons()
    options = {"host": host, "port": port, "reload": reload, "token": token, "concurrency": concurrency}
    asyncio.run(serve_dev(config, say=runlog.say, **options))
