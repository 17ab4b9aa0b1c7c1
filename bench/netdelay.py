"""A wire with latency: hold every packet of an NFQUEUE queue for a fixed delay, then let it go.

    python bench/netdelay.py QUEUE DELAY_MS STATS_FILE

Stands in for `tc qdisc ... netem delay` on kernels built without sch_netem (this benchmark's VM
has no netem and cannot load modules). iptables rules send the packets crossing the benchmark's
veth links to queue QUEUE; this process, run in the same network namespace, reads each packet's
id as the kernel queues it (metadata only, no payload copy) and accepts it DELAY_MS later. The
delay is the same for every packet, so packets leave in the order they came: one VERDICT_BATCH
message ("accept every id up to N") releases all that are due, which keeps the cost per packet
to one netlink read.

Standard library only (raw netlink): the PyPI binding (NetfilterQueue) has no batch verdict, needs
libnetfilter_queue's headers to build, and copies every packet into a Python object.

It prints "ready" once bound; on SIGTERM it accepts what it holds, writes
{"packets", "late_over_100us", "scheduler", "unstamped", "wakes", "user_s", "sys_s", "late_ms_max"}
to STATS_FILE and exits.
"""

from __future__ import annotations

import collections
import json
import os
import resource
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
MSG_PACKET, MSG_VERDICT, MSG_CONFIG, MSG_VERDICT_BATCH = 0, 1, 2, 3
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
CFG_CMD, CFG_PARAMS, CFG_QUEUE_MAXLEN = 1, 2, 3
CMD_BIND = 1
COPY_META = 1
ATTR_PACKET_HDR, ATTR_VERDICT_HDR, ATTR_TIMESTAMP = 1, 2, 4
SO_TIMESTAMP = 29
NF_ACCEPT = 1
# packets due within this much of now leave together (one wake-up, one verdict)
SLACK = 20e-6
# a packet released more than this after it was due counts as late (the kernel's softirq or this
# process did not get a CPU in time: the stats say how often)
LATE = 100e-6


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _message(kind: int, queue: int, attrs: bytes, flags: int = NLM_F_REQUEST, seq: int = 0) -> bytes:
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + attrs
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | kind, flags, seq, 0) + body


class Queue:
    def __init__(self, queue: int):
        self.queue, self.unstamped = queue, 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE: never drop a notice
        self.sock.bind((0, 0))
        self._config(_attr(CFG_CMD, struct.pack("!BBH", CMD_BIND, 0, 0)), seq=1)
        self._config(_attr(CFG_PARAMS, struct.pack("!IB", 0, COPY_META)), seq=2)
        self._config(_attr(CFG_QUEUE_MAXLEN, struct.pack("!I", 1 << 16)), seq=3)
        self.sock.setblocking(False)

    def _config(self, attrs: bytes, seq: int) -> None:
        self.sock.send(_message(MSG_CONFIG, self.queue, attrs, NLM_F_REQUEST | NLM_F_ACK, seq))
        data = self.sock.recv(65536)
        kind = struct.unpack_from("=H", data, 4)[0]
        error = struct.unpack_from("=i", data, 16)[0] if kind == NLMSG_ERROR else 0
        if error:
            raise OSError(-error, f"NFQUEUE config of queue {self.queue}: {os.strerror(-error)}")

    def read(self) -> list[tuple[float, int]]:
        """(arrival time, id) of each packet queued since the last call; never blocks. The arrival
        time is the kernel's receive timestamp (wall clock), so a late read does not delay a packet."""
        out = []
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return out
            at = 0
            while at + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, at)
                if kind == (NFNL_SUBSYS_QUEUE << 8) | MSG_PACKET:
                    stamp, packet_id = self._packet(data, at + 20, at + length)
                    if stamp is None:  # not received from a link (never so in the router's FORWARD chain)
                        stamp, self.unstamped = time.time(), self.unstamped + 1
                    out.append((stamp, packet_id))
                at += (length + 3) & ~3

    @staticmethod
    def _packet(data: bytes, at: int, end: int) -> tuple[float | None, int]:
        packet_id, stamp = None, None
        while at + 4 <= end:
            length, kind = struct.unpack_from("=HH", data, at)
            kind &= 0x3FFF
            if kind == ATTR_PACKET_HDR:
                packet_id = struct.unpack_from("!I", data, at + 4)[0]
            elif kind == ATTR_TIMESTAMP:
                sec, usec = struct.unpack_from("!QQ", data, at + 4)
                stamp = sec + usec / 1e6
            at += (length + 3) & ~3
        if packet_id is None:
            raise ValueError("an NFQUEUE packet message without its header")
        return stamp, packet_id

    def accept_through(self, packet_id: int) -> None:
        self.sock.send(
            _message(MSG_VERDICT_BATCH, self.queue, _attr(ATTR_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id)))
        )


def _realtime() -> str:
    """The wire must not wait for a CPU behind the processes it connects (2 cores, many workers)."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        return "SCHED_FIFO"
    except (OSError, AttributeError):
        pass
    try:
        os.nice(-10)
        return "nice -10"
    except OSError:
        return "default"


def main() -> None:
    queue, delay, stats = int(sys.argv[1]), float(sys.argv[2]) / 1000, sys.argv[3]
    q = Queue(queue)
    # any socket asking for receive timestamps switches them on for every packet the kernel takes in
    stamps = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stamps.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
    scheduler = _realtime()
    held: collections.deque[tuple[float, int]] = collections.deque()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    packets, late, late_count, wakes = 0, 0.0, 0, 0
    print("ready", flush=True)
    while not stop:
        # holding packets: sleep until the first is due (later arrivals are due later still);
        # holding none: sleep until one arrives
        if held:
            select.select([], [], [], max(0.0, held[0][0] - time.time()))
        else:
            select.select([q.sock], [], [], 0.5)
        wakes += 1
        for arrived, packet_id in q.read():
            held.append((arrived + delay, packet_id))
            packets += 1
        now = time.time()
        due = None
        while held and held[0][0] <= now + SLACK:
            due_at, due = held.popleft()
            late = max(late, now - due_at)
            late_count += now - due_at > LATE
        if due is not None:
            q.accept_through(due)
    if held:
        q.accept_through(held[-1][1])
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open(stats, "w") as f:
        json.dump(
            {
                "packets": packets,
                "late_over_100us": late_count,
                "scheduler": scheduler,
                "unstamped": q.unstamped,
                "wakes": wakes,
                "user_s": usage.ru_utime,
                "sys_s": usage.ru_stime,
                "late_ms_max": late * 1000,
            },
            f,
        )


if __name__ == "__main__":
    main()
