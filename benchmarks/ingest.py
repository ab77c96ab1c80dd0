"""Ingest benchmark: CaliraClient vs a plain sequential page loop, and a rate-limited run.

    .venv/bin/python benchmarks/ingest.py [--scale medium] [--latency-ms 20] [--concurrency 8]
                                          [--rate 100] [--client-max-rps R] [--repeat 3]
    .venv/bin/python benchmarks/ingest.py --raw-refresh [--scale large] [--latency-ms 100]
                                          [--skip-loop] [--concurrency N] [--lock FILE]

`--raw-refresh` times the whole raw refresh as a user runs it (`dagster asset materialize
--select group:raw`, process start included) beside a sequential loop over every raw endpoint;
see `raw_refresh.py`. Targets there: >= 5x the loop, requests <= 1.05x the loop's.

Targets: speed-up >= 0.6 x concurrency, requests <= 1.05 x sequential; under a server limit of
R req/s: sustained throughput >= 0.9 R with <= 2 % of requests answered 429.

Both timed runs hit one warmed-up sandbox process and must fetch exactly the same booking ids.
CPU seconds of the sandbox process (from /proc) and of this process are reported per request,
with the speed-up they allow on this machine, so a miss can be attributed to a side.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from calira_pipeline.api import CaliraClient, ClientSettings, CollectionResult
from calira_pipeline.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, FaultConfig

PER_PAGE = 100


@dataclass(frozen=True)
class Server:
    base_url: str
    pid: int


@dataclass(frozen=True)
class Run:
    requests: int
    ids: frozenset[int]
    records: int
    wall_s: float
    client_cpu_s: float  # this process, all threads
    server_cpu_s: float | None  # the sandbox process; None where /proc is missing
    rate_limited: int = 0


def process_cpu_s(pid: int) -> float | None:
    """utime + stime of a process, from /proc (Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sequential_ingest(base_url: str) -> tuple[int, list[int]]:
    """The naive loop: one page after another until a page comes back empty or short."""
    with httpx.Client(base_url=base_url, timeout=30) as http:
        token = http.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": SANDBOX_CLIENT_ID,
                "client_secret": SANDBOX_CLIENT_SECRET,
            },
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        requests, ids, page = 1, [], 1
        while True:
            response = http.get(
                "/v1/bookings", params={"page": page, "per_page": PER_PAGE}, headers=headers
            )
            requests += 1
            response.raise_for_status()
            items = response.json()
            ids += [int(item["id"]) for item in items]
            if len(items) < PER_PAGE:
                break
            page += 1
    return requests, ids


def client_ingest(base_url: str, **settings: Any) -> CollectionResult:
    client = CaliraClient(
        ClientSettings(
            base_url=base_url + "/v1",
            client_id=SANDBOX_CLIENT_ID,
            client_secret=SANDBOX_CLIENT_SECRET,
            **settings,
        )
    )
    return client.fetch("bookings")


def measured(server: Server, ingest: Callable[[], tuple[int, list[int], int]]) -> Run:
    """Times ``ingest`` (returning requests, ids, 429s) and the CPU both processes spent."""
    server_cpu0, cpu0, started = process_cpu_s(server.pid), time.process_time(), time.perf_counter()
    requests, ids, limited = ingest()
    wall = time.perf_counter() - started
    cpu, server_cpu1 = time.process_time() - cpu0, process_cpu_s(server.pid)
    server_cpu = None if server_cpu0 is None or server_cpu1 is None else server_cpu1 - server_cpu0
    return Run(requests, frozenset(ids), len(ids), wall, cpu, server_cpu, limited)


def run_sequential(server: Server) -> Run:
    def ingest() -> tuple[int, list[int], int]:
        requests, ids = sequential_ingest(server.base_url)
        return requests, ids, 0

    return measured(server, ingest)


def run_client(server: Server, **settings: Any) -> Run:
    def ingest() -> tuple[int, list[int], int]:
        result = client_ingest(server.base_url, **settings)
        ids = [int(row["id"]) for row in result.rows["bookings"]]
        return result.stats.requests, ids, result.stats.rate_limited

    return measured(server, ingest)


