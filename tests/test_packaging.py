"""A wheel built from this tree, installed in a clean virtualenv, scaffolds and runs a project."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

import wf

ROOT = Path(__file__).resolve().parent.parent


def test_public_api_all_is_importable():
    for name in wf.__all__:
        assert getattr(wf, name) is not None, name
    assert {
        "WorkflowEntrypoint",
        "WorkflowEvent",
        "WorkflowStep",
        "NonRetryableError",
        "WorkflowTimeoutError",
        "connect",
        "connect_sync",
    } <= set(wf.__all__)


@pytest.mark.slow
def test_wheel_in_a_clean_venv_runs_init_and_a_workflow(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = dist.glob("wf_workflows-*.whl")  # the distribution wf-workflows: the command and package stay wf
    shipped = set(zipfile.ZipFile(wheel).namelist())
    for ui_file in ("static/ui.js", "static/ui.css", "templates/base.html", "templates/instance.html"):
        assert f"wf/http/ui/{ui_file}" in shipped, f"the wheel lacks the web UI's {ui_file}"
    for stand_in in (
        "modules/workers/__init__.py",
        "modules/workers/workflows.py",
        "modules/pyodide/ffi.py",
        "modules/js.py",
    ):
        assert f"wf/cloudflare/{stand_in}" in shipped, f"the wheel lacks the Cloudflare stand-in {stand_in}"
    assert "wf/templates/cloudflare/src/entry.py" in shipped
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    install = subprocess.run(
        [str(bin_dir / "pip"), "install", "-q", str(wheel)], capture_output=True, text=True, timeout=600
    )
    assert install.returncode == 0, install.stderr
    subprocess.run([str(bin_dir / "wf"), "init", "shop"], cwd=tmp_path, check=True, capture_output=True, timeout=60)
    result = subprocess.run(
        [str(bin_dir / "wf"), "trigger", "order-processing", "--params", "order.json", "--wait", "--json"],
        cwd=tmp_path / "shop",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["output"]["trackingNumber"] == "TRK-o-1001"
    version = subprocess.run([str(bin_dir / "python"), "-m", "wf", "--help"], capture_output=True, text=True)
    assert version.returncode == 0 and "trigger" in version.stdout
    named = subprocess.run([str(bin_dir / "wf"), "--version"], capture_output=True, text=True)
    shown = subprocess.run([str(bin_dir / "pip"), "show", "wf-workflows"], capture_output=True, text=True)
    assert named.stdout == f"wf {wf.__version__}\n" and "Name: wf-workflows" in shown.stdout
