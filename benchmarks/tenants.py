"""Bookings per second of tenant runs on the scale-out cluster, for 1, 2, 4 and 8 tenants on 1
and 2 Celery workers (issue 16).

    .venv/bin/python benchmarks/tenants.py [--scale small] [--tenants 1,2,4,8] [--workers 1,2]
                                           [--slots 4] [--latency-ms 100] [--rate-limit 20]

Starts the test harness's local cluster (Redis, Postgres, moto S3, dagster-daemon, Celery
workers; `calira_pipeline_tests/scaleout/cluster.py`) once per worker count, with one sandbox
process per tenant (100 ms latency and 20 requests/s each by default). For each tenant count it
backfills `tenant_refresh` over that many tenants and takes the wall time from the first run's
creation to the last run's end, from the instance's run records (the CLI's own start-up is not
counted; one warm-up backfill over every tenant comes first). Bookings per second = the
tenants' bookings (from the sandboxes' data) / that time.

A worker runs `--slots` runs at once (Celery's prefork pool; each run stays in one process with
the in-process executor). Target: 8 tenants on 2 workers >= 5x the bookings/s of 1 tenant.
"""

from __future__ import annotations

import argparse
import json
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
    wait_for,
)


def bookings_of(scale: str, seed: int) -> int:
    return len(Sandbox(SandboxConfig(seed=seed, scale=scale)).dataset.bookings)


def backfill(cluster: Cluster, tenants: list[str]) -> dict[str, Any]:
    import dagster as dg

    def records() -> list[Any]:
        with cluster.instance() as instance:
            return list(instance.get_run_records(filters=dg.RunsFilter(job_name="tenant_refresh")))  # type: ignore[attr-defined]

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

    def mine() -> list[Any]:
        return [r for r in records() if r.dagster_run.run_id not in known]

    wait_for(
        "the backfill",
        lambda: len(mine()) == len(tenants) and all(r.dagster_run.is_finished for r in mine()),
        3600,
    )
    runs = mine()
    failed = [r.dagster_run.run_id for r in runs if r.dagster_run.status.value != "SUCCESS"]
    if failed:
        raise RuntimeError(f"runs failed: {failed}; see {cluster.root}/logs")
    first = min(r.create_timestamp.timestamp() for r in runs)
    last = max(r.end_time for r in runs)
    durations = sorted(round(r.end_time - r.start_time, 1) for r in runs)
    return {"wall_s": last - first, "run_s": durations}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="small")
    parser.add_argument("--tenants", default="1,2,4,8")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--rate-limit", type=float, default=20.0)
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
                measured = backfill(cluster, tenants)
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
    base = next(r for r in results if r["tenants"] == 1)
    print("\n| workers x slots | tenants | bookings | wall s | bookings/s | x 1 tenant |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in results:
        speedup = row["bookings_per_s"] / base["bookings_per_s"]
        print(
            f"| {row['workers']} x {row['slots']} | {row['tenants']} | {row['bookings']} | "
            f"{row['wall_s']:.1f} | {row['bookings_per_s']} | {speedup:.2f} |"
        )


if __name__ == "__main__":
    main()
