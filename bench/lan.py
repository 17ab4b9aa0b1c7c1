"""A LAN on one machine: network namespaces joined through a router namespace that delays every packet.

    with Lan(["db", "client", "w1", "w2"], work, delay_ms=0.5) as lan:
        lan.run("db", [...])            # a process inside node "db"'s namespace
        lan.address("db")               # its address, reachable from every other node

Each node is a network namespace with one veth link to the router namespace; the router forwards
between links, and its FORWARD chain hands every packet to bench/netdelay.py, which holds it for
`delay_ms` before letting it go. Every packet between two nodes crosses the router once, so each
direction is delayed `delay_ms` (0.5 ms each way: a round trip of 1 ms, a LAN between machines).
`tc qdisc netem` would be the usual tool; this machine's kernel has no netem (and loads no
modules), so the delay is applied by a process instead (see bench/netdelay.py and its figures).

Requires root, iproute2 (`ip`) and iptables (nf_tables backend). Everything is created with
names under a prefix of its own (wfb<slot>-...) and removed by `down()`, which also runs when
the benchmark is interrupted; `cleanup_stale()` removes what a killed run left behind.

ScratchPostgres: a PostgreSQL cluster of its own (initdb in a temporary folder, owned by the
postgres user) started inside a node's namespace, listening only on that node's address.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import wait_for

BENCH = Path(__file__).resolve().parent
PREFIX = "wfb"
NETNS_DIR = Path("/var/run/netns")


def missing_tools() -> str | None:
    """Why this machine cannot build the LAN, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth links, iptables)"
    for tool, package in (("ip", "iproute2"), ("iptables", "iptables")):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (apt-get install {package})"
    return None


def _sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True)
    if check and res.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed: {res.stderr.strip()}")
    return res


def _namespaces() -> list[str]:
    return [line.split()[0] for line in _sh("ip", "netns", "list").stdout.splitlines() if line.strip()]


def cleanup_stale() -> list[str]:
    """Remove namespaces of earlier runs whose owning process is gone (their links go with them), and
    scratch PostgreSQL folders whose server is gone."""
    removed = []
    for ns in _namespaces():
        if not ns.startswith(PREFIX) or not ns.endswith("-router"):
            continue
        owner = _owner(ns.split("-")[0])
        if owner is not None and _alive(owner):
            continue
        if owner is None and time.time() - (NETNS_DIR / ns).stat().st_mtime < 60:
            continue  # another run that has only just claimed this slot
        for other in _namespaces():
            if other.split("-")[0] == ns.split("-")[0]:
                _kill_inside(other)
                _sh("ip", "netns", "del", other, check=False)
                removed.append(other)
        (Path(tempfile.gettempdir()) / f"{ns.split('-')[0]}.owner").unlink(missing_ok=True)
    return removed + _stale_pgdata()


