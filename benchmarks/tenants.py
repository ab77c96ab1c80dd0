"""Bookings per second of tenant runs on the scale-out cluster, for 1, 2, 4 and 8 tenants on 1
and 2 Celery workers (issue 16).

    .venv/bin/python benchmarks/tenants.py [--scale small] [--tenants 1,2,4,8] [--workers 1,2]
                                           [--slots 4] [--latency-ms 100] [--rate-limit 20]
                                           [--base BOOKINGS_PER_S]

Starts the test harness's local cluster (Redis, Postgres, moto S3, dagster-daemon, Celery
workers; `calira_pipeline_tests/scaleout/cluster.py`) once per worker count, with one sandbox
process per tenant (100 ms latency and 20 requests/s each by default). For each tenant count it
backfills `tenant_refresh` over that many tenants and takes the wall time from the first run's
creation to the last run's end, from the instance's run records (the CLI's own start-up is not
counted; one warm-up backfill over every tenant comes first). Bookings per second = the
tenants' bookings (from the sandboxes' data) / that time. Each row also gives the median time
of each phase of a run (queued and launched, each step; from the event log), the CPU seconds
each component's processes used during the backfill (workers with their run processes,
sandboxes, Postgres, moto, the daemon), the Postgres connections opened and the load average.
`--base` is 1 tenant's bookings/s from another leg, for the ratio column when a leg runs only
the 8-tenant row (legs of a few minutes each on a shared machine).

A worker runs `--slots` runs at once (Celery's prefork pool; each run stays in one process with
the in-process executor). Target: 8 tenants on 2 workers >= 5x the bookings/s of 1 tenant.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calira_pipeline.sandbox import Sandbox, SandboxConfig  # noqa: E402
from calira_pipeline_tests.scaleout.cluster import (  # noqa: E402
    LOCATION,
    Cluster,
    running_cluster,
)


def bookings_of(scale: str, seed: int) -> int:
    return len(Sandbox(SandboxConfig(seed=seed, scale=scale)).dataset.bookings)


def backfill(cluster: Cluster, tenants: list[str]) -> dict[str, Any]:
    import dagster as dg

    # One instance for all polling, every 2 s: the harness's own load on Postgres and the cores
    # must stay small beside the runs'. The figures come from the run records, so the polling
    # interval does not change them.
    with cluster.instance() as instance:

        def records() -> list[Any]:
            found = instance.get_run_records(filters=dg.RunsFilter(job_name="tenant_refresh"))  # type: ignore[attr-defined]
            return [r for r in found if r.dagster_run.run_id not in known]

        known: set[str] = set()  # runs of earlier backfills
        known = {r.dagster_run.run_id for r in records()}
        cluster.dagster(
            "job",
            "backfill",
            *LOCATION,
            "-j",
            "tenant_refresh",
            "--partitions",
            ",".join(tenants),
            "--noprompt",
        )
        deadline = time.monotonic() + 3600
        runs = records()
        while len(runs) < len(tenants) or not all(r.dagster_run.is_finished for r in runs):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the backfill over {tenants} did not finish in an hour")
            time.sleep(2)
            runs = records()
        failed = [r.dagster_run.run_id for r in runs if r.dagster_run.status.value != "SUCCESS"]
        if failed:
            raise RuntimeError(f"runs failed: {failed}; see {cluster.root}/logs")
        phases = [run_phases(instance, r) for r in runs]
    first = min(r.create_timestamp.timestamp() for r in runs)
    last = max(r.end_time for r in runs)
    durations = sorted(round(r.end_time - r.start_time, 1) for r in runs)
    return {"wall_s": last - first, "run_s": durations, "phases_s": median_phases(phases)}


def run_phases(instance: Any, record: Any) -> dict[str, float]:
    """Where one run's time went: queued and launched (creation to the run's start in a worker),
    each step, and the run's own start and end around its steps (from the event log)."""
    steps = sorted(
        instance.get_run_step_stats(record.dagster_run.run_id), key=lambda s: s.start_time
    )
    phases = {"queue_launch": record.start_time - record.create_timestamp.timestamp()}
    phases["run_start"] = steps[0].start_time - record.start_time
    phases.update({s.step_key: s.end_time - s.start_time for s in steps})
    phases["run_end"] = record.end_time - steps[-1].end_time
    return phases


