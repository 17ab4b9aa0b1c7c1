"""How runners learn that another process wrote work for them, and that a runner died.

The runner and the client stay store-agnostic; each store picks its coordination:

- `LocalCoordination` (SQLite, one machine): a runner holds an `flock` for its life, so a dead
  runner is known the instant the kernel drops the lock; clients send one-line notes to each
  live runner's Unix datagram socket (`presence.py`).
- `PostgresCoordination` (many machines): a runner renews a lease by heartbeat; when a lease
  runs out, any other runner hands that runner's instances back (`release_expired`). Stores
  `NOTIFY` in the writing transaction; runners `LISTEN` on a dedicated connection. Polling
  each `reap_interval` is only the fallback for a lost connection.

Notes are `w` (new work), `e:<seq>` (something for instance seq's waits: an event, or the end of an
instance it waits for), `c:<seq>` (a control change). A runner's own writes notify too: on
SQLite its store hands the notes of each commit to the coordination, which sends them on.
Runner side: `start(runner)`, `stop()`, `reap(now)`. Client side: `notify(note)`, `alive()`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import Any

from .presence import Presence, live_runners, notify, owner_alive
from .retry import Backoff

log = logging.getLogger("wf.runner")
# A worker trusts its claims until this share of a lease after its last confirmed renewal was
# sent: the database cannot have handed them to another worker before the whole lease ran out.
TRUST = 0.9
# Most instances a worker on PostgreSQL runs at once (waiting ones aside) before it claims more: a
# worker that claimed every due instance would leave the others idle while it works through them.
CLAIM_WINDOW = 64
_RECONNECT = Backoff(first=0.1, factor=2.0, most=5.0)


def coordination_for(store: Any, state_dir: str | Path):
    """The coordination that goes with the store's kind: leases and LISTEN/NOTIFY for PostgreSQL,
    flock and datagrams for a SQLite file (or when no store is open yet: a client on SQLite)."""
    if store is not None and store.kind == "postgres":
        return PostgresCoordination(store)
    return LocalCoordination(state_dir)


class LocalCoordination:
    """One machine, one state folder: flock liveness and Unix datagram notes."""

    claim_window = None  # a runner claims all it has room for (one machine: no one else to leave work to)

    def __init__(self, state_dir: str | Path):
        self.state_dir = Path(state_dir)
        self.runner: Any = None  # the Runner, once started
        self.presence: Any = None  # this runner's Presence, once started

    # -- client side ---------------------------------------------------------------------

    def notify(self, note: str) -> None:
        notify(self.state_dir, note)

    def alive(self) -> bool:
        return bool(live_runners(self.state_dir))

    # -- runner side ---------------------------------------------------------------------

    async def start(self, runner) -> None:
        self.runner = runner
        self.presence = Presence(self.state_dir, runner.owner)
        self.presence.acquire()
        asyncio.get_running_loop().add_reader(self.presence.sock.fileno(), self._on_note)
        runner.store_ops.hear_notes(self._broadcast)  # e.g. an instance's end wakes its waiters elsewhere

    def _broadcast(self, notes: list[str]) -> None:
        """The notes of one of this runner's commits, to every live runner (itself included)."""
        for note in dict.fromkeys(notes):
            notify(self.state_dir, note)

    async def stop(self) -> None:
        if self.presence is None:
            return
        if self.presence.sock is not None:
            asyncio.get_running_loop().remove_reader(self.presence.sock.fileno())
        self.presence.release()

    def _on_note(self) -> None:
        while True:
            try:
                data = self.presence.sock.recv(512)
            except (BlockingIOError, OSError):
                break
            self.runner.handle_note(data.decode(errors="replace"))

    async def reap(self, now: float) -> None:
        """Hand back the instances of runners whose lock is gone (they died)."""
        r = self.runner
        replaced = self.presence.replaced() or await r.astore.call(r.store_ops.replaced)
        if replaced:
            return r.fail(
                f"{replaced} was deleted or replaced while this runner used it: another runner could now "
                f"run the same instances, so this one stops"
            )
        for owner in await r.astore.call(r.store_ops.owners):
            if owner != r.owner and not owner_alive(self.state_dir, owner):
                released = await r.astore.call(r.store_ops.release_owner, owner, now)
                if released:
                    log.info("took back %d instance(s) of stopped runner %s", released, owner)


