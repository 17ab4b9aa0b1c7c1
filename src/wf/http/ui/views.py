"""What the templates show, shaped from the Client's data: status labels, which actions an
instance allows, and the step timeline (each step a bar on one time axis, its attempts, retry
waits, sleeps and waits as segments of it).

Steps are drawn from describe()'s fields by their `type`, through `STEP_VIEWS`: a kind the UI
does not know yet is still shown, with every field it has, rather than dropped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

REDACTED = "[REDACTED]"
LOG_SHOWN = 300  # event-log entries drawn on the instance page (the newest)

# status -> (label, tone); the tone picks the badge colour in ui.css
STATUS = {
    "queued": ("Queued", "neutral"),
    "running": ("Running", "info"),
    "waiting": ("Waiting", "wait"),
    "waitingForPause": ("Pausing", "warn"),
    "paused": ("Paused", "warn"),
    "complete": ("Complete", "ok"),
    "errored": ("Errored", "bad"),
    "terminated": ("Terminated", "bad"),
    "unknown": ("Unknown", "neutral"),
}
STEP_STATUS = {
    "applied": ("Applied", "ok"),
    "running": ("Running", "info"),
    "retrying": ("Retrying", "warn"),
    "waiting": ("Waiting", "wait"),
    "complete": ("Complete", "ok"),
    "errored": ("Errored", "bad"),
}
TERMINAL = ("complete", "errored", "terminated")
# which lifecycle actions make sense in which status (the server decides; this only greys buttons out)
ACTIONS = {
    "pause": ("queued", "running", "waiting"),
    "resume": ("paused", "waitingForPause"),
    "terminate": ("queued", "running", "waiting", "paused", "waitingForPause"),
    "restart": tuple(STATUS),
    "event": ("queued", "running", "waiting", "paused", "waitingForPause"),
    "delete": tuple(STATUS),
}
# describe()'s step type -> the `type` restart-from-step takes
RESTART_TYPE = {
    "step": "do",
    "sleep": "sleep",
    "waitForEvent": "waitForEvent",
    "waitForInstance": "waitForInstance",
    "patch": "patch",
}


def badge(status: str, table: dict = STATUS) -> dict:
    label, tone = table.get(status, (status, "neutral"))
    return {"status": status, "label": label, "tone": tone}


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def duration(seconds: float | None) -> str:
    """A short duration: 850 ms, 4.2 s, 3 min 5 s, 2 h 4 min, 3 d 2 h."""
    if seconds is None:
        return ""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def allowed(status: str) -> dict[str, bool]:
    return {action: status in statuses for action, statuses in ACTIONS.items()}


# -- the timeline ---------------------------------------------------------------------------


class Axis:
    """One time axis for the whole instance: from its start to its end (or now, while it runs)."""

    def __init__(self, t0: float, t1: float | None, now: float):
        self.t0, self.t1, self.now = t0, t1, now
        self.span = max((t1 if t1 is not None else now) - t0, 1e-3)

    def segment(self, kind: str, start: float | None, end: float | None, title: str) -> dict:
        """A bar from `start` to `end`; `end` None means still open: it grows with the clock."""
        start = self.t0 if start is None else start
        stop = end if end is not None else (self.t1 if self.t1 is not None else self.now)
        left = min(100.0, max(0.0, (start - self.t0) / self.span * 100))
        width = min(100.0 - left, max(0.0, (stop - start) / self.span * 100))
        return {"kind": kind, "s": start, "e": end, "left": round(left, 3), "width": round(width, 3), "title": title}


def sensitive(step: dict) -> bool:
    config = step.get("config")
    return isinstance(config, dict) and config.get("sensitive") == "output"


def _traceback(attempt: dict) -> str | None:
    """An attempt's traceback, where describe() carries one (issue 18 stores them)."""
    error = attempt.get("error")
    found = attempt.get("traceback") or (error.get("traceback") if isinstance(error, dict) else None)
    if isinstance(found, list):
        found = "".join(found)
    return found if isinstance(found, str) and found else None


