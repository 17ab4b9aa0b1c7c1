"""The context a step function (or a rollback handler) may take as its one argument."""

from __future__ import annotations


class StepContext:
    """Passed to a step function that takes one argument: `.step.name`, `.step.count`, `.attempt`, `.config`."""

    __slots__ = ("step", "attempt", "config")

    class _Step:
        __slots__ = ("name", "count")

        def __init__(self, name, count):
            self.name, self.count = name, count

        def __getitem__(self, key):
            return getattr(self, key)

        def __repr__(self):
            return f"{{'name': {self.name!r}, 'count': {self.count}}}"

    def __init__(self, name: str, count: int, attempt: int, config: dict):
        self.step = self._Step(name, count)
        self.attempt = attempt
        self.config = config

    def __getitem__(self, key):
        return getattr(self, key)