@contextlib.contextmanager
def sandbox_process(scale: str, latency_ms: float, rate: float | None) -> Iterator[Server]:
    """The sandbox in its own process on loopback, so its CPU does not share our GIL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "calira_pipeline.sandbox",
        "--scale",
        scale,
        "--port",
        str(port),
        "--latency-ms",
        str(latency_ms),
    ]
    if rate is not None:
        command += ["--rate-limit", str(rate)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 900  # generating `large` takes minutes on a busy machine
        while True:
            try:
                httpx.get(base_url + "/v1/accounts", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the sandbox did not start") from None
                time.sleep(0.2)
        yield Server(base_url, server.pid)
    finally:
        server.terminate()
        server.wait(10)


def check_same_ids(expected: frozenset[int], run: Run, label: str) -> None:
    assert run.records == len(run.ids), f"{label}: {run.records - len(run.ids)} duplicate ids"
    assert run.ids == expected, (
        f"{label}: {len(run.ids - expected)} ids extra, {len(expected - run.ids)} missing"
    )


def per_request_ms(seconds: float | None, run: Run) -> float:
    return float("nan") if seconds is None else seconds / run.requests * 1000


def median_run(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda r: r.wall_s)[len(runs) // 2]


def print_speedup(seq: Run, cli: Run, concurrency: int, latency_ms: float) -> None:
    speedup = seq.wall_s / cli.wall_s
    print(f"sequential: {seq.records} records, {seq.requests} requests, {seq.wall_s:.2f}s")
    print(
        f"client:     {cli.records} records, {cli.requests} requests, {cli.wall_s:.2f}s "
        f"(concurrency {concurrency})"
    )
    print(
        f"speed-up {speedup:.2f}x = {speedup / concurrency:.2f} x concurrency (target >= 0.6); "
        f"requests {cli.requests / seq.requests:.3f} x sequential (target <= 1.05)"
    )
    seq_ms = per_request_ms(seq.wall_s, seq)
    print(
        f"per request, sequential: {seq_ms:.2f} ms wall = {latency_ms:g} ms latency + "
        f"{per_request_ms(seq.server_cpu_s, seq):.2f} ms sandbox CPU + "
        f"{per_request_ms(seq.client_cpu_s, seq):.2f} ms loop CPU + the rest (wire, scheduling)"
    )
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    server_ms = per_request_ms(cli.server_cpu_s, cli)
    client_ms = per_request_ms(cli.client_cpu_s, cli)
    floors = {
        "client process CPU (one GIL)": client_ms,
        "sandbox CPU (one thread)": server_ms,
        f"both processes' CPU over {cores} cores": (client_ms + server_ms) / (cores or 1),
        f"sequential time / concurrency {concurrency}": seq_ms / concurrency,
    }
    binding = max(floors, key=lambda name: floors[name])
    print(
        f"per request, client: {per_request_ms(cli.wall_s, cli):.2f} ms wall; "
        f"{client_ms:.2f} ms client CPU; {server_ms:.2f} ms sandbox CPU"
    )
    ceiling = seq_ms / floors[binding]
    print(
        f"ceiling on this machine: {ceiling:.2f}x = {ceiling / concurrency:.2f} x concurrency, "
        f"bound by {binding} at {floors[binding]:.2f} ms/request; the target needs "
        f"<= {seq_ms / (0.6 * concurrency):.2f} ms/request"
    )


def print_rate_limited(run: Run, rate: float, client_max_rps: float | None) -> None:
    served = run.requests - run.rate_limited
    throughput = served / run.wall_s
    # The token bucket starts full, so the first `burst` requests are not paced.
    burst = FaultConfig().rate_limit_burst
    sustained = (served - burst) / run.wall_s
    print(
        f"rate-limited at R={rate:g} req/s (client max_rps={client_max_rps}): "
        f"{run.records} records, {run.requests} requests in {run.wall_s:.2f}s; "
        f"throughput {throughput:.1f} req/s = {throughput / rate:.2f} R (target >= 0.9), "
        f"{sustained / rate:.2f} R without the {burst}-request burst; "
        f"429 share {run.rate_limited / run.requests:.2%} (target <= 2%)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scale", default=None, help="medium (large with --raw-refresh)")
    parser.add_argument(
        "--latency-ms", type=float, default=None, help="20 (100 with --raw-refresh)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="8; with --raw-refresh: CALIRA_CONCURRENCY for the run (default: the pipeline's)",
    )
    parser.add_argument("--rate", type=float, default=100, help="server limit R, req/s")
    parser.add_argument("--client-max-rps", type=float, default=None)
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="timed pairs, medians reported: 3 (1 with --raw-refresh)",
    )
    parser.add_argument(
        "--raw-refresh", action="store_true", help="time the raw group's run against a loop"
    )
    parser.add_argument(
        "--skip-loop",
        action="store_true",
        help="with --raw-refresh: time the refresh alone, not the sequential loop (no ratio)",
    )
    parser.add_argument(
        "--lock",
        type=Path,
        default=None,
        help="with --raw-refresh: hold this file (flock) during the refresh leg only",
    )
    args = parser.parse_args()
    refresh = args.raw_refresh
    args.scale = args.scale or ("large" if refresh else "medium")
    args.latency_ms = args.latency_ms if args.latency_ms is not None else (100 if refresh else 20)
    args.repeat = args.repeat or (1 if refresh else 3)
    if not refresh:
        args.concurrency = args.concurrency or 8
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} before the run")
    print(f"scale {args.scale}, latency {args.latency_ms:g} ms, {args.repeat} timed pair(s)")
    if refresh:
        from raw_refresh import compare  # this script's folder is on sys.path

        with sandbox_process(args.scale, args.latency_ms, None) as server:
            pid = server.pid
            compare(
                server.base_url,
                args.repeat,
                lambda: process_cpu_s(pid),
                args.skip_loop,
                args.concurrency,
                args.lock,
            )
        return

    with sandbox_process(args.scale, args.latency_ms, None) as server:
        # Untimed: fills the sandbox's encoded-JSON cache and the client's lazy imports.
        expected = run_sequential(server).ids
        check_same_ids(expected, run_client(server, concurrency=args.concurrency), "warm-up")
        seq_runs, cli_runs = [], []
        for _ in range(args.repeat):  # interleaved, so drift in machine load hits both
            seq_runs.append(run_sequential(server))
            cli_runs.append(run_client(server, concurrency=args.concurrency))
    for i, (seq, cli) in enumerate(zip(seq_runs, cli_runs, strict=True)):
        check_same_ids(expected, seq, f"sequential run {i + 1}")
        check_same_ids(expected, cli, f"client run {i + 1}")
    print(
        f"{len(expected)} distinct ids, identical in every run; medians of {args.repeat}: "
        f"sequential {statistics.median(r.wall_s for r in seq_runs):.2f}s, "
        f"client {statistics.median(r.wall_s for r in cli_runs):.2f}s"
    )
    print_speedup(median_run(seq_runs), median_run(cli_runs), args.concurrency, args.latency_ms)

    with sandbox_process(args.scale, args.latency_ms, args.rate) as server:
        limited = run_client(server, concurrency=args.concurrency, max_rps=args.client_max_rps)
    check_same_ids(expected, limited, "rate-limited run")
    print_rate_limited(limited, args.rate, args.client_max_rps)


if __name__ == "__main__":
    main()
