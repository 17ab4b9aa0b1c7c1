"""`wf dev` as a subprocess on a free loopback port, for the HTTP and wrangler tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from conftest import wait_until

DEVAPP = Path(__file__).parent / "fixtures" / "devapp"
API = "/cdn-cgi/local/explorer/api"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def copy_devapp(dest: Path) -> Path:
    shutil.copytree(DEVAPP, dest, ignore=shutil.ignore_patterns("__pycache__", ".wf"))
    return dest


def _env(extra: dict | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("WF_STORE", "WF_TOKEN", "NO_COLOR", "WF_CRASH_AT")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class WfDev:
    """`python -m wf dev --port P ARGS` in `project`; stderr to a file."""

    def __init__(
        self, project: Path, log: Path, args: list[str] = (), env: dict | None = None, port: int | None = None
    ):
        self.project, self.log = project, log
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.started = time.monotonic()
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "wf", "dev", "--port", str(self.port), *args],
                cwd=project,
                env=_env(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        self.ready_after: float | None = None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 15.0, headers: dict | None = None) -> WfDev:
        """Poll the API until it answers; records the time from launch to the first answer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"wf dev exited {self.proc.returncode} before it was ready:\n{self.output()}")
            try:
                httpx.get(self.url + API + "/workflows", headers=headers, timeout=1.0)
                self.ready_after = time.monotonic() - self.started
                return self
            except httpx.TransportError:
                time.sleep(0.01)
        raise AssertionError(f"wf dev not ready after {timeout}s:\n{self.output()}")

    def wait_output(self, text: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not printed after {timeout}s:\n{self.output()}")
            if self.proc.poll() is not None:
                raise AssertionError(f"wf dev exited {self.proc.returncode}:\n{self.output()}")
            time.sleep(0.02)

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"wf dev did not stop within {timeout}s of SIGTERM:\n{self.output()}") from None
        return self.proc.returncode

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass


class DevProcesses:
    def __init__(self, tmp_path: Path):
        self.tmp_path, self.procs = tmp_path, []

    def start(self, project: Path, args: list[str] = (), env: dict | None = None, port: int | None = None) -> WfDev:
        dev = WfDev(project, self.tmp_path / f"dev-{len(self.procs) + 1}.log", list(args), env, port)
        self.procs.append(dev)
        return dev

    def cleanup(self) -> None:
        for dev in self.procs:
            dev.kill()


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    return wait_until(predicate, timeout, what, interval)
