"""Shared fixtures. Sections are self-contained: each helper owns its own block."""

from __future__ import annotations

# == the shop: stub services, the fixture project, wf subprocesses ==========================
# Used by test_order_workflow.py, test_crash.py and test_multi_runner.py.
import json as _shop_json
import os as _shop_os
import re as _shop_re
import shutil as _shop_shutil
import signal as _shop_signal
import subprocess as _shop_subprocess
import sys as _shop_sys
import time as _shop_time
from pathlib import Path as _ShopPath

import pytest

SHOP_FIXTURE = _ShopPath(__file__).parent / "fixtures" / "shop"


@pytest.fixture
def stub_service(tmp_path):
    """The shop's external APIs on 127.0.0.1:<free port>, every call in `tmp_path/ledger.jsonl`."""
    from stub_service import StubService

    stub = StubService(tmp_path / "ledger.jsonl").start()
    yield stub
    stub.stop()


@pytest.fixture
def shop_project(tmp_path, stub_service) -> _ShopPath:
    """A copy of tests/fixtures/shop in tmp_path whose API_BASE is the stub service."""
    return copy_shop(tmp_path / "shop", stub_service.url)


def copy_shop(dest: _ShopPath, api_base: str) -> _ShopPath:
    _shop_shutil.copytree(SHOP_FIXTURE, dest, ignore=_shop_shutil.ignore_patterns(".wf", "__pycache__"))
    config = dest / "wrangler.jsonc"
    text, n = _shop_re.subn(r'"API_BASE":\s*"[^"]*"', f'"API_BASE": {_shop_json.dumps(api_base)}', config.read_text())
    assert n == 1, "the shop fixture's wrangler.jsonc must set vars.API_BASE once"
    config.write_text(text)
    return dest


def wait_until(predicate, timeout: float, what: str, interval: float = 0.02):
    """Poll `predicate` until it returns something truthy; fail naming `what` after `timeout` s."""
    deadline = _shop_time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if _shop_time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        _shop_time.sleep(interval)


def _wf_env(extra: dict | None = None, store: str | None = None) -> dict:
    """The environment of a `wf` subprocess: the test's own WF_STORE never leaks in; `store` (a
    PostgreSQL URL) is passed as WF_STORE when given, else the project's SQLite store is used."""
    env = {k: v for k, v in _shop_os.environ.items() if k not in ("WF_CRASH_AT", "WF_STORE", "NO_COLOR")}
    env["PYTHONUNBUFFERED"] = "1"
    if store:
        env["WF_STORE"] = store
    env.update(extra or {})
    return env


class WfWorker:
    """One `python -m wf worker` subprocess; its stderr goes to a file (no pipe to fill)."""

    def __init__(
        self,
        project: _ShopPath,
        log: _ShopPath,
        crash_at: str | None,
        args: list[str],
        store: str | None = None,
        env: dict | None = None,
        globals: list[str] = (),
        command: str = "worker",
    ):
        self.log = log
        self.started = _shop_time.monotonic()
        env = _wf_env({**(env or {}), **({"WF_CRASH_AT": crash_at} if crash_at else {})}, store)
        with open(log, "wb") as err:
            self.proc = _shop_subprocess.Popen(
                [_shop_sys.executable, "-m", "wf", *globals, command, *args],
                cwd=project,
                env=env,
                stdin=_shop_subprocess.DEVNULL,
                stdout=_shop_subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 15.0) -> WfWorker:
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode} before it was ready:\n{self.output()}")
            return "ready" in self.output()

        wait_until(ready, timeout, f"worker {self.pid} to be ready")
        return self

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except _shop_subprocess.TimeoutExpired:
            raise AssertionError(f"worker {self.pid} still running after {timeout}s:\n{self.output()}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(_shop_signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM (a graceful stop), then SIGKILL if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(_shop_signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except _shop_subprocess.TimeoutExpired:
                pass
        self.kill()
        return self.proc.returncode


class WfProcesses:
    """Starts `wf` subprocesses for a test and makes sure none outlives it.

    `store` (a PostgreSQL URL, passed as WF_STORE) and `env` (extra variables, e.g. WF_LEASE) apply
    to every worker and command started after they are set; each call may override them."""

    def __init__(self, tmp_path: _ShopPath):
        self.tmp_path = tmp_path
        self.workers: list[WfWorker] = []
        self.store: str | None = None  # None: the project's SQLite store
        self.env: dict = {}

    def worker(
        self,
        project: _ShopPath,
        *,
        crash_at: str | None = None,
        args: list[str] = (),
        store: str | None = None,
        env: dict | None = None,
        globals: list[str] = (),
        command: str = "worker",
    ) -> WfWorker:
        """`wf [GLOBALS] worker [ARGS]` in `project` (globals: `-c FILE` and the like; command: `dev`
        runs `wf dev` instead, which says "ready" too)."""
        log = self.tmp_path / f"worker-{len(self.workers) + 1}.log"
        worker = WfWorker(
            project, log, crash_at, list(args), store or self.store, {**self.env, **(env or {})}, list(globals), command
        )
        self.workers.append(worker)
        return worker

    def cli(
        self,
        project: _ShopPath,
        *args: str,
        timeout: float = 60.0,
        check: bool = True,
        store: str | None = None,
        env: dict | None = None,
    ) -> _shop_subprocess.CompletedProcess:
        """Run `python -m wf ARGS` in `project` to the end; fail with its output if it fails."""
        result = _shop_subprocess.run(
            [_shop_sys.executable, "-m", "wf", *args],
            cwd=project,
            env=_wf_env({**self.env, **(env or {})}, store or self.store),
            stdin=_shop_subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"`wf {' '.join(args)}` exited {result.returncode}:\nstdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def cleanup(self) -> None:
        for worker in self.workers:
            try:
                _shop_os.killpg(worker.pid, _shop_signal.SIGKILL)  # its own session: children too
            except (ProcessLookupError, PermissionError):
                pass
            try:
                worker.proc.wait(10)
            except _shop_subprocess.TimeoutExpired:
                pass


@pytest.fixture
def wf_procs(tmp_path):
    """Start `wf worker` / `wf ...` subprocesses; every one is SIGKILLed at teardown."""
    procs = WfProcesses(tmp_path)
    yield procs
    procs.cleanup()


@pytest.fixture
def shop_client(shop_project):
    """A synchronous `wf.client.Client` on the shop project's store."""
    from wf.client import Client
    from wf.config import load_config

    client = Client(load_config(shop_project / "wrangler.jsonc"))
    yield client
    client.close()
