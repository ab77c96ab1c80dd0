"""Serving the sandbox over real HTTP: a background-thread server and the CLI entry point."""

from __future__ import annotations

import argparse
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from calira_pipeline.sandbox.config import (
    LIST_ORDERS,
    PAYLOAD_PROFILES,
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SCALES,
    FaultConfig,
    SandboxConfig,
)

_STARTUP_TIMEOUT_S = 30.0


class _SignalledServer(uvicorn.Server):
    """Sets ``ready`` once uvicorn accepts connections (or ``failed`` if startup dies)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


@contextmanager
def serve_in_thread(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run ``app`` under uvicorn in a daemon thread; yield ``http://host:port``."""
    # Binding here (port 0 = any free port) means the URL is known before uvicorn starts.
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    # loop/http stay "auto": uvloop and httptools when installed (uvicorn[standard]), else
    # asyncio and h11, which serve the same bytes.
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = _SignalledServer(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name=f"calira-sandbox-{bound_port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    try:
        while not server.ready.wait(timeout=0.05):
            if not thread.is_alive():
                raise RuntimeError("sandbox server failed to start")
            if time.monotonic() > deadline:
                raise RuntimeError("sandbox server did not start in time")
        display_host = f"[{host}]" if ":" in host else host
        yield f"http://{display_host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--list-shape", choices=("full", "slim"), default="full")
    parser.add_argument("--live-aliases", action="store_true",
                        help="use the live API's field names (model_number, availabity_status)")
    parser.add_argument("--list-order", choices=LIST_ORDERS, default="newest",
                        help="order of every list (the docs say newest; a captured one was not)")
    parser.add_argument("--account-list", choices=("full", "slim"), default="full",
                        help="slim: GET /accounts items are {id, name, account_type} (0.1.3)")
    parser.add_argument("--payload-profile", choices=PAYLOAD_PROFILES, default="current",
                        help="2022: booking details without currency, times, creator or "
                        "requester group; lists in the 0.1.3 shape")
    parser.add_argument("--list-disagreement-rate", type=float, default=0.0, metavar="SHARE",
                        help="share of bookings whose list status contradicts their detail")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--rate-limit", type=float, default=None, metavar="RPS")
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--token-lifetime", type=float, default=7200.0, metavar="S")
    parser.add_argument("--head-inserts", type=int, default=0, metavar="N")


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    faults = FaultConfig(latency_ms=args.latency_ms, rate_limit_rps=args.rate_limit,
                         error_rate=args.error_rate, head_inserts_per_page=args.head_inserts,
                         seed=args.seed)
    return SandboxConfig(seed=args.seed, scale=args.scale, list_shape=args.list_shape,
                         live_aliases=args.live_aliases, token_lifetime_s=args.token_lifetime,
                         list_order=args.list_order, account_list=args.account_list,
                         payload_profile=args.payload_profile,
                         list_disagreement_rate=args.list_disagreement_rate, faults=faults)


def run_from_args(args: argparse.Namespace) -> None:
    from calira_pipeline.sandbox.core import Sandbox

    sandbox = Sandbox(config_from_args(args))
    base = f"http://{args.host}:{args.port}"
    print(f"Calira sandbox ({args.scale}, seed {args.seed}) at {base}/v1", flush=True)
    print(f"  OAuth token URL: {base}/oauth/token  authorize URL: {base}/oauth/authorize")
    print(f"  client_id={SANDBOX_CLIENT_ID} client_secret={SANDBOX_CLIENT_SECRET}", flush=True)
    uvicorn.run(sandbox.app, host=args.host, port=args.port, log_level="warning",
                lifespan="off", access_log=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m calira_pipeline.sandbox",
                                     description="Serve a fake Calira API over HTTP.")
    add_arguments(parser)
    run_from_args(parser.parse_args(argv))
