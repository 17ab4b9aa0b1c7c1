"""Reliability: `python bench/torture.py kill_loop|contention|bad_input WORKDIR [key=value ...]`.

kill_loop   the shop's order workflow against a stub service that writes a ledger of every call;
            a `wf worker` is SIGKILLed at a random moment every 0.2-2 s and restarted, while
            instances are being triggered; then one last worker runs everything to the end.
contention  several `wf worker` processes on one SQLite file, clients writing and reading at the
            same time: no instance step run by two runners at once, no "database is locked".
pg_faults   1,000 instances on PostgreSQL with 3 `wf worker` processes and a short lease: workers are
            SIGSTOPped past their lease then SIGCONTed, and the workers' store connections are cut
            (pg_terminate_backend), again and again while the instances run. Each step execution
            appends start and end lines (pid, time) to a ledger; with the commit times the store
            keeps, it shows whether a committed step started again or one step ran in two workers.
bad_input   the bad-input tests (tests/test_bad_input.py) plus damaged state databases and
            malformed HTTP sent to `wf dev`: each must end in a clean error and leave no damage.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from common import ROOT, emit, free_port, wait_for
from wf_bench import PY, Worker, config_for, env, wf_cmd

sys.path.insert(0, str(ROOT / "tests"))
from stub_service import StubService  # noqa: E402

from wf.client import Client  # noqa: E402
from wf.config import load_config  # noqa: E402

TERMINAL = ("complete", "errored", "terminated")
SHOP = ROOT / "tests" / "fixtures" / "shop"
STEP_ENDPOINT = {
    "validate-inventory": "inventory/check",
    "process-payment": "payments/charge",
    "create-shipment": "shipping/create",
    "send-confirmation": "notifications/send",
}


# -- kill loop ----------------------------------------------------------------------------


class ShopWorker(Worker):
    def __init__(self, project: Path, log: Path):
        self.log = log
        self.spawned = time.time()
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(
                [PY, "-m", "wf", "worker"],
                cwd=project,
                env=env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )


def kill_loop(work: Path, instances: int = 1000, kills: int = 100, seed: int = 7) -> dict:
    rng = random.Random(seed)
    stub = StubService(work / "ledger.jsonl").start()
    stub._server.socket.listen(1024)  # a restarted runner resumes hundreds of calls at once
    project = work / "shop"
    shutil.copytree(SHOP, project, ignore=shutil.ignore_patterns(".wf", "__pycache__"))
    cfg = project / "wrangler.jsonc"
    text, n = re.subn(r'"API_BASE":\s*"[^"]*"', f'"API_BASE": {json.dumps(stub.url)}', cfg.read_text())
    assert n == 1
    cfg.write_text(text)
    base = json.loads((project / "order.json").read_text())
    client = Client(load_config(str(cfg)))
    ids = [f"ORD-{i:05d}" for i in range(instances)]
    t_start = time.time()
    expected_duration = kills * 1.1

    def feed():
        c = Client(load_config(str(cfg)))
        for k, oid in enumerate(ids):
            target = t_start + expected_duration * 0.7 * k / len(ids)
            time.sleep(max(0.0, target - time.time()))
            c.create(
                "order-processing",
                {**base, "orderId": oid, "fulfillment_delay": "1 second", "payment_retry_delay": "0.3 seconds"},
                oid,
            )
        c.close()

    for oid in ids[::10]:  # every tenth order's first payment attempt fails: retries under fire too
        stub.fail_payments(1, oid)
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    killed_at_ready, killed_before_ready = 0, 0
    for k in range(kills):
        w = ShopWorker(project, work / f"worker-{k}.log")
        # every third one while it starts (it replays the dead one's unfinished instances before it
        # says ready, which takes a fraction of a second now), the others while it runs
        time.sleep(rng.uniform(0.02, 0.25) if k % 3 == 2 else rng.uniform(0.2, 2.0))
        if "ready" in w.log.read_text(errors="replace"):
            killed_at_ready += 1
        else:
            killed_before_ready += 1
        if w.proc.poll() is not None:
            raise RuntimeError(f"worker {k} exited by itself ({w.proc.returncode}):\n{w.log.read_text()}")
        w.kill()
    feeder.join()
    kill_phase = time.time() - t_start
    final = ShopWorker(project, work / "worker-final.log")
    t_final = time.time()
    try:
        final.wait_ready()

        def all_done():
            rows = client.list(limit=instances + 10)
            return len(rows) == instances and all(r.status in TERMINAL for r in rows)

        wait_for(all_done, 600, "every order to end", 0.2)
    finally:
        final.stop()
    finish_phase = time.time() - t_final
    stub.stop()
    # -- checks
    calls = [json.loads(l) for l in (work / "ledger.jsonl").read_text().splitlines() if l.strip()]
    ok_calls: dict[tuple[str, str], list[float]] = {}
    for c in calls:
        if c["status"] < 400:
            ok_calls.setdefault((c["endpoint"], c["orderId"]), []).append(c["t"])
    lost, complete, wrong, after_commit, reexecuted = [], 0, [], [], 0
    for oid in ids:
        row = client.store.get_instance("order-processing", oid)
        if row is None:
            lost.append(oid)
            continue
        if row.status == "complete":
            out = json.loads(row.output)
            if out == {"status": "completed", "transactionId": f"TXN-{oid}", "trackingNumber": f"TRK-{oid}"}:
                complete += 1
            else:
                wrong.append(oid)
        for s in client.store.steps(row.seq):
            ep = STEP_ENDPOINT.get(s.name)
            if ep is None or s.status != "complete":
                continue
            times = ok_calls.get((ep, oid), [])
            late = [t for t in times if t > s.ended_at]
            if late:
                after_commit.append((oid, s.name, len(late)))
            per_run = len(base["items"]) if s.name == "validate-inventory" else 1
            reexecuted += max(0, len(times) // per_run - 1)
    result = {
        "instances": instances,
        "kills": kills,
        "killed_after_ready": killed_at_ready,
        "killed_during_startup": killed_before_ready,
        "lost": len(lost),
        "complete": complete,
        "wrong_output": len(wrong),
        "committed_steps_run_again": len(after_commit),
        "examples_run_again": after_commit[:5],
        "uncommitted_attempts_rerun": reexecuted,
        "not_complete": {
            oid: client.store.get_instance("order-processing", oid).status
            for oid in ids
            if oid not in lost
            and oid not in wrong
            and client.store.get_instance("order-processing", oid).status != "complete"
        },
        "kill_phase_s": kill_phase,
        "finish_phase_s": finish_phase,
        "ledger_calls": len(calls),
    }
    client.close()
    return result


# -- contention ---------------------------------------------------------------------------


def contention(work: Path, runners: int = 4, instances: int = 2000, clients: int = 4) -> dict:
    state = work / "state"
    log = work / "steps.log"
    log.touch()
    workers = [Worker(state, work / f"worker-{i}.log") for i in range(runners)]
    errors: list[str] = []
    per_client = instances // clients
    stop_readers = threading.Event()

    def writer(k: int):
        c = Client(config_for(state))
        try:
            for i in range(0, per_client, 50):
                try:
                    rows = c.create_batch(
                        "contend",
                        [{"id": f"c{k}-{j}", "params": {"log": str(log)}} for j in range(i, min(per_client, i + 50))],
                    )
                    for r in rows[:3]:
                        c.status(r.id)
                        c.describe(r.id)
                except Exception as exc:  # noqa: BLE001 - counted, not hidden
                    errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            c.close()

    def reader():
        c = Client(config_for(state))
        while not stop_readers.is_set():
            try:
                c.list(limit=50)
            except Exception as exc:  # noqa: BLE001
                errors.append(f"{type(exc).__name__}: {exc}")
        c.close()

    cli_errors = []

    def cli():
        while not stop_readers.is_set():
            r = subprocess.run(wf_cmd(state, "instances", "list", "--json"), env=env(), capture_output=True, text=True)
            if r.returncode != 0:
                cli_errors.append(r.stderr.strip()[-300:])

    try:
        for w in workers:
            w.wait_ready()
        t0 = time.time()
        threads = [threading.Thread(target=writer, args=(k,)) for k in range(clients)]
        side = [threading.Thread(target=reader), threading.Thread(target=cli)]
        for t in threads + side:
            t.start()
        for t in threads:
            t.join()
        c = Client(config_for(state))
        total = per_client * clients
        wait_for(lambda: c.store.count_by_status("contend").get("complete", 0) == total, 300, "all complete", 0.1)
        took = time.time() - t0
        stop_readers.set()
        for t in side:
            t.join()
        counts = c.store.count_by_status("contend")
        c.close()
    finally:
        stop_readers.set()
        for w in workers:
            w.stop()
    # -- checks: per (instance, step), which pids ran it and whether any two runs overlapped
    runs: dict[tuple[str, str], list] = {}
    for line in log.read_text().splitlines():
        kind, iid, step, pid, t = line.split()
        runs.setdefault((iid, step), []).append((kind, int(pid), float(t)))
    ran_twice, overlapping, pids_used = 0, 0, set()
    per_instance: dict[str, list] = {}
    for (iid, step), events in runs.items():
        starts = [e for e in events if e[0] == "start"]
        pids_used |= {e[1] for e in events}
        if len(starts) > 1:
            ran_twice += 1
        spans = {}
        for kind, pid, t in events:
            spans.setdefault(pid, [None, None])[0 if kind == "start" else 1] = t
        per_instance.setdefault(iid, []).extend(
            (s, e if e is not None else float("inf"), pid) for pid, (s, e) in spans.items()
        )
    for iid, spans in per_instance.items():
        spans.sort()
        for (s1, e1, p1), (s2, e2, p2) in zip(spans, spans[1:]):
            if p1 != p2 and s2 < e1:
                overlapping += 1
    worker_logs = "".join((work / f"worker-{i}.log").read_text(errors="replace") for i in range(runners))
    locked = [e for e in errors + cli_errors if "locked" in e.lower()] + [
        l for l in worker_logs.splitlines() if "locked" in l.lower()
    ]
    return {
        "runners": runners,
        "instances": per_client * clients,
        "complete": counts.get("complete", 0),
        "statuses": counts,
        "seconds": took,
        "instances_run_by_two_at_once": overlapping,
        "steps_run_twice": ran_twice,
        "runner_processes_that_ran_steps": len(pids_used),
        "database_locked_errors": len(locked),
        "client_errors": len(errors) + len(cli_errors),
        "error_examples": (errors + cli_errors)[:5],
        "worker_tracebacks": worker_logs.count("Traceback"),
    }


# -- PostgreSQL: stopped workers and cut connections --------------------------------------

PG_WORKFLOW = """
import asyncio
import json
import os
import time
import uuid

