"""wf's side of the benchmarks: `python bench/wf_bench.py FIGURE WORKDIR [key=value ...]`.

Each figure runs in its own process (so RSS and imports do not leak between figures) and
prints one `RESULT {json}` line. In-process figures run a runner built by `wf.service.build_runner`
on the bench project (bench/project); cross-process figures start `python -m wf worker`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from common import BENCH, emit, free_port, median, p95, rss_mb, wait_for

from wf import WorkflowEntrypoint, WorkflowTimeoutError
from wf.client import Client
from wf.config import load_config
from wf.service import build_runner
from wf.testing import WorkflowTest

PROJECT = BENCH / "project"
CONFIG = PROJECT / "wrangler.jsonc"
PY = sys.executable


def config_for(state: Path):
    return load_config(str(CONFIG), persist_to=str(state))


def wf_cmd(state: Path, *args: str) -> list[str]:
    return [PY, "-m", "wf", "--config", str(CONFIG), "--persist-to", str(state), *args]


def env() -> dict:
    e = {k: v for k, v in os.environ.items() if k not in ("WF_CRASH_AT", "WF_STORE", "WF_TOKEN")}
    e["PYTHONUNBUFFERED"] = "1"
    return e


# -- in-process runner ------------------------------------------------------------------


class InProc:
    def __init__(self, state: Path, **options):
        self.config = config_for(state)
        self.options = options

    async def __aenter__(self):
        self.runner = build_runner(self.config, **self.options)
        self.runner.finished = asyncio.Queue()
        await self.runner.start()
        self.client = Client(self.config)
        return self

    async def __aexit__(self, *exc):
        await self.runner.stop()
        self.client.close()

    async def wait(self, seqs: set[int]) -> None:
        seqs = set(seqs)
        while seqs:
            seq, status = await asyncio.wait_for(self.runner.finished.get(), 600)
            if status != "complete":
                raise RuntimeError(f"instance {seq} ended {status}: {self.client.store.get_by_seq(seq)}")
            seqs.discard(seq)

    async def run_one(self, workflow: str, params: dict) -> float:
        t0 = time.perf_counter()
        row = self.client.create(workflow, params)
        await self.wait({row.seq})
        return time.perf_counter() - t0


async def per_step(work: Path, n: int = 1000, reps: int = 3) -> dict:
    async with InProc(work / "state") as p:
        await p.run_one("steps", {"n": 10})  # warm-up
        times = [await p.run_one("steps", {"n": n}) for _ in range(reps)]
        sync = synchronous(p.client)
    return {"n": n, "reps": reps, "total_s": times, "per_step_ms": median(times) / n * 1000, "synchronous": sync}


def synchronous(client) -> str:
    """The SQLite synchronous mode the store runs at (the default unless WF_SQLITE_SYNC says)."""
    modes = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    return modes.get(client.store.db.conn.execute("PRAGMA synchronous").fetchone()[0], "?")


async def per_step_curve(work: Path, sizes=(10, 1000, 10000, 25000)) -> dict:
    """Per-step cost against the length of the instance: one fresh store per size; short instances
    are repeated (median), long ones run once."""
    points = []
    for n in sizes:
        reps = 20 if n <= 100 else 3 if n <= 2000 else 1
        async with InProc(work / f"state-{n}") as p:
            await p.run_one("steps", {"n": 10})
            times = [await p.run_one("steps", {"n": n}) for _ in range(reps)]
        points.append({"n": n, "reps": reps, "total_s": median(times), "per_step_ms": median(times) / n * 1000})
    return {"points": points}


async def step_pages(work: Path, small: int = 10, big: int = 60) -> dict:
    """How many pages one step's commit writes to the WAL (the size of the commit the floor must match):
    WAL frames after an instance of `big` steps minus after one of `small`, each from an emptied WAL."""
    import sqlite3

    frames = {}
    async with InProc(work / "state") as p:
        await p.run_one("steps", {"n": 10})
        db = sqlite3.connect(p.client.store.db.path)
        for n in (small, big):
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            await p.run_one("steps", {"n": n})
            frames[n] = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
        db.close()
    per_step = (frames[big] - frames[small]) / (big - small)
    return {"frames": frames, "pages_per_step": per_step, "pages_per_instance": frames[small] - small * per_step}


def floor(work: Path, n: int = 5000, pages: int = 1) -> dict:
    """The disk's floor: transactions of `pages` pages each (one row updated in each of `pages` tables),
    WAL, at synchronous NORMAL and FULL; the median of three passes of n commits."""
    import sqlite3

    out = {"n": n, "pages": pages}
    for mode in ("NORMAL", "FULL"):
        conn = sqlite3.connect(work / f"floor-{mode}-{pages}.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={mode}")
        for t in range(pages):
            conn.execute(f"CREATE TABLE t{t} (id INTEGER PRIMARY KEY, v TEXT)")
            conn.execute(f"INSERT INTO t{t} VALUES (1, '')")
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            for i in range(n):
                conn.execute("BEGIN IMMEDIATE")
                for t in range(pages):
                    conn.execute(f"UPDATE t{t} SET v=? WHERE id=1", (str(i) * 20,))
                conn.execute("COMMIT")
            times.append((time.perf_counter() - t0) / n * 1000)
        conn.close()
        out[f"{mode.lower()}_commit_ms"] = median(times)
    return out


async def long_instance(work: Path, small: int = 1000, big: int = 10000) -> dict:
    async with InProc(work / "state") as p:
        await p.run_one("steps", {"n": 10})
        t_small = median([await p.run_one("steps", {"n": small}) for _ in range(3)])
        t_big = await p.run_one("steps", {"n": big})
    return {"small": small, "big": big, "small_s": t_small, "big_s": t_big, "ratio": t_big / t_small}


async def throughput(work: Path, n: int = 500, mode: str = "sequential") -> dict:
    async with InProc(work / "state") as p:
        await p.run_one("three", {})
        t0 = time.perf_counter()
        if mode == "sequential":
            for _ in range(n):
                await p.wait({p.client.create("three", {}).seq})
        else:
            seqs = set()
            for i in range(0, n, 100):
                rows = p.client.create_batch("three", [{"params": {}} for _ in range(min(100, n - i))])
                seqs |= {r.seq for r in rows}
            await p.wait(seqs)
        took = time.perf_counter() - t0
        sync = synchronous(p.client)
    return {"n": n, "mode": mode, "total_s": took, "per_s": n / took, "synchronous": sync}


async def timer(work: Path, reps: int = 10, seconds: float = 0.5) -> dict:
    late, end_to_end = [], []
    async with InProc(work / "state") as p:
        for _ in range(reps):
            row = p.client.create("sleeper", {"seconds": seconds})
            await p.wait({row.seq})
            hist = {h.type: h for h in p.client.store.history(instance=row.seq)}
            started, done = hist["sleep_started"], hist["sleep_completed"]
            late.append((done.at - started.data["wakeAt"]) * 1000)
            out = json.loads(p.client.store.get_by_seq(row.seq).output)
            end_to_end.append((out["after"] - out["before"] - seconds) * 1000)
    return {
        "reps": reps,
        "late_ms": late,
        "late_median_ms": median(late),
        "late_p95_ms": p95(late),
        "late_max_ms": max(late),
        "end_to_end_extra_median_ms": median(end_to_end),
    }


# -- cross-process ----------------------------------------------------------------------


class Worker:
    def __init__(self, state: Path, log: Path, *args: str, crash_at: str | None = None):
        self.log = log
        self.spawned = time.time()
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(
                wf_cmd(state, "worker", *args),
                env={**env(), **({"WF_CRASH_AT": crash_at} if crash_at else {})},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 30) -> float:
        """Wall time at which the 'ready' line was seen (polled every 1 ms)."""

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited {self.proc.returncode}:\n{self.log.read_text()}")
            return "ready" in self.log.read_text(errors="replace")

        wait_for(ready, timeout, "worker ready", interval=0.001)
        return time.time()

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


def event_round_trip(work: Path, reps: int = 100) -> dict:
    state = work / "state"
    worker = Worker(state, work / "worker.log")
    client = Client(config_for(state))
    lat = []
    try:
        worker.wait_ready()
        for i in range(reps):
            row = client.create("waiter", {})
            wait_for(lambda: client.status(row.id)["status"] == "waiting", 30, "waiting", 0.002)
            time.sleep(0.02)
            t0 = time.time()
            client.send_event(row.id, "go", {"i": i})
            st = wait_for(lambda: (s := client.status(row.id))["status"] == "complete" and s, 30, "complete", 0.002)
            lat.append((st["output"] - t0) * 1000)
    finally:
        worker.stop()
        client.close()
    return {"reps": reps, "ms": lat, "median_ms": median(lat), "p95_ms": p95(lat)}


def recovery(work: Path, reps: int = 5) -> dict:
    """SIGKILL a worker mid-instance; time from the new worker's 'ready' to the next step starting."""
    delays, from_spawn = [], []
    for r in range(reps):
        state = work / f"state{r}"
        client = Client(config_for(state))
        a = Worker(state, work / f"a{r}.log")
        a.wait_ready()
        row = client.create("slow", {"n": 30, "delay": 0.05})
        wait_for(lambda: sum(s.status == "complete" for s in client.store.steps(row.seq)) >= 5, 30, "5 steps")
        time.sleep(0.02)  # mid-step
        a.kill()
        killed = time.time()
        b = Worker(state, work / f"b{r}.log")
        ready = b.wait_ready()
        st = wait_for(lambda: (s := client.status(row.id))["status"] in ("complete", "errored") and s, 60, "end")
        b.stop()
        client.close()
        if st["status"] != "complete":
            raise RuntimeError(f"recovery instance ended {st}")
        resumed = min(t for t in st["output"] if t > killed)
        delays.append((resumed - ready) * 1000)
        from_spawn.append((resumed - b.spawned) * 1000)
    return {
        "reps": reps,
        "ready_to_resumed_ms": delays,
        "median_ms": median(delays),
        "spawn_to_resumed_median_ms": median(from_spawn),
    }


