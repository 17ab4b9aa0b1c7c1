"""Checks of names and ids shared by the engine and the client (kept free of heavy imports)."""

from __future__ import annotations

import re

from ..errors import ValidationError

ID_PATTERN = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9\-_]*$")


def check_instance_id(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 100 or not ID_PATTERN.match(value):
        raise ValidationError(
            f"instance id {value!r} is invalid", "use 1-100 letters, digits, '_' or '-', not starting with '-'"
        )
    return value


def check_event_type(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 100 or not ID_PATTERN.match(value):
        raise ValidationError(
            f"event type {value!r} is invalid", "use 1-100 letters, digits, '_' or '-', not starting with '-'"
        )
    return value
