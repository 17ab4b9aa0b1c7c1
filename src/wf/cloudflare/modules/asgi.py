"""wf's stand-in for Cloudflare's `asgi` module: `await asgi.fetch(app, request, self.env)`."""

from wf.cloudflare.asgi import entrypoint, fetch

__all__ = ["entrypoint", "fetch"]
