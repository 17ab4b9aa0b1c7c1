"""Every command through typer's CliRunner: help with an example, a real run, and its errors
raised as `WfError`s naming the bad value (the boundary in `wf.cli.main` turns them into
`error:`/`hint:` lines; tests/test_cli.py checks that side)."""

from __future__ import annotations

import json

import pytest
from test_docs import command_paths
from typer.testing import CliRunner

from wf.cli import app
from wf.errors import WfError

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args), catch_exceptions=True)


@pytest.mark.parametrize("path", list(command_paths()), ids=lambda p: " ".join(p))
def test_help_of_every_command(path):
    result = invoke(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output


@pytest.fixture
def project(tmp_path):
    result = invoke("init", str(tmp_path / "p"))
    assert result.exit_code == 0, result.output
    return tmp_path / "p" / "wrangler.jsonc"


@pytest.mark.slow
def test_a_session_of_commands(project):
    c = ["-c", str(project)]
    made = invoke(
        *c,
        "trigger",
        "order-processing",
        "--params",
        str(project.parent / "order.json"),
        "--id",
        "o1",
        "--wait",
        "--json",
    )
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["status"] == "complete"
    assert json.loads(invoke(*c, "status", "o1").stdout)["output"]["trackingNumber"] == "TRK-o-1001"
    listed = json.loads(invoke(*c, "instances", "list", "--json").stdout)
    assert "o1" in [i["id"] for i in listed]
    described = json.loads(invoke(*c, "instances", "describe", "o1", "--json").stdout)
    assert [s["name"] for s in described["steps"]][:2] == ["validate-inventory", "process-payment"]
    assert invoke(*c, "trigger", "approval", "--id", "a2").exit_code == 0
    assert invoke(*c, "send-event", "a2", "--type", "approval", "--payload", '{"approved": true}').exit_code == 0
    for action in ("pause", "resume", "terminate", "restart", "delete"):
        assert invoke(*c, action, "a2").exit_code == 0, action
    assert json.loads(invoke(*c, "workflows", "list", "--json").stdout)[0]["name"] == "order-processing"
    assert "instances" in invoke(*c, "workflows", "describe", "approval", "--json").stdout


@pytest.mark.parametrize(
    "args,needle",
    [
        (["status", "ghost"], "'ghost'"),
        (["trigger", "nope"], "'nope'"),
        (["trigger", "approval", "--id", "bad id"], "'bad id'"),
        (["send-event", "latest", "--type", "bad type"], "'bad type'"),
        (["instances", "list", "--status", "bogus"], "'bogus'"),
        (["restart", "latest", "--from-step", "nope"], "'nope'"),
    ],
)
def test_errors_are_wf_errors_naming_the_value(project, args, needle):
    c = ["-c", str(project)]
    assert invoke(*c, "trigger", "approval", "--id", "x1").exit_code == 0
    result = invoke(*c, *args)
    assert result.exit_code != 0
    assert isinstance(result.exception, WfError), result.exception
    assert needle in str(result.exception) and result.exception.hint
