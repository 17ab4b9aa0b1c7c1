"""One retry policy for every loop that waits for something outside wf to come back.

A `Backoff` yields growing pauses (`first`, then times `factor`, at most `most`, with optional
jitter); `call` runs a function until it succeeds, a failure is not worth retrying, or the
attempts run out. Used by the stores (busy SQLite files, PostgreSQL deadlocks), the runner's
claim loop (a store outage) and the PostgreSQL LISTEN connection.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from ..records import dataclass

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (which `wf status` would pay for)
if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    first: float = 0.01
    factor: float = 2.0
    most: float = 5.0
    jitter: float = 0.0  # each pause is scaled by a random factor in [1 - jitter, 1]
    attempts: int | None = None  # None: forever

    def delays(self) -> Iterator[float]:
        """The pauses between attempts (one fewer than `attempts`)."""
        pause, n = self.first, 1
        while self.attempts is None or n < self.attempts:
            yield pause * (1 - _random().uniform(0, self.jitter)) if self.jitter else pause
            pause, n = min(pause * self.factor, self.most), n + 1

    def call(
        self,
        fn: Callable[[], T],
        retry_if: Callable[[BaseException], bool],
        sleep: Callable[[float], None] = time.sleep,
    ) -> T:
        """`fn()`, again after each pause while it raises an error `retry_if` accepts."""
        delays = self.delays()
        while True:
            try:
                return fn()
            except Exception as exc:
                pause = next(delays, None) if retry_if(exc) else None
                if pause is None:
                    raise
            sleep(pause)


def _random():
    """The random module, imported on the first jittered pause (not at every start of `wf`)."""
    import random

    return random
