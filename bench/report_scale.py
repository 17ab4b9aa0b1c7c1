"""bench/RESULTS.md's sections on how wf scales and starts: PostgreSQL across namespaces and on this
machine, the cost curves with their plots, the command line's start-up."""

from __future__ import annotations

from reportkit import fmt, g, ratio, table, verdict, why_missing


def plot(r: dict, name: str, alt: str) -> list[str]:
    path = ((r.get("plots") or {}).get("files") or {}).get(name)
    return [f"![{alt}]({path})", ""] if path else [f"(plot not drawn: {why_missing(r, 'plots') or 'no points'})", ""]


def pg_lan(r: dict) -> list[str]:
    lan = r.get("pg_lan") or {}
    title = ["## PostgreSQL as if on several machines (issue 16, deliverable 3)", ""]
    if not lan.get("runs"):
        return [*title, f"- not measured: {why_missing(r, 'pg_lan') or 'not run'}", ""]
    rows = [
        [
            x["workers"],
            fmt(x["per_s"], " /s", 1),
            fmt(x["speedup"], "×"),
            fmt(x["total_s"], " s"),
            f"{fmt(x['worker_cpu_s'], ' s', 1)} ({', '.join(f'{c:.1f}' for c in x.get('worker_cpu_s_each', []))})",
            fmt(x.get("server_cpu_ms_per_instance"), " ms"),
            fmt(x.get("worker_statements_per_instance"), "", 1),
            fmt(x.get("server_xacts_per_instance"), "", 1),
            f"{fmt(x.get('server_wal_syncs_per_instance'), '', 1)} / {fmt(x.get('server_wal_kb_per_instance'), ' KB', 1)}",
            f"{x['machine_busy']:.0%}",
        ]
        for x in lan["runs"]
    ]
    wire = lan.get("wire") or {}
    cpu_ms = lan.get("server_cpu_ms_per_instance")
    proj = lan.get("projected_per_s_96_vcpu")
    return [
        *title,
        f"PostgreSQL (a cluster of its own), the client and each `wf worker` in their own network namespace, joined "
        f"through a router namespace that delays every packet {fmt(lan.get('delay_ms_each_way'))} ms each way (bench/lan.py; "
        f"this kernel has no `netem`, so bench/netdelay.py holds each packet in an NFQUEUE). Measured round trip client → "
        f"PostgreSQL (`SELECT 1`): {fmt(lan.get('wire_rtt_ms'), ' ms')}. {lan['runs'][0]['n']} instances of 3 trivial steps per run.",
        "",
        *table(
            [
                "workers",
                "throughput",
                "× 1 worker",
                "took",
                "workers' CPU (each)",
                "PostgreSQL CPU / instance",
                "workers' statements / instance",
                "transactions / instance",
                "WAL syncs / WAL written, per instance",
                "machine busy",
            ],
            rows,
        ),
        "",
        f"Event round trip across the namespaces (client → PostgreSQL → worker): median {fmt(lan.get('event_median_ms'), ' ms')}, "
        f"p95 {fmt(lan.get('event_p95_ms'), ' ms')} ({lan.get('event_reps')} events; goal median < 5 ms), of which the "
        f"client's send (finding the instance by its id and storing the event: one transaction) took "
        f"{fmt(lan.get('event_send_median_ms'), ' ms')} (median); from the event to the instance's completion the worker "
        f"ran {fmt(lan.get('worker_statements_per_event'), '', 0)} statements (median), pipelined: it waits on the wire "
        "to read the event and at each commit, not once per statement.",
        "",
        f"**One server's ceiling, by DBOS's arithmetic.** DBOS reports {lan.get('dbos_per_s_96_vcpu', 43000):,} workflows/s "
        f"on one 96-vCPU PostgreSQL. Here PostgreSQL spends {fmt(cpu_ms, ' ms')} of CPU per 3-step instance (median over "
        f"the runs; its whole process tree, /proc), so 96 vCPUs would carry about **{fmt(proj, ' instances/s', 0)}** "
        f"({fmt(ratio(proj, lan.get('dbos_per_s_96_vcpu')), '×')} DBOS's figure), if the server scaled to all its CPUs as DBOS's did.",
        "",
        f"The wire: {wire.get('packets', 'n/a')} packets delayed, "
        f"{fmt(lan.get('wire_cpu_us_per_packet'), ' µs', 0)} of CPU each (the delay process: its own "
        f"work and the kernel's re-injection of each packet; scheduled {wire.get('scheduler', 'n/a')}); "
        f"{wire.get('late_over_100us', 'n/a')} packets released more than 0.1 ms after due, the latest "
        f"{fmt(wire.get('late_ms_max'), ' ms')} (a busy machine delays the kernel's packet processing too).",
        "",
        *plot(r, "pg_lan_scaling", "throughput against workers, PostgreSQL across namespaces"),
    ]


def postgres_local(r: dict) -> list[str]:
    lines = ["## PostgreSQL on this machine (issue 8)", ""]
    pg = r.get("postgres", {})
    if pg.get("rows"):
        lines += table(
            ["figure", "value", "how measured"],
            [[x["figure"], f"{x['value']} {x.get('unit', '')}", x.get("how", "")] for x in pg["rows"]],
        )
    else:
        lines.append(f"- not measured: {pg.get('skipped') or pg.get('error') or 'not run'}")
    return [*lines, ""]