def _alive(pid: int) -> bool:
    """A process that runs (a zombie left unreaped by a killed parent does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _stale_pgdata() -> list[str]:
    removed = []
    for folder in Path(tempfile.gettempdir()).glob("wf-bench-pgdata-*"):
        try:
            pid = int((folder / "data" / "postmaster.pid").read_text().split()[0])
            alive = _alive(pid)
        except (OSError, ValueError, IndexError):
            alive = time.time() - folder.stat().st_mtime < 600  # maybe a run that is only starting
        if not alive:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(str(folder))
    return removed


def _owner(tag: str) -> int | None:
    try:
        return int((Path(tempfile.gettempdir()) / f"{tag}.owner").read_text())
    except (OSError, ValueError):
        return None


def _kill_inside(ns: str) -> None:
    """SIGKILL every process left in namespace `ns` (a benchmark killed before it could stop them)."""
    for pid in _sh("ip", "netns", "pids", ns, check=False).stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


class Lan:
    def __init__(self, nodes: list[str], work: Path, delay_ms: float = 0.5):
        self.nodes, self.work, self.delay_ms = nodes, work, delay_ms
        self.tag = None
        self.delay_proc: subprocess.Popen | None = None
        self.delay_stats: dict = {}

    # -- up and down ----------------------------------------------------------------------

    def __enter__(self) -> Lan:
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    def up(self) -> None:
        why = missing_tools()
        if why:
            raise RuntimeError(f"cannot build the benchmark LAN: {why}")
        cleanup_stale()
        self._claim_slot()
        self._previous_handler = signal.signal(signal.SIGTERM, self._on_term)
        router = self.ns("router")
        _sh("ip", "-n", router, "link", "set", "lo", "up")
        _sh("ip", "netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for k, node in enumerate(self.nodes):
            self._link(k, node)
        # every forwarded packet goes through the delay queue; nothing else in the router does
        _sh("ip", "netns", "exec", router, "iptables", "-A", "FORWARD", "-j", "NFQUEUE", "--queue-num", "0")
        self._start_delay()

    def _claim_slot(self) -> None:
        """The first free slot 1..99: names wfb<slot>-<node>, addresses 10.<200 + slot // 2>...."""
        for slot in range(1, 100):
            tag = f"{PREFIX}{slot}"
            if _sh("ip", "netns", "add", f"{tag}-router", check=False).returncode == 0:
                self.tag, self.slot = tag, slot
                (Path(tempfile.gettempdir()) / f"{tag}.owner").write_text(str(os.getpid()))
                return
        raise RuntimeError("no free namespace slot (wfb1-router .. wfb99-router all exist)")

    def _link(self, k: int, node: str) -> None:
        ns, router = self.ns(node), self.ns("router")
        _sh("ip", "netns", "add", ns)
        inner, outer = f"{self.tag}n{k}", f"{self.tag}r{k}"
        _sh("ip", "link", "add", outer, "netns", router, "type", "veth", "peer", "name", inner, "netns", ns)
        _sh("ip", "-n", router, "addr", "add", f"{self._net(k)}.1/24", "dev", outer)
        _sh("ip", "-n", ns, "addr", "add", f"{self._net(k)}.2/24", "dev", inner)
        for where, dev in ((router, outer), (ns, inner), (ns, "lo")):
            _sh("ip", "-n", where, "link", "set", dev, "up")
        _sh("ip", "-n", ns, "route", "add", "default", "via", f"{self._net(k)}.1")

    def _net(self, k: int) -> str:
        return f"10.{200 + self.slot // 2}.{(self.slot % 2) * 100 + k}"

    def _start_delay(self) -> None:
        self.stats_file = self.work / "netdelay.json"
        self.delay_log = self.work / "netdelay.log"
        with open(self.delay_log, "wb") as out:
            self.delay_proc = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    self.ns("router"),
                    sys.executable,
                    str(BENCH / "netdelay.py"),
                    "0",
                    str(self.delay_ms),
                    str(self.stats_file),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

        def ready():
            if self.delay_proc.poll() is not None:
                raise RuntimeError(f"bench/netdelay.py exited: {self.delay_log.read_text()[-1500:]}")
            return "ready" in self.delay_log.read_text()

        wait_for(ready, 30, "the delay process", interval=0.01)

    def _on_term(self, *_):
        self.down()
        raise SystemExit(143)

    def down(self) -> None:
        if self.tag is None:
            return
        for node in self.nodes:  # the nodes' processes first, while the wire still carries their goodbyes
            _kill_inside(self.ns(node))
        if self.delay_proc and self.delay_proc.poll() is None:
            self.delay_proc.send_signal(signal.SIGTERM)
            try:
                self.delay_proc.wait(10)
            except subprocess.TimeoutExpired:
                self.delay_proc.kill()
                self.delay_proc.wait()
        try:
            self.delay_stats = json.loads(self.stats_file.read_text())
        except (OSError, ValueError, AttributeError):
            self.delay_stats = {}
        _kill_inside(self.ns("router"))
        for node in [*self.nodes, "router"]:
            _sh("ip", "netns", "del", self.ns(node), check=False)
        (Path(tempfile.gettempdir()) / f"{self.tag}.owner").unlink(missing_ok=True)
        self.last_tag, self.tag = self.tag, None
        if getattr(self, "_previous_handler", None) is not None:
            signal.signal(signal.SIGTERM, self._previous_handler)

    # -- use --------------------------------------------------------------------------------

    def ns(self, node: str) -> str:
        return f"{self.tag}-{node}"

    def address(self, node: str) -> str:
        return f"{self._net(self.nodes.index(node))}.2"

    def prefix(self, node: str) -> list[str]:
        """Command prefix that runs a program inside `node` (`ip netns exec` execs, so the pid is the program's)."""
        return ["ip", "netns", "exec", self.ns(node)]


