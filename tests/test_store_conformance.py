"""The store (store/core.py over store/sqlite.py or store/postgres.py), one suite run on both databases.

Runner writes go through `run_batch`, as the runner's group commit sends them. PostgreSQL runs
on a scratch schema of the server named by WF_TEST_POSTGRES (see pgtest.py).
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from pgtest import Schema, require_base_url

from wf.errors import ConflictError, NotFoundError, StoreError
from wf.runtime import steps
from wf.runtime.events import LogEvent
from wf.runtime.store import open_store
from wf.runtime.store.base import AttemptRow, Failed, StepRow, StepWrite

T0 = 1_000.0
PROGRESS = steps.progress_events()  # what the runner passes: every kind's "a step moved forward" events


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
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
        if isinstance(r, Failed):
            raise r.exc
    return results[0] if len(results) == 1 else results


def create(store, *ids, workflow="w", now=T0, skip=False):
    return store.create_instances([{"workflow": workflow, "id": i, "params": '{"k":1}'} for i in ids], now, skip)


def step(pos=0, name="a", status="complete", output='"ok"', **kw):
    return StepRow(pos=pos, kind=kw.pop("kind", "do"), name=name, n=1, status=status, output=output, **kw)


def claim_one(store, owner="r1", now=T0 + 1, lease=30.0):
    [row] = store.claim(owner, now, lease, 1, ["w"])
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
    got = store.claim("r1", T0 + 1, 30.0, 2, ["w"])
    assert len(got) == 2 and all(r.owner == "r1" and r.status == "running" and r.started_at == T0 + 1 for r in got)
    rest = store.claim("r2", T0 + 1, 30.0, 10, ["w"])
    assert [r.id for r in rest] == sorted({"a", "b", "c"} - {r.id for r in got})
    assert store.claim("r2", T0 + 1, 30.0, 10, ["w"]) == []
    assert store.claim("r2", T0 + 1, 30.0, 0, ["w"]) == []
    assert store.next_wake(["w"]) is None and store.next_wake(["other"]) == T0


def test_claim_ignores_instances_not_yet_due(store):
    create(store, "a", now=T0 + 100)
    assert store.claim("r1", T0, 30.0, 10, ["w"]) == []
    assert store.next_wake(["w"]) == T0 + 100


def test_concurrent_claimers_never_share_an_instance(backend, tmp_path):
    first = open_store(tmp_path, backend)
    create(first, *[f"i{n}" for n in range(200)])
    taken: dict[str, list[str]] = {}

    def claimer(name):
        s = open_store(tmp_path, backend)
        mine = []
        while True:
            rows = s.claim(name, T0 + 1, 30.0, 7, ["w"])
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
    a, b = store.claim("r1", T0 + 1, 30.0, 2, ["w"])
    results = store.run_batch(
        [
            lambda: store.commit_step("r1", a.seq, a.gen, StepWrite(step()), T0 + 2),
            lambda: 1 / 0,
            lambda: store.commit_step("r1", b.seq, b.gen, StepWrite(step(name="x")), T0 + 2),
        ]
    )
    assert results[0] == "running" and isinstance(results[1], Failed) and results[2] == "running"
    assert isinstance(results[1].exc, ZeroDivisionError)
    assert [s.name for s in store.steps(a.seq)] == ["a"] and [s.name for s in store.steps(b.seq)] == ["x"]


def test_run_batch_undoes_what_a_fenced_or_failing_op_wrote(store):
    """A fenced-out step commit among others writes nothing (and says None); an op that writes and
    then fails, alone in its batch or not, leaves nothing behind either."""
    create(store, "a", "b")
    a, b = store.claim("r1", T0 + 1, 30.0, 2, ["w"])
    entry = [(T0 + 2, "note", None, None, None)]

    def write_then_fail():
        store.append_history(a.seq, entry)
        raise ValueError("after writing")

    before = len(store.history(instance=a.seq))
    results = store.run_batch(
        [
            lambda: store.commit_step("intruder", a.seq, a.gen, StepWrite(step(name="no")), T0 + 2),
            lambda: store.commit_step("r1", b.seq, b.gen, StepWrite(step(name="yes")), T0 + 2),
            write_then_fail,
        ]
    )
    assert results[0] is None and results[1] == "running" and isinstance(results[2], Failed), results
    [alone] = store.run_batch([write_then_fail])
    assert isinstance(alone, Failed) and isinstance(alone.exc, ValueError)
    assert store.steps(a.seq) == [] and [s.name for s in store.steps(b.seq)] == ["yes"]
    assert len(store.history(instance=a.seq)) == before


def test_a_batch_run_inside_an_open_transaction_joins_it_op_by_op(store):
    """A group commit inside a transaction already open on this thread runs its ops in it, each
    under a savepoint: a fenced-out step commit says None and leaves nothing; the others stand."""
    create(store, "a", "b")
    a, b = store.claim("r1", T0 + 1, 30.0, 2, ["w"])

    def inside():
        return store.run_batch(
            [
                lambda: store.commit_step("intruder", a.seq, a.gen, StepWrite(step(name="no")), T0 + 2),
                lambda: store.commit_step("r1", b.seq, b.gen, StepWrite(step(name="yes")), T0 + 2),
            ]
        )

    assert store.db.writing(inside) == [None, "running"]
    assert store.steps(a.seq) == [] and [s.name for s in store.steps(b.seq)] == ["yes"]


def test_claim_runs_reads_what_each_claimed_instance_needs(store):
    """claim_runs answers, for each instance it claims, what load_run would (its steps and losses),
    and what next_wake would once they are claimed."""
    create(store, "a", "b")
    row = claim_one(store, owner="dead")
    done = StepWrite(step(), events=[LogEvent(T0 + 2, "step_ok", "a", 1, {"startedAt": T0 + 1})])
    batch(store, lambda: store.commit_step("dead", row.seq, row.gen, done, T0 + 2))
    assert store.release_owner("dead", T0 + 3) == 1
    create(store, "later", now=T0 + 100)
    claimed, wake = store.claim_runs("r2", T0 + 4, 30.0, 5, ["w"], None, None, PROGRESS)
    assert wake == T0 + 100  # the earliest of what it left unclaimed
    assert sorted(r.id for r, _, _ in claimed) == ["a", "b"]
    for r, done_steps, losses in claimed:
        assert (done_steps, losses) == store.load_run(r.seq, PROGRESS), r.id
    assert {r.id: ([s.name for s in done_steps], losses) for r, done_steps, losses in claimed} == {
        "a": (["a"], 1),
        "b": ([], 0),
    }
    assert store.claim_runs("r3", T0 + 4, 30.0, 5, ["w"]) == ([], T0 + 100)


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


def test_an_event_sent_by_id_is_stored_in_one_transaction_or_not_at_all(store, backend, request):
    """add_event_by_id (the client's send on PostgreSQL: one round trip) stores, wakes, logs and
    tells the runners as add_event does, for the one open instance the id names; for anything else
    it stores nothing and tells no one."""
    heard = _notes_heard(store, backend, request)
    create(store, "a", "shared")
    create(store, "shared", "b", workflow="other")
    row = claim_one(store)
    w = StepWrite(step(kind="waitForEvent", status="waiting", output=None, wake_at=T0 + 999), None, "waiting", T0 + 999)
    batch(store, lambda: store.commit_step("r1", row.seq, row.gen, w, T0 + 1))
    assert store.add_event_by_id(None, "a", "go", '{"n":1}', T0 + 2) == row.seq
    assert store.get_by_seq(row.seq).wake_at == T0 + 2, "the waiting instance is due now"
    assert store.add_event_by_id("w", "a", "go", None, T0 + 3) == row.seq
    assert [(e.type, e.payload) for e, _ in store.events(row.seq)] == [("go", '{"n":1}'), ("go", None)]
    assert [h.type for h in store.history(0, row.seq, None, 100)].count("event_received") == 2
    assert [n for n in heard() if n.startswith("e:")] == [f"e:{row.seq}"] * 2
    other = store.get_instance("other", "b")
    assert store.add_event_by_id("w", "b", "go", None, T0 + 4) is None, "b is in workflow other"
    assert store.add_event_by_id(None, "nope", "go", None, T0 + 4) is None
    assert store.add_event_by_id(None, "shared", "go", None, T0 + 4) is None, "an id two workflows share"
    assert store.add_event_by_id("other", "shared", "go", None, T0 + 4) == store.get_instance("other", "shared").seq
    batch(store, lambda: store.finish_instance("r1", row.seq, row.gen, "complete", "1", None, T0 + 5))
    assert store.add_event_by_id("w", "a", "go", None, T0 + 6) is None, "a has ended"
    assert len(store.events(row.seq)) == 2 and store.events(other.seq) == []
    assert store.events(store.get_instance("w", "shared").seq) == []
    assert [n for n in heard() if n.startswith("e:")] == [f"e:{store.get_instance('other', 'shared').seq}"]


def _notes_heard(store, backend, request):
    """A function that returns the notes runners heard since the last call (SQLite: the store's
    notes after each commit; PostgreSQL: a LISTEN connection's notifications)."""
    if backend.startswith("sqlite"):
        notes: list[str] = []
        store.db.on_notes = notes.extend

        def heard_here() -> list[str]:
            out = list(notes)
            notes.clear()
            return out

        return heard_here
    conn = psycopg.connect(backend, autocommit=True)
    request.addfinalizer(conn.close)
    conn.execute(store.db.listen_statement())

    def heard() -> list[str]:
        return [n.payload for n in conn.notifies(timeout=0.5)]

    return heard


def test_suspend_wakes_at_once_when_an_awaited_event_is_stored(store):
    create(store, "a", "b")
    a, b = store.claim("r1", T0 + 1, 30.0, 2, ["w"])
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
    assert store.claim("r1", T0 + 100, 30.0, 10, ["w"]) == []
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
    a, b = store.claim("dead", T0 + 1, 30.0, 2, ["w"])
    w = StepWrite(step(kind="sleep", status="waiting", output=None, wake_at=T0 + 900), None, "waiting", T0 + 900)
    batch(store, lambda: store.commit_step("dead", b.seq, b.gen, w, T0 + 2))
    assert store.owners() == ["dead"]
    assert store.release_owner("dead", T0 + 5) == 2
    assert store.get_by_seq(a.seq).wake_at == T0 + 5 and store.get_by_seq(b.seq).wake_at == T0 + 900
    assert store.owners() == []
    assert store.load_run(a.seq, PROGRESS)[1] == 1  # the mid-run one was lost once
    assert store.load_run(b.seq, PROGRESS)[1] == 0


def test_a_dead_runners_instance_waiting_for_pause_is_handed_back_paused(store):
    """Cloudflare's engine pauses an instance found waitingForPause on restart without running its
    step again: its runner is gone, so nothing is in flight (issue 17)."""
    create(store, "a")
    row = claim_one(store, owner="dead")
    assert store.pause(row.seq, T0 + 2) == "waitingForPause"
    assert store.release_owner("dead", T0 + 3) == 1
    got = store.get_by_seq(row.seq)
    assert (got.status, got.owner, got.wake_at, got.paused_at) == ("paused", None, None, T0 + 3)
    assert store.claim("r2", T0 + 4, 30.0, 1, ["w"]) == []  # nothing runs until it is resumed
    assert [h.type for h in store.history(instance=row.seq)][-2:] == ["runner_lost", "workflow_paused"]
    assert store.resume(row.seq, T0 + 5) == "queued"
    assert claim_one(store, owner="r2", now=T0 + 5).id == "a"


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
    """Leases are compared on the database's clock (PostgreSQL: workers' clocks may differ); a
    negative lease stands for one that ran out long ago."""
    now = time.time()
    create(store, "a", "b", "c")
    store.claim("old", now, -60.0, 1, ["w"])
    store.claim("live", now, -60.0, 1, ["w"])
    store.claim("keeper", now, -60.0, 1, ["w"])
    store.heartbeat("live", now, 30.0)  # renewed its instances
    store.register_runner("keeper", now, 30.0)  # its own lease is live: a skipped renewal does not lose it
    assert store.release_expired(now) == 1
    assert sorted(store.owners()) == ["keeper", "live"]
    assert [r.owner for r in store.claim("new", now, 30.0, 10, ["w"])] == ["new"]
    assert store.live_runners(now) == ["keeper"]


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


def test_a_long_batch_of_log_lines_is_kept_whole_and_in_order(store):
    """More lines than PostgreSQL's multi-row INSERT takes at once (postgres.py) go in whole, in order."""
    [row] = create(store, "a")
    lines = [(T0 + i / 1000, "log", None, None, {"stream": "stdout", "line": f"line {i}"}) for i in range(1201)]
    batch(store, lambda: store.append_history(row.seq, lines))
    logged = [h for h in store.history(instance=row.seq, limit=2000) if h.type == "log"]
    assert [h.data["line"] for h in logged] == [f"line {i}" for i in range(1201)]
    assert [h.seq for h in logged] == sorted(h.seq for h in logged)


# -- the web UI's instance pages (issue 12) ---------------------------------------------


@pytest.mark.parametrize("sort_max", [2000, 0], ids=["few-matches-sorted", "many-matches-walked"])
def test_page_instances_walks_by_key_both_ways_with_filters(store, sort_max, monkeypatch):
    from wf.runtime.store import core

    monkeypatch.setattr(core, "PAGE_SORT_MAX", sort_max)  # SQLite picks its plan by the match count
    for i in range(7):  # two instances share each creation time: the key's seq breaks the tie
        create(store, f"ord-{i}", now=T0 + i // 2)
    create(store, "other-1", workflow="v", now=T0 + 10)
    ids = lambda rows: [r.id for r in rows]  # noqa: E731
    first = store.page_instances(workflow="w", limit=3)
    assert ids(first) == ["ord-6", "ord-5", "ord-4"]
    key = lambda row: (row.created_at, row.seq)  # noqa: E731
    second = store.page_instances(workflow="w", before=key(first[-1]), limit=3)
    assert ids(second) == ["ord-3", "ord-2", "ord-1"]
    last = store.page_instances(workflow="w", before=key(second[-1]), limit=3)
    assert ids(last) == ["ord-0"]
    assert ids(store.page_instances(workflow="w", after=key(last[0]), limit=3)) == ids(second)
    assert ids(store.page_instances(limit=2)) == ["other-1", "ord-6"]
    assert ids(store.page_instances(id_prefix="ord-", since=T0 + 1, until=T0 + 3)) == [
        "ord-5",
        "ord-4",
        "ord-3",
        "ord-2",
    ]
    assert ids(store.page_instances(id_prefix="oth")) == ["other-1"]
    assert store.page_instances(id_prefix="ord_") == [] and store.page_instances(id_prefix="ORD") == []
    done = claim_one(store)  # the oldest: ord-0
    batch(store, lambda: store.finish_instance(done.owner, done.seq, done.gen, "complete", "1", None, T0 + 2))
    assert ids(store.page_instances(status="complete")) == ["ord-0"]
    assert store.page_instances(status="queued", id_prefix="ord-0") == []


# -- cron schedules ------------------------------------------------------------------------


def cron_item(tick: float, id: str | None = None) -> dict:
    trigger = {"source": "cron", "schedule": {"cron": "* * * * *", "scheduledTime": int(tick * 1000)}}
    return {"workflow": "w", "id": id or f"cron-{int(tick)}", "params": "{}", "trigger": trigger}


def test_cron_marks_start_a_new_schedule_at_now_and_keep_a_known_one(store):
    assert store.cron_marks([("w", "* * * * *"), ("w", "0 * * * *")], T0) == {
        ("w", "* * * * *"): T0,
        ("w", "0 * * * *"): T0,
    }
    assert store.cron_marks([("w", "* * * * *")], T0 + 500) == {("w", "* * * * *"): T0}  # not moved by a look
    assert store.cron_marks([], T0) == {}


def test_fire_cron_fires_a_tick_once_and_never_an_older_one(store):
    store.cron_marks([("w", "* * * * *")], T0)
    row = store.fire_cron("w", "* * * * *", T0 + 60, cron_item(T0 + 60), T0 + 61)
    assert (row.id, row.status, row.created_at, row.trigger["source"]) == ("cron-1060", "queued", T0 + 61, "cron")
    assert store.get_instance("w", "cron-1060").trigger == cron_item(T0 + 60)["trigger"]
    store.delete(row.seq)  # even with its instance gone, the tick is not fired again: the mark says so
    assert store.fire_cron("w", "* * * * *", T0 + 60, cron_item(T0 + 60, "again"), T0 + 62) is None
    assert store.fire_cron("w", "* * * * *", T0 + 30, cron_item(T0 + 30), T0 + 62) is None  # older than the mark
    assert store.list_instances("w", None, 10) == []
    assert store.cron_marks([("w", "* * * * *")], T0 + 99) == {("w", "* * * * *"): T0 + 60}
    assert store.fire_cron("w", "* * * * *", T0 + 120, cron_item(T0 + 120), T0 + 121).id == "cron-1120"
    assert store.fire_cron("w2", "* * * * *", T0 + 120, {**cron_item(T0 + 120), "workflow": "w2"}, T0 + 121)


def test_fire_cron_moves_the_mark_even_when_the_instance_exists(store):
    create(store, "cron-1060")
    assert store.fire_cron("w", "* * * * *", T0 + 60, cron_item(T0 + 60), T0 + 61) is None
    assert store.cron_marks([("w", "* * * * *")], T0 + 99) == {("w", "* * * * *"): T0 + 60}


def test_concurrent_firers_fire_a_tick_once(backend, tmp_path):
    stores = [open_store(tmp_path, backend) for _ in range(4)]
    stores[0].cron_marks([("w", "* * * * *")], T0)
    fired, barrier = [], threading.Barrier(len(stores))

    def fire(s, n):
        barrier.wait()
        for tick in range(1, 21):
            if s.fire_cron("w", "* * * * *", T0 + tick, cron_item(T0 + tick, f"t{tick}"), T0 + tick):
                fired.append((tick, n))

    threads = [threading.Thread(target=fire, args=(s, n)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert sorted(tick for tick, _ in fired) == list(range(1, 21))
        assert len(stores[0].list_instances("w", None, 100)) == 20
    finally:
        for s in stores:
            s.close()


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


@pytest.mark.postgres
def test_postgres_batch_isolates_an_op_whose_statement_the_database_refuses(pg_schema, tmp_path):
    """The ops' statements are pipelined, so PostgreSQL may report the refusal while a later op
    reads its results: the batch is then run again op by op, and only the guilty op fails. (On
    SQLite any driver error fails the whole batch, as a failure of the database.)"""
    store = open_store(tmp_path, pg_schema.url)
    create(store, "a", "b")
    a, b = store.claim("r1", T0 + 1, 30.0, 2, ["w"])
    refused = {"seq": a.seq, "type": None, "payload": None, "now": T0}  # wf_events.type is NOT NULL
    results = store.run_batch(
        [
            lambda: store.commit_step("r1", a.seq, a.gen, StepWrite(step()), T0 + 2),
            lambda: store.db.execute("insert_event", refused, {}),
            lambda: store.commit_step("r1", b.seq, b.gen, StepWrite(step(name="x")), T0 + 2),
        ]
    )
    assert results[0] == "running" and results[2] == "running", results
    assert isinstance(results[1], Failed) and isinstance(results[1].exc, StoreError), results
    assert [s.name for s in store.steps(a.seq)] == ["a"] and [s.name for s in store.steps(b.seq)] == ["x"]
    assert [e for e, _ in store.events(a.seq)] == []
    store.close()


@pytest.mark.postgres
def test_postgres_workers_starting_at_once_migrate_once(pg_schema, tmp_path):
    from wf.runtime.store.postgres import migrations

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
    assert schema_version(pg_schema.url) == len(migrations())
    for s in stores:
        s.close()


@pytest.mark.postgres
def test_postgres_store_from_a_newer_wf_is_refused(pg_schema, tmp_path):
    open_store(tmp_path, pg_schema.url).close()
    with psycopg.connect(pg_schema.url) as conn:
        conn.execute("UPDATE wf_meta SET value='999' WHERE key='schema_version'")
    with pytest.raises(StoreError, match="newer than this wf"):
        open_store(tmp_path, pg_schema.url)


@pytest.mark.postgres
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
    assert ".[postgres]" in info.value.hint and "psycopg-pool" in info.value.hint  # wf-workflows, not PyPI's wf


def test_unknown_store_scheme_is_refused(tmp_path):
    with pytest.raises(StoreError, match="mysql"):
        open_store(tmp_path, "mysql://localhost/db")


def schema_version(url: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute("SELECT value FROM wf_meta WHERE key='schema_version'").fetchone()[0])


def test_both_databases_implement_the_whole_port():
    """The `Database` protocol in store/base.py is all a dialect module provides: both do, whole."""
    from wf.runtime.store.base import Database
    from wf.runtime.store.postgres import PostgresDB
    from wf.runtime.store.sqlite import SQLiteDB

    methods = [name for name, value in vars(Database).items() if callable(value) and not name.startswith("_")]
    assert len(methods) >= 9
    for cls in (SQLiteDB, PostgresDB):
        assert [m for m in methods if not callable(getattr(cls, m, None))] == [], cls.__name__


def test_every_named_query_compiles_for_both_dialects():
    """A query that names a missing fragment or leaves a hole fails here, not in production."""
    from wf.runtime.store.core import _BY_ID
    from wf.runtime.store.postgres import PostgresDialect
    from wf.runtime.store.sql import _blocks
    from wf.runtime.store.sqlite import SQLiteDialect

    for by_id in _BY_ID.values():  # core.py's parts for the holes
        holes = {"where": "", "extra": "", "type_filter": "", "order": "DESC", **by_id}
        for dialect in (SQLiteDialect(), PostgresDialect()):
            for name in _blocks():
                text, _ = dialect.query(name, **holes)
                assert "{" not in text and "}" not in text, (dialect.name, name, text)


def test_an_old_sqlite_database_is_migrated_in_place(tmp_path):
    """A state.db written by the previous wf (schema 2, unprefixed tables) opens with its data."""
    import sqlite3

    from wf.runtime.store.sqlite import migrations

    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for script in migrations()[:2]:
        conn.executescript(script)
    conn.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    conn.execute(
        "INSERT INTO instances (workflow, id, params, status, created_at, wake_at) "
        "VALUES ('w', 'old', '{}', 'queued', 1.0, 1.0)"
    )
    conn.commit()
    conn.close()
    s = open_store(tmp_path, f"sqlite:///{path}")
    assert s.get_instance("w", "old").status == "queued"
    assert claim_one(s).id == "old"
    s.close()


@pytest.mark.postgres
def test_postgres_store_works_where_libpq_has_no_pipeline_mode(pg_schema, tmp_path, monkeypatch):
    """With an older libpq (before 14) every statement waits for its answer; the operations, their
    fences and a batch's isolation of a refused statement work the same."""
    from wf.runtime.store import postgres

    monkeypatch.setattr(postgres, "pipelining", lambda: False)
    store = open_store(tmp_path, pg_schema.url)
    create(store, "a", "b")
    a, b = store.claim("r1", T0 + 1, 30.0, 2, ["w"])
    refused = {"seq": a.seq, "type": None, "payload": None, "now": T0}
    results = store.run_batch(
        [
            lambda: store.commit_step("r1", a.seq, a.gen, StepWrite(step()), T0 + 2),
            lambda: store.db.execute("insert_event", refused, {}),
            lambda: store.commit_step("intruder", b.seq, b.gen, StepWrite(step(name="x")), T0 + 2),
        ]
    )
    assert results[0] == "running" and isinstance(results[1], Failed) and results[2] is None, results
    assert store.add_event(a.seq, "go", None, T0 + 3) > 0
    assert batch(store, lambda: store.finish_instance("r1", a.seq, a.gen, "complete", "1", None, T0 + 4))
    with pytest.raises(ConflictError):
        store.add_event(a.seq, "go", None, T0 + 5)
    assert [s.name for s in store.steps(a.seq)] == ["a"] and store.steps(b.seq) == []
    store.close()
