"""A stand-in for the shop's external APIs: inventory, payments, shipping, notifications.

It runs `http.server` on a thread, bound to 127.0.0.1 on a free port, and appends every call
to a ledger FILE (one JSON line per call: endpoint, orderId, pid of the calling process, HTTP
status, time), so calls made by runner subprocesses are counted as well as in-process ones.

    stub = StubService(tmp_path / "ledger.jsonl").start()
    stub.fail_payments(2)                 # the next two payment calls answer 503
    stub.count("payments/charge", "ORD-1")

Endpoints (the seed's, under one base URL):
    GET  /inventory/check/{productId}  -> {"productId", "available"}  (unavailable if in `out_of_stock`)
    POST /payments/charge              -> {"transactionId": "TXN-<orderId>"}
    POST /shipping/create              -> {"trackingNumber": "TRK-<orderId>"}
    POST /notifications/send           -> {"sent": true}
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class StubService:
    def __init__(self, ledger: str | Path, out_of_stock: Iterable[str] = ("SKU-OOS",)):
        self.ledger = Path(ledger)
        self.out_of_stock = set(out_of_stock)
        self._lock = threading.Lock()
        self._failures: dict[str | None, int] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> StubService:
        self.ledger.parent.mkdir(parents=True, exist_ok=True)
        self.ledger.touch()
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="stub-service", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- behaviour -----------------------------------------------------------------------

    def fail_payments(self, n: int, order_id: str | None = None) -> None:
        """Answer 503 to the next `n` payment calls (of `order_id` only, when given)."""
        with self._lock:
            self._failures[order_id] = n

    def _should_fail_payment(self, order_id: str | None) -> bool:
        with self._lock:
            for key in (order_id, None):  # a failure set for this order first, then a global one
                if self._failures.get(key, 0) > 0:
                    self._failures[key] -= 1
                    return True
        return False

    # -- the ledger ----------------------------------------------------------------------

    def record(self, entry: dict) -> None:
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        fd = os.open(self.ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write per line, O_APPEND: lines never interleave
        finally:
            os.close(fd)

    def calls(self, endpoint: str | None = None, order_id: str | None = None, *, ok_only: bool = False) -> list[dict]:
        entries = [json.loads(line) for line in self.ledger.read_text().splitlines() if line.strip()]
        return [
            e
            for e in entries
            if (endpoint is None or e["endpoint"] == endpoint)
            and (order_id is None or e["orderId"] == order_id)
            and (not ok_only or e["status"] < 400)
        ]

    def count(self, endpoint: str | None = None, order_id: str | None = None, *, ok_only: bool = False) -> int:
        return len(self.calls(endpoint, order_id, ok_only=ok_only))

    # -- answering -----------------------------------------------------------------------

    def answer(self, method: str, path: str, body: dict, headers) -> tuple[int, dict, str | None]:
        """(status, response body, orderId) for one request."""
        parts = [p for p in path.split("?")[0].split("/") if p]
        order_id = body.get("orderId") or headers.get("x-order-id")
        if method == "GET" and parts[:2] == ["inventory", "check"] and len(parts) == 3:
            return 200, {"productId": parts[2], "available": parts[2] not in self.out_of_stock}, order_id
        if method != "POST":
            return 404, {"error": f"no route {method} {path}"}, order_id
        route = "/".join(parts)
        if route == "payments/charge":
            if self._should_fail_payment(order_id):
                return 503, {"error": "payment gateway unavailable"}, order_id
            return 200, {"transactionId": f"TXN-{order_id}"}, order_id
        if route == "shipping/create":
            return 200, {"trackingNumber": f"TRK-{order_id}"}, order_id
        if route == "notifications/send":
            return 200, {"sent": True}, order_id
        return 404, {"error": f"no route {method} {path}"}, order_id


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Several runner processes connect at once; with the default backlog of 5 the kernel drops
    # their SYNs and each retries a second later, which looks like a slow runner.
    request_queue_size = 1024

    def handle_error(self, request, client_address):
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):  # a killed caller
            super().handle_error(request, client_address)


def _endpoint(path: str) -> str:
    parts = [p for p in path.split("?")[0].split("/") if p]
    return "/".join(parts[:2])


def _handler(stub: StubService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self._serve("GET")

        def do_POST(self):
            self._serve("POST")

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            if len(raw) < length:  # the caller died mid-request: no call was made, as on a real server
                self.close_connection = True
                return
            try:
                body = json.loads(raw) if raw else {}
            except json.JSONDecodeError:
                body = {}
            if not isinstance(body, dict):
                body = {}
            status, payload, order_id = stub.answer(method, self.path, body, self.headers)
            pid = self.headers.get("x-caller-pid")
            stub.record(
                {
                    "endpoint": _endpoint(self.path),
                    "path": self.path,
                    "orderId": order_id,
                    "pid": int(pid) if pid and pid.isdigit() else None,
                    "status": status,
                    "t": time.time(),
                }
            )
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format, *args):  # quiet: the ledger is the record
            pass

    return Handler
