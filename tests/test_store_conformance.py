"""The store contract (store/base.py), one suite run against every backend: SQLite and PostgreSQL.

Runner writes go through `run_batch`, as the runner's group commit sends them. PostgreSQL runs
on a scratch schema of the server named by WF_TEST_POSTGRES (see pgtest.py).
"""

from __future__ import annotations

import threading

import pytest
from pgtest import Schema, require_base_url

from wf.errors import ConflictError, NotFoundError, StoreError
from wf.runtime import steps
from wf.runtime.events import LogEvent
from wf.runtime.store import open_store
from wf.runtime.store.base import AttemptRow, StepRow, StepWrite
from wf.runtime.store.sqlite import _Failed

T0 = 1_000.0
PROGRESS = steps.progress_events()  # what the runner passes: every kind's "a step moved forward" events


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, tmp_path):
    """(open a new connection to the store, its URL) for one empty store."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
        yield url
        return
    schema = Schema(require_base_url())
    yield schema.url
    schema.drop()


@pytest.fixture
def store(backend, tmp_path):
    s = open_store(tmp_path, backend)
    yield s
    s.close()


def batch(store, *ops):
    """Run ops in one group-commit transaction; raise the first op's error, return its result."""
    results = store.run_batch(list(ops))
    for r in results:
        if isinstance(r, _Failed):
            raise r.exc
    return results[0] if len(results) == 1 else results


def create(store, *ids, workflow="w", now=T0, skip=False):
    return store.create_instances([{"workflow": workflow, "id": i, "params": '{"k":1}'} for i in ids], now, skip)


def step(pos=0, name="a", status="complete", output='"ok"', **kw):
    return StepRow(pos=pos, kind=kw.pop("kind", "do"), name=name, n=1, status=status, output=output, **kw)


def claim_one(store, owner="r1", now=T0 + 1, lease=30.0):
    [row] = store.claim(owner, now, now + lease, 1, ["w"])
    return row


# -- creating and reading ----------------------------------------------------------------


def test_create_get_list_and_count(store):
    rows = create(store, "a", "b", now=T0)
    assert [r.id for r in rows] == ["a", "b"] and rows[0].seq != rows[1].seq
    got = store.get_instance("w", "a")
    assert (got.status, got.params, got.created_at, got.wake_at, got.owner) == ("queued", '{"k":1}', T0, T0, None)
    assert store.get_instance(None, "b").seq == rows[1].seq
    assert store.get_instance("w", "nope") is None
    assert store.get_by_seq(rows[0].seq).id == "a"
    create(store, "c", now=T0 + 5)
    assert store.latest_instance("w").id == "c"
    assert [r.id for r in store.list_instances("w", None, 10)] == ["c", "b", "a"]
    assert [r.id for r in store.list_instances("w", None, 1, offset=1)] == ["b"]
    assert store.list_instances("other", None, 10) == []
    assert store.count_by_status("w") == {"queued": 3}


def test_existing_id_conflicts_and_batch_skips_it(store):
    create(store, "a")
    with pytest.raises(ConflictError, match="already exists"):
        create(store, "b", "a")
    assert store.get_instance("w", "b") is None  # all or nothing
    assert [r.id for r in create(store, "a", "c", skip=True)] == ["c"]


def test_same_id_in_two_workflows_is_ambiguous_without_workflow(store):
    create(store, "x", workflow="w")
    create(store, "x", workflow="v")
    with pytest.raises(ConflictError, match="more than one workflow"):
        store.get_instance(None, "x")


def test_trigger_round_trips_as_json(store):
    [row] = store.create_instances(
        [{"workflow": "w", "id": "a", "params": "{}", "trigger": {"schedule": "* * * * *"}}], T0, False
    )
    assert store.get_instance("w", "a").trigger == {"schedule": "* * * * *"}


# -- claiming ----------------------------------------------------------------------------


def test_claim_takes_due_instances_once(store):
    create(store, "a", "b", "c")
    store.create_instances([{"workflow": "other", "id": "z", "params": "{}"}], T0, False)
    got = store.claim("r1", T0 + 1, T0 + 31, 2, ["w"])
    assert len(got) == 2 and all(r.owner == "r1" and r.status == "running" and r.started_at == T0 + 1 for r in got)
    rest = store.claim("r2", T0 + 1, T0 + 31, 10, ["w"])
    assert [r.id for r in rest] == sorted({"a", "b", "c"} - {r.id for r in got})
    assert store.claim("r2", T0 + 1, T0 + 31, 10, ["w"]) == []
    assert store.claim("r2", T0 + 1, T0 + 31, 0, ["w"]) == []
    assert store.next_wake(["w"]) is None and store.next_wake(["other"]) == T0


