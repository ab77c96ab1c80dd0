"""Starting and always stopping the server processes of a local scale-out cluster.

Each process gets its own session (process group), so one signal stops it and everything it
spawned (a Celery worker's run subprocess, the daemon's code server).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

READY_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def wait_until(
    what: str,
    ready: Callable[[], bool],
    process: subprocess.Popen[bytes] | None,
    log: Path | None = None,
    timeout: float = READY_TIMEOUT_S,
) -> None:
    """Poll `ready` until true; fail at once (with the log's tail) if `process` exits."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}: {_tail(log)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} was not ready after {timeout:.0f} s: {_tail(log)}")
        time.sleep(0.1)


def _tail(log: Path | None) -> str:
    if log is None or not log.exists():
        return "(no log)"
    return log.read_text(errors="replace")[-2000:]


@dataclass
class Started:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    stop_signal: int = signal.SIGTERM


@dataclass
class ProcessGroup:
    """Every process a cluster started, stopped in reverse order by `stop_all`."""

    logs: Path
    started: list[Started] = field(default_factory=list)

    def start(
        self,
        name: str,
        command: Sequence[str | os.PathLike[str]],
        env: Mapping[str, str] | None = None,
        stop_signal: int = signal.SIGTERM,
        preexec_fn: Callable[[], None] | None = None,
        cwd: Path | None = None,
    ) -> Started:
        log = self.logs / f"{name}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(  # noqa: S603 - commands built by the harness
                [str(part) for part in command],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                start_new_session=True,
                preexec_fn=preexec_fn,
                cwd=cwd,
            )
        entry = Started(name, process, log, stop_signal)
        self.started.append(entry)
        return entry

    def stop(self, entry: Started, timeout: float = 20.0) -> None:
        stop_process_group(entry.process, entry.stop_signal, timeout)
        if entry in self.started:
            self.started.remove(entry)

    def kill(self, entry: Started) -> None:
        """SIGKILL the whole group at once: a crash, with no chance to clean up."""
        stop_process_group(entry.process, signal.SIGKILL, 20.0)
        if entry in self.started:
            self.started.remove(entry)

    def stop_all(self) -> None:
        errors = []
        for entry in reversed(list(self.started)):
            try:
                self.stop(entry)
            except Exception as exc:  # keep stopping the others
                errors.append(f"{entry.name}: {exc}")
        if errors:
            raise RuntimeError("; ".join(errors))


def stop_process_group(process: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)
    # The leader is gone; children it left in its group (a run's subprocess) go too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def group_alive(process: subprocess.Popen[bytes]) -> bool:
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    return True
