"""The benchmark suite (bench/run.py) in its --quick form: it runs, every figure is there, and the
reliability invariants hold (no lost instance, no committed step run twice, no instance run by two
runners at once, no "database is locked", every bad input handled). Timings are not checked here:
CI machines are too noisy for thresholds; bench/RESULTS.md holds the measured figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent

WF_FIGURES = {
    "wf_per_step": "per_step_ms",
    "wf_thr_sequential": "per_s",
    "wf_thr_concurrent": "per_s",
    "wf_event": "median_ms",
    "wf_timer": "late_p95_ms",
    "wf_recovery": "median_ms",
    "wf_long": "ratio",
    "wf_cli_status": "median_ms",
    "wf_dev_start": "median_ms",
    "wf_scale": "rss_mb",
    "wf_list": "list_median_ms",
    "wf_ui_pages": "instances_server_ms",
    "wf_ui_idle": "one_page_cpu_pct",
    "wf_restart_overdue": "sleep_spawn_to_done_median_ms",
    "wf_takeover": "median_ms",
    "wf_template_tests": "pytest_s",
    "wf_fake_day": "median_ms",
}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    work = tmp_path_factory.mktemp("bench")
    res = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--no-peers", "--work", str(work)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    data = json.loads((work / "results-quick.json").read_text())
    return work, data["results"], res.stderr


def test_every_wf_figure_is_measured(quick):
    work, r, log = quick
    for key, field in WF_FIGURES.items():
        assert key in r and "error" not in r[key], f"{key} failed: {r.get(key)}\n{log[-2000:]}"
        assert isinstance(r[key].get(field), (int, float)), f"{key}.{field} missing: {r[key]}"
    assert r["sqlite_floor"]["commit_ms"] > 0
    assert r["wf_long"]["big"] == 10 * r["wf_long"]["small"]
    report = (work / "RESULTS.md").read_text()
    for heading in (
        "per durable step",
        "throughput",
        "event round trip",
        "timer accuracy",
        "recovery after SIGKILL",
        "long instance",
        "wf status ID --json",
        "wf dev",
        "waiting on events",
        "wf instances list",
        "web UI",
        "restart with a timer overdue",
        "survivor takes over",
        "template's own tests",
        "a day's sleep then a 24-hour wait",
        "kill loop",
        "contention",
        "bad-input catalogue",
        "Machine:",
        "Versions:",
        "Command:",
    ):
        assert heading in report, f"RESULTS.md lacks {heading!r}"


def test_kill_loop_loses_nothing_and_reruns_no_committed_step(quick):
    _, r, log = quick
    k = r["kill_loop"]
    assert "error" not in k, k
    assert k["kills"] >= 1 and k["killed_after_ready"] + k["killed_during_startup"] == k["kills"]
    assert k["lost"] == 0, k
    assert k["complete"] == k["instances"], k
    assert k["wrong_output"] == 0, k
    assert k["committed_steps_run_again"] == 0, k


def test_contention_runs_no_instance_twice_at_once(quick):
    _, r, _ = quick
    c = r["contention"]
    assert "error" not in c, c
    assert c["complete"] == c["instances"], c
    assert c["instances_run_by_two_at_once"] == 0, c
    assert c["steps_run_twice"] == 0, c
    assert c["database_locked_errors"] == 0, c
    assert c["client_errors"] == 0, c


def test_every_bad_input_is_handled_cleanly(quick):
    _, r, _ = quick
    b = r["bad_input"]
    assert "error" not in b, b
    assert b["classes"] >= 40, b
    assert set(b["by_group"]) >= {"tests/test_bad_input.py", "state database", "malformed HTTP (wf dev)"}, b
    assert b["not_handled"] == [], json.dumps(b["not_handled"], indent=1)[:3000]
