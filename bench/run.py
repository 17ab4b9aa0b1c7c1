"""Every benchmark and reliability figure, wf beside its peers in one run, into bench/RESULTS.md.

Also written: bench/results.json, the cost-curve plots in bench/plots/ and the `-X importtime`
summaries in bench/importtime-status.txt and bench/importtime-instances-list.txt.

    .venv/bin/python bench/run.py                 # the full run (about 12 min on 2 cores)
    .venv/bin/python bench/run.py --quick         # small sizes, every figure and check (CI smoke, ~1 min)
    .venv/bin/python bench/run.py --peers restate # only some peers (dbos, temporal, wrangler, restate)

Peers run in their own environments so that wf's venv stays clean (bench/peers.py installs them
from the registries on first use): DBOS, Temporal, Restate's SDK and matplotlib in
bench/.venv-peers, the Restate server and wrangler under bench/.cache. A peer that cannot be
installed or run is recorded as such, never given a number. The PostgreSQL-across-machines
figures (bench/pg_lan.py) need root; without it they are recorded as skipped, with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402
from common import BENCH, ROOT, median, parse_result  # noqa: E402
from report import NOTES_MARK, machine, report  # noqa: E402

PY = sys.executable
ALL_PEERS = ("dbos", "temporal", "wrangler", "restate")

FULL = dict(
    rounds=2,
    per_step_n=1000,
    per_step_reps=3,
    thr_n=500,
    event_reps=100,
    timer_reps=20,
    recovery_reps=5,
    cli_reps=20,
    dev_reps=5,
    dev_idle=5.0,
    floor_n=5000,
    curve_steps=[10, 1000, 10000, 25000],
    curve_waiting=[1000, 10000, 100000],
    events_at=10000,  # the waiting-instances point that also gets every event (figure 9a)
    curve_list=[10000, 100000, 1000000],
    list_reps=5,
    kill_instances=1000,
    kills=100,
    pg_fault_instances=1000,
    pg_stops=20,
    pg_cuts=40,
    cont_instances=2000,
    dbos_recovery_reps=3,
    restate_recovery_reps=3,
    wrangler_reps=5,
    wrangler_cli_reps=5,
    temporal_steps=200,
    lan_workers=[1, 2, 4, 8],
    lan_n=500,
    lan_event_reps=100,
    ui_n=100000,
    ui_reps=20,
    ui_idle_s=30.0,
    overdue_reps=5,
    takeover_reps=3,
    template_reps=3,
    fake_day_reps=5,
)
QUICK = dict(
    rounds=1,
    per_step_n=200,
    per_step_reps=2,
    thr_n=50,
    event_reps=10,
    timer_reps=3,
    recovery_reps=1,
    cli_reps=2,
    dev_reps=1,
    dev_idle=1.0,
    floor_n=300,
    curve_steps=[10, 100],
    curve_waiting=[100, 300],
    events_at=300,
    curve_list=[500, 2000],
    list_reps=1,
    kill_instances=30,
    kills=6,
    pg_fault_instances=60,
    pg_stops=2,
    pg_cuts=4,
    cont_instances=200,
    dbos_recovery_reps=1,
    restate_recovery_reps=1,
    wrangler_reps=2,
    wrangler_cli_reps=1,
    temporal_steps=20,
    lan_workers=[1, 2],
    lan_n=30,
    lan_event_reps=3,
    ui_n=5000,
    ui_reps=3,
    ui_idle_s=3.0,
    overdue_reps=1,
    takeover_reps=1,
    template_reps=1,
    fake_day_reps=2,
)


class Bench:
    def __init__(self, sizes: dict, work: Path, peer_set: set[str], log):
        self.s, self.work, self.peer_set, self.log = sizes, work, peer_set, log
        self.r: dict = {}

    def say(self, msg: str) -> None:
        self.log.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
        self.log.flush()

    def sub(self, key: str, cmd: list[str], timeout: float = 1800, env: dict | None = None) -> dict:
        """Run one figure's process; its RESULT line (or what went wrong) becomes results[key]."""
        self.say(f"{key}: {' '.join(cmd[1:4])} ...")
        t0 = time.time()
        res = None
        try:
            # bytecode caches read and written as after a pip install (this machine's shell may set
            # PYTHONDONTWRITEBYTECODE: every start would then compile its modules again)
            full_env = {**os.environ, "PYTHONDONTWRITEBYTECODE": None, **(env or {})}
            res = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=ROOT,
                env={k: v for k, v in full_env.items() if v is not None},  # None: unset it
            )
            data = parse_result(res.stdout)
        except Exception as exc:  # noqa: BLE001 - a figure that failed is recorded, the run goes on
            out = res.stderr if res is not None else ""
            data = {"error": f"{type(exc).__name__}: {exc}"[:1500] + ("\n" + out[-1500:] if out else "")}
        data["wall_s"] = round(time.time() - t0, 2)
        self.r[key] = data
        self.say(f"{key}: {json.dumps(data)[:300]}")
        return data

    def args(self, script: str, figure: str, key: str, *extra: str, **kw) -> list[str]:
        values = (f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in kw.items())
        return [str(BENCH / script), figure, str(self.work / key), *extra, *values]

    def wf(self, key: str, figure: str, env: dict | None = None, **kw) -> dict:
        return self.sub(key, [PY, *self.args("wf_bench.py", figure, key, **kw)], env=env)

    def torture(self, key: str, figure: str, **kw) -> dict:
        return self.sub(key, [PY, *self.args("torture.py", figure, key, **kw)], timeout=3600)

    def peer(self, key: str, group: str, script: str, figure: str, *extra: str, timeout: float = 1800, **kw) -> dict:
        """A figure of a peer, run with bench/.venv-peers' Python once its packages are installed."""
        why = self.ready(group)
        if why:
            self.r[key] = {"skipped": why}
            return self.r[key]
        return self.sub(key, [str(peers.PEER_PY), *self.args(script, figure, key, *extra, **kw)], timeout=timeout)

    def ready(self, group: str) -> str | None:
        """None when `group` (a peer, or "plots") can run, else why not (installing it if need be)."""
        if group in ALL_PEERS and group not in self.peer_set:
            return f"{group} not run (--peers / --no-peers)"
        needs = {"restate": ["restate", "restate-server"], "wrangler": []}.get(group, [group])
        for need in needs:
            self.say(f"making sure {need} is installed")
            why = peers.ensure(need)
            if why:
                return why
        return None

    # -- the run ------------------------------------------------------------------------

    def run(self, alongside: bool = False) -> dict:
        """Every figure; with `alongside` (--quick) the PostgreSQL figures and the reliability runs go on
        in threads beside the others: quick timings are no figures, and the invariants must hold under load too."""
        lanes = [
            [
                self.durability,
                self.per_step_and_throughput,
                self.latency,
                self.cli_and_dev,
                self.ui_and_goals,
                self.curves,
                self.other_peers,
            ],
            [self.postgres],
            [self.reliability],
        ]
        if alongside:
            threads = [threading.Thread(target=lambda lane=lane: [step() for step in lane]) for lane in lanes]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        else:
            for lane in lanes:
                for step in lane:
                    step()
        self.plots()
        return self.r

    def reliability(self) -> None:
        self.torture("kill_loop", "kill_loop", instances=self.s["kill_instances"], kills=self.s["kills"])
        s = self.s  # on the server WF_TEST_POSTGRES names; recorded as skipped without it
        self.torture(
            "pg_faults", "pg_faults", instances=s["pg_fault_instances"], stops=s["pg_stops"], cuts=s["pg_cuts"]
        )
        self.torture("contention", "contention", instances=self.s["cont_instances"])
        self.torture("bad_input", "bad_input")

    def durability(self) -> None:
        """The disk's floor for commits of one page and of a step's size, at both SQLite modes."""
        pages = self.wf("floor_pages", "step_pages").get("pages_per_step")
        self.wf("floor_1", "floor", n=self.s["floor_n"], pages=1)
        if pages:
            self.wf("floor_step", "floor", n=self.s["floor_n"], pages=max(1, round(pages)))

    def per_step_and_throughput(self) -> None:
        """The head-to-head figures, in `rounds` rounds (A B A B: every system once per round); each
        figure is then the median of its rounds, the rounds kept beside it."""
        for i in range(self.s["rounds"]):
            self.head_to_head(f"@{i + 1}" if i else "")
        for i in range(1, self.s["rounds"]):
            for key in [k for k in self.r if k.endswith(f"@{i + 1}")]:
                self.merge(key.rsplit("@", 1)[0], self.r.pop(key))

    def head_to_head(self, tag: str) -> None:
        s = self.s
        # wf at its default durability, then at the other mode (`_alt`), beside DBOS and Restate
        env_default = {"WF_SQLITE_SYNC": None}
        first = self.wf("wf_per_step" + tag, "per_step", env=env_default, n=s["per_step_n"], reps=s["per_step_reps"])
        alt = {"WF_SQLITE_SYNC": "normal" if first.get("synchronous") == "FULL" else "full"}
        self.wf("wf_per_step_alt" + tag, "per_step", env=alt, n=s["per_step_n"], reps=s["per_step_reps"])
        for variant, key in (("default", "dbos_per_step"), ("wal", "dbos_wal_per_step")):
            self.peer(
                key + tag, "dbos", "dbos_bench.py", "per_step", variant, n=s["per_step_n"], reps=s["per_step_reps"]
            )
        self.peer(
            "restate_per_step" + tag,
            "restate",
            "restate_bench.py",
            "per_step",
            n=s["per_step_n"],
            reps=s["per_step_reps"],
        )
        for mode in ("sequential", "concurrent"):
            self.wf(f"wf_thr_{mode}{tag}", "throughput", env=env_default, n=s["thr_n"], mode=mode)
            self.wf(f"wf_thr_{mode}_alt{tag}", "throughput", env=alt, n=s["thr_n"], mode=mode)
            for variant, key in (("default", f"dbos_thr_{mode}"), ("wal", f"dbos_wal_thr_{mode}")):
                self.peer(key + tag, "dbos", "dbos_bench.py", "throughput", variant, n=s["thr_n"], mode=mode)
            # Restate's SDK example runs several hypercorn workers: the concurrent figure is taken in
            # hypercorn's own process and with one worker process per core, the better kept
            extra = {"workers": [0, os.cpu_count()]} if mode == "concurrent" else {}
            figure = "throughput_best" if mode == "concurrent" else "throughput"
            self.peer(
                f"restate_thr_{mode}{tag}", "restate", "restate_bench.py", figure, n=s["thr_n"], mode=mode, **extra
            )

    def merge(self, key: str, later: dict) -> None:
        """Fold a later round's figure into results[key]: its number becomes the median of the rounds."""
        first = self.r.get(key, {})
        field = next((f for f in ("per_step_ms", "per_s") if f in first and f in later), None)
        if field is None:  # a round failed or was skipped: keep what there is, say so
            first.setdefault("failed_rounds", []).append(later.get("error") or later.get("skipped"))
            return
        first.setdefault("rounds", [first[field]]).append(later[field])
        first[field] = median(first["rounds"])

    def latency(self) -> None:
        s = self.s
        self.wf("wf_event", "event_round_trip", reps=s["event_reps"])
        self.peer(
            "dbos_event", "dbos", "dbos_bench.py", "event_round_trip", "default", reps=max(5, s["event_reps"] // 10)
        )
        self.peer(
            "dbos_event_poll10ms",
            "dbos",
            "dbos_bench.py",
            "event_round_trip",
            "default",
            reps=s["event_reps"],
            poll=0.01,
        )
        self.peer(
            "dbos_wal_event_poll10ms",
            "dbos",
            "dbos_bench.py",
            "event_round_trip",
            "wal",
            reps=s["event_reps"],
            poll=0.01,
        )
        self.peer("restate_event", "restate", "restate_bench.py", "event_round_trip", reps=s["event_reps"])
        self.wf("wf_timer", "timer", reps=s["timer_reps"])
        self.peer("dbos_timer", "dbos", "dbos_bench.py", "timer", "wal", reps=s["timer_reps"])
        self.wf("wf_recovery", "recovery", reps=s["recovery_reps"])
        self.peer("dbos_recovery", "dbos", "dbos_bench.py", "recovery", "wal", reps=s["dbos_recovery_reps"])
        self.peer("restate_recovery", "restate", "restate_bench.py", "recovery", reps=s["restate_recovery_reps"])

    def cli_and_dev(self) -> None:
        self.wf("wf_cli", "cli_startup", reps=self.s["cli_reps"])
        self.wf("wf_dev_start", "dev_start", reps=self.s["dev_reps"], idle=self.s["dev_idle"])

    def ui_and_goals(self) -> None:
        """The web UI (issue 12), and the latency goals tests held as wall-clock asserts (issue 11)."""
        s = self.s
        self.wf("wf_ui_pages", "ui_pages", n=s["ui_n"], reps=s["ui_reps"])
        self.wf("wf_ui_idle", "ui_idle", seconds=s["ui_idle_s"])
        self.wf("wf_restart_overdue", "restart_overdue", reps=s["overdue_reps"])
        self.wf("wf_takeover", "survivor_takeover", reps=s["takeover_reps"])
        self.wf("wf_template_tests", "template_tests", reps=s["template_reps"])
        self.wf("wf_fake_day", "fake_clock_day", reps=s["fake_day_reps"])

    def curves(self) -> None:
        """Deliverable 5: how time and memory grow with the work."""
        s = self.s
        self.wf("wf_curve_steps", "per_step_curve", sizes=s["curve_steps"])
        for n in s["curve_waiting"]:
            self.wf(f"wf_curve_waiting_{n}", "scale_waiting", n=n, concurrency=n + 100, events=n == s["events_at"])
        for n in s["curve_list"]:
            self.wf(f"wf_curve_list_{n}", "list_many", n=n, reps=s["list_reps"])

    def other_peers(self) -> None:
        s = self.s
        why = self.ready("wrangler")
        if why:
            self.r["wrangler"] = {"skipped": why}
        else:  # wrangler_bench.mjs installs wrangler itself
            args = [str(self.work / "wrangler"), str(s["wrangler_reps"]), str(s["wrangler_cli_reps"])]
            self.sub("wrangler", ["node", str(BENCH / "wrangler_bench.mjs"), *args], timeout=900)
        why = self.ready("temporal")
        if why:
            self.r["temporal"] = {"skipped": why}
        else:
            cmd = [
                str(peers.PEER_PY),
                str(BENCH / "temporal_bench.py"),
                str(self.work / "temporal"),
                str(s["temporal_steps"]),
            ]
            self.sub("temporal", cmd, timeout=900)

    def postgres(self) -> None:
        """Issue 8's figures on the server WF_TEST_POSTGRES names, then the LAN of bench/pg_lan.py."""
        if not os.environ.get("WF_TEST_POSTGRES"):
            self.r["postgres"] = {"skipped": "WF_TEST_POSTGRES is not set (.ci/postgres.sh prints a URL)"}
        else:
            self.say("postgres: throughput with 1, 2, 4 workers; event round trip")
            try:
                import postgres as pg_bench

                self.r["postgres"] = {"rows": pg_bench.measure(self.s is QUICK)}
            except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                self.r["postgres"] = {"error": f"{type(exc).__name__}: {exc}"[:1500]}
        why = peers.ensure("iptables") if os.geteuid() == 0 else None
        if why:
            self.r["pg_lan"] = {"skipped": why}
            return
        s = self.s
        self.sub(
            "pg_lan",
            [
                PY,
                str(BENCH / "pg_lan.py"),
                str(self.work / "pg_lan"),
                f"workers={json.dumps(s['lan_workers'])}",
                f"n={s['lan_n']}",
                f"reps={s['lan_event_reps']}",
            ],
            timeout=3600,
        )

    def plots(self) -> None:
        why = self.ready("plots")
        if why:
            self.r["plots"] = {"skipped": why}
            return
        snapshot = self.work / "results-for-plots.json"
        snapshot.write_text(json.dumps({"results": self.r}, default=str))
        self.sub("plots", [str(peers.PEER_PY), str(BENCH / "plots.py"), str(snapshot), str(self.work / "plots")])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (CI smoke)")
    ap.add_argument("--no-peers", action="store_true", help="run no peer (same as --peers '')")
    ap.add_argument("--peers", help=f"comma-separated peers to run (default all: {','.join(ALL_PEERS)})")
    ap.add_argument("--out", help="where to write the report (default bench/RESULTS.md; --quick: the work dir)")
    ap.add_argument("--work", help="work folder (default: a fresh temporary folder)")
    args = ap.parse_args()
    peer_set = set(ALL_PEERS) if args.peers is None else {p for p in args.peers.split(",") if p}
    if args.no_peers:
        peer_set = set()
    unknown = peer_set - set(ALL_PEERS)
    if unknown:
        ap.error(f"unknown peer {sorted(unknown)[0]!r}: choose among {', '.join(ALL_PEERS)}")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="wf-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    compile_sources()
    bench = Bench(QUICK if args.quick else FULL, work, peer_set, sys.stderr)
    try:
        results = bench.run(alongside=args.quick)
    except Exception:
        traceback.print_exc()
        results = bench.r
    took = time.time() - t0
    m = machine(peers.versions())
    command = ".venv/bin/python bench/run.py" + (" --quick" if args.quick else "")
    if peer_set != set(ALL_PEERS):
        command += f" --peers '{','.join(sorted(peer_set))}'"
    out = Path(args.out) if args.out else (work / "RESULTS.md" if args.quick else BENCH / "RESULTS.md")
    publish(results, out.parent)
    text = report(results, m, args.quick, took, command)
    if out.exists() and NOTES_MARK in out.read_text():  # keep the hand-written analysis
        text = text.split(NOTES_MARK)[0] + NOTES_MARK + out.read_text().split(NOTES_MARK, 1)[1]
    out.write_text(text)
    (out.parent / ("results-quick.json" if args.quick else "results.json")).write_text(
        json.dumps({"machine": m, "took_s": took, "quick": args.quick, "results": results}, indent=1, default=str)
    )
    print(f"wrote {out} ({took:.0f} s); work folder {work}")


def compile_sources() -> None:
    """Bytecode for wf's package and the bench project, as `pip install` leaves it for a package
    (an editable install compiles on first import): no measured start pays for compiling."""
    import compileall

    for folder in (ROOT / "src" / "wf", BENCH / "project"):
        compileall.compile_dir(str(folder), quiet=1)


def publish(results: dict, where: Path) -> None:
    """Put the plots and the import-time summary next to the report; results then name them relative to it."""
    files = (results.get("plots") or {}).get("files") or {}
    if files:
        (where / "plots").mkdir(exist_ok=True)
        for name, path in files.items():
            if Path(path).parent != where / "plots":
                shutil.copy(path, where / "plots" / Path(path).name)
            files[name] = f"plots/{Path(path).name}"
    cli = results.get("wf_cli") or {}
    for field in ("importtime_file", "importtime_list_file"):
        summary = cli.get(field)
        if summary and Path(summary).exists():
            if Path(summary).parent != where:
                shutil.copy(summary, where / Path(summary).name)
            cli[field] = Path(summary).name


if __name__ == "__main__":
    main()