# -- a PostgreSQL cluster of its own inside one node ---------------------------------------

PG_BIN = Path("/usr/lib/postgresql")


def pg_bin(tool: str) -> str:
    versions = sorted((p for p in PG_BIN.glob("*/bin") if (p / tool).exists()), key=lambda p: int(p.parent.name))
    if versions:
        return str(versions[-1] / tool)
    found = shutil.which(tool)
    if found is None:
        raise RuntimeError(f"PostgreSQL's `{tool}` is not installed (apt-get install postgresql)")
    return found


class ScratchPostgres:
    """initdb + pg_ctl start in `lan`'s node `node`, as the postgres user; removed by stop()."""

    def __init__(self, lan: Lan, node: str = "db"):
        self.lan, self.node = lan, node
        self.dir = Path(tempfile.mkdtemp(prefix="wf-bench-pgdata-"))
        self.data = self.dir / "data"
        shutil.chown(self.dir, "postgres", "postgres")
        self.pid = None

    def _as_postgres(self, *cmd: str) -> list[str]:
        return [*self.lan.prefix(self.node), "runuser", "-u", "postgres", "--", *cmd]

    def start(self) -> str:
        _sh(*self._as_postgres(pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"))
        with open(self.data / "pg_hba.conf", "a") as f:
            f.write("host all all 10.0.0.0/8 trust\n")
        address = self.lan.address(self.node)
        # pg_stat_statements counts the statements (about one round trip each) an instance costs
        options = (
            f"-c listen_addresses={address} -c unix_socket_directories={self.data} -c max_connections=200 "
            "-c shared_preload_libraries=pg_stat_statements"
        )
        _sh(
            *self._as_postgres(
                pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-o", options, "-w", "start"
            )
        )
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])
        # the benchmark's client connects as "driver", so that what the workers (role postgres) run can be told apart
        sql = "CREATE EXTENSION pg_stat_statements; CREATE ROLE driver SUPERUSER LOGIN"
        _sh(*self._as_postgres(pg_bin("psql"), "-h", str(self.data), "-qc", sql))
        return f"postgresql://postgres@{address}:5432/postgres"

    def stop(self) -> None:
        if self.pid is not None:
            _sh(*self._as_postgres(pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"), check=False)
            self.pid = None
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_listening(lan: Lan, node: str, host: str, port: int, timeout: float = 30) -> None:
    probe = f"import socket; socket.create_connection(({host!r}, {port}), timeout=1).close()"

    def ok():
        return subprocess.run([*lan.prefix(node), sys.executable, "-c", probe], capture_output=True).returncode == 0

    wait_for(ok, timeout, f"{host}:{port} from {node}", interval=0.1)


if __name__ == "__main__":
    # a self-check: build a LAN of two nodes, time a TCP round trip between them, tear it down
    work = Path(tempfile.mkdtemp(prefix="wf-bench-lan-"))
    with Lan(["a", "b"], work) as lan:
        server = subprocess.Popen(
            [
                *lan.prefix("a"),
                sys.executable,
                "-c",
                "import socket; s = socket.create_server((%r, 7000))\n"
                "while True:\n"
                "    c, _ = s.accept()\n"
                "    while (d := c.recv(64)): c.sendall(d)" % lan.address("a"),
            ]
        )
        wait_listening(lan, "b", lan.address("a"), 7000)
        out = subprocess.run(
            [
                *lan.prefix("b"),
                sys.executable,
                "-c",
                "import socket, time, statistics\n"
                "c = socket.create_connection((%r, 7000)); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)\n"
                "ts = []\n"
                "for _ in range(200):\n"
                "    t = time.perf_counter(); c.sendall(b'x'); c.recv(64); ts.append(time.perf_counter() - t)\n"
                "print(round(statistics.median(ts) * 1000, 3))" % lan.address("a"),
            ],
            capture_output=True,
            text=True,
        )
        server.kill()
        print("round trip ms (median of 200):", out.stdout.strip() or out.stderr)
    print("delay process:", lan.delay_stats)
