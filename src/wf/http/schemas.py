"""Shapes the explorer API's OpenAPI document (openapi.py) shares: ids, errors, and the results of
the two routes of Cloudflare's REST API served beside wrangler's local ones (batch create, and one
step's full output)."""

from __future__ import annotations

from ..runtime import steps as kinds
from .explorer import BATCH_DELETE_MAX

ID = {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[a-zA-Z0-9_][a-zA-Z0-9\\-_]*$"}
ANY: dict = {}
ERROR_OBJ = {
    "type": "object",
    "nullable": True,
    "required": ["name", "message"],
    "properties": {
        "name": {"type": "string"},
        "message": {"type": "string"},
        "stack": {"type": "string", "description": "a failed attempt's traceback (wf's addition, like a JS stack)"},
    },
}

ID_OBJ = {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}
BATCH_ENTRY = {
    "type": "object",
    "properties": {"id": ID, "params": ANY, "retention": ANY},
    "additionalProperties": False,
}
BATCH_CREATE = {
    "oneOf": [
        {"type": "array", "minItems": 1, "maxItems": BATCH_DELETE_MAX, "items": BATCH_ENTRY},
        {
            "type": "object",
            "required": ["count"],
            "properties": {
                "count": {"type": "integer", "minimum": 1, "maximum": BATCH_DELETE_MAX},
                "params": ANY,
                "retention": ANY,
            },
            "additionalProperties": False,
        },
        {
            "type": "object",
            "required": ["instances"],
            "properties": {
                "instances": {"type": "array", "minItems": 1, "maxItems": BATCH_DELETE_MAX, "items": BATCH_ENTRY}
            },
            "additionalProperties": False,
        },
    ]
}
BATCH_CREATED = {
    "type": "object",
    "required": ["created", "errors"],
    "properties": {
        "created": {"type": "array", "items": ID_OBJ},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "id", "code", "message"],
                "properties": {
                    "index": {"type": "integer"},
                    "id": {"type": "string"},
                    "code": {"type": "integer"},
                    "message": {"type": "string"},
                },
            },
        },
    },
}
STEP_TYPES = sorted({kinds.kind(n).display for n in kinds.names()} | set(kinds.names()))
STEP_OUTPUT = {
    "type": "object",
    "required": ["status", "error", "output"],
    "properties": {
        "status": {"type": "string", "enum": ["running", "waiting", "complete", "errored"]},
        "error": ERROR_OBJ,
        "output": {"nullable": True},
        "event_type": {"type": "string", "nullable": True, "description": "the type a waitForEvent step waits for"},
    },
}
