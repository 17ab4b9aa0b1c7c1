"""wf's stand-in for Cloudflare's `workers.workflows`: `NonRetryableError`, wf's own class."""

from wf.errors import NonRetryableError

__all__ = ["NonRetryableError"]
