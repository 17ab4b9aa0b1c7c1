"""The claim window: how many busy instances a runner takes on before it claims more.

On PostgreSQL many workers share one queue. A worker that claimed every due instance it had room
for would take a whole burst while the others, woken by the same notification a moment later,
find nothing; so a worker claims up to its coordination's window (busy instances: ones that only
wait do not count) and claims again as they finish. Work that stays due while the window is full
(no other worker took it: long steps, a lone worker) widens the window, doubling each second up to
the runner's --concurrency; a claim that finds less than it could take sets it back.
"""

from __future__ import annotations

GROWTH_AFTER = 1.0  # seconds a full window waits before it widens


class ClaimWindow:
    __slots__ = ("base", "size", "limit", "full_since")

    def __init__(self, base: int, limit: int):
        self.base, self.size, self.limit = base, min(base, limit), limit
        self.full_since: float | None = None  # when the window last filled up

    def adapt(self, now: float, room: int, free: int, claimed: int) -> bool:
        """After a claim that could take `free` (the window's room; `room` the runner's) and took
        `claimed`. True: the window just widened, claim again."""
        if 0 < free and claimed < free:
            self.size, self.full_since = min(self.base, self.limit), None
        elif free <= 0 < room:
            if self.full_since is None:
                self.full_since = now
            elif now - self.full_since >= GROWTH_AFTER and self.size < self.limit:
                self.size, self.full_since = min(self.limit, 2 * self.size), now
                return True
        else:
            self.full_since = None
        return False