def _attempt(a: dict, axis: Axis) -> tuple[dict, dict]:
    if a.get("end") is None:
        kind, title = "running", f"attempt {a['attempt']}: running"
    elif a.get("success"):
        kind, title = "ok", f"attempt {a['attempt']}: succeeded in {duration(a['end'] - a['start'])}"
    else:
        error = a.get("error") or {}
        kind, title = "failed", f"attempt {a['attempt']}: {error.get('name', 'Error')}: {error.get('message', '')}"
    view = {
        "n": a["attempt"],
        "start": a.get("start"),
        "end": a.get("end"),
        "kind": kind,
        "took": duration(a["end"] - a["start"]) if a.get("end") is not None and a.get("start") else None,
        "error": a.get("error"),
        "traceback": _traceback(a),
    }
    return view, axis.segment(kind, a.get("start"), a.get("end"), title)


def _do(step: dict, axis: Axis) -> dict:
    attempts: list[dict] = []
    segments: list[dict] = []
    for a in step.get("attempts") or []:
        view, seg = _attempt(a, axis)
        if attempts and attempts[-1]["kind"] == "failed" and attempts[-1]["end"] is not None:
            segments.append(axis.segment("retry", attempts[-1]["end"], a.get("start"), "waited to retry"))
        attempts.append(view)
        segments.append(seg)
    pending = None
    if step["status"] == "retrying" and step.get("next_retry"):
        last_end = attempts[-1]["end"] if attempts else step.get("start")
        segments.append(axis.segment("retry", last_end, None, "waiting to retry"))
        pending = {"label": f"attempt {len(attempts) + 1} at", "at": step["next_retry"]}
    return {"attempts": attempts, "segments": segments, "pending": pending, "has_output": True}


def _sleep(step: dict, axis: Axis) -> dict:
    wake = step.get("wake_at")
    title = "sleeping" if step.get("end") is None else f"slept {duration(step['end'] - step['start'])}"
    pending = {"label": "wakes at", "at": wake} if wake and step["status"] == "waiting" else None
    return {"segments": [axis.segment("sleep", step.get("start"), step.get("end"), title)], "pending": pending}


def _wait(step: dict, axis: Axis) -> dict:
    what = f"event '{step['event_type']}'" if step.get("event_type") else "any event"
    pending = None
    if step["status"] == "waiting":
        pending = {"label": f"waiting for {what}; times out at", "at": step.get("timeout_at")}
    title = f"waiting for {what}" if step.get("end") is None else f"waited for {what}"
    return {
        "segments": [axis.segment("wait", step.get("start"), step.get("end"), title)],
        "pending": pending,
        "facts": [("event type", step.get("event_type") or "any")],
        "has_output": True,
    }


def _wait_instance(step: dict, axis: Axis) -> dict:
    target = step.get("instance") or {}
    what = f"instance {target.get('id')} ({target.get('workflow')})"
    pending = None
    if step["status"] == "waiting":
        pending = {"label": f"waiting for {what} to end; times out at", "at": step.get("timeout_at")}
    title = f"waiting for {what}" if step.get("end") is None else f"waited for {what}"
    return {
        "segments": [axis.segment("wait", step.get("start"), step.get("end"), title)],
        "pending": pending,
        "facts": [("instance", target.get("id")), ("workflow", target.get("workflow"))],
        "has_output": True,
    }


def _patch(step: dict, axis: Axis) -> dict:
    title = f"patch {step['name']}: this instance took the new code"
    return {
        "segments": [axis.segment("patch", step.get("start"), step.get("end"), title)],
        "facts": [("took", "the new code")],
    }


def _rollback(step: dict, axis: Axis) -> dict:
    """A rollback handler's run (issue 17): drawn as a step, its successful attempts in the undo colour."""
    view = _do(step, axis)
    for seg in view["segments"]:
        seg["title"] = "rollback: " + seg["title"]
        if seg["kind"] == "ok":
            seg["kind"] = "rollback"
    undone = f"{step['name']}" + (f" #{step['count']}" if step["count"] > 1 else "")
    view["facts"] = [("undoes", f"step {undone}")]
    view["prefix"] = "↩ undo"
    return view


def _generic(step: dict, axis: Axis) -> dict:
    """A step kind this UI has no view for: one bar, and every field describe() gave."""
    known = {"name", "count", "type", "status", "start", "end"}
    facts = [(key, pretty(value)) for key, value in step.items() if key not in known]
    return {"segments": [axis.segment("other", step.get("start"), step.get("end"), step["type"])], "facts": facts}


