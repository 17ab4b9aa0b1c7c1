"""The web UI `wf dev` serves at `/cdn-cgi/explorer`, where wrangler users look for its Local Explorer.

pages.py     routes, templates, the live stream of each page
data.py      every read, through `wf.client.Client` (writes go through the explorer API)
views.py     what the templates show: labels, allowed actions, the step timeline
live.py      following the instance event log for all open pages
session.py   getting a browser in when WF_TOKEN is set
templates/, static/   Jinja2 templates, hand-written CSS and JS: no build step, nothing fetched
"""

from __future__ import annotations

from .data import UiData
from .pages import UI
from .session import UI_BASE, is_ui_path, login_redirect, session_ok


def build_ui(client, call, project: str) -> UI:
    """The UI on `client`, whose calls `call` runs on the store's thread."""
    return UI(UiData(client, call), project)


__all__ = ["UI", "UI_BASE", "build_ui", "is_ui_path", "login_redirect", "session_ok"]
