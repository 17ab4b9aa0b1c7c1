"""How fast `step.wait_for_instance` wakes a parent when the instance it waits for ends (issue 14).

    python bench/wait_instance.py [--reps 50] [--url postgresql://...]

Two `wf worker` processes on one store, one per workflow (so the wake-up crosses processes, through
the runners' notes: a datagram on SQLite, NOTIFY on PostgreSQL). For each rep a child is created,
waiting for an event; its parent waits for it (held in memory by the parents' worker); then the
child is sent its event and ends on the children's worker. The figure is from the child's end (the
time stamped on its `workflow_completed` entry, written in the transaction that ends it and wakes
the parent) to the parent's next step running (the time it returns). Both workers look for dead
runners' work only at start (`--reap-interval 3600`) and the parent's timeout is an hour away, so
no timer or poll is in play. PostgreSQL runs when --url or WF_TEST_POSTGRES names a server (in a
scratch schema, dropped at the end). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "src"))

from common import median, p95, wait_for  # noqa: E402

MAIN = """
import time

from wf import WorkflowEntrypoint


class Child(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.wait_for_event("go", "go", timeout="1 hour")
        return "done"


class Parent(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.wait_for_instance("wait", "child", event.payload["child"], timeout="1 hour")
        return await step.do("after", time.time)
"""


def project(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src" / "index.py").write_text(MAIN)
    child = {"name": "child", "binding": "CHILD", "class_name": "Child"}
    parent = {"name": "parent", "binding": "PARENT", "class_name": "Parent"}
    for name, workflows in (("both", [child, parent]), ("parents", [parent]), ("children", [child])):
        (root / f"{name}.jsonc").write_text(json.dumps({"name": "b", "main": "src/index.py", "workflows": workflows}))
    return root


def worker(root: Path, config: str, store: str | None, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("WF_STORE", "WF_CRASH_AT")}
    if store:
        env["WF_STORE"] = store
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wf", "-c", config, "worker", "--reap-interval", "3600"],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    wait_for(lambda: "ready" in log.read_text(errors="replace"), 30, f"{config} worker")
    return proc


def measure(store: str | None, reps: int) -> dict:
    from wf.client import Client
    from wf.config import load_config

    with tempfile.TemporaryDirectory(prefix="wf-wait-bench-") as tmp:
        root = project(Path(tmp) / "p")
        procs = [worker(root, c, store, Path(tmp) / f"{c}.log") for c in ("parents.jsonc", "children.jsonc")]
        client = Client(load_config(root / "both.jsonc", environ={}, store=store))
        lat = []
        try:
            for i in range(reps):
                child, parent = client.create("child", None, f"c{i}"), client.create("parent", {"child": f"c{i}"})
                wait_for(lambda: client.status(parent.id)["status"] == "waiting", 30, "the parent waiting", 0.002)
                time.sleep(0.01)
                client.send_event(child.id, "go")
                done = wait_for(
                    lambda: (s := client.status(parent.id))["status"] == "complete" and s, 30, "parent", 0.002
                )
                [ended] = [
                    h.at for h in client.history(instance=client.get(child.id)) if h.type == "workflow_completed"
                ]
                lat.append((done["output"] - ended) * 1000)
        finally:
            client.close()
            for proc in procs:
                proc.terminate()
                proc.wait(15)
    return {"reps": reps, "median_ms": median(lat), "p95_ms": p95(lat), "max_ms": max(lat)}


def scratch_url(base: str):
    import uuid
    from urllib.parse import quote

    import psycopg

    name = f"wf_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    sep = "&" if "?" in base else "?"
    return name, f"{base}{sep}options={quote(f'-csearch_path={name}')}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--url", default=os.environ.get("WF_TEST_POSTGRES"))
    args = parser.parse_args()
    rows = [("SQLite (datagram notes)", measure(None, args.reps))]
    if args.url:
        import psycopg

        name, url = scratch_url(args.url)
        try:
            rows.append(("PostgreSQL (NOTIFY)", measure(url, args.reps)))
        finally:
            with psycopg.connect(args.url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    print("| store | median | p95 | max | reps |\n|---|---|---|---|---|")
    for store, r in rows:
        print(f"| {store} | {r['median_ms']:.2f} ms | {r['p95_ms']:.2f} ms | {r['max_ms']:.2f} ms | {r['reps']} |")


if __name__ == "__main__":
    main()