from wf import WorkflowEntrypoint

STEPS = %r


def append(path, record):
    line = (json.dumps(record) + "\\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one write, one line: lines from several processes never interleave
    finally:
        os.close(fd)


# STEPS steps that record their start and their end (or failure) with the pid that ran them; a durable
# nap between the second and the third; with `flaky`, each step's first attempt fails and is retried a
# second later (a timer held in the worker's memory: what a worker resumed from SIGSTOP acts on first).
class Ledger(WorkflowEntrypoint):
    async def run(self, event, step):
        p = event.payload
        config = {"retries": {"limit": 3, "delay": "1 second", "backoff": "constant"}}
        done = []
        for k, name in enumerate(STEPS):

            async def body(ctx, name=name):
                run = {"run": uuid.uuid4().hex, "id": event.instance_id, "step": name, "pid": os.getpid(),
                       "attempt": ctx.attempt}
                append(self.env.LEDGER, {**run, "ev": "start", "t": time.time()})
                await asyncio.sleep(p["work"])
                if p.get("flaky") and ctx.attempt == 1:
                    append(self.env.LEDGER, {**run, "ev": "fail", "t": time.time()})
                    raise RuntimeError("the first attempt fails")
                append(self.env.LEDGER, {**run, "ev": "end", "t": time.time()})
                return f"{name}:{event.instance_id}"

            done.append(await step.do(name, body, config=config))
            if k == 1 and p.get("nap"):
                await step.sleep("nap", p["nap"])
        return {"steps": done}
"""
PG_STEPS = ("reserve", "charge", "ship", "notify")


class PgWorker:
    """A `wf worker` on the PostgreSQL store; its connections carry `app` as their application_name."""

    def __init__(self, project: Path, url: str, lease: float, app: str, log: Path):
        self.log = log
        e = {**env(), "WF_STORE": url, "WF_LEASE": str(lease), "PGAPPNAME": app}
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(
                [PY, "-m", "wf", "worker"],
                cwd=project,
                env=e,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        self.pid = self.proc.pid

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker {self.pid} exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
        return "ready" in self.log.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.pid, sig)

    def stop(self) -> int | None:
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.proc.wait()
            return None


def _pg_scratch(base: str) -> tuple[str, str]:
    """A fresh schema on the server `base` names: (its name, a store URL whose search_path is it)."""
    import uuid
    from urllib.parse import quote

    import psycopg

    name = f"wf_torture_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    sep = "&" if "?" in base else "?"
    return name, f"{base}{sep}options={quote(f'-csearch_path={name}')}"


def pg_faults(
    work: Path,
    instances: int = 1000,
    workers: int = 3,
    lease: float = 2.0,
    stops: int = 12,
    cuts: int = 30,
    work_s: float = 0.05,
    deadline: float = 300.0,
    seed: int = 13,
    url: str | None = None,
) -> dict:
    import uuid

    import psycopg

    base = url or os.environ.get("WF_TEST_POSTGRES")
    if not base:
        return {"skipped": "WF_TEST_POSTGRES is not set (.ci/postgres.sh prints a URL)"}
    rng = random.Random(seed)
    schema, store_url = _pg_scratch(base)
    app = f"wf-torture-{uuid.uuid4().hex[:8]}"  # the workers' application_name: only their backends are cut
    project = work / "project"
    (project / "src").mkdir(parents=True, exist_ok=True)
    (project / "src" / "index.py").write_text(PG_WORKFLOW % (PG_STEPS,))
    ledger_path = work / "ledger.jsonl"
    (project / "wrangler.jsonc").write_text(
        json.dumps(
            {
                "name": "pg-faults",
                "main": "src/index.py",
                "vars": {"LEDGER": str(ledger_path)},
                "workflows": [{"name": "ledger", "binding": "LEDGER_FLOW", "class_name": "Ledger"}],
            }
        )
    )
    client = Client(load_config(str(project / "wrangler.jsonc"), store=store_url))
    admin = psycopg.connect(base, autocommit=True, connect_timeout=5)
    pool = [PgWorker(project, store_url, lease, app, work / f"worker-{i}.log") for i in range(workers)]
    ids = [f"pg-{i:05d}" for i in range(instances)]
    stop_windows: dict[int, list[tuple[float, float]]] = {w.pid: [] for w in pool}
    cut_log: list[tuple[float, int]] = []  # (time, backends terminated)
    leases: dict[str, list[tuple[float, float]]] = {}  # runner -> [(asked at, its lease_until then)]
    feed_errors: list[str] = []
    hold = (1.4 * lease, 2.5 * lease)  # how long a stopped worker stays stopped: always past its lease
    fault_phase = stops * (sum(hold) / 2 + 1.5)
    t_start = time.time()
    try:
        wait_for(lambda: all(w.ready() for w in pool), 60, "every worker to be ready", 0.05)
        t_start = time.time()

        def feed():
            c = Client(load_config(str(project / "wrangler.jsonc"), store=store_url))
            batch = max(1, instances // 40)
            try:
                for k in range(0, instances, batch):
                    target = t_start + fault_phase * 0.8 * k / instances
                    time.sleep(max(0.0, target - time.time()))
                    rows = []
                    for j, iid in enumerate(ids[k : k + batch], start=k):
                        params = {"work": work_s * rng.choice((0.2, 1, 3)), "flaky": j % 7 == 0}
                        if j % 3 == 0:
                            params["nap"] = "1 second"
                        rows.append({"id": iid, "params": params})
                    try:
                        c.create_batch("ledger", rows)
                    except Exception as exc:  # noqa: BLE001 - counted: a create the store refused
                        feed_errors.append(f"{type(exc).__name__}: {exc}")
            finally:
                c.close()

        done_faulting = threading.Event()

        def cutter():
            every = 0.8 * fault_phase / max(1, cuts)  # all of them before the stops end, as a rule
            for _ in range(cuts):
                if done_faulting.wait(rng.uniform(0.5, 1.5) * every):
                    return
                rows = admin.execute(
                    "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                    (app,),
                ).fetchall()
                cut_log.append((time.time(), sum(1 for _, ok in rows if ok)))

        def watch():  # each runner's lease as the store holds it, sampled: when it had surely run out
            with psycopg.connect(base, autocommit=True, connect_timeout=5) as conn:
                while not done_watching.wait(0.05):
                    asked = time.time()  # the rows are as of some instant after this
                    for owner, until in conn.execute(f'SELECT owner, lease_until FROM "{schema}".wf_runners'):
                        leases.setdefault(owner, []).append((asked, until))

        done_watching = threading.Event()
        feeder = threading.Thread(target=feed, daemon=True)
        cuts_thread = threading.Thread(target=cutter, daemon=True)
        watcher = threading.Thread(target=watch, daemon=True)
        feeder.start()
        cuts_thread.start()
        watcher.start()
        for k in range(stops):  # one worker at a time, round robin; the others carry on
            time.sleep(rng.uniform(0.5, 2.5))
            w = pool[k % workers]
            if w.proc.poll() is not None:
                continue
            w.signal(signal.SIGSTOP)
            stopped_at = time.time()  # taken after the signal: the window counted as stopped is never too wide
            time.sleep(rng.uniform(*hold))
            resumed_at = time.time()
            w.signal(signal.SIGCONT)
            stop_windows[w.pid].append((stopped_at, resumed_at))
        feeder.join()
        done_faulting.set()
        cuts_thread.join()
        fault_s = time.time() - t_start

        def finished() -> bool:
            counts = client.store.count_by_status("ledger")
            return sum(counts.get(s, 0) for s in TERMINAL) >= instances

        try:
            wait_for(finished, deadline, "every instance to end", 0.2)
        except TimeoutError:
            pass
        total_s = time.time() - t_start
        done_watching.set()
        watcher.join()
        rows = admin.execute(f'SELECT id, status, output FROM "{schema}".wf_instances').fetchall()
        committed = admin.execute(
            f'SELECT i.id, s.name, s.ended_at FROM "{schema}".wf_steps s '
            f'JOIN "{schema}".wf_instances i ON i.seq = s.instance WHERE s.status = %s AND s.kind = %s',
            ("complete", "do"),
        ).fetchall()
        handed_back = admin.execute(  # the reaper's record of each claim it took from a runner whose lease ran out
            f'SELECT i.id, h.at, h.data FROM "{schema}".wf_history h '
            f'JOIN "{schema}".wf_instances i ON i.seq = h.instance WHERE h.type = %s',
            ("runner_lost",),
        ).fetchall()
    finally:
        done_watching.set()
        exits = {w.pid: w.proc.poll() for w in pool}
        codes = [w.stop() for w in pool]
        client.close()
        try:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            admin.close()
    entries = [json.loads(line) for line in ledger_path.read_text().splitlines() if line.strip()]
    logs = "".join(w.log.read_text(errors="replace") for w in pool)
    owners = {}  # worker pid -> the runner id it prints in its "ready" line (the owner the store records)
    for w in pool:
        m = re.search(r"wf worker (\S+) ready", w.log.read_text(errors="replace"))
        if m:
            owners[w.pid] = m.group(1)
    (work / "evidence.json").write_text(  # for a look afterwards: the schema is dropped
        json.dumps(
            {"stops": stop_windows, "cuts": cut_log, "owners": owners, "handed_back": handed_back, "leases": leases}
        )
    )
    lost_claims: dict[tuple[str, str], list[float]] = {}
    for iid, at, data in handed_back:
        lost_claims.setdefault((iid, json.loads(data or "{}").get("owner")), []).append(at)
    return {
        "instances": instances,
        "workers": workers,
        "lease_s": lease,
        "stops": sum(len(v) for v in stop_windows.values()),
        "stopped_s": [round(b - a, 2) for v in stop_windows.values() for a, b in v],
        "connection_cuts": len(cut_log),
        "backends_terminated": sum(n for _, n in cut_log),
        **_pg_verdict(ids, rows, committed, entries, stop_windows, lost_claims, leases, owners, lease),
        "create_errors": len(feed_errors),
        "create_error_examples": feed_errors[:3],
        "workers_exited_during_run": sum(1 for code in exits.values() if code is not None),
        "worker_exit_codes": codes,
        "worker_tracebacks": logs.count("Traceback"),
        "fault_phase_s": round(fault_s, 2),
        "wall_s_run": round(total_s, 2),
    }


def _pg_verdict(ids, rows, committed, entries, stop_windows, lost_claims, leases, owners, lease) -> dict:
    """The counts of pg_faults from the store's rows and the ledger."""
    status = {r[0]: (r[1], r[2]) for r in rows}
    lost = [i for i in ids if i not in status]
    errored = [i for i in ids if i in status and status[i][0] == "errored"]
    stuck = [i for i in ids if i in status and status[i][0] not in TERMINAL]
    other = [i for i in ids if i in status and status[i][0] == "terminated"]
    wrong = [
        i
        for i in ids
        if i in status
        and status[i][0] == "complete"
        and json.loads(status[i][1]) != {"steps": [f"{s}:{i}" for s in PG_STEPS]}
    ]
    # one run per step execution: (start, end or None, pid)
    runs: dict[str, dict] = {}
    for e in entries:
        r = runs.setdefault(e["run"], {"key": (e["id"], e["step"]), "pid": e["pid"]})
        r[e["ev"]] = e["t"]
    by_step: dict[tuple, list] = {}
    for r in runs.values():
        by_step.setdefault(r["key"], []).append((r["start"], r.get("end", r.get("fail")), r["pid"]))
    # a step committed at T (its ended_at: taken before its commit) has no start after T, by anyone
    commit_at = {(i, s): t for i, s, t in committed}
    rerun = [(k, t) for k, t in commit_at.items() for s, _, _ in by_step.get(k, []) if s > t]
    never_ran = [k for k in commit_at if k not in by_step]

    def stopped_since(pid: int, t: float) -> float | None:
        """When the stop of `pid` that covers time `t` began, if one does."""
        return next((a for a, b in stop_windows.get(pid, []) if a <= t < b), None)

    def lease_ran_out(pid: int, t: float) -> bool:
        """Had the lease of `pid`'s runner surely run out at `t`? A lease only ever moves forward, so
        the first sample asked after `t` bounds it from above."""
        after = next((until for asked, until in leases.get(owners.get(pid, ""), []) if asked >= t), None)
        return after is not None and after < t

    # Two runs of one step in different workers, the later starting before the earlier ended: allowed only
    # when the earlier run's worker had lost the instance by the time the later run started. The evidence,
    # any of: its runner's lease had surely run out then (the store's lease_until, sampled every 50 ms);
    # the reaper recorded taking the instance from it (`runner_lost`) after that run started and before
    # the later one did (its time is read just before it looks for lapsed leases: a run that started up
    # to a lease before it still counts); it had been stopped for over 1.1 leases then (it cannot renew
    # while stopped). Such an attempt was in flight when its worker lost the instance: its commit is
    # refused and the new owner runs the step again, as it may any uncommitted attempt.
    beside, in_flight, in_flight_stopped, cut_off = [], 0, 0, 0
    for key, rs in by_step.items():
        rs.sort(key=lambda r: r[0])
        cut_off += sum(1 for _, e, _ in rs if e is None)
        for a, (s1, e1, p1) in enumerate(rs):
            for s2, _e2, p2 in rs[a + 1 :]:
                if p1 == p2 or (e1 is not None and s2 >= e1):
                    continue
                since = stopped_since(p1, s2)
                taken = any(s1 - lease <= t <= s2 for t in lost_claims.get((key[0], owners.get(p1)), []))
                if lease_ran_out(p1, s2) or taken or (since is not None and s2 - since > 1.1 * lease):
                    in_flight += 1
                    in_flight_stopped += since is not None
                else:
                    beside.append((key, p1, p2, round(s1, 3), round(s2, 3), since and round(since, 3)))
    retaken = sum(1 for rs in by_step.values() if len({p for _, _, p in rs}) > 1)
    return {
        "complete": sum(1 for i in ids if status.get(i, ("",))[0] == "complete"),
        "lost": len(lost),
        "errored": len(errored),
        "errored_examples": errored[:5],
        "stuck": len(stuck),
        "stuck_examples": [(i, status[i][0]) for i in stuck[:5]],
        "terminated": len(other),
        "wrong_output": len(wrong),
        "committed_steps_started_again": len(rerun),
        "examples_started_again": [list(k) for k, _ in rerun[:5]],
        "committed_steps_without_a_run": len(never_ran),
        "concurrent_runs": len(beside),
        "concurrent_examples": [[list(k), *rest] for k, *rest in beside[:5]],
        "in_flight_when_the_claim_was_lost": in_flight,
        "of_which_worker_stopped": in_flight_stopped,
        "steps_run_by_two_workers": retaken,
        "attempts_cut_off": cut_off,
        "step_executions": len(runs),
    }


MUST_BE_ZERO = (
    "lost",
    "errored",
    "stuck",
    "terminated",
    "wrong_output",
    "committed_steps_started_again",
    "committed_steps_without_a_run",
    "concurrent_runs",
    "create_errors",
    "workers_exited_during_run",
)


def pg_faults_failed(result: dict) -> list[str]:
    """The counts of a pg_faults result that must be 0 and are not."""
    return [k for k in MUST_BE_ZERO if result.get(k)]


# -- bad input ----------------------------------------------------------------------------


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"


def _seed_db(state: Path) -> Path:
    c = Client(config_for(state))
    for i in range(200):
        c.create("three", {"pad": "x" * 200}, f"seed-{i}")
    c.close()
    db = state / "state.db"
    import sqlite3

    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return db


def _damage(kind: str, db: Path) -> None:
    import sqlite3

    if kind == "truncated":
        data = db.read_bytes()
        db.write_bytes(data[: len(data) // 2 + 100])
    elif kind == "corrupted-pages":
        data = bytearray(db.read_bytes())
        rng = random.Random(1)
        for page in range(2, len(data) // 4096):
            for _ in range(64):
                data[page * 4096 + rng.randrange(4096)] = rng.randrange(256)
        db.write_bytes(bytes(data))
    elif kind == "corrupted-header":
        data = bytearray(db.read_bytes())
        data[:100] = bytes(random.Random(2).randrange(256) for _ in range(100))
        db.write_bytes(bytes(data))
    elif kind == "newer-schema":
        conn = sqlite3.connect(db)
        conn.execute("UPDATE wf_meta SET value='999' WHERE key='schema_version'")
        conn.commit()
        conn.close()
    elif kind == "not-wf-sqlite":
        db.unlink()
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO users VALUES (1, 'alice')")
        conn.commit()
        conn.close()
    elif kind == "not-a-database":
        db.write_text("hello, I am a text file\n" * 100)
    elif kind == "directory":
        db.unlink()
        db.mkdir()
        for extra in ("state.db-wal", "state.db-shm"):
            (db.parent / extra).unlink(missing_ok=True)
    for extra in ("state.db-wal", "state.db-shm"):
        if kind not in ("directory",):
            (db.parent / extra).unlink(missing_ok=True)


DB_CASES = [
    "truncated",
    "corrupted-pages",
    "corrupted-header",
    "newer-schema",
    "not-wf-sqlite",
    "not-a-database",
    "directory",
]
DB_COMMANDS = [
    ["instances", "list"],
    ["status", "seed-150", "--json"],
    ["trigger", "three", "{}"],
    ["send-event", "seed-150", "--type", "x"],
    ["worker"],
]


def _worker_on(state: Path, wait: float = 5.0) -> tuple:
    """Start `wf worker` on a damaged store: (exit code, stderr), or ("running", stderr) after `wait` s."""
    log = state.parent / f"{state.name}-worker.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            wf_cmd(state, "worker"),
            env=env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    try:
        rc = proc.wait(wait)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        rc = "running"
    return rc, log.read_text(errors="replace")


def _clean(res_rc: int, stderr: str) -> bool:
    """A clean error: non-zero exit, one `error:` line (with --json, `{"error": {...}}`), no traceback."""
    return res_rc != 0 and ("error:" in stderr or '{"error": {' in stderr) and "Traceback" not in stderr


def bad_input(work: Path, http: bool = True) -> dict:
    cases: list[dict] = []
    # 1. the bad-input test module: every test is one class of bad input (config, params, ids, ...)
    xml = work / "bad_input.xml"
    subprocess.run(
        [
            PY,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(ROOT / "tests" / "test_bad_input.py"),
            f"--junitxml={xml}",
        ],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    import xml.etree.ElementTree as ET

    for tc in ET.parse(xml).getroot().iter("testcase"):
        failed = any(ch.tag in ("failure", "error") for ch in tc)
        skipped = any(ch.tag == "skipped" for ch in tc)
        cases.append({"group": "tests/test_bad_input.py", "case": tc.get("name"), "ok": not failed, "skipped": skipped})
    # 2. damaged state databases: every command must fail cleanly and leave the file as it was
    for kind in DB_CASES:
        state = work / f"db-{kind}"
        db = _seed_db(state)
        _damage(kind, db)
        before = _sha(db)
        problems = []
        for cmd in DB_COMMANDS:
            if cmd == ["worker"]:
                rc, err = _worker_on(state)
                if rc == "running":  # the damage is not in what it reads: it runs; no traceback allowed
                    if "Traceback" in err:
                        problems.append(f"wf worker: traceback: {err[-300:]}")
                    continue
            else:
                try:
                    res = subprocess.run(wf_cmd(state, *cmd), env=env(), capture_output=True, text=True, timeout=20)
                    rc, err = res.returncode, res.stderr
                except subprocess.TimeoutExpired as exc:
                    rc, err = None, f"hung for 20 s: {exc.stderr!r}"
            if kind == "truncated" and rc == 0 and cmd[0] in ("instances", "status"):
                continue  # the rows it needed were intact: a correct answer is fine too
            if rc is None or not _clean(rc, err):
                problems.append(f"wf {' '.join(cmd)}: exit {rc}: {err.strip()[-300:]}")
        if _sha(db) != before:
            problems.append("the file was changed")
        cases.append({"group": "state database", "case": kind, "ok": not problems, "problems": problems})
    # 3. malformed HTTP to `wf dev`
    if http:
        cases += _http_cases(work)
    handled = sum(1 for c in cases if c["ok"] and not c.get("skipped"))
    return {
        "classes": len(cases),
        "handled_cleanly": handled,
        "skipped": sum(1 for c in cases if c.get("skipped")),
        "not_handled": [c for c in cases if not c["ok"]],
        "by_group": {g: sum(1 for c in cases if c["group"] == g) for g in dict.fromkeys(c["group"] for c in cases)},
    }


API = "/cdn-cgi/local/explorer/api"


def _raw(port: int, data: bytes, timeout: float = 5.0, half_close: bool = False) -> bytes:
    """Send `data`, read until the server closes (requests say Connection: close) or `timeout`."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if half_close:
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        chunks = []
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def _req(method: str, path: str, body: bytes = b"", headers: dict | None = None) -> bytes:
    h = {"Host": "127.0.0.1", "Connection": "close", "Content-Length": str(len(body)), **(headers or {})}
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    return head.encode("latin-1") + body


HTTP_CASES = {
    # name: (raw request, acceptable statuses; None = the server may also just close the connection)
    "garbage request line": (b"\x16\x03\x01\x02\x00hello\r\n\r\n", None),
    "unknown HTTP method": (_req("BREW", API + "/workflows"), {400, 404, 405, 501}),
    "invalid JSON body": (
        _req("POST", API + "/workflows/three/instances", b"{not json", {"Content-Type": "application/json"}),
        {400, 422},
    ),
    "JSON of the wrong type": (
        _req("POST", API + "/workflows/three/instances", b"[1,2,3]", {"Content-Type": "application/json"}),
        {400, 422},
    ),
    "invalid instance id": (
        _req("POST", API + "/workflows/three/instances", b'{"id":"../../etc"}', {"Content-Type": "application/json"}),
        {400, 422},
    ),
    "unknown workflow": (_req("GET", API + "/workflows/nope/instances"), {404}),
    "unknown instance": (_req("GET", API + "/workflows/three/instances/nope"), {404}),
    "invalid status action": (
        _req(
            "PATCH",
            API + "/workflows/three/instances/x/status",
            b'{"status":"explode"}',
            {"Content-Type": "application/json"},
        ),
        {400, 404, 422},
    ),
    "non-UTF-8 body": (
        _req(
            "POST", API + "/workflows/three/instances", b'{"params":"\xff\xfe"}', {"Content-Type": "application/json"}
        ),
        {400, 422},
    ),
    "percent-encoded junk in path": (_req("GET", API + "/workflows/%ff%00/instances"), {400, 404}),
    "content-length larger than body": (
        _req("POST", API + "/workflows/three/instances", b"{}", {"Content-Length": "1000"}),
        None,
    ),
    "negative content-length": (
        _req("POST", API + "/workflows/three/instances", b"{}", {"Content-Length": "-5"}),
        {400},
    ),
    "100 KB header": (_req("GET", API + "/workflows", b"", {"X-Big": "a" * 100_000}), {200, 400, 413, 431}),
    "oversized params (2 MB)": (
        _req(
            "POST",
            API + "/workflows/three/instances",
            json.dumps({"params": {"x": "a" * 2_000_000}}).encode(),
            {"Content-Type": "application/json"},
        ),
        {400, 413, 422},
    ),
    "bad event type": (
        _req(
            "POST", API + "/workflows/three/instances/x/events/bad%20type!", b"{}", {"Content-Type": "application/json"}
        ),
        {400, 404},
    ),
    "a body that is not JSON": (_req("POST", API + "/workflows/three/instances", b"id=x"), {415}),
    "a cross-site create": (
        _req("POST", API + "/workflows/three/instances", b"", {"Origin": "http://evil.example"}),
        {403},
    ),
    "bad pagination": (_req("GET", API + "/workflows/three/instances?per_page=-1&page=abc"), {400, 422}),
}


def _http_cases(work: Path) -> list[dict]:
    state = work / "http-state"
    port = free_port()
    log = work / "dev.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            wf_cmd(state, "dev", "--port", str(port)),
            env=env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    out = []
    try:

        def healthy():
            try:
                return b" 200 " in _raw(port, _req("GET", API + "/workflows"), 2)[:20]
            except OSError:
                return False

        wait_for(healthy, 30, "wf dev", 0.02)
        for name, (data, allowed) in HTTP_CASES.items():
            try:
                resp = _raw(port, data, half_close=name == "garbage request line")
            except OSError as exc:
                resp = f"(connection error {exc})".encode()
            m = re.match(rb"HTTP/1\.[01] (\d{3})", resp)
            status = int(m.group(1)) if m else None
            ok_status = (status is None or status < 500) if allowed is None else status in allowed
            alive = healthy()
            problems = []
            if not ok_status:
                problems.append(f"answered {status}: {resp[:300]!r}")
            if not alive:
                problems.append("the server stopped answering")
            out.append(
                {
                    "group": "malformed HTTP (wf dev)",
                    "case": name,
                    "ok": not problems,
                    "status": status,
                    "problems": problems,
                }
            )
        text = log.read_text(errors="replace")
        if "Traceback" in text:
            out.append(
                {
                    "group": "malformed HTTP (wf dev)",
                    "case": "no traceback in the server log",
                    "ok": False,
                    "problems": [text[-1000:]],
                }
            )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    return out


FIGURES = {"kill_loop": kill_loop, "contention": contention, "pg_faults": pg_faults, "bad_input": bad_input}

if __name__ == "__main__":
    figure, work = sys.argv[1], Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    kwargs = {k: json.loads(v) for k, v in (a.split("=", 1) for a in sys.argv[3:])}
    result = FIGURES[figure](work, **kwargs)
    if figure == "pg_faults" and "skipped" not in result:
        result["failed"] = pg_faults_failed(result)
    emit(result)
    if result.get("failed"):
        sys.exit(1)