def _by_size(r: dict, prefix: str) -> list[dict]:
    keys = [k for k in r if k.startswith(prefix) and k[len(prefix) :].isdigit()]
    return [
        r[k] | {"n": int(k[len(prefix) :])}
        for k in sorted(keys, key=lambda k: int(k[len(prefix) :]))
        if isinstance(r[k], dict)
    ]


def curves(r: dict) -> list[str]:
    steps = (r.get("wf_curve_steps") or {}).get("points", [])
    wait = _by_size(r, "wf_curve_waiting_")
    lists = _by_size(r, "wf_curve_list_")
    err = [why_missing(r, k) for k in r if k.startswith("wf_curve_") and why_missing(r, k)]
    ev = next((w for w in wait if w.get("events_to_all_complete_s") is not None), {})
    return [
        "## Cost curves (issue 16, deliverable 5)",
        "",
        *([f"Errors: {'; '.join(err)}", ""] if err else []),
        f"Per-step cost against the instance's length (one instance per run, in-process runner, a fresh store each; "
        f"the whole figure took {fmt(g(r, 'wf_curve_steps', 'wall_s'), ' s', 0)}).",
        "",
        *table(
            ["steps", "ms per step", "instance took", "runs (median)"],
            [[p["n"], fmt(p["per_step_ms"], "", 3), fmt(p["total_s"], " s", 3), p["reps"]] for p in steps],
        ),
        "",
        *plot(r, "curve_per_step", "per-step cost against instance length"),
        "Memory of one `wf worker` holding instances that wait for an event (`--concurrency` above their number, so "
        "every one stays in memory; the worst case: with the default 1,000 the runner suspends the rest to the store).",
        "",
        *table(
            ["waiting", "RSS", "RSS idle", "per instance", "all waiting after", "figure took"],
            [
                [
                    w["n"],
                    fmt(w.get("rss_mb"), " MB", 0),
                    fmt(w.get("idle_rss_mb"), " MB", 0),
                    fmt(w.get("rss_per_instance_kb"), " KB", 1),
                    fmt(w.get("all_waiting_s"), " s"),
                    fmt(w.get("wall_s"), " s", 0),
                ]
                for w in wait
            ],
        ),
        "",
        f"At {ev.get('n', 'n/a')} waiting, an event sent to each: all complete {fmt(ev.get('events_to_all_complete_s'), ' s')} later "
        f"(RSS then {fmt(ev.get('rss_after_events_mb'), ' MB', 0)}).",
        "",
        *plot(r, "curve_rss_waiting", "RSS against waiting instances"),
        "`wf instances list` (whole process, median) against the instances stored (99% complete, 1% errored).",
        "",
        *table(
            ["stored", "list", "--json", "--status errored", "populating took", "figure took"],
            [
                [
                    x["n"],
                    fmt(x.get("list_median_ms"), " ms", 0),
                    fmt(x.get("list_json_median_ms"), " ms", 0),
                    fmt(x.get("list_errored_median_ms"), " ms", 0),
                    fmt(x.get("populate_s"), " s", 1),
                    fmt(x.get("wall_s"), " s", 0),
                ]
                for x in lists
            ],
        ),
        "",
        *plot(r, "curve_list", "wf instances list against instances stored"),
    ]


def cli(r: dict) -> list[str]:
    c = r.get("wf_cli") or {}
    if not c or "error" in c:
        return [
            "## Command-line start-up (issue 16, deliverable 4)",
            "",
            f"- not measured: {why_missing(r, 'wf_cli')}",
            "",
        ]
    names = {
        "status": "`wf status ID --json`",
        "instances_list": "`wf instances list`",
        "describe": "`wf instances describe ID`",
        "workflows_list": "`wf workflows list`",
        "bare_python": "`python -c pass`",
    }
    rows = []
    for key, label in names.items():
        rat, goal = c.get(f"{key}_ratio"), (4 if key == "status" else None if key == "bare_python" else 6)
        rows.append(
            [
                label,
                fmt(c.get(f"{key}_median_ms"), " ms", 0),
                fmt(rat, "×"),
                f"≤ {goal}×" if goal else "—",
                verdict(None if goal is None or rat is None else rat <= goal),
            ]
        )
    top = ", ".join(f"{n} {ms:.0f} ms" for n, ms in c.get("importtime_top", [])[:6])
    return [
        "## Command-line start-up (issue 16, deliverable 4)",
        "",
        f"Whole process, the installed `wf` console script against a bare `python -c pass` of the same interpreter, "
        f"interleaved, median of {c.get('reps')} each; one stored instance.",
        "",
        *table(["command", "median", "× bare python", "goal", ""], rows),
        "",
        f"`python -X importtime` of `wf status ID --json`: {c.get('importtime_modules')} modules, "
        f"{fmt(c.get('importtime_total_ms'), ' ms', 0)} of imports; the largest top-level ones: {top}. The full summary "
        f"(top 30 by cumulative time, top 20 by own time) is in [{c.get('importtime_file')}]({c.get('importtime_file')}) "
        f"for before/after comparisons; `wf instances list` imports {fmt(c.get('importtime_list_total_ms'), ' ms', 0)} "
        f"([{c.get('importtime_list_file')}]({c.get('importtime_list_file')})).",
        "",
    ]
