"""Restate's side of the benchmarks, run in bench/.venv-peers:
`python bench/restate_bench.py FIGURE WORKDIR [key=value ...]`.

Each figure starts its own restate-server (the npm package's binary, bench/.cache/restate) with a
fresh journal under WORKDIR, and the service below in a second process: the restate-sdk ASGI app
served by hypercorn's command line, which Restate reaches over HTTP/2 cleartext (prior knowledge). The deployment
is registered over HTTP/2, not with `use_http_11`: in HTTP/1.1 request-response mode Restate
suspends the invocation after every `ctx.run` and replays its whole journal on resume, which is
not how Restate is meant to run. hypercorn gets the settings of the SDK's own example config
(unlimited streams per connection and requests per keep-alive), so no stream limit throttles it,
and `workers` worker processes (0, the default: the app runs in hypercorn's own process; the
concurrent figure is taken both so and with one worker process per core, and the better kept).

The workflows mirror bench/project/src/index.py: `Bench/steps` (n trivial `ctx.run` steps),
`Bench/three`, `Bench/slow` (n steps of `delay` s, each returning when it ran) and the `Waiter`
workflow, whose durable promise "go" is resolved through its shared handler `go`.
The service runs as `hypercorn restate_bench:app` (the figures spawn it).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import restate  # noqa: E402
from common import BENCH, emit, free_port, median, p95, wait_for  # noqa: E402
from peers import RESTATE_BIN as SERVER_BIN  # noqa: E402

bench = restate.Service("Bench")
waiter = restate.Workflow("Waiter")


async def _trivial() -> None:
    return None


async def _now() -> float:
    return time.time()


@bench.handler()
async def steps(ctx: restate.Context, n: int) -> int:
    for i in range(n):
        await ctx.run_typed(f"step-{i}", _trivial)
    return n


@bench.handler()
async def three(ctx: restate.Context) -> int:
    for name in ("one", "two", "three"):
        await ctx.run_typed(name, _trivial)
    return 3


@bench.handler()
async def slow(ctx: restate.Context, args: dict) -> list:
    """`n` steps of `delay` seconds; each appends its start time to `log` (the driver counts them)."""
    times = []
    for i in range(args["n"]):

        async def work() -> float:
            started = time.time()
            with open(args["log"], "a") as f:
                f.write(f"{started!r}\n")
            await asyncio.sleep(args["delay"])
            return started

        times.append(await ctx.run_typed(f"work-{i}", work))
    return times


@waiter.main()
async def run(ctx: restate.WorkflowContext) -> float:
    await ctx.promise("go").value()
    return await ctx.run_typed("after", _now)


@waiter.handler()
async def go(ctx: restate.WorkflowSharedContext, value: int) -> None:
    await ctx.promise("go").resolve(value)


app = restate.app(services=[bench, waiter])


# -- the server and the service, as processes ----------------------------------------------


# the SDK's own hypercorn example config: no limit on streams per connection or on requests per
# keep-alive (hypercorn's defaults, 100 and 1,000, would throttle Restate's one long HTTP/2 connection)
HYPERCORN_TOML = """\
h2_max_concurrent_streams = 2147483647
keep_alive_max_requests = 2147483647
keep_alive_timeout = 2147483647
"""


def _healthy(port: int) -> bool:
    """The SDK answers /health once a worker process has loaded the app (the socket listens earlier)."""
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


class Service:
    """`hypercorn restate_bench:app`, as Restate's docs run it, with `workers` worker processes (0: in
    hypercorn's own process); its own process group so that SIGKILL takes it whole."""

    def __init__(self, work: Path, port: int, tag: str = "service", workers: int = 0):
        self.port, self.log, self.workers = port, work / f"{tag}.log", workers
        toml = work / "hypercorn.toml"
        toml.write_text(HYPERCORN_TOML)
        cmd = [sys.executable, "-m", "hypercorn", "--config", str(toml), "--workers", str(workers)]
        cmd += ["--bind", f"127.0.0.1:{port}", "restate_bench:app"]
        self.spawned = time.time()
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                cmd,
                cwd=BENCH,
                env={**os.environ, "PYTHONPATH": str(BENCH)},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 60) -> float:
        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the Restate service exited:\n{self.log.read_text()[-2000:]}")
            return _healthy(self.port)

        wait_for(ready, timeout, "the Restate service to answer", interval=0.001)
        return time.time()

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)