def test_claim_ignores_instances_not_yet_due(store):
    create(store, "a", now=T0 + 100)
    assert store.claim("r1", T0, T0 + 30, 10, ["w"]) == []
    assert store.next_wake(["w"]) == T0 + 100


def test_concurrent_claimers_never_share_an_instance(backend, tmp_path):
    first = open_store(tmp_path, backend)
    create(first, *[f"i{n}" for n in range(200)])
    taken: dict[str, list[str]] = {}

    def claimer(name):
        s = open_store(tmp_path, backend)
        mine = []
        while True:
            rows = s.claim(name, T0 + 1, T0 + 31, 7, ["w"])
            if not rows:
                break
            mine += [r.id for r in rows]
        taken[name] = mine
        s.close()

    threads = [threading.Thread(target=claimer, args=(f"r{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    every = [i for ids in taken.values() for i in ids]
    assert sorted(every) == sorted(f"i{n}" for n in range(200)), "each instance claimed exactly once"
    first.close()


# -- step commits and fencing ------------------------------------------------------------


def test_commit_step_records_step_and_attempt(store):
    create(store, "a")
    row = claim_one(store)
    w = StepWrite(
        step(config={"retries": {"limit": 1}}, attempts=1, started_at=T0, ended_at=T0 + 2),
        AttemptRow(1, T0, T0 + 2, None),
        "running",
        None,
    )
    assert batch(store, lambda: store.commit_step("r1", row.seq, row.gen, w, T0 + 2)) == "running"
    [s] = store.steps(row.seq, with_attempts=True)
    assert (s.kind, s.name, s.n, s.status, s.output, s.config) == (
        "do",
        "a",
        1,
        "complete",
        '"ok"',
        {"retries": {"limit": 1}},
    )
    assert s.attempt_log == [AttemptRow(1, T0, T0 + 2, None)]
    retry = StepWrite(
        step(
            pos=1,
            name="b",
            status="retrying",
            output=None,
            error={"name": "E", "message": "m"},
            attempts=1,
            wake_at=T0 + 10,
        ),
        AttemptRow(1, T0, T0 + 1, {"name": "E", "message": "m"}),
        "waiting",
        T0 + 10,
    )
    assert batch(store, lambda: store.commit_step("r1", row.seq, row.gen, retry, T0 + 3)) == "waiting"
    got = store.get_by_seq(row.seq)
    assert (got.status, got.wake_at) == ("waiting", T0 + 10)
    assert store.steps(row.seq, with_attempts=True)[1].attempt_log[0].error == {"name": "E", "message": "m"}


def test_writes_are_fenced_by_owner_and_generation(store):
    create(store, "a")
    row = claim_one(store)
    w = StepWrite(step())
    assert batch(store, lambda: store.commit_step("intruder", row.seq, row.gen, w, T0)) is None
    assert batch(store, lambda: store.commit_step("r1", row.seq, row.gen + 1, w, T0)) is None
    assert store.steps(row.seq) == []
    assert batch(store, lambda: store.finish_instance("intruder", row.seq, row.gen, "complete", "1", None, T0)) is False
    store.terminate(row.seq, T0 + 2)  # bumps gen: the old run can write nothing more
    assert batch(store, lambda: store.commit_step("r1", row.seq, row.gen, w, T0 + 3)) is None
    assert batch(store, lambda: store.release("r1", row.seq, row.gen, T0 + 3, T0 + 3)) is False
    assert store.get_by_seq(row.seq).status == "terminated"


def test_run_batch_isolates_a_failing_op(store):
    create(store, "a", "b")
    a, b = store.claim("r1", T0 + 1, T0 + 31, 2, ["w"])
    results = store.run_batch(
        [
            lambda: store.commit_step("r1", a.seq, a.gen, StepWrite(step()), T0 + 2),
            lambda: 1 / 0,
            lambda: store.commit_step("r1", b.seq, b.gen, StepWrite(step(name="x")), T0 + 2),
        ]
    )
    assert results[0] == "running" and isinstance(results[1], _Failed) and results[2] == "running"
    assert isinstance(results[1].exc, ZeroDivisionError)
    assert [s.name for s in store.steps(a.seq)] == ["a"] and [s.name for s in store.steps(b.seq)] == ["x"]


def test_finish_instance_ends_and_releases(store):
    create(store, "a")
    row = claim_one(store)
    assert batch(store, lambda: store.finish_instance("r1", row.seq, row.gen, "complete", '{"x":1}', None, T0 + 5))
    got = store.get_by_seq(row.seq)
    assert (got.status, got.output, got.ended_at, got.owner, got.wake_at) == ("complete", '{"x":1}', T0 + 5, None, None)
    create(store, "b")
    row = claim_one(store)
    batch(
        store,
        lambda: store.finish_instance("r1", row.seq, row.gen, "errored", None, {"name": "E", "message": "m"}, T0 + 6),
    )
    assert store.get_by_seq(row.seq).error == {"name": "E", "message": "m"}


def test_mark_attempt_started_is_visible_and_fenced(store):
    create(store, "a")
    row = claim_one(store)
    s = step(status="running", output=None, started_at=T0)
    batch(store, lambda: store.mark_attempt_started("r1", row.seq, row.gen, s, 1, T0 + 1))
    [got] = store.steps(row.seq, with_attempts=True)
    assert (got.status, got.attempts, got.attempt_log) == ("running", 1, [AttemptRow(1, T0 + 1, None, None)])
    batch(store, lambda: store.mark_attempt_started("other", row.seq, row.gen, s, 2, T0 + 2))
    assert store.steps(row.seq)[0].attempts == 1


def test_a_late_attempt_mark_never_undoes_the_outcome(store):
    """The started-mark is written in the background and can land after the step's own commit."""
    create(store, "a")
    row = claim_one(store)
    done = StepWrite(step(attempts=2, started_at=T0, ended_at=T0 + 2), AttemptRow(2, T0 + 1, T0 + 2, None))
    batch(store, lambda: store.commit_step("r1", row.seq, row.gen, done, T0 + 2))
    late = step(status="running", output=None, started_at=T0)
    batch(store, lambda: store.mark_attempt_started("r1", row.seq, row.gen, late, 2, T0 + 1, []))
    [got] = store.steps(row.seq, with_attempts=True)
    assert (got.status, got.output, got.attempts) == ("complete", '"ok"', 2)
    assert got.attempt_log == [AttemptRow(2, T0 + 1, T0 + 2, None)]


# -- events ------------------------------------------------------------------------------


def test_events_fifo_by_type_and_consumed_once(store):
    create(store, "a")
    row = claim_one(store)
    e1 = store.add_event(row.seq, "x", '{"n":1}', T0 + 1)
    e2 = store.add_event(row.seq, "y", None, T0 + 2)
    store.add_event(row.seq, "x", '{"n":3}', T0 + 3)
    assert store.next_event(row.seq, "x").seq == e1 and store.next_event(row.seq, None).seq == e1
    assert store.next_event(row.seq, "y").payload is None and store.next_event(row.seq, "z") is None
    take = StepWrite(step(kind="waitForEvent", event_type="x"), consume_event=e1)
    batch(store, lambda: store.commit_step("r1", row.seq, row.gen, take, T0 + 4))
    assert store.next_event(row.seq, None).seq == e2
    again = StepWrite(step(pos=1, kind="waitForEvent"), consume_event=e1)
    with pytest.raises(ConflictError, match="already taken"):
        batch(store, lambda: store.commit_step("r1", row.seq, row.gen, again, T0 + 5))
    assert store.steps(row.seq)[-1].pos == 0, "the failed take left no step behind"
    assert [(e.seq, by) for e, by in store.events(row.seq)][0] == (e1, 0)
    assert store.with_pending_events([row.seq, row.seq + 999]) == [row.seq]


def test_event_wakes_a_waiting_instance_and_is_refused_when_finished(store):
    create(store, "a")
    row = claim_one(store)
    w = StepWrite(step(kind="waitForEvent", status="waiting", output=None, wake_at=T0 + 999), None, "waiting", T0 + 999)
    batch(store, lambda: store.commit_step("r1", row.seq, row.gen, w, T0 + 1))
    store.add_event(row.seq, "go", None, T0 + 2)
    assert store.get_by_seq(row.seq).wake_at == T0 + 2
    batch(store, lambda: store.finish_instance("r1", row.seq, row.gen, "complete", "1", None, T0 + 3))
    with pytest.raises(ConflictError, match="complete"):
        store.add_event(row.seq, "go", None, T0 + 4)
    store.delete(row.seq)
    with pytest.raises(NotFoundError):
        store.add_event(row.seq, "go", None, T0 + 5)


def test_suspend_wakes_at_once_when_an_awaited_event_is_stored(store):
    create(store, "a", "b")
    a, b = store.claim("r1", T0 + 1, T0 + 31, 2, ["w"])
    store.add_event(a.seq, "go", None, T0 + 2)
    assert batch(store, lambda: store.suspend("r1", a.seq, a.gen, T0 + 500, ["go"], T0 + 3))
    assert batch(store, lambda: store.suspend("r1", b.seq, b.gen, T0 + 500, ["go"], T0 + 3))
    assert store.get_by_seq(a.seq).wake_at == T0 + 3 and store.get_by_seq(b.seq).wake_at == T0 + 500
    assert store.get_by_seq(a.seq).owner is None


# -- control -----------------------------------------------------------------------------


def test_pause_resume_shifts_pending_timers(store):
    create(store, "a")
    row = claim_one(store)
    assert store.pause(row.seq, T0 + 2) == "waitingForPause"
    w = StepWrite(step(status="retrying", output=None, wake_at=T0 + 50), None, "waiting", T0 + 50)
    assert batch(store, lambda: store.commit_step("r1", row.seq, row.gen, w, T0 + 3)) == "waitingForPause"
    assert batch(store, lambda: store.pause_at_boundary("r1", row.seq, row.gen, T0 + 10))
    got = store.get_by_seq(row.seq)
    assert (got.status, got.owner, got.wake_at, got.paused_at) == ("paused", None, None, T0 + 10)
    assert store.claim("r1", T0 + 100, T0 + 130, 10, ["w"]) == []
    assert store.resume(row.seq, T0 + 110) == "queued"
    assert store.steps(row.seq)[0].wake_at == T0 + 150  # shifted by the 100 s paused
    assert store.get_by_seq(row.seq).wake_at == T0 + 110


def test_pause_of_a_queued_instance_and_release_into_pause(store):
    create(store, "a", "b")
    assert store.pause(store.get_instance("w", "a").seq, T0) == "paused"
    b = claim_one(store)
    assert b.id == "b"
    store.pause(b.seq, T0 + 2)
    assert batch(store, lambda: store.release("r1", b.seq, b.gen, T0 + 3, T0 + 3))
    assert store.get_by_seq(b.seq).status == "paused"
    assert store.resume(b.seq, T0 + 4) == "queued"


def test_terminate_restart_and_delete(store):
    create(store, "a")
    row = claim_one(store)
    for i, name in enumerate(("one", "two", "three")):
        batch(store, lambda i=i, name=name: store.commit_step("r1", row.seq, row.gen, StepWrite(step(i, name)), T0 + 2))
    store.restart(row.seq, T0 + 3, ("two", 1, "do"))
    got = store.get_by_seq(row.seq)
    assert (got.status, got.owner, got.gen, got.wake_at) == ("queued", None, row.gen + 1, T0 + 3)
    assert [s.name for s in store.steps(row.seq)] == ["one"]
    with pytest.raises(NotFoundError, match="not in the instance"):
        store.restart(row.seq, T0 + 4, ("nope", 1, "do"))
    store.terminate(row.seq, T0 + 5)
    with pytest.raises(ConflictError, match="already terminated"):
        store.terminate(row.seq, T0 + 6)
    store.restart(row.seq, T0 + 7)
    assert store.steps(row.seq) == [] and store.get_by_seq(row.seq).status == "queued"
    store.delete(row.seq)
    assert store.get_by_seq(row.seq) is None and store.history(instance=row.seq) == []


# -- dead runners ------------------------------------------------------------------------


def test_release_owner_hands_back_running_now_and_waiting_at_their_timer(store):
    create(store, "a", "b")
    a, b = store.claim("dead", T0 + 1, T0 + 31, 2, ["w"])
    w = StepWrite(step(kind="sleep", status="waiting", output=None, wake_at=T0 + 900), None, "waiting", T0 + 900)
    batch(store, lambda: store.commit_step("dead", b.seq, b.gen, w, T0 + 2))
    assert store.owners() == ["dead"]
    assert store.release_owner("dead", T0 + 5) == 2
    assert store.get_by_seq(a.seq).wake_at == T0 + 5 and store.get_by_seq(b.seq).wake_at == T0 + 900
    assert store.owners() == []
    assert store.load_run(a.seq, PROGRESS)[1] == 1  # the mid-run one was lost once
    assert store.load_run(b.seq, PROGRESS)[1] == 0


def test_losses_are_counted_since_the_last_event_named_as_progress(store):
    create(store, "a")
    row = claim_one(store, owner="dead")
    assert store.release_owner("dead", T0 + 2) == 1  # lost once, mid-run
    row = claim_one(store, owner="r2", now=T0 + 3)
    done = StepWrite(step(), events=[LogEvent(T0 + 4, "step_ok", "a", 1, {"startedAt": T0 + 3})])
    batch(store, lambda: store.commit_step("r2", row.seq, row.gen, done, T0 + 4))
    assert store.load_run(row.seq, PROGRESS)[1] == 0  # a step finished after the loss
    assert store.load_run(row.seq, ("sleep_completed",))[1] == 1  # by these names, nothing moved
    assert store.load_run(row.seq, ())[1] == 1


def test_release_expired_takes_over_only_lapsed_leases(store):
    create(store, "a", "b")
    store.claim("old", T0, T0 + 10, 1, ["w"])
    store.claim("live", T0, T0 + 10, 1, ["w"])
    store.heartbeat("live", T0 + 100)
    assert store.release_expired(T0 + 50) == 1
    assert store.owners() == ["live"]
    assert [r.owner for r in store.claim("new", T0 + 51, T0 + 81, 10, ["w"])] == ["new"]


# -- the event log -----------------------------------------------------------------------


def test_history_follows_the_instance(store):
    create(store, "a")
    row = claim_one(store)
    batch(
        store,
        lambda: store.commit_step(
            "r1", row.seq, row.gen, StepWrite(step(), events=[(T0 + 2, "step_completed", "a", 1, {"x": 1})]), T0 + 2
        ),
    )
    types = [h.type for h in store.history(instance=row.seq)]
    assert types == ["workflow_queued", "workflow_started", "step_completed"]
    last = store.history(instance=row.seq)[-1]
    assert (last.workflow, last.instance_id, last.step, last.n, last.data) == ("w", "a", "a", 1, {"x": 1})
    assert store.last_history_seq() == last.seq
    assert store.history(after=last.seq) == []


# -- opening -----------------------------------------------------------------------------


def test_reopening_keeps_data_and_schema(backend, tmp_path):
    s = open_store(tmp_path, backend)
    create(s, "a")
    s.close()
    s = open_store(tmp_path, backend)
    assert s.get_instance("w", "a") is not None
    s.close()


# -- PostgreSQL only ---------------------------------------------------------------------


@pytest.fixture
def pg_schema():
    schema = Schema(require_base_url())
    yield schema
    schema.drop()


def test_postgres_workers_starting_at_once_migrate_once(pg_schema, tmp_path):
    from wf.runtime.store import pg_schema as schema_module

    errors, stores = [], []

    def start():
        try:
            stores.append(open_store(tmp_path, pg_schema.url))
        except Exception as exc:  # pragma: no cover - the assertion shows it
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(stores) == 8
    conn = stores[0].pool.getconn()
    try:
        version = conn.execute("SELECT value FROM wf_meta WHERE key='schema_version'").fetchone()[0]
    finally:
        stores[0].pool.putconn(conn)
    assert int(version) == schema_module.VERSION
    for s in stores:
        s.close()


def test_postgres_store_from_a_newer_wf_is_refused(pg_schema, tmp_path):
    s = open_store(tmp_path, pg_schema.url)
    with s.transaction():
        s._c.execute("UPDATE wf_meta SET value='999' WHERE key='schema_version'")
    s.close()
    with pytest.raises(StoreError, match="newer than this wf"):
        open_store(tmp_path, pg_schema.url)


def test_postgres_unreachable_server_is_a_clear_error(tmp_path):
    require_base_url()
    with pytest.raises(StoreError, match="cannot connect to the PostgreSQL store") as info:
        open_store(tmp_path, "postgresql://nobody:secret@127.0.0.1:1/nowhere?connect_timeout=2")
    assert "secret" not in str(info.value) and info.value.hint


def test_postgres_without_psycopg_says_how_to_install(monkeypatch, tmp_path):
    from wf.runtime.store import postgres

    monkeypatch.setattr(postgres, "psycopg", None)
    with pytest.raises(StoreError, match="psycopg") as info:
        open_store(tmp_path, "postgresql://localhost/db")
    assert "wf[postgres]" in info.value.hint


def test_unknown_store_scheme_is_refused(tmp_path):
    with pytest.raises(StoreError, match="mysql"):
        open_store(tmp_path, "mysql://localhost/db")


def test_both_stores_implement_the_whole_store_protocol():
    """The Store protocol in store/base.py is the contract's table of contents: it must not rot."""
    from wf.runtime.store.base import Store
    from wf.runtime.store.postgres import PostgresStore
    from wf.runtime.store.sqlite import SQLiteStore

    methods = [name for name, value in vars(Store).items() if callable(value) and not name.startswith("_")]
    assert len(methods) > 30
    for cls in (SQLiteStore, PostgresStore):
        assert [m for m in methods if not callable(getattr(cls, m, None))] == [], cls.__name__