# the read commands whose start-up is measured (deliverable 4): name -> arguments ({id}: an instance)
READ_COMMANDS = {
    "status": ["status", "{id}", "--json"],
    "instances_list": ["instances", "list"],
    "describe": ["instances", "describe", "{id}"],
    "workflows_list": ["workflows", "list"],
}


def cli_startup(work: Path, reps: int = 20) -> dict:
    """Whole-process wall time of each read command (the installed `wf` console script) and of a
    bare `python -c pass`, interleaved so that both see the same machine; plus `-X importtime`.
    Bytecode is written by the first (warming) run even when PYTHONDONTWRITEBYTECODE is set here,
    as an installed wf has its .pyc files (the interpreter's standard library has them too)."""
    state = work / "state"
    asyncio.run(_one_done(state))
    client = Client(config_for(state))
    iid = client.list(limit=1)[0].id
    client.close()
    wf_bin = str(Path(PY).parent / "wf")
    base = [wf_bin, "--config", str(CONFIG), "--persist-to", str(state)]
    cmds = {name: base + [a.format(id=iid) for a in args] for name, args in READ_COMMANDS.items()}
    cmds["bare_python"] = [PY, "-c", "pass"]
    run_env = {k: v for k, v in env().items() if k != "PYTHONDONTWRITEBYTECODE"}
    for name, cmd in cmds.items():  # warm the page cache and write the bytecode; each must work
        res = subprocess.run(cmd, env=run_env, capture_output=True, text=True)
        assert res.returncode == 0, f"{name}: {res.stderr}"
    times = {name: [] for name in cmds}
    for _ in range(reps):
        for name, cmd in cmds.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, env=run_env, capture_output=True, check=True)
            times[name].append((time.perf_counter() - t0) * 1000)
    out = {"reps": reps, "ms": times}
    bare = median(times["bare_python"])
    for name in cmds:
        out[f"{name}_median_ms"] = median(times[name])
        out[f"{name}_ratio"] = median(times[name]) / bare
    out["median_ms"], out["bare_python_ms"] = out["status_median_ms"], bare
    out.update(importtime(cmds["status"], work / "importtime-status.txt", run_env))
    # `wf instances list` (human output, no terminal): its profile, for the ≤ 6× goal
    listed = importtime(cmds["instances_list"], work / "importtime-instances-list.txt", run_env)
    out["importtime_list_total_ms"], out["importtime_list_file"] = (
        listed["importtime_total_ms"],
        listed["importtime_file"],
    )
    return out


