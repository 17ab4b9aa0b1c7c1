"""Every bad input of SPEC §1-§3, one by one.

Each case checks three things: the error names the offending value (so a user can find it),
it is the right kind of error, and nothing stored before is damaged: every test first runs a
`good` instance to completion, and afterwards that instance's status, output and params are
exactly as they were.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from wf import WorkflowEntrypoint
from wf.client import Client
from wf.config import load_config
from wf.errors import ConfigError, ConflictError, NotFoundError, StoreError, ValidationError, WfError
from wf.runtime.store import db_path
from wf.service import build_runner, run_until_done

RUN_TIMEOUT = 15.0
BASE_OUTPUT = {"ok": True, "seen": {"n": 1}}


# ---------------------------------------------------------------- workflows


class Good(WorkflowEntrypoint):
    async def run(self, event, step):
        seen = await step.do("echo", lambda: event.payload)
        return {"ok": True, "seen": seen}


class Many(WorkflowEntrypoint):
    """Four step.do calls; with limits.steps = 3 the fourth is refused."""

    async def run(self, event, step):
        total = 0
        for i in range(4):
            total += await step.do(f"step-{i}", lambda: 1)
        return total


class Waiter(WorkflowEntrypoint):
    async def run(self, event, step):
        got = await step.wait_for_event("wait", "go", timeout="1 hour")
        return got.payload


def _one():
    return 1


class Unserializable:
    def __repr__(self):
        return "<Unserializable>"


# name -> (what run() does with `step`, expected error name, substrings the message must hold)
PAST = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
PROBES = {
    # step names
    "step-name-empty": (lambda s: s.do("", _one), "ValidationError", ["step name ''"]),
    "step-name-too-long": (lambda s: s.do("n" * 257, _one), "ValidationError", ["'" + "n" * 40, "256"]),
    "step-name-control-char": (lambda s: s.do("bad\x01name", _one), "ValidationError", ["bad\\x01name"]),
    "step-name-newline": (lambda s: s.do("two\nlines", _one), "ValidationError", ["two\\nlines"]),
    "step-name-not-str": (lambda s: s.do(42, _one), "ValidationError", ["step name 42"]),
    "sleep-name-empty": (lambda s: s.sleep("", 1), "ValidationError", ["step name ''"]),
    "wait-name-too-long": (lambda s: s.wait_for_event("w" * 300, "go"), "ValidationError", ["'" + "w" * 40]),
    # step config
    "config-unknown-key": (
        lambda s: s.do("c", _one, config={"retry": {"limit": 1}}),
        "ValidationError",
        ["'retry'", "'c'"],
    ),
    "config-negative-limit": (
        lambda s: s.do("c", _one, config={"retries": {"limit": -1, "delay": 1}}),
        "ValidationError",
        ["-1", "'c'"],
    ),
    "config-limit-not-int": (
        lambda s: s.do("c", _one, config={"retries": {"limit": "3", "delay": 1}}),
        "ValidationError",
        ["'3'"],
    ),
    "config-limit-too-big": (
        lambda s: s.do("c", _one, config={"retries": {"limit": 10_001, "delay": 1}}),
        "ValidationError",
        ["10001"],
    ),
    "config-bad-backoff": (
        lambda s: s.do("c", _one, config={"retries": {"limit": 1, "delay": 1, "backoff": "quadratic"}}),
        "ValidationError",
        ["'quadratic'"],
    ),
    "config-bad-delay": (
        lambda s: s.do("c", _one, config={"retries": {"limit": 1, "delay": "5 fortnights"}}),
        "ValidationError",
        ["'5 fortnights'"],
    ),
    "config-negative-delay": (
        lambda s: s.do("c", _one, config={"retries": {"limit": 1, "delay": -3}}),
        "ValidationError",
        ["-3"],
    ),
    "config-zero-timeout": (lambda s: s.do("c", _one, config={"timeout": 0}), "ValidationError", ["got 0"]),
    "config-zero-timeout-text": (
        lambda s: s.do("c", _one, config={"timeout": "0 seconds"}),
        "ValidationError",
        ["'0 seconds'"],
    ),
    "config-bad-timeout": (lambda s: s.do("c", _one, config={"timeout": "soon"}), "ValidationError", ["'soon'"]),
    "config-not-dict": (lambda s: s.do("c", _one, config="fast"), "ValidationError", ["'fast'"]),
    "config-retries-not-dict": (lambda s: s.do("c", _one, config={"retries": 5}), "ValidationError", ["got 5"]),
    "config-retries-unknown-key": (
        lambda s: s.do("c", _one, config={"retries": {"limit": 1, "tries": 2}}),
        "ValidationError",
        ["'tries'"],
    ),
    "step-fn-not-callable": (lambda s: s.do("c", 5), "ValidationError", ["'c'", "5"]),
    # durations
    "sleep-bad-unit": (lambda s: s.sleep("nap", "5 fortnights"), "ValidationError", ["'5 fortnights'", "'nap'"]),
    "sleep-garbage": (lambda s: s.sleep("nap", "soon"), "ValidationError", ["'soon'"]),
    "sleep-negative": (lambda s: s.sleep("nap", -5), "ValidationError", ["-5"]),
    "sleep-negative-text": (lambda s: s.sleep("nap", "-5 seconds"), "ValidationError", ["'-5 seconds'"]),
    "sleep-nan": (lambda s: s.sleep("nap", math.nan), "ValidationError", ["nan"]),
    "sleep-inf": (lambda s: s.sleep("nap", math.inf), "ValidationError", ["inf"]),
    "sleep-bool": (lambda s: s.sleep("nap", True), "ValidationError", ["True"]),
    "sleep-list": (lambda s: s.sleep("nap", [1]), "ValidationError", ["[1]"]),
    "sleep-too-long": (lambda s: s.sleep("nap", "400 days"), "ValidationError", ["'400 days'", "365 days"]),
    "sleep-too-long-td": (
        lambda s: s.sleep("nap", timedelta(days=366)),
        "ValidationError",
        ["timedelta(days=366)", "365 days"],
    ),
    "sleep-until-past": (lambda s: s.sleep_until("nap", PAST), "ValidationError", ["past", "2020, 1, 2"]),
    "sleep-until-past-epoch": (lambda s: s.sleep_until("nap", 1_000_000.0), "ValidationError", ["past", "1000000.0"]),
    "sleep-until-naive-past": (
        lambda s: s.sleep_until("nap", datetime(2020, 5, 6, 7, 8, 9)),
        "ValidationError",
        ["past", "2020, 5, 6, 7, 8, 9"],
    ),
    "sleep-until-string": (lambda s: s.sleep_until("nap", "tomorrow"), "ValidationError", ["'tomorrow'"]),
    # event types and wait timeouts
    "wait-bad-type": (lambda s: s.wait_for_event("w", "bad type"), "ValidationError", ["'bad type'"]),
    "wait-type-leading-dash": (lambda s: s.wait_for_event("w", "-go"), "ValidationError", ["'-go'"]),
    "wait-type-too-long": (lambda s: s.wait_for_event("w", "t" * 101), "ValidationError", ["'" + "t" * 101 + "'"]),
    "wait-type-empty": (lambda s: s.wait_for_event("w", ""), "ValidationError", ["event type ''"]),
    "wait-bad-timeout": (
        lambda s: s.wait_for_event("w", "go", timeout="5 fortnights"),
        "ValidationError",
        ["'5 fortnights'"],
    ),
    "wait-timeout-too-long": (
        lambda s: s.wait_for_event("w", "go", timeout="2 years"),
        "ValidationError",
        ["365 days", "'w'"],
    ),
    # step results
    "result-set": (lambda s: s.do("make-set", lambda: {1, 2}), "WorkflowFatalError", ["'make-set'", "set"]),
    "result-object": (
        lambda s: s.do("make-obj", lambda: Unserializable()),
        "WorkflowFatalError",
        ["'make-obj'", "Unserializable"],
    ),
    "result-nan": (
        lambda s: s.do("make-nan", lambda: {"x": [math.nan]}),
        "WorkflowFatalError",
        ["'make-nan'", "nan", "['x'][0]"],
    ),
    "result-too-big": (
        lambda s: s.do("make-big", lambda: "x" * (1024 * 1024 + 10)),
        "WorkflowFatalError",
        ["'make-big'", "1,048,588 bytes", "1 MiB"],
    ),
}


async def _returns_set(step):
    await step.do("fine", _one)
    return {"a", "b"}


async def _returns_nan(step):
    return {"value": math.nan}


RUN_RESULTS = {
    "return-set": (_returns_set, ["return value", "set"]),
    "return-nan": (_returns_nan, ["return value", "nan"]),
}


class Probe(WorkflowEntrypoint):
    async def run(self, event, step):
        name = event.payload["probe"]
        if name in RUN_RESULTS:
            return await RUN_RESULTS[name][0](step)
        return await PROBES[name][0](step)


CLASSES = {"good": Good, "probe": Probe, "many": Many, "waiter": Waiter}


# ---------------------------------------------------------------- the project


class Project:
    """A tmp project with a completed `good` instance ("base") to keep an eye on."""

    def __init__(self, root: Path):
        self.root = root
        workflows = [{"name": n, "binding": n.upper(), "class_name": c.__name__} for n, c in CLASSES.items()]
        workflows[2]["limits"] = {"steps": 3}
        (root / "wrangler.jsonc").write_text(
            json.dumps({"name": "bad-input", "main": "src/index.py", "workflows": workflows})
        )
        self.config = load_config(root / "wrangler.jsonc", environ={})
        self.client = Client(self.config)
        self.base = self.run("good", {"n": 1}, id="base")
        assert self.base == {"status": "complete", "output": BASE_OUTPUT, "error": None}
        self.base_describe = self._base_record()

    @property
    def db(self) -> Path:
        return db_path(self.config.state_dir)

    def run(self, workflow: str, params=None, id: str | None = None) -> dict:
        row = self.client.create(workflow, params, id)
        runner = build_runner(self.config, classes=CLASSES)
        final = asyncio.run(asyncio.wait_for(run_until_done(runner, row.seq), RUN_TIMEOUT))
        assert final in ("complete", "errored", "terminated")
        return self.client.status(row.id, workflow)

    def count(self) -> int:
        return len(self.client.list(limit=1000))

    def _base_record(self) -> dict:
        d = self.client.describe("base", "good")
        return {
            "status": self.client.status("base", "good"),
            "params": d["params"],
            "steps": [(s["name"], s["status"], s["output"]) for s in d["steps"]],
        }

    def assert_intact(self) -> None:
        """The instance stored before the bad input is exactly as it was."""
        fresh = Client(self.config)
        try:
            saved, self.client = self.client, fresh
            assert self._base_record() == self.base_describe
        finally:
            self.client = saved
            fresh.close()

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.delenv("WF_STORE", raising=False)
    p = Project(tmp_path)
    yield p
    p.close()


def assert_names(exc: BaseException, *values: str) -> str:
    message = str(exc)
    for value in values:
        assert value in message, f"{value!r} not named in {message!r}"
    if isinstance(exc, WfError):
        assert exc.hint, f"no hint for {message!r}"
    return message


# ---------------------------------------------------------------- instance ids


@pytest.mark.parametrize(
    "bad, shown",
    [
        ("", "''"),
        ("i" * 101, "'" + "i" * 101 + "'"),
        ("has space", "'has space'"),
        ("-leading-dash", "'-leading-dash'"),
        ("slash/inside", "'slash/inside'"),
        ("émoji", "'émoji'"),
        (42, "42"),
        (["a"], "['a']"),
    ],
)
def test_bad_instance_id_is_refused_and_names_it(project, bad, shown):
    before = project.count()
    with pytest.raises(ValidationError) as info:
        project.client.create("good", {"n": 2}, bad)
    assert_names(info.value, "instance id", shown)
    assert project.count() == before
    project.assert_intact()


def test_instance_id_of_100_chars_is_fine(project):
    ok = "i" * 100
    assert project.client.create("good", None, ok).id == ok


def test_duplicate_id_is_refused_and_the_original_is_untouched(project):
    with pytest.raises(ConflictError) as info:
        project.client.create("good", {"n": 999}, "base")
    assert_names(info.value, "'base'", "'good'")
    project.assert_intact()


def test_unknown_workflow_names_it(project):
    with pytest.raises(NotFoundError) as info:
        project.client.create("no-such-flow", {"n": 1})
    assert_names(info.value, "'no-such-flow'")
    assert "good" in info.value.hint  # the hint lists what is declared
    project.assert_intact()


def test_unknown_instance_names_it(project):
    with pytest.raises(NotFoundError) as info:
        project.client.status("ghost")
    assert_names(info.value, "'ghost'")


# ---------------------------------------------------------------- workflow names in the config


@pytest.mark.parametrize(
    "name, shown",
    [
        ("bad name", '"bad name"'),
        ("-dash-first", '"-dash-first"'),
        ("w" * 65, '"' + "w" * 65 + '"'),
        ("dot.ted", '"dot.ted"'),
        ("", '""'),
        (7, "7"),
    ],
)
def test_bad_workflow_name_in_config_names_it(project, name, shown):
    bad = project.root / "bad"
    bad.mkdir()
    cfg = bad / "wrangler.json"
    cfg.write_text(
        json.dumps({"main": "src/index.py", "workflows": [{"name": name, "binding": "B", "class_name": "C"}]})
    )
    with pytest.raises(ConfigError) as info:
        load_config(cfg, environ={})
    assert_names(info.value, shown, str(cfg), "workflows[0].name")
    project.assert_intact()


def test_duplicate_workflow_name_in_config_names_it(tmp_path):
    cfg = tmp_path / "wrangler.json"
    cfg.write_text(
        json.dumps(
            {
                "main": "src/index.py",
                "workflows": [
                    {"name": "twice", "binding": "A", "class_name": "C"},
                    {"name": "twice", "binding": "B", "class_name": "C"},
                ],
            }
        )
    )
    with pytest.raises(ConfigError) as info:
        load_config(cfg, environ={})
    assert_names(info.value, '"twice"', "workflows[1].name")


# ---------------------------------------------------------------- errors raised inside run()


@pytest.mark.parametrize("probe", sorted(PROBES))
def test_bad_input_inside_run_errors_the_instance_naming_the_value(project, probe):
    _, error_name, shown = PROBES[probe]
    status = project.run("probe", {"probe": probe})
    assert status["status"] == "errored", status
    assert status["output"] is None
    error = status["error"]
    assert error["name"] == error_name, error
    for value in shown:
        assert value in error["message"], f"{value!r} not named in {error['message']!r}"
    assert "Traceback" not in error["message"]
    project.assert_intact()


@pytest.mark.parametrize("probe", sorted(RUN_RESULTS))
def test_run_returning_non_json_errors_the_instance(project, probe):
    status = project.run("probe", {"probe": probe})
    assert status["status"] == "errored" and status["output"] is None
    assert status["error"]["name"] == "ValidationError"
    for value in RUN_RESULTS[probe][1]:
        assert value in status["error"]["message"]
    project.assert_intact()


def test_a_step_refused_by_validation_leaves_no_half_written_step(project):
    """A step that failed validation is not recorded: the instance has no half-written step."""
    project.run("probe", {"probe": "config-unknown-key"}, id="cfg")
    steps = project.client.describe("cfg", "probe")["steps"]
    assert steps == []


# ---------------------------------------------------------------- the step limit


def test_step_limit_from_config_ends_the_instance(project):
    status = project.run("many", None, id="many-1")
    assert status["status"] == "errored"
    assert status["error"]["name"] == "WorkflowFatalError"
    assert "limit of 3 steps" in status["error"]["message"]
    assert "limits.steps" in status["error"]["message"]
    done = [s for s in project.client.describe("many-1", "many")["steps"] if s["status"] == "complete"]
    assert [s["name"] for s in done] == ["step-0", "step-1", "step-2"]
    project.assert_intact()


# ---------------------------------------------------------------- params and payloads

NOT_JSON = [
    ({1, 2}, "set"),
    (Unserializable(), "Unserializable"),
    ({"deep": [1, math.nan]}, "nan"),
    ({"x": math.inf}, "inf"),
    (b"bytes", "bytes"),
]


@pytest.mark.parametrize("params, shown", NOT_JSON)
def test_params_not_json_are_refused(project, params, shown):
    before = project.count()
    with pytest.raises(ValidationError) as info:
        project.client.create("good", params, "p1")
    assert_names(info.value, "params", "'p1'", shown, "JSON")
    assert project.count() == before
    project.assert_intact()


def test_params_over_1_mib_are_refused(project):
    big = {"blob": "x" * (1024 * 1024)}
    with pytest.raises(ValidationError) as info:
        project.client.create("good", big, "big")
    assert_names(info.value, "'big'", "1,048,587 bytes", "1 MiB")
    with pytest.raises(NotFoundError):
        project.client.get("big")
    project.assert_intact()


def test_params_just_under_1_mib_are_accepted(project):
    ok = "x" * (1024 * 1024 - 2)  # plus two quotes = exactly 1 MiB
    assert project.client.create("good", ok, "edge").id == "edge"


@pytest.mark.parametrize("payload, shown", NOT_JSON)
def test_payload_not_json_is_refused_and_nothing_is_stored(project, payload, shown):
    row = project.client.create("waiter", None, "w1")
    with pytest.raises(ValidationError) as info:
        project.client.send_event("w1", "go", payload)
    assert_names(info.value, "payload", "'go'", shown)
    assert project.client.store.events(row.seq) == []
    assert project.client.status("w1")["status"] == "queued"
    project.assert_intact()


def test_payload_over_1_mib_is_refused(project):
    row = project.client.create("waiter", None, "w1")
    with pytest.raises(ValidationError) as info:
        project.client.send_event("w1", "go", ["y" * (1024 * 1024)])
    assert_names(info.value, "'go'", "1 MiB", "1,048,580 bytes")
    assert project.client.store.events(row.seq) == []
    project.assert_intact()


@pytest.mark.parametrize(
    "bad, shown",
    [
        ("bad type", "'bad type'"),
        ("-dash", "'-dash'"),
        ("e" * 101, "'" + "e" * 101 + "'"),
        ("", "''"),
        (5, "5"),
    ],
)
def test_bad_event_type_is_refused(project, bad, shown):
    row = project.client.create("waiter", None, "w1")
    with pytest.raises(ValidationError) as info:
        project.client.send_event("w1", bad, {"ok": True})
    assert_names(info.value, "event type", shown)
    assert project.client.store.events(row.seq) == []
    project.assert_intact()


def test_event_type_of_100_chars_is_fine(project):
    project.client.create("waiter", None, "w1")
    project.client.send_event("w1", "e" * 100, None)


# ---------------------------------------------------------------- batches


@pytest.mark.parametrize("size", [0, 101])
def test_batch_of_wrong_size_is_refused(project, size):
    before = project.count()
    items = [{"id": f"b{i}", "params": {"i": i}} for i in range(size)]
    with pytest.raises(ValidationError) as info:
        project.client.create_batch("good", items)
    assert_names(info.value, f"batch of {size} instances")
    assert "100" in info.value.hint
    assert project.count() == before
    project.assert_intact()


def test_batch_with_one_bad_item_creates_none(project):
    before = project.count()
    items = [{"id": "fine-1"}, {"id": "not fine"}, {"id": "fine-2"}]
    with pytest.raises(ValidationError) as info:
        project.client.create_batch("good", items)
    assert_names(info.value, "'not fine'")
    assert project.count() == before
    project.assert_intact()


def test_batch_skips_existing_ids_without_touching_them(project):
    made = project.client.create_batch("good", [{"id": "base", "params": {"n": 5}}, {"id": "new-1"}])
    assert [r.id for r in made] == ["new-1"]
    project.assert_intact()


# ---------------------------------------------------------------- lifecycle on the wrong instance


def test_restart_from_a_missing_step_names_it_and_keeps_the_history(project):
    with pytest.raises(NotFoundError) as info:
        project.client.restart("base", "good", from_step="no-such-step")
    assert_names(info.value, "'no-such-step'")
    with pytest.raises(NotFoundError) as info:
        project.client.restart("base", "good", from_step="echo", count=2)
    assert_names(info.value, "'echo'", "2")
    project.assert_intact()


@pytest.mark.parametrize(
    "kwargs, shown",
    [
        ({"from_step": "echo", "count": 0}, "0"),
        ({"from_step": "echo", "type": "dance"}, "'dance'"),
    ],
)
def test_restart_with_bad_target_names_it(project, kwargs, shown):
    with pytest.raises(ValidationError) as info:
        project.client.restart("base", "good", **kwargs)
    assert_names(info.value, shown)
    project.assert_intact()


def test_terminate_a_finished_instance_is_refused(project):
    with pytest.raises(ConflictError) as info:
        project.client.terminate("base", "good")
    assert_names(info.value, "'base'", "complete")
    project.assert_intact()


def test_send_event_to_a_finished_instance_is_refused(project):
    with pytest.raises(ConflictError) as info:
        project.client.send_event("base", "go", {"late": True})
    assert_names(info.value, "'base'", "complete")
    seq = project.client.get("base").seq
    assert project.client.store.events(seq) == []
    project.assert_intact()


def test_send_event_to_an_errored_instance_is_refused(project):
    project.run("probe", {"probe": "sleep-bool"}, id="broken")
    with pytest.raises(ConflictError) as info:
        project.client.send_event("broken", "go")
    assert_names(info.value, "'broken'", "errored")
    project.assert_intact()


# ---------------------------------------------------------------- the state database


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _reopen(project) -> Client:
    project.client.close()
    return Client(project.config)


def test_garbage_database_file_is_a_store_error_naming_it(project):
    project.client.close()
    project.db.write_bytes(b"this is not a database, just garbage bytes\x00\xff" * 200)
    before = _digest(project.db)
    with pytest.raises(StoreError) as info:
        Client(project.config).status("base")
    assert_names(info.value, str(project.db))
    assert info.value.exit_code != 0
    assert _digest(project.db) == before  # wf left the file alone for the user to inspect


@pytest.mark.parametrize("keep", [50, 100, 4096])
def test_truncated_database_is_a_store_error_naming_it(project, keep):
    project.client.close()
    data = project.db.read_bytes()
    assert len(data) > 8192
    project.db.write_bytes(data[:keep])
    with pytest.raises(StoreError) as info:
        Client(project.config).status("base")
    assert_names(info.value, str(project.db))
    assert project.db.read_bytes() == data[:keep]


def test_database_from_a_newer_wf_is_refused_and_left_alone(project):
    project.client.close()
    with sqlite3.connect(project.db) as conn:
        version = conn.execute("SELECT value FROM wf_meta WHERE key='schema_version'").fetchone()[0]
        conn.execute("UPDATE wf_meta SET value='999' WHERE key='schema_version'")
    conn.close()
    before = _digest(project.db)
    with pytest.raises(StoreError) as info:
        Client(project.config).status("base")
    assert_names(info.value, str(project.db), "999", "newer")
    assert "upgrade" in info.value.hint
    assert _digest(project.db) == before
    with sqlite3.connect(project.db) as conn:  # put the version back: everything is still there
        conn.execute("UPDATE wf_meta SET value=? WHERE key='schema_version'", (version,))
    conn.close()
    project.assert_intact()


def test_non_wf_sqlite_file_is_refused_and_left_alone(project):
    project.client.close()
    project.db.unlink()
    with sqlite3.connect(project.db) as conn:
        conn.execute("CREATE TABLE recipes (name TEXT)")
        conn.execute("INSERT INTO recipes VALUES ('soup')")
    conn.close()
    before = _digest(project.db)
    with pytest.raises(StoreError) as info:
        Client(project.config).status("base")
    assert_names(info.value, str(project.db), "not a wf")
    assert _digest(project.db) == before  # not even switched to WAL
    with sqlite3.connect(project.db) as conn:
        assert conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall() == [("recipes",)]
        assert conn.execute("SELECT * FROM recipes").fetchall() == [("soup",)]
    conn.close()


def test_unknown_store_url_is_refused(project):
    cfg = load_config(project.root / "wrangler.jsonc", environ={"WF_STORE": "mongodb://localhost/x"})
    with pytest.raises(StoreError) as info:
        Client(cfg).status("base")
    assert_names(info.value, "'mongodb://localhost/x'", "'mongodb'")
    project.assert_intact()
