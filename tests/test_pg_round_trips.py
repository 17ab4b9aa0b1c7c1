"""Round trips to PostgreSQL across a slow network: what a worker or a client on another machine
waits for. The store talks to the server through a proxy that delays every byte 100 ms each way
and counts how often a client speaks again after it was answered (tests/delayproxy.py); the
fewest of three runs is the figure (a pool connection opened meanwhile adds its own)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest
from delayproxy import DelayProxy
from pgtest import Schema, require_base_url

from wf.runtime.store import open_store
from wf.runtime.store.base import StepRow, StepWrite

pytestmark = pytest.mark.postgres

DELAY = 0.1  # each way
T0 = 1_000.0


@pytest.fixture
def far(tmp_path):
    """(a store on a fresh schema, the proxy it reaches its server through: 0.2 s of round trip)."""
    schema = Schema(require_base_url())
    parts = urlsplit(schema.url)
    user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    try:
        with DelayProxy(parts.hostname or "127.0.0.1", parts.port or 5432, DELAY) as proxy:
            store = open_store(tmp_path, urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{proxy.port}")))
            try:
                yield store, proxy
            finally:
                store.close()
    finally:
        schema.drop()


def round_trips(proxy, fn, reps: int = 3) -> int:
    """How many round trips fn() waits for: the fewest of `reps` runs."""
    best = None
    for _ in range(reps):
        before = proxy.turns
        fn()
        trips = proxy.turns - before
        best = trips if best is None else min(best, trips)
    assert best is not None
    return best


def claimed(store, n: int, tag: str):
    ids = [f"{tag}-{i}" for i in range(n)]
    store.create_instances([{"workflow": "w", "id": i, "params": "{}"} for i in ids], T0)
    return store.claim("r1", T0 + 1, 60.0, n, ["w"])


def test_a_write_waits_on_the_database_once(far):
    """A client's write (an event sent to a known instance) is one round trip: its statements,
    COMMIT and the wait for them, nothing after."""
    store, proxy = far
    [row] = claimed(store, 1, "a")
    assert round_trips(proxy, lambda: store.add_event(row.seq, "go", None, T0 + 2)) == 1


def test_an_event_sent_by_id_is_found_and_stored_in_one_round_trip(far):
    """What `wf send-event ID` and Client.send_event do: finding the instance by its id and storing
    the event are one transaction, one round trip (finding it first would be a second)."""
    store, proxy = far
    [row] = claimed(store, 1, "b")
    assert round_trips(proxy, lambda: store.add_event_by_id(None, "b-0", "go", '{"n":1}', T0 + 2)) == 1
    assert len(store.events(row.seq)) == 3


def test_a_step_commit_alone_is_one_round_trip(far):
    """One instance running steps one after the other: each step's commit checks the claim in the
    same round trip as its COMMIT (the database refuses it if the claim is gone)."""
    store, proxy = far
    [row] = claimed(store, 1, "d")
    write = StepWrite(StepRow(pos=0, kind="do", name="s", n=1, status="complete", output='"ok"'))
    assert (
        round_trips(proxy, lambda: store.run_batch([lambda: store.commit_step("r1", row.seq, row.gen, write, T0)])) == 1
    )
    assert store.run_batch([lambda: store.commit_step("r2", row.seq, row.gen, write, T0)]) == [None]


def test_a_group_commit_waits_on_the_database_once_however_many_steps_it_holds(far):
    """A worker's group commit of 20 step transitions and instance ends (what 10 instances in
    flight write at once) is sent with its COMMIT and waited for once, where reading each op's
    fence in turn would cost a round trip per op."""
    store, proxy = far
    trips, outcomes = [], []
    for rep in range(3):
        rows = claimed(store, 10, f"c{rep}")  # not counted: a claim of its own
        ops = []
        for r in rows:
            step = StepRow(pos=0, kind="do", name="s", n=1, status="complete", output='"ok"')
            ops.append(lambda r=r, step=step: store.commit_step("r1", r.seq, r.gen, StepWrite(step), T0 + 2))
            ops.append(lambda r=r: store.finish_instance("r1", r.seq, r.gen, "complete", '"ok"', None, T0 + 3))
        before = proxy.turns
        outcomes.append(store.run_batch(ops))
        trips.append(proxy.turns - before)
    assert min(trips) == 1, f"a batch of 20 ops took {trips} round trips"
    assert all(o == ["running", True] * 10 for o in outcomes), outcomes
    ended = [store.get_instance("w", f"c0-{i}") for i in range(10)]
    assert {r.status for r in ended} == {"complete"} and all(store.steps(r.seq) for r in ended)
