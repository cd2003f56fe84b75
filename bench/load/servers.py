"""The servers a run drives, each in a subprocess of its own.

The gateway runs as ``python -m chat.cli serve`` — the command users run — in a fresh
``CHAT_DATA_DIR`` with the embedded PostgreSQL and CQL server, on free ports, so it shares no
event loop (and no GIL) with the load generators. The write limits a phone must obey are
raised for the run through the ordinary ``CHAT_WS_*`` variables: the bench is many users'
traffic squeezed into few connections.

The echo server is the baseline: a bare ``websockets`` server answering each frame with
itself, run the same way, so that ``gateway rate / echo rate`` is the share of the machine's
Python WebSocket capacity the gateway achieves.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.cql_server import process_cpu_seconds
from chat.embedded.ports import wait_listening

RUN_LIMITS = {
    "CHAT_WS_SEND_RATE_PER_SECOND": "1000000",
    "CHAT_WS_SEND_BURST": "1000000",
    "CHAT_WS_USER_SEND_RATE_PER_SECOND": "1000000",
    "CHAT_WS_USER_SEND_BURST": "1000000",
    "CHAT_WS_FRAME_RATE_PER_SECOND": "1000000",
    "CHAT_WS_FRAME_BURST": "1000000",
    "CHAT_WS_OUTGOING_QUEUE_SIZE": "100000",
    "CHAT_WS_MAX_SUBSCRIPTIONS": "1000",
    "CHAT_WS_MAX_CONNECTIONS_PER_USER": "100000",
    # Every simulated user signs up and creates events from the one bench address.
    "CHAT_REST_ADDRESS_QUOTA": "0",
    "CHAT_REST_USER_QUOTA": "0",
    "CHAT_REST_SIGNUP_QUOTA": "0",
}
"""Limits raised for a load run (the defaults are sized for one phone, one address; a load run
is many users' traffic squeezed into few connections, users and one address)."""

START_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0


def free_port() -> int:
    """A port nothing listens on right now (the kernel's pick for port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def raise_nofile(wanted: int) -> int:
    """Raise this process's open-file limit towards ``wanted`` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def wait_ready(url: str, within: float, check: Callable[[], None] = lambda: None) -> None:
    """Until ``url`` answers 200 (a readiness probe), polled against a deadline; ``check`` may
    raise to stop waiting early (the process it waits for has exited)."""
    deadline = time.monotonic() + within
    with httpx.Client(timeout=2.0) as http:
        while True:
            check()
            with contextlib.suppress(httpx.HTTPError):
                if http.get(url).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer 200 within {within} s")
            time.sleep(0.1)  # polling a readiness probe against a deadline


def wait_tcp(port: int, within: float = 10.0) -> None:
    """Until something listens on ``port`` of this machine, polled against a deadline."""
    wait_listening("127.0.0.1", port, within=within)


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int | None) -> float:
    """CPU time of a process (0 when unknown or gone)."""
    if pid is None:
        return 0.0
    try:
        return process_cpu_seconds(pid)
    except OSError:
        return 0.0


def child_pids(pid: int) -> list[int]:
    """Direct children of a process, from every thread (a child started from a worker thread
    is listed under that thread, not the main one)."""
    children: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                children += [int(p) for p in (task / "children").read_text().split()]
    return children


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (PostgreSQL's backends are its postmaster's children)."""
    found, frontier = [], [pid]
    while frontier:
        children = [c for p in frontier for c in child_pids(p)]
        found += children
        frontier = children
    return found


def base_environment() -> dict[str, str]:
    """This environment without ``CHAT_*``: the caller's shell must not pick a shared
    PostgreSQL, ScyllaDB or data directory for the bench's private gateway."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CHAT_")}


@dataclass
class ServerProcess:
    """A server subprocess in its own session, so stopping it reaches its children too."""

    command: list[str]
    env: Mapping[str, str]
    url: str
    ready_path: str
    log_file: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def pid(self) -> int:
        assert self.process is not None, "the server is not running"
        return self.process.pid

    def start(self) -> None:
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                env=dict(self.env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = self.process

        def exited() -> None:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{self.command[2:4]} exited with {process.returncode} before it was "
                    f"ready; its log: {self.log_file}\n{self._log_tail()}"
                )

        try:
            wait_ready(self.url + self.ready_path, START_TIMEOUT, check=exited)
        except TimeoutError:
            self.stop()
            raise RuntimeError(
                f"not ready within {START_TIMEOUT} s; log: {self.log_file}"
            ) from None

    def stop(self) -> int | None:
        """SIGTERM (a clean shutdown closes PostgreSQL and the CQL server), then SIGKILL."""
        process = self.process
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            return process.wait(STOP_TIMEOUT)

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-30:])
        except OSError:
            return ""


@dataclass
class Gateway:
    """A running gateway: its base URL, process and CQL port (``None`` when not ours)."""

    url: str
    pid: int | None
    cql_host: str | None
    cql_port: int | None
    data_dir: Path | None


@contextlib.contextmanager
def gateway_subprocess(
    env: Mapping[str, str] | None = None,
    *,
    keep_dir: Path | None = None,
    limits: Mapping[str, str] = RUN_LIMITS,
    workers: int = 1,
) -> Iterator[Gateway]:
    """``chat serve`` with embedded PostgreSQL + CQL in a temporary data directory, with
    ``limits`` (a load run's raised limits unless told otherwise) and then ``env``; with
    ``workers`` > 1, ``chat serve --workers N`` (and the private nats-server it starts)."""
    with tempfile.TemporaryDirectory(prefix="chat-bench-") as scratch:
        data_dir = keep_dir or Path(scratch)
        port, cql_port = free_port(), free_port()
        settings = {
            "CHAT_DATA_DIR": str(data_dir),
            "CHAT_HOST": "127.0.0.1",
            "CHAT_PORT": str(port),
            "CHAT_CQL_PORT": str(cql_port),
            "CHAT_LOG_LEVEL": "warning",
            **limits,
            **(env or {}),
        }
        url = f"http://127.0.0.1:{port}"
        extra = ["--workers", str(workers)] if workers > 1 else []
        server = ServerProcess(
            [sys.executable, "-m", "chat.cli", "serve", *extra],
            {**base_environment(), **settings},
            url,
            "/readyz",
            Path(scratch) / "gateway.log",
        )
        server.start()
        try:
            yield Gateway(url, server.pid, "127.0.0.1", cql_port, data_dir)
        finally:
            server.stop()


@contextlib.contextmanager
def echo_subprocess() -> Iterator[tuple[str, int]]:
    """The baseline echo server (``python -m bench.load.echo``); yields its base URL and pid
    (its CPU time is part of the baseline's figures)."""
    with tempfile.TemporaryDirectory(prefix="echo-bench-") as scratch:
        port = free_port()
        server = ServerProcess(
            [sys.executable, "-m", "bench.load.echo", "--port", str(port)],
            base_environment(),
            f"http://127.0.0.1:{port}",
            "/healthz",
            Path(scratch) / "echo.log",
        )
        server.start()
        try:
            yield server.url, server.pid
        finally:
            server.stop()
