"""The cost curves as PNG files, drawn with matplotlib in bench/.venv-peers (never wf's venv):
`python bench/plots.py RESULTS_JSON OUT_DIR` writes one PNG per curve present in the results and
prints RESULT {"files": {name: path}}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit  # noqa: E402


def _points(r: dict, keys: list[str], field: str) -> list[tuple[float, float]]:
    out = []
    for k in keys:
        v = r.get(k)
        if isinstance(v, dict) and isinstance(v.get(field), (int, float)):
            out.append((v["n"], v[field]))
    return out


def _figure(title: str, xlabel: str, ylabel: str):
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xscale("log")
    ax.grid(True, which="both", alpha=0.3)
    return fig, ax


def _save(fig, ax, out: Path, name: str, files: dict) -> None:
    ax.set_ylim(bottom=0)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=9)
    fig.tight_layout()
    path = out / f"{name}.png"
    fig.savefig(path)
    plt.close(fig)
    files[name] = str(path)


def _line(ax, pts, label, annotate=True):
    xs, ys = zip(*pts)
    ax.plot(xs, ys, marker="o", label=label)
    if annotate:
        for x, y in pts:
            ax.annotate(f"{y:.3g}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)


def per_step(r: dict, out: Path, files: dict) -> None:
    pts = [(p["n"], p["per_step_ms"]) for p in (r.get("wf_curve_steps") or {}).get("points", [])]
    if pts:
        fig, ax = _figure("Per-step cost against instance length", "steps in the instance", "ms per step")
        _line(ax, pts, "wf, one instance, in-process runner")
        _save(fig, ax, out, "curve_per_step", files)


def rss(r: dict, out: Path, files: dict) -> None:
    keys = sorted((k for k in r if k.startswith("wf_curve_waiting_")), key=lambda k: int(k.rsplit("_", 1)[1]))
    pts = _points(r, keys, "rss_mb")
    if pts:
        fig, ax = _figure("Memory of one `wf worker` holding waiting instances", "instances waiting", "RSS (MB)")
        _line(ax, pts, "wf worker RSS, every instance waiting in memory")
        _save(fig, ax, out, "curve_rss_waiting", files)


def listing(r: dict, out: Path, files: dict) -> None:
    keys = sorted((k for k in r if k.startswith("wf_curve_list_")), key=lambda k: int(k.rsplit("_", 1)[1]))
    fig, ax = _figure("`wf instances list` against instances stored", "instances stored", "ms (whole process)")
    drawn = False
    for field, label in (
        ("list_median_ms", "wf instances list"),
        ("list_json_median_ms", "--json"),
        ("list_errored_median_ms", "--status errored"),
    ):
        pts = _points(r, keys, field)
        if pts:
            _line(ax, pts, label, annotate=field == "list_median_ms")
            drawn = True
    if drawn:
        _save(fig, ax, out, "curve_list", files)
    else:
        plt.close(fig)


def lan(r: dict, out: Path, files: dict) -> None:
    runs = (r.get("pg_lan") or {}).get("runs") or []
    if not runs:
        return
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    ax.set_title("PostgreSQL across namespaces (0.5 ms each way): throughput", fontsize=11)
    xs = [x["workers"] for x in runs]
    ax.plot(xs, [x["per_s"] for x in runs], marker="o", label="wf, 3-step instances")
    ax.plot(xs, [runs[0]["per_s"] * k for k in xs], linestyle="--", alpha=0.5, label="linear from 1 worker")
    ax.set_xlabel("`wf worker` processes (one namespace each)")
    ax.set_ylabel("instances/s")
    ax.set_xticks(xs)
    ax.grid(True, alpha=0.3)
    _save(fig, ax, out, "pg_lan_scaling", files)


def main() -> None:
    results = json.loads(Path(sys.argv[1]).read_text())["results"]
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    files: dict = {}
    for draw in (per_step, rss, listing, lan):
        draw(results, out, files)
    emit({"files": files, "matplotlib": matplotlib.__version__})


if __name__ == "__main__":
    main()
