"""`wf dev`'s HTTP side: wrangler's local explorer API for workflows, and the user's ASGI app.

    from wf.http import create_app           # the ASGI app, for tests or another server
    app = create_app(config)

In the user's app, the bindings are on each request: `request.scope["wf.env"]`, or
`request.state.env` in Starlette/FastAPI.
"""

from .app import BASE_PATHS, MAX_BODY, create_app, find_user_app

__all__ = ["create_app", "find_user_app", "BASE_PATHS", "MAX_BODY"]
