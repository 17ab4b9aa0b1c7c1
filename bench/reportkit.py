"""What bench/report.py's sections share: the machine's description and small formatting helpers."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from pathlib import Path

from common import ROOT


def machine(peer_versions: dict) -> dict:
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
        git = ["git", "-C", str(ROOT)]
        sha = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run([*git, "status", "--porcelain", "src"], capture_output=True, text=True).stdout.strip()
    except OSError:
        sha, dirty = "unknown", ""
    versions = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "wf": sha + (" (+ uncommitted changes in src/)" if dirty else ""),
        **peer_versions,
    }
    node = (
        subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip() if _which("node") else ""
    )
    versions["node"] = node or "not installed"
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


# -- small helpers ----------------------------------------------------------------------------


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
    why = v.get("error") or v.get("skipped") or ""
    return why.splitlines()[0][:200] if why else ""


def err_note(d: dict) -> str:
    return f"; ERROR: {d['error'][:200]}" if isinstance(d, dict) and d.get("error") else ""


def table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def spread(d: dict | None, unit: str = "") -> str:
    """' (rounds 1.2–1.4 ms)' when the figure was taken in several rounds."""
    rounds = (d or {}).get("rounds")
    if not rounds or len(rounds) < 2:
        return ""
    nd = 0 if min(rounds) >= 100 else 3 if max(rounds) < 10 else 1
    return f" (rounds {min(rounds):.{nd}f}–{max(rounds):.{nd}f}{unit})"


def wf_at(r: dict, base: str, mode: str) -> dict:
    """wf's figure `base` at SQLite synchronous `mode` (run.py measures the default and the other mode)."""
    for key in (base, base + "_alt"):
        if g(r, key, "synchronous") == mode:
            return r[key]
    return {}


def default_mode(r: dict) -> str | None:
    return g(r, "wf_per_step", "synchronous")


def ahead(wf_value, peer_value, higher_is_better: bool) -> tuple[str, bool | None]:
    """'ahead (×N)' or 'behind by ×N', and whether wf is ahead."""
    if wf_value is None or peer_value is None:
        return "n/a", None
    better = wf_value > peer_value if higher_is_better else wf_value < peer_value
    factor = (wf_value / peer_value) if higher_is_better else (peer_value / wf_value)
    return (f"ahead, {factor:.2f}× better" if better else f"behind by {1 / factor:.2f}×"), better
