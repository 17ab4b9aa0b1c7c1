"""The replay check: replay the current code of an instance against its stored history, with no side
effects, and say whether it matches, or where and how it diverges.

No step function runs. A step the history holds and that ended returns its stored result (or raises
its stored error), exactly as when a runner replays the instance. The replay stops at the step the
instance is at now (a sleep, a wait, a retry: it matches so far), or at the first step the history
does not hold. The code must ask for the recorded steps in the order they were recorded (by
position); a step's config is not part of its identity, so changing only a config never diverges.

A divergence names the step the history has next, `expected` (kind, name, count), what the code
asked for instead, `got` (None when `run()` ended first), and what running the code would do: a
committed step skipped, a new step run before a sleep or a wait the instance already began, steps
replayed out of order. Nothing is written: the check reads, and `run()` gets bindings that refuse
to create or touch instances (that belongs in steps).
"""

from __future__ import annotations

import asyncio
import inspect
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import UnknownKindError, error_info
from . import codec, steps
from .engine import WorkflowStep, check_step_name
from .entrypoint import WorkflowEvent
from .status import ACTIVE, Status
from .steps import rollback
from .steps.kind import StepKind
from .store.base import InstanceRow, StepRow

UNFINISHED: tuple[str, ...] = (*sorted(ACTIVE), Status.PAUSED.value)  # what `wf replay --check` looks at by default
TIMEOUT = 10.0  # seconds of replay an instance may take before the check gives up on it


@dataclass
class Verdict:
    """The check of one instance. `verdict`: matches, diverges, or error (the replay itself failed)."""

    id: str
    workflow: str
    status: str
    verdict: str = "matches"
    replayed: int = 0  # steps replayed from the history
    at: dict | None = None  # the step the instance is at now, where the replay stopped (None: past its history)
    expected: dict | None = None  # diverges: the step the history has next
    got: dict | None = None  # diverges: the step the code asked for instead (None: run() ended)
    consequence: str | None = None  # diverges: what running this code would do; error: what failed
    ends: dict | None = None  # run() ended during the replay: {"status": "complete"} or errored, with its error

    def to_dict(self) -> dict:
        return asdict(self)


class Binding:
    """A workflow binding (`self.env.ORDERS`) as `run()` sees it during the check: its name (a
    wait_for_instance may name it), and nothing that acts."""

    def __init__(self, workflow: str, binding: str):
        self.name, self._binding = workflow, binding

    def __getattr__(self, attr: str):
        if attr.startswith("_"):
            raise AttributeError(attr)
        raise Stop(
            verdict="error",
            consequence=f"run() used env.{self._binding}.{attr} outside a step, which the check does not do (no "
            f"side effects), and which every replay of the instance does again: move it into a step.do",
        )


# -- the check ---------------------------------------------------------------------------------


def check(
    items: Iterable[tuple[InstanceRow, list[StepRow]]],
    classes: dict[str, type],
    step_limits: dict[str, int],
    env: Any,
    timeout: float = TIMEOUT,
) -> list[Verdict]:
    """The verdict of each (instance, its steps) in `items` (of the workflows in `classes`)."""

    async def all_of() -> list[Verdict]:
        verdicts = []
        for row, rows in items:
            limit = step_limits.get(row.workflow, 10_000)
            verdicts.append(await replay(row, classes[row.workflow], rows, env, limit, timeout))
            await _drop_strays()
        return verdicts

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(all_of())
    with ThreadPoolExecutor(1, thread_name_prefix="wf-replay") as pool:  # called from async code: a loop of its own
        return pool.submit(asyncio.run, all_of()).result()


async def replay(
    row: InstanceRow, cls: type, rows: list[StepRow], env: Any, step_limit: int, timeout: float
) -> Verdict:
    """Replay `cls.run()` for instance `row` against its steps `rows`."""
    verdict = Verdict(row.id, row.workflow, row.status)
    try:
        return await _replay(Replay(row, step_limit, rows, env), verdict, cls, timeout)
    except UnknownKindError as exc:  # its history holds a kind this process does not know
        verdict.verdict, verdict.consequence = "error", str(exc)
        return verdict


async def _replay(x: Replay, verdict: Verdict, cls: type, timeout: float) -> Verdict:
    row, env = x.row, x.env
    trigger = row.trigger or {}
    event = WorkflowEvent(codec.decode(row.params), row.created_at, row.id, row.workflow, trigger.get("schedule"))
    try:
        async with asyncio.timeout(timeout) as limit:
            result = cls(None, env).run(event, WorkflowStep(x))  # type: ignore[arg-type]
            if inspect.isawaitable(result):
                await result
        ends: dict = {"status": "complete"}
    except Stop as stop:
        return x.verdict(verdict, stop.fields)
    except TimeoutError as exc:
        if not limit.expired():
            ends = {"status": "errored", "error": error_info(exc)}
        else:
            return x.verdict(
                verdict, {"verdict": "error", "consequence": f"run() was still replaying after {timeout:g} s"}
            )
    except Exception as exc:
        ends = {"status": "errored", "error": error_info(exc)}
        try:  # the rollback handlers' runs replay too (none runs here: each stops or is recorded)
            await rollback.unwind(x, exc)  # type: ignore[arg-type]
        except Stop as stop:
            return x.verdict(verdict, {"ends": ends, **stop.fields})
    expected = x.expected()
    if expected is None:
        return x.verdict(verdict, {"ends": ends})
    how = "complete" if ends["status"] == "complete" else f"errored ({ends['error']['name']})"
    return x.verdict(
        verdict,
        {
            "verdict": "diverges",
            "ends": ends,
            "expected": describe(expected),
            "consequence": f"run() would end {how} without {_named(expected)}, which "
            + ("it already began" if not _kind(expected).finished(expected) else "already ran and is committed")
            + (f", nor the {n - 1} recorded step(s) after it" if (n := x.left()) > 1 else ""),
        },
    )