def median_phases(phases: list[dict[str, float]]) -> dict[str, float]:
    return {
        key: round(statistics.median(p[key] for p in phases if key in p), 1) for key in phases[0]
    }


def cpu_seconds(cluster: Cluster) -> dict[str, float]:
    """CPU seconds used so far by each component's process group (worker children included)."""
    tick = os.sysconf("SC_CLK_TCK")
    leaders = {entry.process.pid: entry.name for entry in cluster.group.started}
    used: dict[str, float] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state ppid pgrp ... utime(12) stime(13) cutime(14) cstime(15).
        name = leaders.get(int(fields[2]))
        if name is not None:
            group = "sandboxes" if name.startswith("sandbox-") else name
            used[group] = used.get(group, 0.0) + sum(int(f) for f in fields[11:15]) / tick
    return used


def pg_sessions(cluster: Cluster) -> int:
    """Connections Postgres has accepted so far (each one a new server process)."""
    import psycopg2

    config = json.loads((Path(cluster.env["DAGSTER_HOME"]) / "dagster.yaml").read_text())
    storage = config["storage"]
    db = (storage.get("postgres") or storage["custom"]["config"])["postgres_db"]
    with (
        psycopg2.connect(
            host=db["hostname"], port=db["port"], user=db["username"], dbname="postgres"
        ) as con,
        con.cursor() as cursor,
    ):
        cursor.execute("select sum(sessions) from pg_stat_database")
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: round(after[k] - before.get(k, 0.0), 1) for k in sorted(after)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="small")
    parser.add_argument("--tenants", default="1,2,4,8")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--rate-limit", type=float, default=20.0)
    parser.add_argument(
        "--base", type=float, help="bookings/s of 1 tenant from another leg, for the ratio column"
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.tenants.split(",")]
    seeds = {f"t{i}": 100 + i for i in range(1, max(counts) + 1)}
    bookings = {key: bookings_of(args.scale, seed) for key, seed in seeds.items()}
    results = []
    for workers in [int(w) for w in args.workers.split(",")]:
        started = time.monotonic()
        with running_cluster(
            seeds,
            workers=workers,
            scale=args.scale,
            latency_ms=args.latency_ms,
            rate_limit=args.rate_limit,
            worker_slots=args.slots,
        ) as cluster:
            print(f"cluster with {workers} worker(s) up in {time.monotonic() - started:.0f} s")
            # Not measured: the first run in each worker process imports Dagster and the
            # project, and each tenant's first run has nothing to compare with.
            warm = backfill(cluster, list(seeds))
            print(f"warm-up over {len(seeds)} tenants: {warm['wall_s']:.0f} s", flush=True)
            for count in counts:
                tenants = list(seeds)[:count]
                cpu_before = cpu_seconds(cluster)
                load_before = os.getloadavg()[0]
                sessions_before = pg_sessions(cluster)
                measured = backfill(cluster, tenants)
                measured["pg_sessions"] = pg_sessions(cluster) - sessions_before
                measured["cpu_s"] = cpu_delta(cpu_before, cpu_seconds(cluster))
                measured["load"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
                total = sum(bookings[t] for t in tenants)
                row = {
                    "workers": workers,
                    "slots": args.slots,
                    "tenants": count,
                    "bookings": total,
                    **measured,
                    "bookings_per_s": round(total / measured["wall_s"], 1),
                }
                results.append(row)
                print(json.dumps(row), flush=True)
    print_table(results, args.base)


def print_table(results: list[dict[str, Any]], base_bps: float | None) -> None:
    """The rows as markdown; the ratio to 1 tenant on the first worker count measured (or to
    `--base`, the bookings/s of 1 tenant taken in another leg)."""
    if base_bps is None:
        base_bps = next((r["bookings_per_s"] for r in results if r["tenants"] == 1), None)
    print("\n| workers x slots | tenants | bookings | wall s | bookings/s | x 1 tenant | load |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in results:
        ratio = f"{row['bookings_per_s'] / base_bps:.2f}" if base_bps else "-"
        print(
            f"| {row['workers']} x {row['slots']} | {row['tenants']} | {row['bookings']} | "
            f"{row['wall_s']:.1f} | {row['bookings_per_s']} | {ratio} | {row['load']} |"
        )


if __name__ == "__main__":
    main()
