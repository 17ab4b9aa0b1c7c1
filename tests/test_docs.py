"""The README is part of the product: its commands exist and its quickstart works."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from wf.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def command_paths(group=None, prefix=()):
    group = group or typer.main.get_command(app)
    for name, cmd in group.commands.items():
        if getattr(cmd, "hidden", False):
            continue
        if hasattr(cmd, "commands"):
            yield from command_paths(cmd, prefix + (name,))
        else:
            yield prefix + (name,)


def test_every_command_is_in_the_readme_and_has_help_with_an_example():
    paths = list(command_paths())
    assert len(paths) >= 10
    for path in paths:
        words = " ".join(path)
        assert f"wf {words}" in README or (len(path) == 1 and re.search(rf"`wf [^`]*\b{words}\b", README)), (
            f"`wf {words}` is not documented in README.md"
        )
        cmd = typer.main.get_command(app)
        for part in path:
            cmd = cmd.commands[part]
        assert cmd.help and "Example:" in cmd.help, f"`wf {words}` has no help text with an example"


def test_readme_starts_with_the_two_fresh_machine_commands():
    block = README.split("```bash", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2
    assert "wf init" in commands[0] and "--wait" in commands[0]
    assert "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1].strip() in ci, ".ci/run must run exactly the README's test command"


@pytest.mark.slow
def test_readme_quickstart_runs(tmp_path):
    """The first command, after its install part (this test already runs in an installed venv)."""
    block = README.split("```bash", 1)[1].split("```", 1)[0]
    first = [line for line in block.splitlines() if line.strip() and not line.startswith("#")][0]
    after_install = first.split("&& ", 2)[2]  # drop `python3 -m venv .venv && .venv/bin/pip install ...`
    bin_dir = Path(sys.executable).parent
    script = re.sub(r"(\.\./)?\.venv/bin/", f"{bin_dir}/", after_install)
    env = {k: v for k, v in os.environ.items() if k not in ("WF_STORE", "WF_CRASH_AT")}
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert "complete:" in result.stderr and "TRK-o-1001" in result.stderr
