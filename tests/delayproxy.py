"""A TCP proxy that delays every byte by a fixed time each way (a database across a slow network)
and counts round trips: `turns` goes up each time a client speaks again after it was answered.
With the delay far above what a client takes to send what it sends at once, a pipelined burst is
all out before its first answer comes back, so the count does not depend on the machine's speed.

    with DelayProxy("127.0.0.1", 5432, delay=0.1) as proxy:
        url = f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres"
        before = proxy.turns; ...; round_trips = proxy.turns - before
"""

from __future__ import annotations

import queue
import socket
import threading
import time


class DelayProxy:
    def __init__(self, host: str, port: int, delay: float):
        self.target, self.delay = (host, port), delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._closed = threading.Event()
        self._socks: list[socket.socket] = []
        self.turns = 0
        self._lock = threading.Lock()

    def __enter__(self) -> DelayProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._closed.set()
        self.listener.close()
        for s in self._socks:
            try:
                s.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._socks.append(s)
            answered = threading.Event()  # this connection's client got an answer since it last spoke
            self._pipe(client, server, answered, asking=True)
            self._pipe(server, client, answered, asking=False)

    def _pipe(self, src: socket.socket, dst: socket.socket, answered: threading.Event, asking: bool) -> None:
        """Bytes read from `src` are written to `dst` `delay` seconds later, in order."""
        held: queue.Queue = queue.Queue()

        def read() -> None:
            while True:
                try:
                    data = src.recv(65536)
                except OSError:
                    data = b""
                if asking and data and answered.is_set():
                    answered.clear()
                    with self._lock:
                        self.turns += 1
                held.put((time.monotonic() + self.delay, data))
                if not data:
                    return

        def write() -> None:
            while True:
                due, data = held.get()
                time.sleep(max(0.0, due - time.monotonic()))
                try:
                    if not data:
                        dst.shutdown(socket.SHUT_WR)
                        return
                    if not asking:
                        answered.set()  # before it can reach the client, who may then speak at once
                    dst.sendall(data)
                except OSError:
                    return

        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=write, daemon=True).start()
