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


PREFIX_PATTERN = re.compile(r"^[a-zA-Z0-9\-_]*$")


def check_id_prefix(value: object) -> str:
    """The start of an instance id, as typed in a search box: the same characters as an id."""
    if not isinstance(value, str) or len(value) > 100 or not PREFIX_PATTERN.match(value):
        raise ValidationError(
            f"{value!r} cannot start an instance id",
            "ids use only letters, digits, '_' and '-': type the first characters of one",
        )
    return value
