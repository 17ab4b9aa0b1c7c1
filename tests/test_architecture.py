"""The house rules that keep the code easy to extend (STYLE.md 12, 14; issue 11), checked on the source."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "wf"
MAX_LINES = 600


def modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "templates" not in p.parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of the wf modules `path` imports (relative imports resolved)."""
    package = ".".join(("wf", *path.relative_to(SRC).with_suffix("").parts))
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found |= {name} | {f"{name}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {n for n in found if n == "wf" or n.startswith("wf.")}


def test_no_module_is_over_600_lines():
    long = {str(p.relative_to(SRC)): n for p in modules() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


@pytest.mark.parametrize("layer", ["runtime"])
def test_the_runtime_never_imports_the_command_line_or_the_http_server(layer):
    offenders = {
        str(p.relative_to(SRC)): sorted(i for i in imports_of(p) if i.startswith(("wf.cli", "wf.http")))
        for p in (SRC / layer).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_store_never_imports_the_runner_or_the_coordination():
    higher = ("wf.runtime.runner", "wf.runtime.coordination", "wf.runtime.engine", "wf.client", "wf.service")
    offenders = {
        str(p.relative_to(SRC)): sorted(i for i in imports_of(p) if i.startswith(higher))
        for p in (SRC / "runtime" / "store").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_command_line_and_the_http_server_reach_the_store_only_through_the_client():
    offenders = {}
    for p in [*(SRC / "cli").rglob("*.py"), *(SRC / "http").rglob("*.py")]:
        text = p.read_text()
        bad = sorted(i for i in imports_of(p) if i.startswith("wf.runtime.store"))
        bad += re.findall(r"\.store\.\w+|store_ops|\bastore\b", text)
        if bad:
            offenders[str(p.relative_to(SRC))] = bad
    assert offenders == {}


def _code_lines(path: Path) -> list[str]:
    lines = []
    for line in path.read_text().splitlines():
        line = " ".join(line.split())
        if line and not line.startswith(("#", "import ", "from ", '"""')) and line not in ("(", ")", "):", "]", "}"):
            lines.append(line)
    return lines


def test_the_two_database_modules_share_no_run_of_six_lines():
    """Each domain operation is written once (core.py); sqlite.py and postgres.py keep only what differs."""
    store = SRC / "runtime" / "store"
    a, b = _code_lines(store / "sqlite.py"), _code_lines(store / "postgres.py")
    runs_a = {tuple(a[i : i + 6]) for i in range(len(a) - 5)}
    shared = [b[i : i + 6] for i in range(len(b) - 5) if tuple(b[i : i + 6]) in runs_a]
    assert shared == []


def test_wf_status_on_sqlite_loads_no_postgresql_driver(tmp_path):
    (tmp_path / "wrangler.jsonc").write_text('{"name": "p", "main": "main.py", "workflows": []}')
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "wf", "status", "nope", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3, result.stderr  # not found: the store was opened and asked
    imported = [line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")]
    assert "wf.runtime.store.core" in imported
    assert [m for m in imported if m.startswith(("psycopg", "wf.runtime.store.postgres"))] == []
