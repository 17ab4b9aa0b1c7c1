"""DBOS Transact's side of the benchmarks, run in bench/.venv-peers:
`python bench/dbos_bench.py FIGURE WORKDIR VARIANT [key=value ...]`, VARIANT `default` (the SQLite
system database as DBOS creates it: rollback journal, synchronous=FULL) or `wal` (the same file
switched to WAL before DBOS opens it; WAL is a property of the file, synchronous stays DBOS's).
The workflows mirror bench/project/src/index.py.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from common import emit, median, p95
from dbos import DBOS, DBOSClient, SetWorkflowID


@DBOS.step()
def trivial() -> None:
    return None


@DBOS.step()
def now() -> float:
    return time.time()


@DBOS.workflow()
def steps_wf(n: int) -> int:
    for _ in range(n):
        trivial()
    return n


@DBOS.workflow()
def three_wf() -> int:
    for _ in range(3):
        trivial()
    return 3


@DBOS.workflow()
def waiter_wf() -> float:
    DBOS.recv("go", timeout_seconds=3600)
    return now()


@DBOS.workflow()
def sleeper_wf(seconds: float) -> dict:
    before = now()
    DBOS.sleep(seconds)
    return {"before": before, "after": now()}


@DBOS.step()
def work(delay: float) -> float:
    started = time.time()
    time.sleep(delay)
    return started


@DBOS.workflow()
def slow_wf(n: int, delay: float) -> list:
    return [work(delay) for _ in range(n)]


def url_for(work: Path, variant: str) -> str:
    db = work / "dbos.sqlite"
    if variant == "wal" and not db.exists():
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.close()
    return f"sqlite:///{db}"


def launch(work: Path, variant: str, **extra) -> None:
    DBOS(config={"name": "bench", "system_database_url": url_for(work, variant), "log_level": "WARNING", **extra})
    DBOS.launch()


def per_step(work, variant, n=1000, reps=3):
    launch(work, variant)
    steps_wf(10)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        steps_wf(n)
        times.append(time.perf_counter() - t0)
    return {"n": n, "reps": reps, "total_s": times, "per_step_ms": median(times) / n * 1000}


def throughput(work, variant, n=500, mode="sequential"):
    launch(work, variant)
    three_wf()
    t0 = time.perf_counter()
    if mode == "sequential":
        for _ in range(n):
            three_wf()
    else:
        handles = [DBOS.start_workflow(three_wf) for _ in range(n)]
        for h in handles:
            h.get_result()
    took = time.perf_counter() - t0
    return {"n": n, "mode": mode, "total_s": took, "per_s": n / took}


def timer(work, variant, reps=10, seconds=0.5):
    launch(work, variant)
    extra = []
    for _ in range(reps):
        out = sleeper_wf(seconds)
        extra.append((out["after"] - out["before"] - seconds) * 1000)
    return {"reps": reps, "end_to_end_extra_ms": extra, "end_to_end_extra_median_ms": median(extra)}


def event_round_trip(work, variant, reps=100, poll=None):
    extra = {"notification_listener_polling_interval_sec": poll} if poll else {}
    launch(work, variant, **extra)
    sender = subprocess.Popen(
        [sys.executable, __file__, "sender", str(work), variant],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sender.stdout.readline().strip() == "ready"
    lat = []
    try:
        for i in range(reps):
            wid = f"ev-{i}-{time.time_ns()}"
            with SetWorkflowID(wid):
                handle = DBOS.start_workflow(waiter_wf)
            time.sleep(0.05)  # let it reach recv
            sender.stdin.write(wid + "\n")
            sender.stdin.flush()
            t0 = float(sender.stdout.readline())
            lat.append((handle.get_result() - t0) * 1000)
    finally:
        sender.stdin.close()
        sender.wait(30)
    return {"reps": reps, "poll_s": poll or 1.0, "ms": lat, "median_ms": median(lat), "p95_ms": p95(lat)}


def sender(work, variant):
    client = DBOSClient(system_database_url=url_for(work, variant))
    print("ready", flush=True)
    for line in sys.stdin:
        t0 = time.time()
        client.send(line.strip(), "go", topic="go")
        print(repr(t0), flush=True)
    return None


def recovery(work, variant, reps=3):
    delays, from_spawn = [], []
    for r in range(reps):
        w = work / f"r{r}"
        w.mkdir(parents=True, exist_ok=True)
        victim = subprocess.Popen(
            [sys.executable, __file__, "victim", str(w), variant],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert victim.stdout.readline().strip() == "started"
        time.sleep(0.3 + 0.02)  # five 50 ms steps done, the sixth in flight
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        killed = time.time()
        spawned = time.time()
        rec = subprocess.run(
            [sys.executable, __file__, "recoverer", str(w), variant], capture_output=True, text=True, timeout=120
        )
        lines = [l for l in rec.stdout.splitlines() if l.startswith("{")]
        if not lines:
            raise RuntimeError(rec.stdout + rec.stderr)
        data = json.loads(lines[-1])
        resumed = min(t for t in data["output"] if t > killed)
        delays.append((resumed - data["ready"]) * 1000)
        from_spawn.append((resumed - spawned) * 1000)
    return {
        "reps": reps,
        "ready_to_resumed_ms": delays,
        "median_ms": median(delays),
        "spawn_to_resumed_median_ms": median(from_spawn),
    }


def victim(work, variant):
    launch(work, variant)
    with SetWorkflowID("slow-1"):
        DBOS.start_workflow(slow_wf, 30, 0.05)
    print("started", flush=True)
    time.sleep(3600)


def recoverer(work, variant):
    launch(work, variant)
    ready = time.time()
    out = DBOS.retrieve_workflow("slow-1").get_result(polling_interval_sec=0.01)
    print(json.dumps({"ready": ready, "output": out}), flush=True)
    os._exit(0)


FIGURES = {
    "per_step": per_step,
    "throughput": throughput,
    "timer": timer,
    "event_round_trip": event_round_trip,
    "recovery": recovery,
    "sender": sender,
    "victim": victim,
    "recoverer": recoverer,
}


def main():
    figure, work, variant = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    work.mkdir(parents=True, exist_ok=True)
    kwargs = {}
    for arg in sys.argv[4:]:
        k, v = arg.split("=", 1)
        kwargs[k] = json.loads(v) if v[:1].isdigit() or v[:1] in "-[{." else v
    result = FIGURES[figure](work, variant, **kwargs)
    if result is not None:
        import sqlite3 as s

        import dbos

        result["dbos_version"] = getattr(dbos, "__version__", None) or _version()
        result["sqlite"] = s.sqlite_version
        emit(result)
    sys.stdout.flush()
    os._exit(0)  # DBOS's background threads would keep the process alive


def _version():
    from importlib.metadata import version

    return version("dbos")


if __name__ == "__main__":
    main()
