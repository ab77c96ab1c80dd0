"""Ingest benchmark: CaliraClient vs a plain sequential page loop, and a rate-limited run.

    .venv/bin/python benchmarks/ingest.py [--scale medium] [--latency-ms 20] [--concurrency 8]
                                          [--rate 100] [--client-max-rps R]

Targets: speed-up >= 0.6 x concurrency, requests <= 1.05 x sequential; under a server limit of
R req/s: sustained throughput >= 0.9 R with <= 2 % of requests answered 429.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx

from calira_pipeline.api import CaliraClient, ClientSettings, CollectionResult
from calira_pipeline.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET


def sequential_ingest(base_url: str) -> tuple[int, int, float]:
    """The naive loop: one page after another until a page comes back empty or short."""
    started = time.perf_counter()
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
        requests, records, page = 1, 0, 1
        while True:
            response = http.get(
                "/v1/bookings", params={"page": page, "per_page": 100}, headers=headers
            )
            requests += 1
            response.raise_for_status()
            items = response.json()
            records += len(items)
            if len(items) < 100:
                break
            page += 1
    return requests, records, time.perf_counter() - started


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


@contextlib.contextmanager
def sandbox_process(scale: str, latency_ms: float, rate: float | None) -> Iterator[str]:
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
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(base_url + "/v1/accounts", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the sandbox did not start") from None
                time.sleep(0.2)
        yield base_url
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="medium")
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=100, help="server limit R, req/s")
    parser.add_argument("--client-max-rps", type=float, default=None)
    args = parser.parse_args()

    with sandbox_process(args.scale, args.latency_ms, None) as base_url:
        seq_requests, seq_records, seq_s = sequential_ingest(base_url)
        cli = client_ingest(base_url, concurrency=args.concurrency)
    speedup = seq_s / cli.stats.wall_time_s
    print(f"sequential: {seq_records} records, {seq_requests} requests, {seq_s:.2f}s")
    print(
        f"client:     {cli.stats.records} records, {cli.stats.requests} requests, "
        f"{cli.stats.wall_time_s:.2f}s (concurrency {args.concurrency})"
    )
    print(
        f"speed-up {speedup:.2f}x = {speedup / args.concurrency:.2f} x concurrency "
        f"(target >= 0.6); requests {cli.stats.requests / seq_requests:.3f} x sequential "
        "(target <= 1.05)"
    )

    with sandbox_process(args.scale, args.latency_ms, args.rate) as base_url:
        limited = client_ingest(base_url, concurrency=args.concurrency, max_rps=args.client_max_rps)
    stats = limited.stats
    throughput = (stats.requests - stats.rate_limited) / stats.wall_time_s
    print(
        f"rate-limited at R={args.rate:g} req/s (client max_rps={args.client_max_rps}): "
        f"{stats.records} records, {stats.requests} requests in {stats.wall_time_s:.2f}s; "
        f"throughput {throughput:.1f} req/s = {throughput / args.rate:.2f} R (target >= 0.9); "
        f"429 share {stats.rate_limited / stats.requests:.2%} (target <= 2%)"
    )


if __name__ == "__main__":
    main()