# describe()'s step `type` -> its view. Rollback steps (issue 17) join the same axis, after the failure.
STEP_VIEWS: dict[str, Callable[[dict, Axis], dict]] = {
    "step": _do,
    "sleep": _sleep,
    "waitForEvent": _wait,
    "waitForInstance": _wait_instance,
    "patch": _patch,
    "rollback": _rollback,
}


def step_view(index: int, step: dict, axis: Axis, lines: list[dict]) -> dict:
    view = {
        "index": index,
        "name": step["name"],
        "count": step["count"],
        "type": step["type"],
        "restart_type": RESTART_TYPE.get(step["type"]),
        "badge": badge(step["status"], STEP_STATUS),
        "start": step.get("start"),
        "end": step.get("end"),
        "took": duration(step["end"] - step["start"]) if step.get("end") and step.get("start") else None,
        "config": step.get("config"),
        "error": step.get("error"),
        "lines": lines,
        "attempts": [],
        "facts": [],
        "pending": None,
        "has_output": False,
        "prefix": None,
    }
    view.update(STEP_VIEWS.get(step["type"], _generic)(step, axis))
    if view["has_output"] and step.get("status") == "complete":
        view["output"] = REDACTED if sensitive(step) else pretty(step.get("output"))
    return view


def _lines_of(step: dict, log: list) -> list[dict]:
    """Lines the step printed in its current run (a restart re-runs it later: older lines drop out)."""
    start, end = step.get("start") or 0.0, step.get("end")
    return [
        {"at": h.at, "stream": (h.data or {}).get("stream", ""), "line": (h.data or {}).get("line", "")}
        for h in log
        if h.type == "log"
        and h.step == step["name"]
        and h.n == step["count"]
        and h.at >= start - 1e-3
        and (end is None or h.at <= end + 1e-3)
    ]


def timeline(d: dict, log: list, now: float) -> dict:
    t0 = d.get("start") or d.get("created") or now
    t1 = d.get("end") if d["status"] in TERMINAL else None
    if d["status"] == "paused":  # a paused instance's axis stops at its last movement
        t1 = max([t0] + [x for s in d["steps"] for x in (s.get("start"), s.get("end")) if x])
    axis = Axis(t0, t1, now)
    steps = [step_view(i, s, axis, _lines_of(s, log)) for i, s in enumerate(d["steps"])]
    return {"t0": t0, "t1": t1, "steps": steps, "live": t1 is None}


# -- the instance page -------------------------------------------------------------------------


def _log_entry(h, redact: set[tuple[str, int]]) -> dict:
    data = dict(h.data or {})
    if "output" in data and (h.step, h.n) in redact:
        data["output"] = REDACTED
    detail = ""
    if h.type == "log":
        detail = data.get("line", "")
    elif isinstance(data.get("error"), dict):
        detail = f"{data['error'].get('name')}: {data['error'].get('message')}"
    elif data:
        for key, value in data.items():  # wakeAt, timeoutAt, nextRetryAt: epoch seconds -> readable
            if key.endswith("At") and isinstance(value, (int, float)):
                data[key] = iso(value)
        detail = json.dumps(data, ensure_ascii=False, default=str)
    return {"seq": h.seq, "at": h.at, "type": h.type, "step": h.step, "n": h.n, "detail": detail}


def instance_page(data: dict, now: float) -> dict:
    d, log = data["describe"], data["log"]
    redact = {(s["name"], s["count"]) for s in d["steps"] if sensitive(s)}
    entries = [_log_entry(h, redact) for h in log]
    loose = [e for e in entries if e["type"] == "log" and e["step"] is None]
    return {
        "d": d,
        "badge": badge(d["status"]),
        "allowed": allowed(d["status"]),
        "params": pretty(d.get("params")),
        "output": pretty(d["output"]) if d["status"] == "complete" else None,
        "error": d.get("error") if d["status"] in ("errored", "terminated") else None,
        "timeline": timeline(d, log, now),
        "events": data["events"],
        "pending_events": [e for e in data["events"] if not e["consumed"]],
        "log": entries[-LOG_SHOWN:],
        "log_total": len(entries),
        "loose_lines": loose[-50:],
        "took": duration((d["end"] or now) - d["start"]) if d.get("start") else None,
        "pending_type": next(
            (s.get("event_type") for s in d["steps"] if s["type"] == "waitForEvent" and s["status"] == "waiting"), None
        ),
    }