IMPORTTIME_RUNS = 5


def importtime(cmd: list[str], summary: Path, run_env: dict) -> dict:
    """`python -X importtime` of a command (warm cache; each module's fastest of `IMPORTTIME_RUNS`, so
    that a moment the machine was busy does not land on one module): a summary of the modules that
    cost the most, written to `summary` (so that before/after an import change can be compared)."""
    subprocess.run(cmd, env=run_env, capture_output=True)  # warms the page cache and the bytecode files
    fastest: dict[str, list] = {}  # name -> [cumulative ms, own ms, depth], in the order first imported
    for _ in range(IMPORTTIME_RUNS):
        res = subprocess.run([PY, "-X", "importtime", *cmd], env=run_env, capture_output=True, text=True)
        for line in res.stderr.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            own, cumulative, name = line.split(":", 1)[1].split("|")
            depth = (len(name) - len(name.lstrip(" "))) // 2
            row = fastest.setdefault(name.strip(), [int(cumulative) / 1000, int(own) / 1000, depth])
            row[0], row[1] = min(row[0], int(cumulative) / 1000), min(row[1], int(own) / 1000)
    rows = [(name, cum, own, depth) for name, (cum, own, depth) in fastest.items()]
    total = sum(r[1] for r in rows if r[3] == 0)
    by_cum = sorted(rows, key=lambda r: -r[1])[:30]
    by_self = sorted(rows, key=lambda r: -r[2])[:20]
    text = [
        f"`python -X importtime` of: {' '.join(Path(c).name if c.startswith('/') else c for c in cmd)}",
        f"{len(rows)} modules imported, {total:.1f} ms in all (sum of the top-level imports' cumulative time; "
        f"each module's fastest of {IMPORTTIME_RUNS} runs).",
        "",
        "Top 30 by cumulative time (ms; depth 0 = imported by the command itself):",
        *(f"  {c:8.1f} {o:7.1f}  {'  ' * min(d, 6)}{n}" for n, c, o, d in by_cum),
        "",
        "Top 20 by own time (ms):",
        *(f"  {o:8.1f}  {n}" for n, c, o, d in by_self),
    ]
    summary.write_text("\n".join(text) + "\n")
    return {
        "importtime_total_ms": total,
        "importtime_modules": len(rows),
        "importtime_top": [[n, round(c, 2)] for n, c, o, d in by_cum if d == 0][:10],
        "importtime_file": str(summary),
    }


