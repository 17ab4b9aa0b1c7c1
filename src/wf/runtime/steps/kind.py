"""What a step kind is: the class each kind module subclasses, and the declarations it makes.

A kind declares, in its one module: its stored name and Cloudflare's display type; its
statuses (a `StepStatus` enum) and which of them end the step; the `WorkflowStep` methods that
expose it; what wakes it; the log events it writes (`EventSpec`, each with what a reader shows
for it); how it replays and how it runs. The defaults below describe a step that records an
output or an error; a kind overrides only what it shows differently.

Readers never switch on a kind's name: they look the kind up in the registry (`wf.runtime.steps`)
and ask it. A kind runs on the engine's `Execution`, which holds the shared plumbing (the step
key, the history, new rows, commits, the instance's state, waiting, the after-step checks).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum

from ...errors import NotFoundError, UnknownKindError, rebuild_error
from ...records import dataclass, field
from .. import codec
from ..events import LogEvent

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (which `wf status` would pay for)
if TYPE_CHECKING:
    from typing import Any, ClassVar, TypeGuard

    from ..store.base import HistoryRow, StepRow

REDACTED = "[REDACTED]"  # what every view shows of a step output marked `sensitive: "output"`


def is_sensitive(config: Any) -> bool:
    """Whether a step's stored config hides its output from every view (`sensitive: "output"`)."""
    return isinstance(config, dict) and config.get("sensitive") == "output"


class Wake(StrEnum):
    """What ends a step's wait."""

    TIMER = "timer"  # the time stored with the step: a retry, the end of a sleep, a wait's timeout
    EVENT = "event"  # an event sent to the instance
    INSTANCE = "instance"  # the end of another instance the step waits for


class StepStatus(StrEnum):
    """Base of a kind's statuses. Each member is `NAME = "stored value", "label"`: the value is what
    the store and `describe()` hold, the label what `wf instances describe` shows."""

    label: str

    def __new__(cls, value: str, label: str):
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label
        return member


@dataclass(frozen=True)
class EventSpec:
    """One log event a kind writes, declared once with what a reader makes of it."""

    name: str
    state: str | None = None  # the step's state `wf tail` shows after it (None: the one before)
    progress: bool = False  # the step moved forward: a runner lost before it no longer counts against the step
    ends: bool = False  # the step is over; the event's time is its end
    waits: bool = False  # the instance waits after it (on a timer or an event)
    shows: Mapping[str, str] = field(default_factory=dict)  # `wf tail` facts taken from the data: {fact: data key}
    expand: Callable[[HistoryRow], list[HistoryRow]] | None = None  # a compact row that stands for several


