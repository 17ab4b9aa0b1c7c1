"""Wiring: a runner for a project's config, with `self.env` bindings that share its store, and
the replay check a runner passes before it executes code its instances have not been checked against."""

from __future__ import annotations

import asyncio
from typing import Any

from .client import AsyncClient, Client
from .config import Config
from .errors import StoreError, UnknownKindError, WfError
from .loader import load_workflow_classes
from .runtime.runner import Registered, Runner


def build_runner(
    config: Config, classes: dict[str, type] | None = None, *, crons: bool = True, **options: Any
) -> Runner:
    """A runner for every workflow the config declares (classes imported from `main` unless given).
    `crons=False`: it fires no schedules (a runner started only to finish one instance)."""
    classes = classes if classes is not None else load_workflow_classes(config)
    registered = {
        w.name: Registered(
            classes[w.name],
            w.step_limit,
            w.concurrency_limit,
            w.schedules if crons else (),
            (w.success_retention, w.error_retention),
        )
        for w in config.workflows
    }
    runner = Runner(registered, config.state_dir, settings=config.settings, store_url=config.store_url, **options)
    runner.env = AsyncClient(config, clock=runner.clock, astore=runner.astore).env()
    return runner


async def run_until_done(runner: Runner, seq: int, on_tick=None, poll: float = 0.05) -> str:
    """Run `runner` until instance `seq` is complete, errored or terminated; return that status."""
    await runner.start()
    try:
        while True:
            row = await runner.astore.call(runner.store_ops.get_by_seq, seq)
            if row is None:
                return "unknown"
            if on_tick is not None:
                on_tick(row)
            if row.status in ("complete", "errored", "terminated"):
                return row.status
            await asyncio.sleep(poll)
    finally:
        await runner.stop()


HOLD_HINT = "fix the code (keep the old way behind `if await step.patched(...)`), then `wf resume ID`"


async def check_before_running(config: Config, runner: Runner, say) -> list[dict]:
    """`check_code` for the classes `runner` is about to execute, off the event loop."""
    classes = {name: reg.cls for name, reg in runner.workflows.items()}
    try:
        return await asyncio.to_thread(check_code, config, classes, say)
    except StoreError as exc:
        if not isinstance(exc, UnknownKindError):
            raise  # the store cannot be used: the runner could not start either, say it once
        say(f"WARNING: the replay check could not run: {exc}")
    except WfError as exc:  # the check could not run: the runner runs as before
        say(f"WARNING: the replay check could not run: {exc}")
    return []


def check_code(config: Config, classes: dict[str, type], say) -> list[dict]:
    """Before a runner executes `classes` (`wf worker`, `wf dev` and each of its reloads): if the
    project's code differs from the code the workflows' unfinished instances were last checked
    against, replay them on it (no side effects). Divergent ones are reported loudly and, with
    WF_ON_DIVERGENCE=hold, paused. Returns every verdict ([] when the code is the same)."""
    from .loader import code_fingerprint
    from .runtime.replay import lines

    client = Client(config)
    try:
        fingerprint = code_fingerprint(config)
        names = [w.name for w in config.workflows if w.name in classes]
        known = client.code_checked(names)
        changed = [n for n in names if known.get(n) != fingerprint]
        verdicts = [v for n in changed for v in client.replay_check(workflow=n, classes=classes)]
        bad = [v for v in verdicts if v["verdict"] != "matches"]
        hold = config.settings.on_divergence == "hold"
        held = [v for v in bad if hold and v["verdict"] == "diverges" and _hold(client, v)]
        if bad:
            say(f"WARNING: replay check: the code changed, and {len(bad)} of {len(verdicts)} unfinished instance(s) "
                "do not replay on it:")  # fmt: skip
            for v in bad:
                say("\n".join("  " + line for line in lines(v)))
            if held:
                say(f"WARNING: {len(held)} of them are held (paused), not run into a broken state; {HOLD_HINT}")
            if len(held) < len(bad):
                say(
                    "WARNING: the others will run on the new code anyway"
                    + ("" if hold else " (set WF_ON_DIVERGENCE=hold to pause them instead)")
                    + "; `wf replay --check` shows every verdict"
                )
        elif any(v["replayed"] or v["at"] for v in verdicts):  # instances with a history, not only queued ones
            say(f"replay check: the code changed; the {len(verdicts)} unfinished instance(s) replay cleanly on it")
        if changed and len(held) == len(bad):
            client.record_code(changed, fingerprint)
        return verdicts
    finally:
        client.close()


def _hold(client: Client, v: dict) -> bool:
    why = f"the history has {_step(v.get('expected'))} next, the new code asks for {_step(v.get('got'))}"
    return client.hold(v["id"], v["workflow"], why)


def _step(s: dict | None) -> str:
    return f"{s['type']} {s['name']!r} #{s['count']}" if s else "the end of run()"
