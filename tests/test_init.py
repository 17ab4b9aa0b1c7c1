"""`wf init`: the scaffolded project runs offline at once, never clobbers files, and its own tests pass."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from wf.cli import main
from wf.config import load_config
from wf.loader import load_workflow_classes

WF = Path(sys.executable).parent / "wf"


def run(capsys, *args):
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


EXPECTED = {
    ".gitignore",
    "README.md",
    "order.json",
    "wrangler.jsonc",
    "src/index.py",
    "src/workflows/order_processing.py",
    "src/workflows/approval.py",
    "tests/test_workflows.py",
}


def files_in(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_init_writes_a_project_whose_workflows_load(tmp_path, capsys):
    code, _, err = run(capsys, "init", str(tmp_path / "shop"))
    assert code == 0, err
    assert EXPECTED <= files_in(tmp_path / "shop")
    assert "wf trigger order-processing --params order.json --wait" in err
    config = load_config(tmp_path / "shop" / "wrangler.jsonc")
    assert config.name == "shop"
    assert [w.name for w in config.workflows] == ["order-processing", "approval"]
    classes = load_workflow_classes(config)
    assert {c.__name__ for c in classes.values()} == {"OrderWorkflow", "ApprovalWorkflow"}
    assert "//" in (tmp_path / "shop" / "wrangler.jsonc").read_text()  # the fields are explained


def test_init_never_overwrites_without_force(tmp_path, capsys):
    target = tmp_path / "p"
    target.mkdir()
    (target / "order.json").write_text('{"mine": true}')
    code, out, err = run(capsys, "init", str(target))
    assert code != 0 and "order.json" in err and "--force" in err and "Traceback" not in err
    assert (target / "order.json").read_text() == '{"mine": true}'
    assert not (target / "wrangler.jsonc").exists()
    code, _, err = run(capsys, "init", str(target), "--force")
    assert code == 0, err
    assert json.loads((target / "order.json").read_text())["orderId"] == "o-1001"


def test_init_toml_format(tmp_path, capsys):
    code, _, err = run(capsys, "init", str(tmp_path / "t"), "--format", "toml", "--name", "tomlshop")
    assert code == 0, err
    data = tomllib.loads((tmp_path / "t" / "wrangler.toml").read_text())
    assert data["name"] == "tomlshop" and data["workflows"][1]["limits"] == {"steps": 100}
    assert not (tmp_path / "t" / "wrangler.jsonc").exists()
    assert [w.binding for w in load_config(tmp_path / "t" / "wrangler.toml").workflows] == ["ORDERS", "APPROVALS"]


def test_default_template_is_a_cloudflare_python_project(tmp_path, capsys):
    """Cloudflare's imports and flag: deployable from day one (wrangler itself: test_wrangler_compat.py)."""
    code, _, err = run(capsys, "init", str(tmp_path / "shop"))
    assert code == 0, err
    config = load_config(tmp_path / "shop" / "wrangler.jsonc")
    assert {"python_workers", "python_workflows"} <= set(config.compatibility_flags)
    sources = "".join(p.read_text() for p in (tmp_path / "shop" / "src").rglob("*.py"))
    assert "from workers import" in sources and "from wf" not in sources and "import wf" not in sources


def test_cloudflare_template_is_cloudflares_starter_layout(tmp_path, capsys):
    code, _, err = run(capsys, "init", str(tmp_path / "cf"), "--template", "cloudflare")
    assert code == 0, err
    assert files_in(tmp_path / "cf") == {
        ".gitignore",
        "README.md",
        "pyproject.toml",
        "wrangler.jsonc",
        "src/entry.py",
        "tests/test_entry.py",
    }
    assert "wf trigger my-workflow" in err
    config = load_config(tmp_path / "cf" / "wrangler.jsonc")
    assert (config.main, config.compatibility_flags) == ("src/entry.py", ("python_workers", "python_workflows"))
    assert config.ignored_warnings() == [] and config.warnings == ()  # nothing in it that wf ignores
    assert [c.__name__ for c in load_workflow_classes(config).values()] == ["MyWorkflow"]
    assert tomllib.loads((tmp_path / "cf" / "pyproject.toml").read_text())["project"]["name"] == "cf"


def test_cloudflare_template_in_toml_drops_the_json_schema_key(tmp_path, capsys):
    code, _, err = run(capsys, "init", str(tmp_path / "t"), "--template", "cloudflare", "--format", "toml")
    assert code == 0, err
    data = tomllib.loads((tmp_path / "t" / "wrangler.toml").read_text())
    assert "$schema" not in data and data["compatibility_flags"] == ["python_workers", "python_workflows"]


@pytest.mark.parametrize("args,needle", [(["--format", "yaml"], "'yaml'"), (["--template", "nope"], "'nope'")])
def test_init_bad_options(tmp_path, capsys, args, needle):
    code, _, err = run(capsys, "init", str(tmp_path / "x"), *args)
    assert code != 0 and needle in err and "hint:" in err


@pytest.mark.slow
def test_scaffolded_order_workflow_completes_offline(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "WF_STORE"}
    subprocess.run([str(WF), "init", "demo"], cwd=tmp_path, check=True, capture_output=True, env=env)
    result = subprocess.run(
        [str(WF), "trigger", "order-processing", "--params", "order.json", "--wait", "--json"],
        cwd=tmp_path / "demo",
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["status"] == "complete"
    assert out["output"] == {"status": "completed", "transactionId": "txn-o-1001", "trackingNumber": "TRK-o-1001"}
    approval = subprocess.run(
        [str(WF), "trigger", "approval", '{"timeout": "1 second"}', "--wait", "--json"],
        cwd=tmp_path / "demo",
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert json.loads(approval.stdout)["output"] == {"status": "timed_out"}


@pytest.mark.slow
def test_scaffolded_project_tests_pass(tmp_path):
    """They sleep and wait for a day, on the fake clock; how fast is bench/'s figure 10c (goal 5 s)."""
    subprocess.run([str(WF), "init", "proj"], cwd=tmp_path, check=True, capture_output=True)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path / "proj",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^8 passed", result.stdout, re.M), result.stdout


@pytest.mark.slow
def test_scaffolded_cloudflare_project_runs_and_its_tests_pass(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "WF_STORE"}
    subprocess.run([str(WF), "init", "cf", "--template", "cloudflare"], cwd=tmp_path, check=True, env=env)
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path / "cf",
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert re.search(r"^3 passed", tests.stdout, re.M), tests.stdout
    run = subprocess.run(
        [str(WF), "trigger", "my-workflow", '{"name": "Ada", "wait": "1 second"}', "--wait", "--json"],
        cwd=tmp_path / "cf",
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["output"] == {"greeting": "Hello, Ada!"}
