"""The web UI `wf dev` serves at `/cdn-cgi/explorer`, where wrangler users look for its Local Explorer.

    pages.py     routes, templates, the live stream of each page
    data.py      every read, through `wf.client.Client` (writes go through the explorer API)
    views.py     what the templates show: labels, allowed actions, the step timeline
    live.py      following the instance event log for all open pages
    session.py   getting a browser in when WF_TOKEN is set
    templates/, static/   Jinja2 templates, hand-written CSS and JS: no build step, nothing fetched

Importing this package is cheap (only session.py): the pages, and Jinja2 with them, load on the
UI's first request, so `wf dev` answers its API as fast as it did without a UI.
"""

from __future__ import annotations

from typing import Any

from .session import UI_BASE, is_ui_path, login_redirect, session_ok


class LazyUI:
    """The UI's ASGI app, built on its first request."""

    def __init__(self, client, call, project: str):
        self.client, self.call, self.project = client, call, project
        self.ui: Any = None

    async def __call__(self, scope, receive, send) -> None:
        if self.ui is None:
            from .data import UiData
            from .pages import UI

            self.ui = UI(UiData(self.client, self.call), self.project)
        await self.ui(scope, receive, send)

    async def close(self) -> None:
        if self.ui is not None:
            await self.ui.close()


def build_ui(client, call, project: str) -> LazyUI:
    """The UI on `client`, whose calls `call` runs on the store's thread."""
    return LazyUI(client, call, project)


__all__ = ["LazyUI", "UI_BASE", "build_ui", "is_ui_path", "login_redirect", "session_ok"]