async def _one_done(state: Path):
    async with InProc(state) as p:
        await p.run_one("three", {})


def dev_start(work: Path, reps: int = 5, idle: float = 5.0) -> dict:
    import urllib.request

    times, rss = [], []
    for r in range(reps):
        state = work / f"state{r}"
        port = free_port()
        url = f"http://127.0.0.1:{port}/cdn-cgi/local/explorer/api/workflows"
        t0 = time.perf_counter()
        with open(work / f"dev{r}.log", "wb") as err:
            proc = subprocess.Popen(
                wf_cmd(state, "dev", "--port", str(port)),
                env=env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )

        def answered():
            if proc.poll() is not None:
                raise RuntimeError(f"wf dev exited:\n{(work / f'dev{r}.log').read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    return resp.status == 200
            except OSError:
                return False

        try:
            wait_for(answered, 30, "wf dev to answer", interval=0.005)
            times.append((time.perf_counter() - t0) * 1000)
            if r == 0:
                time.sleep(idle)
                rss.append(rss_mb(proc.pid))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return {"reps": reps, "ms": times, "median_ms": median(times), "idle_rss_mb": rss[0], "idle_s": idle}


def scale_waiting(work: Path, n: int = 10000, concurrency: int = 0, events: bool = True) -> dict:
    """`concurrency` 0: the worker's default (1000). A waiting instance holds a concurrency slot until
    it has been idle `keep_warm` (60 s), so with the default, n waiting instances take ~n/1000 minutes."""
    state = work / "state"
    worker = Worker(state, work / "worker.log", *(["--concurrency", str(concurrency)] if concurrency else []))
    client = Client(config_for(state))
    try:
        worker.wait_ready()
        base_rss = rss_mb(worker.proc.pid)
        t0 = time.perf_counter()
        now = client.now()
        for i in range(0, n, 1000):
            items = [{"workflow": "waiter", "id": f"w-{j}", "params": "{}"} for j in range(i, min(n, i + 1000))]
            client.store.create_instances(items, now)
            client._notify("w")
        wait_for(lambda: client.store.count_by_status("waiter").get("waiting", 0) == n, 600, "all waiting", 0.1)
        all_waiting = time.perf_counter() - t0
        rss = rss_mb(worker.proc.pid)
        all_done = rss_after = None
        if events:
            t0 = time.perf_counter()
            for j in range(n):
                client.send_event(f"w-{j}", "go", None)
            wait_for(lambda: client.store.count_by_status("waiter").get("complete", 0) == n, 600, "all complete", 0.1)
            all_done = time.perf_counter() - t0
            rss_after = rss_mb(worker.proc.pid)
    finally:
        worker.stop()
        client.close()
    return {
        "n": n,
        "concurrency": concurrency or 1000,
        "rss_mb": rss,
        "rss_per_instance_kb": (rss - base_rss) * 1024 / n,
        "idle_rss_mb": base_rss,
        "rss_after_events_mb": rss_after,
        "all_waiting_s": all_waiting,
        "events_to_all_complete_s": all_done,
    }


def populate_finished(state: Path, n: int) -> float:
    """`n` instances of `three`, ids i-0000000..., 99% complete and 1% errored, like a real history."""
    client = Client(config_for(state))
    t0 = time.perf_counter()
    now = time.time() - n * 0.001
    store = client.store
    for i in range(0, n, 10000):
        items = [{"workflow": "three", "id": f"i-{j:07d}", "params": "{}"} for j in range(i, min(n, i + 10000))]
        store.create_instances(items, now + i * 0.001)
    client.close()
    with sqlite3.connect(state / "state.db") as conn:  # finished in bulk: faster than running them
        conn.execute(
            "UPDATE wf_instances SET status='complete', wake_at=NULL, ended_at=created_at WHERE seq % 100 != 0"
        )
        conn.execute("UPDATE wf_instances SET status='errored', wake_at=NULL WHERE seq % 100 = 0")
    conn.close()
    return time.perf_counter() - t0


def list_many(work: Path, n: int = 100000, reps: int = 5) -> dict:
    state = work / "state"
    populate = populate_finished(state, n)
    out = {"n": n, "populate_s": populate}
    for label, extra in (("list", []), ("list_json", ["--json"]), ("list_errored", ["--status", "errored"])):
        cmd = [
            str(Path(PY).parent / "wf"),
            "--config",
            str(CONFIG),
            "--persist-to",
            str(state),
            "instances",
            "list",
            *extra,
        ]
        subprocess.run(cmd, env=env(), capture_output=True, check=True)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            res = subprocess.run(cmd, env=env(), capture_output=True, text=True)
            times.append((time.perf_counter() - t0) * 1000)
            assert res.returncode == 0, res.stderr
        out[label + "_ms"] = times
        out[label + "_median_ms"] = median(times)
    return out


# -- the web UI (issue 12) ---------------------------------------------------------------


class Dev:
    """`wf dev` on `state`, on a free port; `url` answers once it is up."""

    def __init__(self, state: Path, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(
                wf_cmd(state, "dev", "--port", str(self.port)),
                env=env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        self.log = log
        wait_for(self._answers, 60, "wf dev to answer", interval=0.02)

    def _answers(self) -> bool:
        import urllib.request

        if self.proc.poll() is not None:
            raise RuntimeError(f"wf dev exited:\n{self.log.read_text()}")
        try:
            with urllib.request.urlopen(self.url + "/cdn-cgi/local/explorer/api/workflows", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def cpu_s(self) -> float:
        """User + system CPU seconds the server process has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _server_ms(url: str) -> tuple[float, float]:
    """(the server's own time from its Server-Timing header, the whole request) in ms."""
    import urllib.request

    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as resp:
        resp.read()
        timing = resp.headers["server-timing"]
    return float(timing.split("dur=")[1]), (time.perf_counter() - t0) * 1000


def ui_pages(work: Path, n: int = 100000, reps: int = 20) -> dict:
    """The web UI's pages with `n` instances stored: server time per page, median of `reps`."""
    state = work / "state"
    populate = populate_finished(state, n)
    client = Client(config_for(state))
    middle = client.get(f"i-{n // 2:07d}", "three")
    client.close()
    dev = Dev(state, work / "dev.log")
    ui = dev.url + "/cdn-cgi/explorer"
    prefix = f"i-{n // 2:07d}"[:7]  # matches n/100 ids
    pages = {
        "instances": "/instances",
        "instances_errored": "/instances?status=errored",
        "instances_workflow_100": "/instances?workflow=three&per_page=100",
        "instances_deep": f"/instances?before={middle.created_at!r}_{middle.seq}",
        "instances_id_prefix": f"/instances?q={prefix}",
        "workflows": "/",
        "instance": f"/workflows/three/i-{n // 2:07d}",
    }
    out: dict = {"n": n, "populate_s": populate, "reps": reps}
    try:
        for label, path in pages.items():
            _server_ms(ui + path)  # warm: the first read of a cold page cache is not the steady state
            server, whole = zip(*(_server_ms(ui + path) for _ in range(reps)))
            out[f"{label}_server_ms"] = median(server)
            out[f"{label}_request_ms"] = median(whole)
    finally:
        dev.stop()
    return out


def ui_idle(work: Path, seconds: float = 30.0) -> dict:
    """CPU `wf dev` uses while idle: alone, then with one instance page open (its live stream)."""
    import threading

    import httpx

    state = work / "state"
    dev = Dev(state, work / "dev.log")
    client = Client(config_for(state))
    out: dict = {"seconds": seconds}
    try:
        client.create("waiter", {}, "idle-1")
        wait_for(lambda: client.status("idle-1")["status"] == "waiting", 30, "the instance to wait", 0.05)
        time.sleep(2)  # let start-up work settle

        def cpu_pct() -> float:
            c0, t0 = dev.cpu_s(), time.perf_counter()
            time.sleep(seconds)
            return (dev.cpu_s() - c0) / (time.perf_counter() - t0) * 100

        out["no_page_cpu_pct"] = cpu_pct()
        opened, lines = threading.Event(), []

        def follow() -> None:
            page = dev.url + "/cdn-cgi/explorer/workflows/waiter/idle-1"
            try:
                with httpx.stream("GET", page, headers={"Accept": "text/event-stream"}, timeout=None) as stream:
                    for line in stream.iter_lines():
                        lines.append(line)
                        opened.set()
            except httpx.HTTPError:  # the server stopping cuts the stream: the figure is taken by then
                pass

        threading.Thread(target=follow, daemon=True).start()
        if not opened.wait(30):
            raise RuntimeError("the instance page's live stream did not open")
        time.sleep(1)
        out["one_page_cpu_pct"] = cpu_pct()
        out["page_cost_cpu_pct"] = out["one_page_cpu_pct"] - out["no_page_cpu_pct"]
        out["stream_lines_while_idle"] = len(lines) - 1
    finally:
        client.close()
        dev.stop()
    return out


def restart_overdue(work: Path, reps: int = 3) -> dict:
    """A worker SIGKILLs itself at a sleep (or a wait for an event); the sleep falls due (or the
    event is sent) while no worker is alive; a new worker starts. Time from its spawn, and from
    its 'ready' line, to the instance's end (the goal tests/test_crash.py held: within 1.5 s)."""
    out: dict = {"reps": reps}
    for kind in ("sleep", "event"):
        from_spawn, from_ready = [], []
        for r in range(reps):
            state = work / f"{kind}{r}"
            client = Client(config_for(state))
            try:
                if kind == "sleep":
                    row = client.create("sleeper", {"seconds": 0.3})
                    crashed = Worker(state, work / f"{kind}{r}-a.log", crash_at="sleeping:nap")
                else:
                    row = client.create("waiter", {})
                    crashed = Worker(state, work / f"{kind}{r}-a.log", crash_at="waiting:wait")
                crashed.proc.wait(30)
                if kind == "sleep":
                    wake = next(s.wake_at for s in client.store.steps(row.seq) if s.name == "nap")
                    wait_for(lambda w=wake: time.time() > w + 0.05, 10, "the sleep to fall due")
                else:
                    client.send_event(row.id, "go", None)
                fresh = Worker(state, work / f"{kind}{r}-b.log")
                ready = fresh.wait_ready()
                done = wait_for(lambda: (x := client.get(row.id)).status == "complete" and x, 30, "the instance")
                fresh.stop()
            finally:
                client.close()
            from_spawn.append((done.ended_at - fresh.spawned) * 1000)
            from_ready.append((done.ended_at - ready) * 1000)
        out[f"{kind}_spawn_to_done_median_ms"] = median(from_spawn)
        out[f"{kind}_spawn_to_done_max_ms"] = max(from_spawn)
        out[f"{kind}_ready_to_done_median_ms"] = median(from_ready)
    return out


def survivor_takeover(work: Path, reps: int = 3) -> dict:
    """Two workers; the one running an instance is SIGKILLed mid-step; time from the kill to the
    survivor starting the instance's next step (the goal tests/test_multi_runner.py held: < 3 s)."""
    delays = []
    for r in range(reps):
        state = work / f"state{r}"
        client = Client(config_for(state))
        workers = [Worker(state, work / f"w{r}-{i}.log") for i in range(2)]
        try:
            for w in workers:
                w.wait_ready()
            row = client.create("slow", {"n": 30, "delay": 0.05})
            wait_for(lambda: sum(s.status == "complete" for s in client.store.steps(row.seq)) >= 3, 30, "3 steps")
            owner = client.get(row.id).owner  # each worker's 'ready' line names its owner id
            [victim] = [w for w in workers if f"wf worker {owner} ready" in w.log.read_text(errors="replace")]
            victim.kill()
            killed = time.time()
            st = wait_for(lambda: (x := client.status(row.id))["status"] == "complete" and x, 60, "the instance")
            delays.append((min(t for t in st["output"] if t > killed) - killed) * 1000)
        finally:
            for w in workers:
                w.stop()
            client.close()
    return {"reps": reps, "ms": delays, "median_ms": median(delays), "max_ms": max(delays)}


def template_tests(work: Path, reps: int = 1) -> dict:
    """`wf init` then the project's own test suite (it sleeps and waits for a day, on a fake clock):
    pytest's own figure and the whole process (the goal tests/test_init.py held: under 5 s)."""
    import re

    wf_bin = str(Path(PY).parent / "wf")
    subprocess.run([wf_bin, "init", "proj"], cwd=work, env=env(), check=True, capture_output=True)
    pytest_s, wall_s = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        res = subprocess.run(
            [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
            cwd=work / "proj",
            env=env(),
            capture_output=True,
            text=True,
        )
        wall_s.append(time.perf_counter() - t0)
        found = re.search(r"(\d+) passed.* in ([\d.]+)s", res.stdout)
        if res.returncode != 0 or not found:
            raise RuntimeError(f"the template's tests failed:\n{res.stdout[-2000:]}{res.stderr[-2000:]}")
        pytest_s.append(float(found.group(2)))
    return {"reps": reps, "tests": int(found.group(1)), "pytest_s": median(pytest_s), "wall_s": median(wall_s)}


async def fake_clock_day(work: Path, reps: int = 3) -> dict:
    """wf.testing: an instance that sleeps a day, then waits 24 hours for an event that never comes,
    run to its end on the fake clock (the goal tests/test_testing.py held: well under a second)."""
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        async with WorkflowTest({"day": DayLong}) as t:
            inst = await t.create("day", {})
            await inst.wait_for_status("complete")
        times.append((time.perf_counter() - t0) * 1000)
    return {"reps": reps, "ms": times, "median_ms": median(times), "max_ms": max(times)}


class DayLong(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.sleep("a day", "1 day")
        try:
            await step.wait_for_event("answer", "answer", timeout="24 hours")
        except WorkflowTimeoutError:
            return "expired"
        return "answered"


FIGURES = {
    "per_step": per_step,
    "long_instance": long_instance,
    "throughput": throughput,
    "timer": timer,
    "event_round_trip": event_round_trip,
    "recovery": recovery,
    "cli_startup": cli_startup,
    "per_step_curve": per_step_curve,
    "step_pages": step_pages,
    "floor": floor,
    "dev_start": dev_start,
    "scale_waiting": scale_waiting,
    "list_many": list_many,
    "ui_pages": ui_pages,
    "ui_idle": ui_idle,
    "restart_overdue": restart_overdue,
    "survivor_takeover": survivor_takeover,
    "template_tests": template_tests,
    "fake_clock_day": fake_clock_day,
}


def main() -> None:
    figure, work = sys.argv[1], Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    kwargs = {}
    for arg in sys.argv[3:]:
        k, v = arg.split("=", 1)
        kwargs[k] = json.loads(v) if v[:1].isdigit() or v[:1] in "-[{" or v in ("true", "false") else v
    fn = FIGURES[figure]
    result = asyncio.run(fn(work, **kwargs)) if asyncio.iscoroutinefunction(fn) else fn(work, **kwargs)
    emit(result)


if __name__ == "__main__":
    main()
