"""The one-instance latency path (issue 16): commits made at once on the event loop's thread when
nothing else is queued, group commit still merging them under load, and a SQLite write lock held
by another process never stalling the loop.

SQLite's own trace of the runner's connection says which thread committed what; a second process
holds the write lock for real.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from contextlib import closing

import pytest

from wf.client import Client
from wf.config import load_config
from wf.service import build_runner

WORKFLOW = """
import asyncio
import pathlib

from wf import WorkflowEntrypoint


async def nothing():
    return None


class Gated(WorkflowEntrypoint):
    async def run(self, event, step):
        async def wait_for_flag():
            flag = pathlib.Path(event.payload["flag"])
            for _ in range(6000):
                if flag.exists():
                    return "went"
                await asyncio.sleep(0.01)
            raise RuntimeError("no flag")

        return await step.do("gate", wait_for_flag)


class Configs(WorkflowEntrypoint):
    # one config dict for every step of a loop, changed halfway: the change applies

    async def run(self, event, step):
        config = {"retries": {"limit": 1, "delay": "1 second"}, "timeout": "1 minute"}
        seen = []
        for i in range(6):
            if i == 3:
                config["timeout"] = "2 minutes"
                config["retries"]["limit"] = 2
            seen.append(await step.do(f"c-{i}", lambda ctx: [ctx.config["timeout"], ctx.config["retries"]["limit"]],
                                      config=config))
        return seen


class Steps(WorkflowEntrypoint):
    async def run(self, event, step):
        for i in range(event.payload["n"]):
            await step.do(f"step-{i}", nothing)
        return event.payload["n"]
"""

DEADLINE = 60.0


@pytest.fixture
def config(tmp_path):
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    (root / "src" / "index.py").write_text(WORKFLOW)
    (root / "wrangler.jsonc").write_text(
        json.dumps(
            {
                "name": "latency",
                "main": "src/index.py",
                "workflows": [
                    {"name": "steps", "binding": "STEPS", "class_name": "Steps"},
                    {"name": "gated", "binding": "GATED", "class_name": "Gated"},
                    {"name": "configs", "binding": "CONFIGS", "class_name": "Configs"},
                ],
            }
        )
    )
    return load_config(root / "wrangler.jsonc", environ={})


class Commits:
    """The COMMITs made on the runner's connection, with the thread that made each."""

    def __init__(self):
        self.threads: list[int] = []

    def __call__(self, statement: str) -> None:
        if statement.strip().upper() == "COMMIT":
            self.threads.append(threading.get_ident())


async def started(config, commits: Commits | None = None):
    runner = build_runner(config)
    runner.finished = asyncio.Queue()
    await runner.start()
    if commits is not None:
        runner.store_ops.db.conn.set_trace_callback(commits)
    return runner


async def finish(runner, seqs: set[int]) -> None:
    seqs = set(seqs)
    while seqs:
        seq, status = await asyncio.wait_for(runner.finished.get(), DEADLINE)
        assert status == "complete", (seq, status)
        seqs.discard(seq)


def test_one_instance_commits_on_the_loops_thread(config):
    """With one instance in flight, its step commits are made on the event loop's thread: no hop to
    the store thread per step (a few may still go that way, when the loop has other work)."""
    commits = Commits()

    async def main():
        runner = await started(config, commits)
        try:
            with closing(Client(config)) as client:
                await finish(runner, {client.create("steps", {"n": 200}).seq})
        finally:
            await runner.stop()

    asyncio.run(main())
    here = threading.get_ident()
    on_loop = sum(1 for t in commits.threads if t == here)
    assert len(commits.threads) >= 201  # 200 steps and the end, each in its own commit
    assert on_loop >= 0.8 * len(commits.threads), (on_loop, len(commits.threads))


def test_many_instances_in_flight_still_share_commits(config):
    """Instances created together run together: their commits are grouped, far fewer than their
    steps (the direct path is only taken when nothing else is ready to run)."""
    commits = Commits()

    async def main():
        runner = await started(config, commits)
        try:
            with closing(Client(config)) as client:
                rows = client.create_batch("steps", [{"params": {"n": 3}} for _ in range(100)])
                await finish(runner, {r.seq for r in rows})
        finally:
            await runner.stop()

    asyncio.run(main())
    # 100 instances x (3 steps + the end) = 400 outcomes to commit; grouped, a small fraction of that
    assert len(commits.threads) <= 100, len(commits.threads)


def test_a_config_reused_by_a_loops_steps_is_read_again_when_it_changes(config):
    """A step's config is parsed once for a loop that passes the same dict, but a change to the
    dict between steps is what the next step gets."""

    async def main():
        runner = await started(config)
        try:
            with closing(Client(config)) as client:
                seq = client.create("configs", {}).seq
                await finish(runner, {seq})
                return client.store.get_by_seq(seq)
        finally:
            await runner.stop()

    row = asyncio.run(main())
    assert json.loads(row.output) == [["1 minute", 1]] * 3 + [["2 minutes", 2]] * 3


HOLD = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


def test_a_write_lock_held_by_another_process_never_stalls_the_loop(config, tmp_path):
    """Another process holds SQLite's write lock while an instance's step ends: the runner's loop
    keeps turning (the commit waits on the store thread, not on the loop), and the instance
    completes once the lock is let go."""
    hold, flag = 1.5, tmp_path / "go"

    async def main():
        runner = await started(config)
        gaps: list[float] = []
        stop = asyncio.Event()

        async def tick():
            last = time.monotonic()
            while not stop.is_set():
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticker = asyncio.get_running_loop().create_task(tick())
        holder = None
        try:
            with closing(Client(config)) as client:
                await finish(runner, {client.create("steps", {"n": 3}).seq})  # the store is warm
                seq = client.create("gated", {"flag": str(flag)}).seq  # its step ends once the flag is there
                holder = await asyncio.create_subprocess_exec(
                    sys.executable, "-c", HOLD, str(runner.store_ops.db.path), str(hold), stdout=subprocess.PIPE
                )
                assert holder.stdout is not None
                line = (await asyncio.wait_for(holder.stdout.readline(), DEADLINE)).decode()
                assert line.strip() == "locked"
                held_at = time.monotonic()
                gaps.clear()
                flag.write_text("go")
                await finish(runner, {seq})
                assert time.monotonic() - held_at >= hold * 0.9, "the step's commit did not wait for the lock"
        finally:
            stop.set()
            await ticker
            await runner.stop()
            if holder is not None:
                await asyncio.wait_for(holder.wait(), DEADLINE)
        return gaps

    gaps = asyncio.run(main())
    assert gaps and max(gaps) < 0.5, f"the loop stood still for {max(gaps):.2f} s"
