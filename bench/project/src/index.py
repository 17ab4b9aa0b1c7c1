"""Benchmark workflows. Every step is trivial so that the figures measure wf itself."""

import asyncio
import os
import time

from wf import WorkflowEntrypoint


async def _trivial():
    return None


async def _now():
    return time.time()


class Steps(WorkflowEntrypoint):
    """`n` trivial steps, one after another (the per-step and long-instance figures)."""

    async def run(self, event, step):
        n = event.payload["n"]
        for i in range(n):
            await step.do(f"step-{i}", _trivial)
        return n


class Three(WorkflowEntrypoint):
    """Three trivial steps (throughput)."""

    async def run(self, event, step):
        for name in ("one", "two", "three"):
            await step.do(name, _trivial)
        return 3


class Waiter(WorkflowEntrypoint):
    """Waits for a "go" event; the step after it records when it ran (event round trip, scale)."""

    async def run(self, event, step):
        await step.wait_for_event("wait", "go", timeout="1 hour")
        return await step.do("after", _now)


class Sleeper(WorkflowEntrypoint):
    """A 0.5 s sleep between two time stamps (timer accuracy)."""

    async def run(self, event, step):
        before = await step.do("before", _now)
        await step.sleep("nap", event.payload.get("seconds", 0.5))
        after = await step.do("after", _now)
        return {"before": before, "after": after}


class Slow(WorkflowEntrypoint):
    """`n` steps of `delay` seconds, each returning when it ran (recovery after SIGKILL)."""

    async def run(self, event, step):
        n, delay = event.payload["n"], event.payload["delay"]
        times = []
        for i in range(n):

            async def work():
                started = time.time()
                await asyncio.sleep(delay)
                return started

            times.append(await step.do(f"work-{i}", work))
        return times


class Contend(WorkflowEntrypoint):
    """Three steps that log start and end (pid, instance) to a file: no two runners may overlap."""

    async def run(self, event, step):
        path, iid = event.payload["log"], event.instance_id
        for name in ("a", "b", "c"):

            async def work(name=name):
                _log(path, f"start {iid} {name} {os.getpid()} {time.time()!r}\n")
                await asyncio.sleep(0.002)
                _log(path, f"end {iid} {name} {os.getpid()} {time.time()!r}\n")
                return name

            await step.do(name, work)
        return "ok"


def _log(path, line):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