class Server:
    """restate-server with a journal under `work`, the service registered over HTTP/2."""

    def __init__(self, work: Path, workers: int = 0):
        if not SERVER_BIN.exists():
            raise RuntimeError(f"restate-server is not installed at {SERVER_BIN} (bench/run.py installs it)")
        self.work, self.workers = work, workers
        self.ingress_port, self.admin_port, node_port = free_port(), free_port(), free_port()
        env = dict(
            os.environ,
            RESTATE_INGRESS__BIND_ADDRESS=f"127.0.0.1:{self.ingress_port}",
            RESTATE_ADMIN__BIND_ADDRESS=f"127.0.0.1:{self.admin_port}",
            RESTATE_BIND_ADDRESS=f"127.0.0.1:{node_port}",
            RESTATE_LOG_FORMAT="compact",
            NO_COLOR="1",
        )
        self.log = work / "restate-server.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [str(SERVER_BIN), "--base-dir", str(work / "restate-data"), "--no-logo", "--listen-mode", "tcp"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.ingress = f"http://127.0.0.1:{self.ingress_port}"
        self.admin = f"http://127.0.0.1:{self.admin_port}"
        self.service: Service | None = None

    def start(self) -> dict:
        import httpx

        t0 = time.perf_counter()

        def healthy():
            if self.proc.poll() is not None:
                raise RuntimeError(f"restate-server exited:\n{self.log.read_text()[-2000:]}")
            try:
                return httpx.get(self.admin + "/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, 60, "restate-server to answer", interval=0.02)
        start_ms = (time.perf_counter() - t0) * 1000
        self.service = Service(self.work, free_port(), workers=self.workers)
        self.service.wait_ready()
        uri = f"http://127.0.0.1:{self.service.port}"
        res = httpx.post(self.admin + "/deployments", json={"uri": uri, "use_http_11": False}, timeout=30)
        res.raise_for_status()
        deployment = httpx.get(f"{self.admin}/deployments/{res.json()['id']}", timeout=10).json()
        # the ingress learns the new services shortly after the admin API answers
        wait_for(lambda: self._knows("Bench"), 30, "the ingress to know the Bench service", interval=0.02)
        return {
            "server_start_ms": start_ms,
            "http_version": deployment.get("http_version"),
            "protocol_type": deployment.get("protocol_type"),
        }

    def _knows(self, service: str) -> bool:
        import httpx

        try:
            res = httpx.post(f"{self.ingress}/{service}/three", json=None, timeout=10)
        except httpx.HTTPError:
            return False
        return res.status_code == 200

    def stop(self) -> None:
        if self.service:
            self.service.kill()
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)


def with_server(fn):
    """Run figure `fn(server, client, **kw)` against a fresh server; add how the deployment was reached."""

    def figure(work: Path, workers: int = 0, **kw) -> dict:
        import httpx

        work.mkdir(parents=True, exist_ok=True)
        server = Server(work, workers)
        try:
            info = server.start()
            with httpx.Client(base_url=server.ingress, timeout=600) as client:
                out = fn(server, client, **kw)
        finally:
            server.stop()
        return {**out, **info, "service_processes": max(1, workers)}

    figure.__name__ = fn.__name__
    return figure


# -- figures ------------------------------------------------------------------------------


def _call(client, path: str, body=None):
    res = client.post(path, json=body)
    if res.status_code != 200:
        raise RuntimeError(f"POST {path} answered {res.status_code}: {res.text[:500]}")
    return res.json() if res.content else None


@with_server
def per_step(server, client, n: int = 1000, reps: int = 3) -> dict:
    _call(client, "/Bench/steps", 10)  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        assert _call(client, "/Bench/steps", n) == n
        times.append(time.perf_counter() - t0)
    return {"n": n, "reps": reps, "total_s": times, "per_step_ms": median(times) / n * 1000}


@with_server
def throughput(server, client, n: int = 500, mode: str = "sequential") -> dict:
    _call(client, "/Bench/three")
    t0 = time.perf_counter()
    if mode == "sequential":
        for _ in range(n):
            _call(client, "/Bench/three")
    else:
        asyncio.run(_all_at_once(server.ingress, n))
    took = time.perf_counter() - t0
    return {"n": n, "mode": mode, "total_s": took, "per_s": n / took}


