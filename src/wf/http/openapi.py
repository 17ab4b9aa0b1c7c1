"""The OpenAPI 3.0 document of the explorer API (served at `<base>` and `<base>/openapi.json`).

It describes what `wf dev` answers, including every error status, so a fuzzer can check the
server against it (tests/test_http.py runs schemathesis over it).
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from ..runtime import steps as kinds
from .explorer import ACTIONS, BATCH_DELETE_MAX, COUNTED, LIST_STATUSES, PER_PAGE_MAX
from .schemas import ANY, BATCH_CREATE, BATCH_CREATED, ERROR_OBJ, ID, ID_OBJ, STEP_OUTPUT, STEP_TYPES

TS = {"type": "string", "nullable": True, "description": "ISO 8601 time, UTC"}
MESSAGE = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
}


_BINDINGS = {"type": "array", "items": {"type": "object"}}
LOCAL_WORKER = {
    "type": "object",
    "required": ["isSelf", "name", "bindings"],
    "properties": {
        "isSelf": {"type": "boolean"},
        "name": {"type": "string"},
        "bindings": {
            "type": "object",
            "properties": {
                "kv": _BINDINGS,
                "d1": _BINDINGS,
                "r2": _BINDINGS,
                "do": _BINDINGS,
                "workflows": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["id", "bindingName", "className", "scriptName"],
                        "properties": {
                            "id": {"type": "string"},
                            "bindingName": {"type": "string"},
                            "className": {"type": "string"},
                            "scriptName": {"type": "string"},
                        },
                    },
                },
            },
        },
    },
}


def _ok(result: dict, info: dict | None = None) -> dict:
    props = {
        "success": {"type": "boolean", "enum": [True]},
        "errors": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}},
        "messages": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}},
        "result": result,
    }
    if info is not None:
        props["result_info"] = info
    return {"type": "object", "required": ["success", "errors", "messages", "result"], "properties": props}


def _resp(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERR = {"$ref": "#/components/responses/Error"}
ERRORS = {"400": ERR, "401": ERR, "404": ERR, "413": ERR}
NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "Workflow name",
    "schema": {"type": "string", "minLength": 1},
}
INSTANCE = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "Instance id",
    "schema": {"type": "string", "minLength": 1},
}
SUCCESS = _ok({"type": "object", "required": ["success"], "properties": {"success": {"type": "boolean"}}})

WORKFLOW: dict[str, Any] = {
    "type": "object",
    "required": ["name", "class_name", "script_name"],
    "properties": {"name": {"type": "string"}, "class_name": {"type": "string"}, "script_name": {"type": "string"}},
}
COUNTS: dict[str, Any] = {
    "type": "object",
    "required": list(COUNTED),
    "properties": {s: {"type": "integer", "minimum": 0} for s in COUNTED},
}
ATTEMPT = {
    "type": "object",
    "required": ["start", "end", "success", "error"],
    "properties": {"start": TS, "end": TS, "success": {"type": "boolean", "nullable": True}, "error": ERROR_OBJ},
}
STEP_DO: dict[str, Any] = {
    "type": "object",
    "required": ["name", "start", "end", "success", "type", "config", "attempts"],
    "properties": {
        "name": {"type": "string"},
        "start": TS,
        "end": TS,
        "success": {"type": "boolean", "nullable": True},
        "type": {"type": "string", "enum": ["step"]},
        "output": ANY,
        "config": {
            "type": "object",
            "required": ["retries", "timeout"],
            "properties": {"retries": {"type": "object"}, "timeout": ANY},
        },
        "attempts": {"type": "array", "items": ATTEMPT},
    },
}
STEP_SLEEP: dict[str, Any] = {
    "type": "object",
    "required": ["name", "start", "end", "finished", "type", "error"],
    "properties": {
        "name": {"type": "string"},
        "start": TS,
        "end": TS,
        "finished": {"type": "boolean"},
        "type": {"type": "string", "enum": ["sleep"]},
        "error": ERROR_OBJ,
    },
}
STEP_WAIT: dict[str, Any] = {
    "type": "object",
    "required": ["name", "start", "end", "finished", "type", "error", "output"],
    "properties": {
        "name": {"type": "string"},
        "start": TS,
        "end": TS,
        "finished": {"type": "boolean"},
        "type": {"type": "string", "enum": ["waitForEvent"]},
        "error": ERROR_OBJ,
        "output": {"type": "object", "nullable": True},
    },
}
STEP_WAIT_INSTANCE = {  # wf's own kind (step.wait_for_instance): its output is the awaited instance's status()
    "type": "object",
    "required": ["name", "start", "end", "finished", "type", "error", "output", "instance"],
    "properties": {
        **STEP_WAIT["properties"],
        "type": {"type": "string", "enum": ["waitForInstance"]},
        "instance": {
            "type": "object",
            "required": ["workflow", "id"],
            "properties": {"workflow": {"type": "string"}, "id": {"type": "string"}},
        },
    },
}
STEP_PATCH = {  # wf's own kind (step.patched): the mark that this instance took a patch's new code
    "type": "object",
    "required": ["name", "start", "end", "finished", "type", "error"],
    "properties": {**STEP_SLEEP["properties"], "type": {"type": "string", "enum": ["patch"]}},
}
STEP_ROLLBACK = {  # a rollback handler's run (issue 17): a step of its own type, named as the step it undoes
    **STEP_DO,
    "properties": {**STEP_DO["properties"], "type": {"type": "string", "enum": ["rollback"]}},
}
ROLLBACK = {  # present once rollback handlers ran: how the rollback ended
    "type": "object",
    "required": ["outcome", "error"],
    "properties": {"outcome": {"type": "string", "enum": ["complete", "failed"]}, "error": ERROR_OBJ},
}
DETAILS = {
    "type": "object",
    "required": ["status", "params", "queued", "start", "end", "output", "error", "steps", "step_count"],
    "properties": {
        "status": {"type": "string", "enum": list(LIST_STATUSES) + ["unknown"]},
        "params": ANY,
        "queued": TS,
        "start": TS,
        "end": TS,
        "output": ANY,
        "error": ERROR_OBJ,
        "trigger": {"type": "object", "properties": {"source": {"type": "string"}}},
        "steps": {
            "type": "array",
            "items": {"anyOf": [STEP_DO, STEP_SLEEP, STEP_WAIT, STEP_WAIT_INSTANCE, STEP_PATCH, STEP_ROLLBACK]},
        },
        "step_count": {"type": "integer", "minimum": 0},
        "rollback": ROLLBACK,
    },
}

_DOC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "wf local explorer API (workflows)",
        "version": "1.0.0",
        "description": "The workflows part of wrangler's local explorer API, served by `wf dev` under "
        "/cdn-cgi/explorer/api and /cdn-cgi/local/explorer/api. Every answer is the "
        "Cloudflare envelope {success, errors, messages, result, result_info?}.",
    },
    "servers": [{"url": "/cdn-cgi/local/explorer/api"}, {"url": "/cdn-cgi/explorer/api"}],
    "components": {
        "schemas": {
            "Message": MESSAGE,
            "Error": {
                "type": "object",
                "required": ["success", "errors", "messages", "result"],
                "properties": {
                    "success": {"type": "boolean", "enum": [False]},
                    "errors": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Message"}},
                    "messages": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}},
                    "result": ANY,
                },
            },
        },
        "responses": {
            "Error": _resp(
                "The request was refused; errors[0].message says why", {"$ref": "#/components/schemas/Error"}
            )
        },
        "securitySchemes": {
            "token": {
                "type": "http",
                "scheme": "bearer",
                "description": "Needed only when wf dev was started with WF_TOKEN",
            }
        },
    },
    "paths": {
        "/local/workers": {
            "get": {
                "operationId": "listLocalWorkers",
                "summary": "The project as wrangler's Local Explorer UI sees it: one worker, its workflow bindings",
                "responses": {
                    "200": _resp("The workers", _ok({"type": "array", "items": LOCAL_WORKER})),
                    "401": ERR,
                    "413": ERR,
                },
            }
        },
        "/workflows": {
            "get": {
                "operationId": "listWorkflows",
                "summary": "List the workflows the config declares",
                "responses": {
                    "200": _resp(
                        "The workflows",
                        _ok(
                            {"type": "array", "items": WORKFLOW},
                            {"type": "object", "properties": {"count": {"type": "integer"}}},
                        ),
                    ),
                    "401": ERR,
                    "413": ERR,
                },
            }
        },
        "/workflows/{name}": {
            "parameters": [NAME],
            "get": {
                "operationId": "getWorkflow",
                "summary": "A workflow and its instance status counts",
                "responses": {
                    "200": _resp(
                        "The workflow",
                        _ok(
                            {
                                **WORKFLOW,
                                "required": WORKFLOW["required"] + ["instances"],
                                "properties": {**WORKFLOW["properties"], "instances": COUNTS},
                            }
                        ),
                    ),
                    **ERRORS,
                },
            },
            "delete": {
                "operationId": "deleteWorkflow",
                "summary": "Delete every instance of a workflow",
                "responses": {"200": _resp("Deleted", _ok({"type": "object"})), **ERRORS},
            },
        },
        "/workflows/{name}/instances": {
            "parameters": [NAME],
            "get": {
                "operationId": "listInstances",
                "summary": "Instances, newest first",
                "parameters": [
                    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1_000_000}},
                    {
                        "name": "per_page",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": PER_PAGE_MAX},
                    },
                    {"name": "status", "in": "query", "schema": {"type": "string", "enum": list(LIST_STATUSES)}},
                ],
                "responses": {
                    "200": _resp(
                        "A page of instances",
                        _ok(
                            {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["id"],
                                    "properties": {
                                        "id": {"type": "string"},
                                        "status": {"type": "string"},
                                        "created_on": {"type": "string"},
                                    },
                                },
                            },
                            {
                                "type": "object",
                                "required": ["page", "per_page", "total_count", "total_pages"],
                                "properties": {
                                    "page": {"type": "integer"},
                                    "per_page": {"type": "integer"},
                                    "total_count": {"type": "integer"},
                                    "total_pages": {"type": "integer"},
                                    "status_counts": COUNTS,
                                },
                            },
                        ),
                    ),
                    **ERRORS,
                },
            },
            "post": {
                "operationId": "createInstance",
                "summary": "Create an instance",
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {"type": "object", "properties": {"id": {**ID, "nullable": True}, "params": ANY}}
                        }
                    },
                },
                "responses": {
                    "200": _resp(
                        "Created", _ok({"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}})
                    ),
                    "409": ERR,
                    **ERRORS,
                },
            },
        },
        "/workflows/{name}/instances/batch": {
            "parameters": [NAME],
            "post": {
                "operationId": "batchCreateInstances",
                "summary": "Create up to 100 instances: a list (existing ids skipped), {count, params} or {instances}",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": BATCH_CREATE}},
                },
                "responses": {
                    "200": _resp(
                        "The instances created ([{id}] for a list; {created, errors} for {count} or {instances})",
                        _ok({"oneOf": [{"type": "array", "items": ID_OBJ}, BATCH_CREATED]}),
                    ),
                    **ERRORS,
                },
            },
        },
        "/workflows/{name}/instances/batch/delete": {
            "parameters": [NAME],
            "post": {
                "operationId": "batchDeleteInstances",
                "summary": "Delete up to 100 instances",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["instances"],
                                "properties": {
                                    "instances": {
                                        "type": "array",
                                        "minItems": 1,
                                        "maxItems": BATCH_DELETE_MAX,
                                        "items": {"type": "string"},
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _resp(
                        "What was deleted, and why the rest was not",
                        _ok(
                            {
                                "type": "object",
                                "required": ["deleted", "errors"],
                                "properties": {
                                    "deleted": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["id"],
                                            "properties": {"id": {"type": "string"}},
                                        },
                                    },
                                    "errors": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["id", "code", "message"],
                                            "properties": {
                                                "id": {"type": "string"},
                                                "code": {"type": "integer"},
                                                "message": {"type": "string"},
                                            },
                                        },
                                    },
                                },
                            }
                        ),
                    ),
                    **ERRORS,
                },
            },
        },
        "/workflows/{name}/instances/{id}/step": {
            "parameters": [NAME, INSTANCE],
            "get": {
                "operationId": "getInstanceStepOutput",
                "summary": "One step's full output (Cloudflare's get full step output)",
                "parameters": [
                    {
                        "name": "name",
                        "in": "query",
                        "required": True,
                        "description": "The step's name with its counter, as the instance lists it: charge-1",
                        "schema": {"type": "string", "minLength": 1},
                    },
                    {
                        "name": "type",
                        "in": "query",
                        "required": False,
                        "description": "Step type (default step)",
                        "schema": {"type": "string", "enum": STEP_TYPES},
                    },
                    {
                        "name": "attempt",
                        "in": "query",
                        "required": False,
                        "description": "One attempt of a step.do",
                        "schema": {"type": "integer", "minimum": 1},
                    },
                ],
                "responses": {"200": _resp("The step's status, error and output", _ok(STEP_OUTPUT)), **ERRORS},
            },
        },
        "/workflows/{name}/instances/{id}": {
            "parameters": [NAME, INSTANCE],
            "get": {
                "operationId": "getInstance",
                "summary": "An instance's status and step timeline",
                "responses": {"200": _resp("The instance", _ok(DETAILS)), **ERRORS},
            },
            "delete": {
                "operationId": "deleteInstance",
                "summary": "Delete an instance and its state",
                "responses": {"200": _resp("Deleted", SUCCESS), **ERRORS},
            },
        },
        "/workflows/{name}/instances/{id}/status": {
            "parameters": [NAME, INSTANCE],
            "patch": {
                "operationId": "changeInstanceStatus",
                "summary": "Pause, resume, restart or terminate",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "action": {"type": "string", "enum": list(ACTIONS)},
                                    "status": {
                                        "type": "string",
                                        "enum": list(ACTIONS),
                                        "description": "newer wrangler's name for `action`",
                                    },
                                    "from": {
                                        "type": "object",
                                        "required": ["name"],
                                        "properties": {
                                            "name": {"type": "string", "minLength": 1},
                                            "count": {"type": "integer", "minimum": 1},
                                            "type": {"type": "string", "enum": list(kinds.names())},
                                        },
                                    },
                                    "rollback": {
                                        "type": "boolean",
                                        "description": "terminate only: run the instance's rollback handlers "
                                        "(newest step first) before it ends terminated",
                                    },
                                },
                                "anyOf": [{"required": ["action"]}, {"required": ["status"]}],
                            }
                        }
                    },
                },
                "responses": {"200": _resp("Done", SUCCESS), "409": ERR, **ERRORS},
            },
        },
        "/workflows/{name}/instances/{id}/events/{type}": {
            "parameters": [
                NAME,
                INSTANCE,
                {"name": "type", "in": "path", "required": True, "description": "Event type", "schema": ID},
            ],
            "post": {
                "operationId": "sendEvent",
                "summary": "Deliver an event; the body is its payload",
                "requestBody": {"required": False, "content": {"application/json": {"schema": ANY}}},
                "responses": {"200": _resp("Delivered", SUCCESS), "409": ERR, **ERRORS},
            },
        },
    },
}


def document(workflows: list[str] | None = None) -> dict:
    """The document; with `workflows`, the `name` parameter lists the declared workflow names."""
    doc = deepcopy(_DOC)
    if workflows:
        for item in doc["paths"].values():
            for param in item.get("parameters", []):
                if param["name"] == "name":
                    param["schema"] = {"type": "string", "enum": list(workflows)}
    return doc
