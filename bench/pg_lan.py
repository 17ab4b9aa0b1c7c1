"""PostgreSQL as if on several machines: `python bench/pg_lan.py WORKDIR [workers=[1,2,4,8]] [n=500] [reps=100]`.

A LAN is built on this machine (bench/lan.py: one network namespace per node, a router namespace
between them that delays every packet 0.5 ms each way): node "db" runs a PostgreSQL cluster of its
own (initdb, listening only on db's address), node "client" runs the benchmark's driver (it creates
the instances and sends the events), and nodes w1..w8 each run one `wf worker`. So every store round
trip of every worker, and of the client, crosses the wire. Root only (namespaces, iptables).

Figures, with bench/postgres.py's functions (a fresh schema each):
* throughput with k = 1, 2, 4, 8 workers: n instances of three trivial steps created by the client
  once the k workers are ready, until all complete; with the server's CPU seconds (the postmaster's
  process tree, from /proc) and committed transactions (pg_stat_database) per instance;
* event round trip across the namespaces: the client sends an event (Client.send_event) to an
  instance waiting in w1's worker; from just before the send to the step after wait_for_event;
* the wire itself: a TCP round trip client -> db measured on it, and the delay process's CPU;
* the statements the workers send per instance and per event (pg_stat_statements; the client
  connects as another role, so its own statements and polls are not counted): about one round
  trip each, the figure that explains the others once the database is a network hop away.
The driver runs as `python bench/pg_lan.py drive ...` inside the client node.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "src"))

from common import emit, median, parse_result  # noqa: E402

# DBOS's figure for one PostgreSQL server (blog "Benchmarking workflow execution scalability on
# Postgres"): 43k workflows/s on an RDS db.m7i.24xlarge, 96 vCPUs
DBOS_WORKFLOWS_PER_S, DBOS_VCPUS = 43_000, 96


def measure(work: Path, workers=(1, 2, 4, 8), n: int = 500, reps: int = 100, delay_ms: float = 0.5) -> dict:
    from lan import Lan, ScratchPostgres, missing_tools

    why = missing_tools()
    if why:
        return {"skipped": why}
    nodes = ["db", "client", *(f"w{i}" for i in range(1, max(workers) + 1))]
    runs, ev, rtt = [], {}, None
    with Lan(nodes, work, delay_ms) as lan:
        pg = ScratchPostgres(lan, "db")
        try:
            url = pg.start()
            rtt = _drive(lan, work, "rtt", url=url)
            for k in workers:
                prefixes = [lan.prefix(f"w{i}") for i in range(1, k + 1)]
                runs.append(_drive(lan, work, "throughput", url=url, k=k, n=n, prefixes=prefixes, pid=pg.pid))
            ev = _drive(lan, work, "event", url=url, reps=reps, prefix=lan.prefix("w1"))
        finally:
            pg.stop()
    return {**summarize(runs, ev, rtt, lan.delay_stats, delay_ms), "namespaces": f"{lan.last_tag}-*"}


def _drive(lan, work: Path, what: str, **kw) -> dict:
    """One figure, measured by a driver process inside the client node."""
    res = subprocess.run(
        [*lan.prefix("client"), sys.executable, __file__, "drive", what, str(work), json.dumps(kw)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    try:
        return parse_result(res.stdout)
    except ValueError:
        raise RuntimeError(f"the {what} driver failed:\n{res.stderr[-2500:]}") from None


def summarize(runs: list[dict], ev: dict, rtt: dict, wire: dict, delay_ms: float) -> dict:
    base = runs[0]["per_s"] if runs else None
    for r in runs:
        r["speedup"] = r["per_s"] / base
    cpu_ms = median([r["server_cpu_ms_per_instance"] for r in runs])
    out = {
        "delay_ms_each_way": delay_ms,
        "wire_rtt_ms": rtt.get("median_ms"),
        "runs": runs,
        "event_median_ms": ev.get("median_ms"),
        "event_p95_ms": ev.get("p95_ms"),
        "event_send_median_ms": ev.get("send_median_ms"),
        "event_reps": ev.get("reps"),
        "server_cpu_ms_per_instance": cpu_ms,
        "server_xacts_per_instance": median([r["server_xacts_per_instance"] for r in runs]),
        "worker_statements_per_instance": median([r.get("worker_statements_per_instance") or 0 for r in runs]),
        "worker_statements_per_event": ev.get("worker_statements_per_event"),
        "wire": wire,
    }
    four = next((r for r in runs if r["workers"] == 4), None)
    out["speedup_4"] = four["speedup"] if four else None
    if cpu_ms:
        # DBOS's arithmetic: one server's CPUs divided by what one workflow costs it
        out["projected_per_s_96_vcpu"] = DBOS_VCPUS / (cpu_ms / 1000)
        out["dbos_per_s_96_vcpu"] = DBOS_WORKFLOWS_PER_S
    if wire.get("packets"):
        out["wire_cpu_us_per_packet"] = (wire["user_s"] + wire["sys_s"]) / wire["packets"] * 1e6
    return out


# -- the driver, inside the client node ----------------------------------------------------


def drive(what: str, work: Path, kw: dict) -> dict:
    import postgres as pg

    scratch = pg.Scratch(kw["url"])
    try:
        if what == "rtt":
            return _rtt(kw["url"])
        url = scratch.new()
        client_url = url.replace("postgresql://postgres@", "postgresql://driver@", 1)
        if what == "throughput":
            return pg.throughput(url, kw["k"], kw["n"], work, kw["prefixes"], kw["pid"], client_url)
        if what == "event":
            # poll every 20 ms: over the wire, the client's polls would load the two cores the figure shares
            return pg.event_round_trip(url, kw["reps"], work, kw["prefix"], client_url, poll=0.02)
        raise ValueError(f"unknown driver figure {what!r}")
    finally:
        scratch.drop_all()


def _rtt(url: str, reps: int = 200) -> dict:
    """`SELECT 1` round trips on one connection: the wire plus the server's smallest answer."""
    import psycopg

    times = []
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        for _ in range(reps):
            t0 = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            times.append((time.perf_counter() - t0) * 1000)
    return {"reps": reps, "median_ms": median(times)}


def main() -> None:
    if sys.argv[1] == "drive":
        emit(drive(sys.argv[2], Path(sys.argv[3]), json.loads(sys.argv[4])))
        return
    work = Path(sys.argv[1])
    work.mkdir(parents=True, exist_ok=True)
    kwargs = {}
    for arg in sys.argv[2:]:
        k, v = arg.split("=", 1)
        kwargs[k] = json.loads(v)
    emit(measure(work, **kwargs))


if __name__ == "__main__":
    os.environ.pop("WF_STORE", None)
    main()
