"""Reliability: `python bench/torture.py kill_loop|contention|bad_input WORKDIR [key=value ...]`.

kill_loop   the shop's order workflow against a stub service that writes a ledger of every call;
            a `wf worker` is SIGKILLed at a random moment every 0.2-2 s and restarted, while
            instances are being triggered; then one last worker runs everything to the end.
contention  several `wf worker` processes on one SQLite file, clients writing and reading at the
            same time: no instance step run by two runners at once, no "database is locked".
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
        time.sleep(rng.uniform(0.2, 2.0))
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


FIGURES = {"kill_loop": kill_loop, "contention": contention, "bad_input": bad_input}

if __name__ == "__main__":
    figure, work = sys.argv[1], Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    kwargs = {k: json.loads(v) for k, v in (a.split("=", 1) for a in sys.argv[3:])}
    emit(FIGURES[figure](work, **kwargs))
