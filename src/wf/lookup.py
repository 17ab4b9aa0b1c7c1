"""The shape every `env` has: names looked up as attributes, by key, with `in` and `get`."""

from __future__ import annotations

from typing import Any


class Values:
    """Names looked up in `_values`, as attributes, by key and with `get` (an env's shape)."""

    _values: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(
                f"env has no var or binding {name!r} (it has: {', '.join(sorted(self._values))})"
            ) from None

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name, default)
