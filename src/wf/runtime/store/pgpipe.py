"""A PostgreSQL write transaction's pipeline (postgres.py's plumbing): each statement sent with a
Sync of its own that nothing waits for, its answers read where a result is needed or at COMMIT;
this thread's connection while a transaction or a read runs (_Tx), and a statement's results (_Result)."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

try:
    import psycopg
    from psycopg import pq
except ImportError:  # pragma: no cover - postgres.py says what to install
    psycopg = None  # type: ignore[assignment]


def pipelining() -> bool:
    """Whether write transactions can be pipelined (libpq 14+ can; WF_PG_PIPELINE=0 says not to).

    PostgreSQL arms its idle-in-transaction timer only when it has answered a Sync, and a plain
    pipeline sends a transaction's statements without one: a worker stopped (SIGSTOP, a frozen VM)
    after sending some of them would hold their row locks for ever instead of one lease (see
    tests/test_faults.py's worker stopped inside a transaction). So every statement here goes out
    with a Sync of its own, in the same write, that nothing waits for (_SyncedPipeline, which leans
    on psycopg's pipeline internals: without them, no pipelining): the server answers each, arms
    the timer, and the client still waits only where it reads a result."""
    return psycopg.Pipeline.is_supported() and all(
        hasattr(psycopg.Pipeline, name) for name in ("_communicate_gen", "_enqueue_sync", "_exit_gen")
    )


def _pipeline(conn, pipelined: bool):
    return _synced_pipeline(conn) if pipelined else nullcontext(_Unpiped())


@contextmanager
def _synced_pipeline(conn):
    """conn.pipeline(), with a _SyncedPipeline."""
    with conn.lock:
        pipe = conn._pipeline = _SyncedPipeline(conn)
    try:
        with pipe:
            yield pipe
    finally:
        with conn.lock:
            conn._pipeline = None


if psycopg is not None:

    class _SyncedPipeline(psycopg.Pipeline):
        """A pipeline that sends a Sync with every statement, in the same write (see pipelining()):
        a process stopped between the two would leave the server waiting, its timer off."""

        def _communicate_gen(self):
            queue, sync = self.command_queue, self.pgconn.pipeline_sync
            if queue and queue[-1] != sync:
                send = queue.pop()

                def send_and_sync() -> None:
                    send()
                    sync()

                queue.append(send_and_sync)
                self.result_queue.append(None)
            return (yield from super()._communicate_gen())

        def _exit_gen(self):
            """Leave without psycopg's closing Sync when everything sent was synced and answered
            (a transaction ends with COMMIT and a sync): that Sync would cost a round trip for
            nothing. With anything outstanding (an error path), psycopg's own exit collects it."""
            if self.command_queue or self.result_queue or self.pgconn.transaction_status != pq.TransactionStatus.IDLE:
                return (yield from super()._exit_gen())
            return None


class _Unpiped:
    """Stands for the pipeline where libpq has none: every statement has already been answered."""

    def sync(self) -> None:
        pass


class _Tx:
    """This thread's connection while it runs a transaction (`pipe` set) or a read (`pipe` None)."""

    __slots__ = ("conn", "pipe", "depth", "fresh", "later")

    def __init__(self, conn, pipe):
        self.conn, self.pipe, self.depth = conn, pipe, 0
        self.later = False  # the optimistic run of a batch (PostgresDB.reads_later)
        self.fresh: str | None = None  # a savepoint just set, nothing sent since

    def send(self, text, params=None):
        self.fresh = None
        return self.conn.execute(text, params)

    def writable(self) -> _Tx:
        if self.pipe is None:
            raise RuntimeError("a PostgreSQL write inside a read")
        return self

    @contextmanager
    def savepoint(self, careful: bool = False):
        """A savepoint around the block, rolled back if the block raises. A statement that fails
        stops the pipeline (what follows it, this SAVEPOINT maybe, is skipped): the error is
        passed on and the transaction is lost, unless `careful`, where the block's statements are
        waited for before it is left (one round trip), so that a failure is known to be the
        block's, and undone, and the transaction goes on."""
        if self.fresh is not None and not careful:
            # nothing was sent since the enclosing savepoint was set: undoing to it undoes this block
            with self._reuse(self.fresh):
                yield
            return
        self.depth += 1
        name = f"wf_{self.depth}"
        self.conn.execute(f"SAVEPOINT {name}")
        self.fresh = name
        try:
            yield
            if careful:
                self.pipe.sync()
        except psycopg.Error:
            if not careful:
                raise
            self._settle()
            self.send(f"ROLLBACK TO SAVEPOINT {name}")
            self.send(f"RELEASE SAVEPOINT {name}")
            self.pipe.sync()  # back on track, or the error is the transaction's
            raise
        except BaseException:
            self.send(f"ROLLBACK TO SAVEPOINT {name}")
            self.send(f"RELEASE SAVEPOINT {name}")
            raise
        else:
            self.send(f"RELEASE SAVEPOINT {name}")
        finally:
            self.depth -= 1

    @contextmanager
    def _reuse(self, name: str):
        try:
            yield
        except psycopg.Error:
            raise
        except BaseException:
            self.conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
            self.fresh = name  # back to where nothing was sent since it
            raise

    def _settle(self) -> None:
        """After a failed statement: read what the pipeline still holds, errors included."""
        try:
            self.pipe.sync()
        except psycopg.Error:
            pass

    def rollback(self) -> None:
        try:
            self._settle()
            self.conn.execute("ROLLBACK")
            self.pipe.sync()
        except Exception:  # a broken connection: the pool throws it away
            pass


class _Result:
    """A statement's results. In a pipelined transaction they arrive later: the first read of
    them (rows or the row count) waits for them (a round trip with whatever else is queued)."""

    __slots__ = ("cursor", "pipe")

    def __init__(self, cursor, pipe):
        self.cursor, self.pipe = cursor, pipe

    def fetchone(self):
        self._arrived()
        return self.cursor.fetchone()

    def fetchall(self) -> list:
        self._arrived()
        return self.cursor.fetchall()

    @property
    def rowcount(self) -> int:
        self._arrived()
        return self.cursor.rowcount

    def _arrived(self) -> None:
        """Wait for the answers sent so far with a Sync, not with psycopg's own wait in a fetch: that
        sends a Flush, and any message after a Sync turns the server's idle-in-transaction timer off
        until the next Sync (a worker stopped right after the fetch held its locks for ever)."""
        if self.cursor.pgresult is None and self.pipe is not None:
            self.pipe.sync()