def throughput_best(work: Path, n: int = 500, mode: str = "concurrent", workers=(0, 2)) -> dict:
    """The throughput figure once per hypercorn setting (in-process, then worker processes), the
    better one kept: Restate's side is not held to a setting that suits it less on this machine."""
    runs = {w: throughput(work / f"workers-{w}", n=n, mode=mode, workers=w) for w in workers}
    best = max(runs.values(), key=lambda r: r["per_s"])
    return {**best, "per_s_by_service_processes": {max(1, w): r["per_s"] for w, r in runs.items()}}


async def _all_at_once(ingress: str, n: int) -> None:
    """n invocations in flight at once, multiplexed on one HTTP/2 connection to the ingress."""
    import httpx

    async with httpx.AsyncClient(base_url=ingress, http1=False, http2=True, timeout=600) as client:
        results = await asyncio.gather(*(client.post("/Bench/three", json=None) for _ in range(n)))
    bad = [r for r in results if r.status_code != 200]
    if bad:
        raise RuntimeError(f"{len(bad)} of {n} invocations failed, e.g. {bad[0].status_code}: {bad[0].text[:300]}")


@with_server
def event_round_trip(server, client, reps: int = 100) -> dict:
    """Start a Waiter, give it 50 ms to reach its promise, resolve the promise through the ingress
    at t0 (this process), and read when the step after the promise ran (the workflow's output)."""
    lat = []
    for i in range(reps + 3):  # the first few warm up connections
        key = f"ev-{i}-{time.time_ns()}"
        res = client.post(f"/Waiter/{key}/run/send", json=None)
        if res.status_code not in (200, 202):
            raise RuntimeError(f"starting Waiter {key} answered {res.status_code}: {res.text[:300]}")
        time.sleep(0.05)
        t0 = time.time()
        _call(client, f"/Waiter/{key}/go", i)
        after = client.get(f"/restate/workflow/Waiter/{key}/attach").json()
        if i >= 3:
            lat.append((after - t0) * 1000)
    return {"reps": reps, "ms": lat, "median_ms": median(lat), "p95_ms": p95(lat)}


@with_server
def recovery(server, client, reps: int = 3) -> dict:
    """SIGKILL the service mid-invocation (after 5 of 30 steps of 50 ms); start a new one on the same
    port; time from its listening socket answering to the next step starting. Restate retries the
    invocation with its default policy (first retry after 500 ms, then doubling)."""
    delays, from_spawn, from_kill = [], [], []
    for r in range(reps):
        log = server.work / f"slow-{r}.log"
        log.write_text("")
        res = client.post("/Bench/slow/send", json={"n": 30, "delay": 0.05, "log": str(log)})
        invocation = res.json()["invocationId"]
        wait_for(lambda: len(log.read_text().split()) >= 6, 60, "5 steps of the slow invocation", 0.002)
        time.sleep(0.02)  # mid-step
        server.service.kill()
        killed = time.time()
        server.service = Service(server.work, server.service.port, f"service-{r}", server.workers)
        ready = server.service.wait_ready()
        out = client.get(f"/restate/invocation/{invocation}/attach").json()
        resumed = min(t for t in out if t > killed)
        delays.append((resumed - ready) * 1000)
        from_spawn.append((resumed - server.service.spawned) * 1000)
        from_kill.append((resumed - killed) * 1000)
    return {
        "reps": reps,
        "ready_to_resumed_ms": delays,
        "median_ms": median(delays),
        "spawn_to_resumed_median_ms": median(from_spawn),
        "kill_to_resumed_median_ms": median(from_kill),
    }


def versions() -> dict:
    from importlib.metadata import version

    server = subprocess.run([str(SERVER_BIN), "--version"], capture_output=True, text=True).stdout.split()
    return {
        "restate_server": server[-1] if server else None,
        "restate_sdk": version("restate-sdk"),
        "hypercorn": version("hypercorn"),
    }


FIGURES = {
    "per_step": per_step,
    "throughput": throughput,
    "throughput_best": throughput_best,
    "event_round_trip": event_round_trip,
    "recovery": recovery,
}


def main() -> None:
    figure, work = sys.argv[1], Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    kwargs = {}
    for arg in sys.argv[3:]:
        k, v = arg.split("=", 1)
        kwargs[k] = json.loads(v) if v[:1].isdigit() or v[:1] in "-[{" else v
    emit({**FIGURES[figure](work, **kwargs), **versions()})


if __name__ == "__main__":
    main()