async def _drop_strays() -> None:
    """Cancel what a replayed `run()` left running (branches of a gather the check stopped), so that
    they do not go on into the next instance's replay."""
    strays = asyncio.all_tasks() - {asyncio.current_task()}
    for task in strays:
        task.cancel()
    await asyncio.gather(*strays, return_exceptions=True)


class Stop(BaseException):
    """Unwinds `run()` where the check has seen enough (not an error of the workflow)."""

    def __init__(self, **fields: Any):
        super().__init__(fields.get("verdict", "matches"))
        self.fields = fields


class Replay:
    """What a step kind sees of an execution during the check: the history, reached in its order.
    `lookup` is where the check decides: a recorded, ended step replays; anything else stops."""

    mods = None  # no wf.testing mocks

    def __init__(self, row: InstanceRow, step_limit: int, rows: list[StepRow], env: Any):
        self.row, self.step_limit, self.env = row, step_limit, env
        self.seq, self.gen = row.seq, row.gen
        self.history = {s.key: s for s in rows}
        self.order = sorted(rows, key=lambda s: s.pos)
        self.reached: set[tuple[str, str, int]] = set()
        self.counters: dict[tuple[str, str], int] = defaultdict(int)
        self.scratch: dict[str, Any] = {}
        self.children: set[asyncio.Task] = set()  # decorated steps' tasks (the check drops strays itself)
        self.replayed = 0

    def expected(self) -> StepRow | None:
        """The first recorded step (by position) the replay has not reached."""
        return next((s for s in self.order if s.key not in self.reached), None)

    def left(self) -> int:
        return sum(1 for s in self.order if s.key not in self.reached)

    def lookup(self, kind: StepKind, name: str) -> tuple[tuple[str, str, int], StepRow | None]:
        check_step_name(name)
        self.counters[(kind.name, name)] += 1
        key = (kind.name, name, self.counters[(kind.name, name)])
        return key, self.reach(kind, key)

    def reach(self, kind: StepKind, key: tuple[str, str, int]) -> StepRow | None:
        """The step `key` as the history has it, when it is the next one recorded and ended; else the
        check stops (the instance is at it now, past its history, or it diverges)."""
        name = key[1]
        rec, expected = self.history.get(key), self.expected()
        if rec is not None and rec is expected:
            self.reached.add(key)
            if kind.finished(rec):
                self.replayed += 1
                return rec
            raise Stop(at=describe(rec))  # the instance is at this step now: all before it matched
        if rec is None and expected is None:
            raise Stop()  # past the history: the code goes on where the instance has not been yet
        assert expected is not None
        got = {"kind": kind.name, "type": kind.display, "name": name, "count": key[2]}
        raise Stop(
            verdict="diverges", expected=describe(expected), got=got, consequence=_consequence(expected, got, rec)
        )

    def history_ahead(self) -> bool:
        return self.expected() is not None

    def missing_patch(self, kind: StepKind, patch_id: str) -> None:
        expected = self.expected()
        raise Stop(
            verdict="diverges",
            expected=describe(expected) if expected is not None else None,
            got={"kind": kind.name, "type": kind.display, "name": patch_id, "count": 1},
            consequence=f"it went past patch {patch_id!r} the old way (before the patch), and this code removed "
            f"the old way (deprecate_patch): it would run the new code from here",
        )

    def verdict(self, verdict: Verdict, fields: dict) -> Verdict:
        for name, value in fields.items():
            setattr(verdict, name, value)
        verdict.replayed = self.replayed
        return verdict


# -- words -------------------------------------------------------------------------------------


def _kind(s: StepRow) -> StepKind:
    return steps.kind(s.kind)


def describe(s: StepRow) -> dict:
    return {"kind": s.kind, "type": _kind(s).display, "name": s.name, "count": s.n, "status": s.status}


def _named(step: StepRow | dict) -> str:
    kind, name, n = (
        (step.kind, step.name, step.n) if isinstance(step, StepRow) else (step["kind"], step["name"], step["count"])
    )
    return f"{steps.kind(kind).display} {name!r}" + (f" #{n}" if n > 1 else "")


def _consequence(expected: StepRow, got: dict, rec: StepRow | None) -> str:
    e, g = _named(expected), _named(got)
    if rec is not None:
        return f"{g} would be replayed before {e}, out of the order they ran in: {e} would be skipped, or reached late"
    if not _kind(expected).finished(expected):
        return f"a new {g} would run before {e}, which this instance already began"
    return f"a new {g} would run where {e} ran: {e} (committed) would be skipped, or replayed later out of order"


def detail(v: dict) -> str:
    """A verdict's particulars in words: where the replay stopped, or what diverges and what running
    the code would do."""
    if v["verdict"] == "matches":
        where = f"stopped at {_named(v['at'])}, where it is now" if v.get("at") else "past its history"
        return f"{v['replayed']} step(s) replayed, {where}"
    if v["verdict"] == "error":
        return str(v["consequence"])
    got = _named(v["got"]) if v.get("got") else "the end of run()"
    expected = _named(v["expected"]) if v.get("expected") else "nothing more"
    return f"the history has {expected} next, the code asks for {got}: {v['consequence']}"


def lines(v: dict) -> list[str]:
    """One verdict, for a runner's report."""
    return [f"{v['id']} ({v['workflow']}, {v['status']}): {v['verdict']}: {detail(v)}"]
