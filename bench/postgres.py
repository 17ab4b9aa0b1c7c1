"""PostgreSQL figures: throughput with 1, 2 and 4 `wf worker` processes, and the event round trip.

    python bench/postgres.py [--quick] [--url postgresql://user@host:port/db]

The server comes from --url or WF_TEST_POSTGRES; every figure runs in a scratch schema of its
own (created here, dropped at the end). `measure(quick)` returns rows
{"figure", "value", "unit", "how"}; run as a script, it prints them as a markdown table.

* Throughput: the bench project's "three" workflow (three trivial steps). For k = 1, 2, 4 the
  k workers are started and ready first, then n instances are created (create_batch, 100 at
  a time) and the clock runs from the first create until the store counts n complete (polled
  every 20 ms). Same workload, same run, a fresh schema for each k.
* Event round trip: one `wf worker` process; this process creates a "waiter" instance, waits
  until it waits for its event, then sends the event (Client.send_event: the store's NOTIFY
  wakes the worker). The figure is from just before send_event to the moment the step after
  wait_for_event ran (the time it returns, read from the instance's output).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "src"))

from common import median, p95, wait_for  # noqa: E402

CONFIG = BENCH / "project" / "wrangler.jsonc"
PY = sys.executable


# -- scratch schemas ----------------------------------------------------------------------


class Scratch:
    """Scratch schemas on one server; `new()` gives a store URL on a fresh one."""

    def __init__(self, base: str):
        import psycopg

        self.base = base
        self.names: list[str] = []
        self._psycopg = psycopg

    def new(self) -> str:
        name = f"wf_bench_{uuid.uuid4().hex[:12]}"
        with self._psycopg.connect(self.base, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        self.names.append(name)
        sep = "&" if "?" in self.base else "?"
        return f"{self.base}{sep}options={quote(f'-csearch_path={name}')}"

    def drop_all(self) -> None:
        with self._psycopg.connect(self.base, autocommit=True, connect_timeout=5) as conn:
            for name in self.names:
                conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        self.names = []


# -- workers ------------------------------------------------------------------------------


class Worker:
    def __init__(self, url: str, log: Path, *args: str, prefix: list[str] | None = None):
        """`prefix`: how to start it elsewhere (bench/lan.py: `ip netns exec NS`, which execs, so
        the pid is still the worker's)."""
        env = {k: v for k, v in os.environ.items() if k not in ("WF_CRASH_AT", "WF_TOKEN")}
        env.update(WF_STORE=url, PYTHONUNBUFFERED="1")
        self.log = log
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(
                [*(prefix or []), PY, "-m", "wf", "--config", str(CONFIG), "worker", *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 30) -> None:
        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited {self.proc.returncode}:\n{self.log.read_text()}")
            return "ready" in self.log.read_text(errors="replace")

        wait_for(ready, timeout, "worker ready", interval=0.01)

    def cpu_s(self) -> float:
        """User + system CPU seconds so far (Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far (Linux /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / hz, sum(fields) / hz


def _client(url: str):
    from wf.client import Client
    from wf.config import load_config

    return Client(load_config(str(CONFIG), store=url))


# -- figures ------------------------------------------------------------------------------


def throughput(
    url: str, workers: int, n: int, logs: Path, prefixes=None, server_pid: int | None = None, client_url=None
) -> dict:
    """`prefixes[i]`: where worker i runs (bench/lan.py); `server_pid`: the postmaster, when it is
    this machine's, to count the server's CPU seconds, transactions and (with `client_url`, the
    client connecting as another role) the statements the workers sent."""
    prefixes = prefixes or [None] * workers
    pool = [Worker(url, logs / f"tp{workers}-{i}.log", prefix=prefixes[i]) for i in range(workers)]
    client = _client(client_url or url)
    try:
        for w in pool:
            w.wait_ready()
        cpu0 = [w.cpu_s() for w in pool]
        server0 = _server_counters(client_url or url, server_pid)
        busy0, total0 = _machine_cpu()
        t0 = time.perf_counter()
        for at in range(0, n, 100):
            client.create_batch("three", [{"params": {}} for _ in range(min(100, n - at))])

        def done():
            counts = client.store.count_by_status("three")
            bad = set(counts) - {"queued", "running", "waiting", "complete"}
            if bad:
                raise RuntimeError(f"instances ended badly: {counts}")
            return counts.get("complete", 0) == n

        wait_for(done, 600, f"{n} instances to complete", interval=0.02)
        took = time.perf_counter() - t0
        cpu_each = [round(w.cpu_s() - c, 2) for w, c in zip(pool, cpu0)]  # how evenly the work was shared
        cpu = sum(cpu_each)
        busy1, total1 = _machine_cpu()
        server1 = _server_counters(client_url or url, server_pid)
    finally:
        for w in pool:
            w.stop()
        client.close()
    out = {
        "workers": workers,
        "n": n,
        "total_s": took,
        "per_s": n / took,
        "worker_cpu_s": cpu,
        "worker_cpu_s_each": cpu_each,
        "machine_busy": (busy1 - busy0) / max(1e-9, total1 - total0),
    }
    if server_pid:
        out["server_cpu_s"] = server1["cpu_s"] - server0["cpu_s"]
        out["server_cpu_ms_per_instance"] = out["server_cpu_s"] / n * 1000
        out["server_xacts_per_instance"] = (server1["xacts"] - server0["xacts"]) / n
        out["server_wal_kb_per_instance"] = (server1["wal_bytes"] - server0["wal_bytes"]) / n / 1024
        out["server_wal_syncs_per_instance"] = (server1["wal_syncs"] - server0["wal_syncs"]) / n
        if server0["statements"] is not None and client_url:
            out["worker_statements_per_instance"] = (server1["statements"] - server0["statements"]) / n
    return out


def _server_counters(url: str, server_pid: int | None) -> dict:
    """The server's CPU seconds (its whole process tree, /proc) and committed transactions so far."""
    if not server_pid:
        return {}
    import psycopg
    from common import tree_cpu_s

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        xacts = conn.execute("SELECT sum(xact_commit) FROM pg_stat_database").fetchone()[0]
        wal_bytes, wal_syncs = conn.execute("SELECT wal_bytes, wal_sync FROM pg_stat_wal").fetchone()
    return {
        "cpu_s": tree_cpu_s(server_pid),
        "xacts": int(xacts),
        "wal_bytes": int(wal_bytes),
        "wal_syncs": int(wal_syncs),
        "statements": worker_statements(url),
    }


def worker_statements(url: str) -> int | None:
    """Statements run so far by the role `postgres` (the workers' role, where the client connects as
    another one: bench/lan.py), from pg_stat_statements; None where the extension is not there."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        try:
            row = conn.execute(
                "SELECT coalesce(sum(calls), 0) FROM public.pg_stat_statements WHERE userid = 'postgres'::regrole"
            ).fetchone()
        except psycopg.Error:
            return None
    return int(row[0])


def event_round_trip(
    url: str, reps: int, logs: Path, prefix: list[str] | None = None, client_url=None, poll: float = 0.002
) -> dict:
    """With `client_url` (the client as another role), also the statements the worker ran per event.
    `poll`: how often this process asks the store (the figure comes from the instance's own output,
    so polling less only takes load off the server and the wire)."""
    worker = Worker(url, logs / "event.log", prefix=prefix)
    client = _client(client_url or url)
    lat, sends, statements = [], [], []
    try:
        worker.wait_ready()
        for i in range(reps + 3):  # the first few warm up the worker's connections and imports
            row = client.create("waiter", {})
            wait_for(lambda: _waiting(client, row.id), 30, "the instance to wait for its event", poll)
            time.sleep(0.02)
            before = worker_statements(client_url) if client_url else None
            t0 = time.time()
            client.send_event(row.id, "go", {"i": i})
            sent = time.time()
            st = wait_for(lambda: (s := client.status(row.id))["status"] == "complete" and s, 30, "complete", poll)
            if i >= 3:
                lat.append((st["output"] - t0) * 1000)
                sends.append((sent - t0) * 1000)
                if before is not None:
                    statements.append(worker_statements(client_url) - before)
    finally:
        worker.stop()
        client.close()
    out = {"reps": reps, "ms": lat, "median_ms": median(lat), "p95_ms": p95(lat), "send_median_ms": median(sends)}
    if statements:
        out["worker_statements_per_event"] = median(statements)
    return out


def _waiting(client, instance_id: str) -> bool:
    steps = client.describe(instance_id)["steps"]
    return any(s["name"] == "wait" and s["status"] == "waiting" for s in steps)


def measure(quick: bool, url: str | None = None) -> list[dict]:
    url = url or os.environ.get("WF_TEST_POSTGRES")
    if not url:
        raise SystemExit("bench/postgres.py needs a PostgreSQL server: --url postgresql://... or WF_TEST_POSTGRES")
    n, reps = (100, 20) if quick else (500, 100)
    import tempfile

    scratch = Scratch(url)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="wf-bench-pg-") as tmp:
        logs = Path(tmp)
        try:
            runs = [throughput(scratch.new(), k, n, logs) for k in (1, 2, 4)]
            ev = event_round_trip(scratch.new(), reps, logs)
        finally:
            scratch.drop_all()
    cores = os.cpu_count()
    base = runs[0]["per_s"]
    for r in runs:
        rows.append(
            {
                "figure": f"PostgreSQL throughput, {r['workers']} worker{'s' if r['workers'] > 1 else ''}",
                "value": round(r["per_s"], 1),
                "unit": "instances/s",
                "how": f"{n} instances of 3 trivial steps created after {r['workers']} `wf worker` process(es) "
                f"were ready, until all complete ({r['total_s']:.2f} s; x{r['per_s'] / base:.2f} of 1 "
                f"worker; the workers used {r['worker_cpu_s']:.1f} CPU-s, the machine's {cores} cores "
                f"were {r['machine_busy']:.0%} busy, PostgreSQL on the same machine)",
            }
        )
    how = (
        f"{reps} events, one `wf worker` process; from just before Client.send_event in another process to "
        f"the step after wait_for_event running (NOTIFY wakes the worker)"
    )
    rows.append(
        {
            "figure": "PostgreSQL event round trip, median",
            "value": round(ev["median_ms"], 1),
            "unit": "ms",
            "how": how + "; goal < 20 ms",
        }
    )
    rows.append(
        {"figure": "PostgreSQL event round trip, p95", "value": round(ev["p95_ms"], 1), "unit": "ms", "how": how}
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer instances and events")
    parser.add_argument("--url", help="PostgreSQL server (default: $WF_TEST_POSTGRES)")
    args = parser.parse_args()
    rows = measure(args.quick, args.url)
    print("| figure | value | unit | how |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['figure']} | {r['value']} | {r['unit']} | {r['how']} |")


if __name__ == "__main__":
    main()