class StepKind:
    """One kind of step. Subclass it, fill in the declarations, and `wf.runtime.steps.register` it."""

    name: ClassVar[str]  # stored with the step, first part of its identity (kind, name, n)
    display: ClassVar[str]  # Cloudflare's step type, in describe() and the explorer API
    label: ClassVar[str]  # the Type `wf instances describe` shows
    icon: ClassVar[str] = "•"  # `wf tail` marks the step's name with it
    methods: ClassVar[tuple[str, ...]]  # WorkflowStep methods; each is a method here called as (execution, ...)
    Status: ClassVar[type[StepStatus]]
    final: ClassVar[frozenset[str]]  # statuses that end the step: replayed, never run again
    wakes: ClassVar[frozenset[Wake]] = frozenset()
    events: ClassVar[tuple[EventSpec, ...]]
    step_result: ClassVar[bool] = False  # wf.testing's wait_for_step_result waits for this kind's result
    times: ClassVar[tuple[str, ...]] = ("start", "end")  # describe() fields holding epoch seconds

    def __init__(self):
        self.specs = {spec.name: spec for spec in self.events}
        self.statuses = {status.value: status for status in self.Status}

    def __repr__(self) -> str:
        return f"<step kind {self.name!r}>"

    # -- replay ----------------------------------------------------------------------------

    def finished(self, rec: StepRow | None) -> TypeGuard[StepRow]:
        return rec is not None and rec.status in self.final

    def succeeded(self, status: str) -> bool:
        """Ended without an error (every final status but `errored`): its output is shown."""
        return status in self.final and status != "errored"

    def replay(self, rec: StepRow) -> Any:
        """What `run()` gets for a step that ended in an earlier run: its stored result, or its
        stored error raised again."""
        if rec.status == "errored":
            raise rebuild_error(rec.error or {})
        return self.result(codec.decode(rec.output))

    def result(self, value: Any) -> Any:
        """The stored output as `run()` receives it."""
        return value

    # -- the log ---------------------------------------------------------------------------

    def log(self, rec: StepRow, at: float, name: str, data: dict | None = None) -> LogEvent:
        """A log event about step `rec`; `name` must be one this kind declares."""
        if name not in self.specs:
            raise UnknownKindError(
                f"step kind {self.name!r} writes log event {name!r}, which it does not declare "
                f"(it declares: {', '.join(self.specs)})",
                f"add EventSpec({name!r}, ...) to {type(self).__name__}.events",
            )
        return LogEvent(at, name, rec.name, rec.n, data)

    # -- describe --------------------------------------------------------------------------

    def status(self, value: str) -> StepStatus:
        status = self.statuses.get(value)
        if status is None:
            raise UnknownKindError(
                f"step status {value!r} is not a status of step kind {self.name!r} "
                f"(its statuses: {', '.join(self.Status)})",
                "the instance was written by another version of wf or of this step kind",
            )
        return status

    def describe(self, s: StepRow, reveal: bool = False) -> dict:
        """The step as `Client.describe()` shows it; a sensitive output as `[REDACTED]` unless `reveal`."""
        d = {
            "name": s.name,
            "count": s.n,
            "type": self.display,
            "status": self.status(s.status).value,
            "start": s.started_at,
            "end": s.ended_at,
            **self.details(s),
        }
        if not reveal and "output" in d and d["output"] is not None and is_sensitive(d.get("config")):
            d["output"] = REDACTED
        return d

    def details(self, s: StepRow) -> dict:
        """The kind's own fields of `describe()`."""
        return {"output": codec.decode(s.output), "error": s.error}

    def cloudflare(self, d: dict, iso: Callable[[float | None], str | None]) -> dict:
        """The step in the explorer API, shaped as Cloudflare's, from its `describe()` entry."""
        done = d["status"] in self.final
        out = {
            "name": f"{d['name']}-{d['count']}",
            "start": iso(d["start"]),
            "end": iso(d["end"]) if done else None,
            "finished": done,
            "type": self.display,
            "error": d.get("error") if d["status"] == "errored" else None,
        }
        if "output" in d:
            out["output"] = d["output"] if self.succeeded(d["status"]) else None
        return out

    def full_output(self, d: dict, attempt: int | None = None) -> dict:
        """Cloudflare's "full step output" of a `describe()` entry: `{status, error, output}`, status
        one of running, waiting, complete, errored. `attempt` picks one attempt (kinds with attempts)."""
        if attempt is not None:
            raise NotFoundError(
                f"a {self.display} step has no attempts, so no attempt {attempt}", "leave the attempt out"
            )
        if d["status"] == "errored":
            return {"status": "errored", "error": d.get("error"), "output": None}
        if self.succeeded(d["status"]):
            return {"status": "complete", "error": None, "output": d.get("output")}
        return {"status": "waiting", "error": None, "output": None}

    def with_times(self, d: dict, iso: Callable[[float | None], str | None]) -> dict:
        """A `describe()` entry with its times (`times`) as `iso` writes them: the command line's JSON
        shows ISO 8601 where the Python API keeps epoch seconds."""
        return {k: iso(v) if k in self.times and isinstance(v, (int, float)) else v for k, v in d.items()}

    def human(self, d: dict) -> list[tuple[str, str, Any]]:
        """`wf instances describe`'s fields after the common ones, as (label, how, value); how is
        "when" (a time, shown with how far away), "json", "error" or "text"."""
        fields = []
        if self.succeeded(d["status"]) and "output" in d:
            fields.append(("Output", "json", d["output"]))
        if d.get("error"):
            fields.append(("Error", "error", d["error"]))
        return fields

    def timeline(self, d: dict) -> dict:
        """The comparable essence of a `describe()` entry, for wf.testing's `timeline`."""
        return {
            "type": d["type"],
            "name": d["name"],
            "count": d["count"],
            "status": d["status"],
            "attempts": [a["success"] for a in d.get("attempts", [])],
        }

    # -- wf tail ---------------------------------------------------------------------------

    def follow(self, view: Any, spec: EventSpec, at: float, data: dict) -> bool:
        """Update `wf tail`'s view of a step (`state`, `end`, `error`, `facts`) for one of this
        kind's events; True when the instance now waits on this step."""
        if spec.state is not None:
            view.state = spec.state
        if spec.ends:
            view.end = at
            if "error" in data:
                view.error = data["error"]
        for fact, key in spec.shows.items():
            view.facts[fact] = data.get(key)
        return spec.waits

    def detail(self, view: Any, now: float) -> str:
        """`wf tail`'s detail column for a step in `view.state`."""
        if view.state == "errored":
            return error_line(view.error).strip()
        return ""

    def attempt(self, view: Any) -> str:
        """`wf tail`'s attempt column."""
        return ""


def error_line(error: dict | None) -> str:
    if not error:
        return ""
    return f"  {error.get('name')}: {error.get('message')}"[:120]
