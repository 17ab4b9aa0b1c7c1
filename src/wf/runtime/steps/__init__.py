"""The step kinds, registered by name: every reader and the engine look a kind up here.

    from wf.runtime import steps

    steps.kind("sleep")                 # by stored name, as in a step row
    steps.by_type("step")               # by Cloudflare's display type, as in a describe() entry
    steps.event("sleep_started")        # (kind, EventSpec) of a log event
    steps.method("wait_for_event")      # what `step.wait_for_event(...)` calls

A lookup of something no kind declares raises `UnknownKindError` naming it and the known ones;
nothing falls through to a default. The built-in kinds (`do`, `sleep`, `waitForEvent`,
`waitForInstance`, `patch`) register below; `register` adds another (one module, a `StepKind`
subclass) without touching the engine or any reader: `step.<method>(...)` reaches it, and
describe, the explorer API, `wf tail` and `wf.testing` show it.
"""

from __future__ import annotations

from collections.abc import Callable

from ...errors import UnknownKindError, ValidationError
from ..events import InstanceEvent, instance_event
from .kind import EventSpec, StepKind, StepStatus, Wake

_kinds: dict[str, StepKind] = {}  # by stored name
_types: dict[str, StepKind] = {}  # by display type
_methods: dict[str, StepKind] = {}  # WorkflowStep method -> the kind providing it
_events: dict[str, tuple[StepKind, EventSpec]] = {}
_progress: tuple[str, ...] | None = None

_DECLARED = ("name", "display", "label", "methods", "Status", "final", "events")


def register(cls: type[StepKind]) -> type[StepKind]:
    """Add a step kind (usable as a class decorator). Its names must not clash with another kind's."""
    global _progress
    k = _checked(cls)
    _kinds[k.name] = k
    _types[k.display] = k
    for m in k.methods:
        _methods[m] = k
    for spec in k.events:
        _events[spec.name] = (k, spec)
    _progress = None
    return cls


def unregister(name: str) -> None:
    """Remove the kind stored as `name` (a test's toy kind, say)."""
    global _progress
    k = kind(name)
    del _kinds[k.name], _types[k.display]
    for m in k.methods:
        del _methods[m]
    for spec in k.events:
        del _events[spec.name]
    _progress = None


def _checked(cls: type[StepKind]) -> StepKind:
    """An instance of `cls`, once its declarations are complete and clash with no registered kind."""
    where = getattr(cls, "__name__", repr(cls))
    if not (isinstance(cls, type) and issubclass(cls, StepKind)):
        raise ValidationError(f"step kind {where} is not a StepKind subclass", "subclass wf.runtime.steps.StepKind")
    missing = [a for a in _DECLARED if not hasattr(cls, a)]
    if missing:
        raise ValidationError(f"step kind {where} does not declare {', '.join(missing)}", "see wf.runtime.steps.kind")
    k = cls()
    clashes = [f"name {k.name!r}"] if k.name in _kinds else []
    clashes += [f"type {k.display!r}"] if k.display in _types else []
    clashes += [f"method {m!r}" for m in k.methods if m in _methods]
    clashes += [f"event {s.name!r}" for s in k.events if s.name in _events or instance_event(s.name)]
    if clashes:
        raise ValidationError(f"step kind {where} reuses {', '.join(clashes)}", "pick names no other kind uses")
    bad = [m for m in k.methods if m.startswith("_") or not callable(getattr(k, m, None))]
    if bad:
        raise ValidationError(f"step kind {where} lists methods {bad} it does not define", "define each one")
    stray = set(k.final) - {s.value for s in k.Status}
    if stray:
        raise ValidationError(
            f"step kind {where} has final statuses {sorted(stray)} that are not in its Status",
            "final lists members of the kind's Status enum",
        )
    return k


# -- lookups ---------------------------------------------------------------------------------


def kind(name: str) -> StepKind:
    """The kind stored as `name` in a step row."""
    try:
        return _kinds[name]
    except (KeyError, TypeError):
        raise _unknown(f"step kind {name!r} is not registered", _kinds) from None


def by_type(display: str) -> StepKind:
    """The kind whose Cloudflare display type is `display` (the `type` of a describe() entry)."""
    try:
        return _types[display]
    except (KeyError, TypeError):
        raise _unknown(f"step type {display!r} is not the type of a registered step kind", _types) from None


def names() -> tuple[str, ...]:
    """The stored names of every registered kind (what `restart --type` accepts)."""
    return tuple(_kinds)


def method(name: str) -> Callable:
    """What `step.<name>(...)` calls, with the execution first; AttributeError for no such method."""
    k = _methods.get(name)
    if k is None:
        raise AttributeError(f"step has no method {name!r} (step kinds provide: {', '.join(_methods)})")
    return getattr(k, name)


def event(name: str) -> tuple[StepKind, EventSpec]:
    """The kind that writes log event `name`, and its declaration of it."""
    try:
        return _events[name]
    except (KeyError, TypeError):
        known = {**{e.value: e for e in InstanceEvent}, **_events}
        raise _unknown(
            f"log event {name!r} is declared neither by the instance nor by a registered step kind", known
        ) from None


def progress_events() -> tuple[str, ...]:
    """The log events after which a runner lost no longer counts against the instance (the
    poison-step guard counts the runners lost since the last of these)."""
    global _progress
    if _progress is None:
        _progress = tuple(
            [e.value for e in InstanceEvent if e.progress] + [n for n, (_, s) in _events.items() if s.progress]
        )
    return _progress


def restart_target(name: str, count: object, type: str) -> tuple[str, int, str]:
    """Where `wf instances restart --from-step` starts again: the `count`th step `name` of kind `type`."""
    if type not in names():
        known = ", ".join(names())
        raise ValidationError(f"step type {type!r} is not one of {known}", f"pass --type as one of {known}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValidationError(f"step count {count!r} must be a positive integer", "counts start at 1")
    return name, count, type


def _unknown(what: str, known) -> UnknownKindError:
    return UnknownKindError(
        f"{what} (known: {', '.join(known)})",
        "it was written by a newer wf or by a step kind this process has not registered: "
        "register that kind (import its module) before reading",
    )


from . import do, patch, rollback, sleep, wait_event, wait_instance  # noqa: E402  (the built-in kinds register themselves)

__all__ = [
    "EventSpec",
    "StepKind",
    "StepStatus",
    "Wake",
    "by_type",
    "do",
    "event",
    "kind",
    "method",
    "names",
    "patch",
    "progress_events",
    "register",
    "rollback",
    "sleep",
    "unregister",
    "wait_event",
    "wait_instance",
]
