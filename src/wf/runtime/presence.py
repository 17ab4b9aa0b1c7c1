"""Which runners are alive on this state folder, and how to wake them.

A runner holds an exclusive `flock` on `<state>/runners/<owner>.lock` for its whole life; the
kernel drops it the instant the process dies, even on SIGKILL, so a dead runner is known at
once, without waiting for a lease to expire. Each runner also listens on a Unix datagram
socket; clients send it a one-line note after they write ("w" new work, "e:<seq>" an event,
"c:<seq>" a control change) so work written by another process starts in milliseconds.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import socket
import sys
import tempfile
from pathlib import Path


def runners_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "runners"


def socket_address(state_dir: Path, owner: str) -> str:
    digest = _digest(str(state_dir))
    if sys.platform.startswith("linux"):
        return f"\0wf-{digest}-{owner}"  # abstract namespace: no path length limit, no file to clean
    return os.path.join(tempfile.gettempdir(), f"wf-{digest}-{owner}.sock")


@functools.lru_cache(maxsize=64)
def _digest(state_dir: str) -> str:
    """The state folder's name in socket addresses (resolved once: a note is sent per write)."""
    return hashlib.sha1(str(Path(state_dir).resolve()).encode()).hexdigest()[:16]


def _lock_is_held(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def owner_alive(state_dir: Path, owner: str) -> bool:
    return _lock_is_held(runners_dir(state_dir) / f"{owner}.lock")


def live_runners(state_dir: Path) -> list[str]:
    folder = runners_dir(state_dir)
    if not folder.is_dir():
        return []
    alive = []
    for path in folder.glob("*.lock"):
        if _lock_is_held(path):
            alive.append(path.stem)
        else:
            try:
                path.unlink()  # a dead runner's leftover
            except OSError:
                pass
    return alive


def notify(state_dir: Path, message: str) -> int:
    """Send `message` to every live runner; returns how many were reached. A runner whose socket
    takes the note is alive; only one that does not is looked at (its lock), and forgotten if dead."""
    reached = 0
    folder = runners_dir(state_dir)
    try:
        owners = [name[:-5] for name in os.listdir(folder) if name.endswith(".lock")]
    except OSError:
        return 0
    if not owners:
        return 0
    data = message.encode()
    sock = _sender()
    for owner in owners:
        try:
            sock.sendto(data, socket_address(state_dir, owner))
            reached += 1
        except OSError:  # gone or its buffer is full: it wakes on its own timer anyway
            path = folder / f"{owner}.lock"
            if not _lock_is_held(path):
                try:
                    path.unlink()  # a dead runner's leftover
                except OSError:
                    pass
    return reached


@functools.cache
def _sender() -> socket.socket:
    """One unbound, non-blocking datagram socket to send every note from (not one per note)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setblocking(False)
    return sock


class Presence:
    """This runner's lock and wake-up socket."""

    def __init__(self, state_dir: Path, owner: str):
        self.state_dir, self.owner = Path(state_dir), owner
        self.lock_path = runners_dir(state_dir) / f"{owner}.lock"
        self._lock_fd: int | None = None
        self.sock: socket.socket | None = None

    def acquire(self) -> None:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        # lock under a temporary name, then rename: nobody ever sees the file unlocked
        staging = self.lock_path.with_suffix(".locking")
        self._lock_fd = os.open(staging, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(self._lock_fd, f"{os.getpid()}\n".encode())
        os.rename(staging, self.lock_path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        address = socket_address(self.state_dir, self.owner)
        if not address.startswith("\0") and os.path.exists(address):
            os.unlink(address)
        self.sock.bind(address)
        self.sock.setblocking(False)

    def replaced(self) -> str | None:
        """The lock file, when it is no longer the file this runner locked (deleted or replaced):
        another runner would then believe this one dead."""
        try:
            if self._lock_fd is not None and os.stat(self.lock_path).st_ino == os.fstat(self._lock_fd).st_ino:
                return None
        except OSError:
            pass
        return f"the runner's lock file {self.lock_path}"

    def release(self) -> None:
        if self.sock is not None:
            address = socket_address(self.state_dir, self.owner)
            self.sock.close()
            self.sock = None
            if not address.startswith("\0"):
                try:
                    os.unlink(address)
                except OSError:
                    pass
        if self._lock_fd is not None:
            try:
                self.lock_path.unlink()
            except OSError:
                pass
            os.close(self._lock_fd)
            self._lock_fd = None