class PostgresCoordination:
    """Many machines, one database: leases renewed by heartbeat, LISTEN/NOTIFY for wake-ups."""

    claim_window = CLAIM_WINDOW

    def __init__(self, store):
        self.store = store
        self.runner: Any = None  # the Runner, once started
        self._orphans: dict[int, float] = {}  # seq -> when (monotonic) first held in the store but not here
        self._tasks: list[asyncio.Task] = []
        self._listen_conn = None

    # -- client side ---------------------------------------------------------------------

    def notify(self, note: str) -> None:
        """Nothing to do: the store's write already NOTIFYed, in its own transaction."""

    def alive(self) -> bool:
        from .clock import SystemClock

        return bool(self.store.live_runners(SystemClock().now()))

    # -- runner side ---------------------------------------------------------------------

    async def start(self, runner) -> None:
        self.runner = runner
        sent = time.monotonic()
        await runner.astore.call(self.store.register_runner, runner.owner, runner.clock.now(), runner.lease)
        runner.trust_until(sent + runner.lease * TRUST)
        loop = asyncio.get_running_loop()
        listening = loop.create_future()
        self._tasks = [loop.create_task(self._listen(listening)), loop.create_task(self._heartbeat())]
        await asyncio.wait([listening, self._tasks[0]], return_when=asyncio.FIRST_COMPLETED, timeout=15)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._listen_conn is not None:
            await self._listen_conn.close()
            self._listen_conn = None
        r = self.runner
        if r is not None and r.astore.store is not None:
            try:
                await r.astore.call(self.store.unregister_runner, r.owner)
            except Exception:  # the lease runs out on its own
                log.warning("could not unregister runner %s", r.owner)

    async def _listen(self, listening: asyncio.Future) -> None:
        """LISTEN on a dedicated connection; reconnect (and poll meanwhile) if it drops."""
        import psycopg

        delays = _RECONNECT.delays()
        while True:
            try:
                self._listen_conn = await psycopg.AsyncConnection.connect(self.store.db.url, autocommit=True)
                await self._listen_conn.execute(self.store.db.listen_statement())
                if not listening.done():
                    listening.set_result(None)
                delays = _RECONNECT.delays()
                self.runner.wake()  # anything written while we were not listening
                async for note in self._listen_conn.notifies():
                    self.runner.handle_note(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("lost the LISTEN connection (%s); polling until it is back", exc)
            finally:
                if self._listen_conn is not None:
                    await self._listen_conn.close()
                    self._listen_conn = None
            await asyncio.sleep(next(delays))

    async def _heartbeat(self) -> None:
        """Renew the lease a few times per lease period, from a plain thread with its own
        connection: neither a busy store thread nor a stalled event loop can make a live runner
        lose its lease. What the renewal says this runner no longer holds is stopped here."""
        loop = asyncio.get_running_loop()
        stop = threading.Event()
        thread = threading.Thread(target=self._renew_forever, args=(loop, stop), name="wf-heartbeat", daemon=True)
        thread.start()
        try:
            await asyncio.Event().wait()  # until cancelled by stop()
        finally:
            stop.set()

    def _renew_forever(self, loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
        r = self.runner
        while not stop.wait(max(0.05, r.lease / 4)):
            sent = time.monotonic()  # the lease runs from (at least) this instant, on the database's clock
            try:
                held = set(self.store.runner_heartbeat(r.owner, r.clock.now(), r.lease))
            except Exception as exc:
                log.warning("heartbeat failed (%s); retrying", exc)
                continue
            try:
                loop.call_soon_threadsafe(self._renewed, held, sent + r.lease * TRUST)
            except RuntimeError:  # the loop is closed: the runner is gone
                return

    def _renewed(self, held: set, trusted_until: float) -> None:
        r = self.runner
        lapsed = not r.trusted()
        for seq, x in r.executions.items():
            if seq in held:
                x.suspect = False
            elif lapsed:
                # Trust had lapsed: another runner may have taken it. Or its row was locked by one of
                # our own commits (the renewal skips locked rows): checked next; no attempt starts
                # until then. While trust holds, no other runner can have taken anything (our lease
                # in the store outlives our trust), so a row skipped then is only ours being
                # committed: suspecting it would send the instance to be replayed for nothing.
                x.suspect = True
        r.trust_until(trusted_until)
        r.background(self._drop_lost(held), "dropping lost claims")
        self._find_orphans(held)

    def _find_orphans(self, held: set) -> None:
        """Instances the store says this runner holds but that it does not run: a claim whose
        commit went through while its answer was lost (the connection cut in between). Still held
        and not here a lease after first seen (a claim answered meanwhile is in memory by then),
        they are handed back; claims asked before that are checked in the store before they run."""
        r, now = self.runner, time.monotonic()
        here = set(r.executions) | set(r._claimed) | set(r._unreleased)
        self._orphans = {seq: self._orphans.get(seq, now) for seq in held if seq not in here}
        stale = {seq for seq, first in self._orphans.items() if now - first >= r.lease}
        if stale:
            for seq in stale:
                del self._orphans[seq]
            r.regained_at = now
            r.background(self._release_orphans(stale), "handing back instances this runner does not run")

    async def _release_orphans(self, seqs: set) -> None:
        r = self.runner
        released = await r.astore.call(self.store.release_orphans, r.owner, seqs, r.clock.now())
        if released:
            log.warning("handed back %d instance(s) held in the store but not running here (a lost answer)", released)
            r.wake()

    async def _drop_lost(self, held: set) -> None:
        r = self.runner
        for seq, x in list(r.executions.items()):
            if seq not in held and x.row.seq == seq and x.stop_reason is None:
                claimed = await asyncio.to_thread(self.store.get_by_seq, seq)
                # gone, restarted, or taken over after our lease ran out
                if claimed is None or claimed.gen != x.gen or claimed.owner not in (None, r.owner):
                    r.lose(x)
                elif claimed.owner == r.owner:
                    x.suspect = False
                # No owner: ended or handed back, by this execution on its way out, or after our
                # lease ran out by another runner, which may since have run it to its end (a
                # takeover keeps the generation). A suspect one stays so: it starts no attempt.

    async def reap(self, now: float) -> None:
        """Hand back the instances of every runner whose lease ran out."""
        r = self.runner
        released = await asyncio.to_thread(self.store.release_expired, now, r.owner)  # off the busy store thread
        if released:
            log.info("took over %d instance(s) whose runner's lease expired", released)
