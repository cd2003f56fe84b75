"""A multi-node deployment on this machine whose every part a fault can hit.

PostgreSQL is the embedded one; the CQL server, ``nats-server`` and each gateway node
(``chat serve``) are subprocesses this module starts, stops, kills, freezes (SIGSTOP) and
thaws (SIGCONT), each coming back on the same port and data directory, so the clients and the
other parts see the same deployment return. Logs go to files in the run's directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.load.servers import wait_ready, wait_tcp
from chat.embedded.cql.process import EmbeddedCqlServer
from chat.embedded.nats import free_port, nats_server_binary

READY_TIMEOUT = 120.0
GATEWAY_SETTINGS = {
    "CHAT_LOG_LEVEL": "info",
    "CHAT_NATS_PRESENCE_HEARTBEAT_SECONDS": "0.5",
    "CHAT_NATS_PRESENCE_TTL_SECONDS": "2.0",
    "CHAT_CQL_REQUEST_TIMEOUT_SECONDS": "2.0",
    "CHAT_SEND_SETTLE_SECONDS": "10",
    "CHAT_WS_SEND_RATE_PER_SECOND": "1000",
    "CHAT_WS_SEND_BURST": "1000",
    "CHAT_DRAIN_SECONDS": "5",
    # Every client signs up and the faults call REST from the one address of the run.
    "CHAT_REST_ADDRESS_QUOTA": "0",
    "CHAT_REST_USER_QUOTA": "0",
    "CHAT_REST_SIGNUP_QUOTA": "0",
}
"""How the chaos run's nodes are configured: short heartbeats and timeouts, so that a fault's
effects (and the bounds the docs promise for them) fit a run of tens of seconds."""


class Process:
    """One subprocess that can be stopped, killed, frozen and started again the same way."""

    def __init__(self, name: str, command: list[str], env: Mapping[str, str], log: Path) -> None:
        self.name = name
        self.command = command
        self.env = dict(env)
        self.log = log
        self.popen: subprocess.Popen[bytes] | None = None
        self.frozen = False

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.command, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.frozen = False

    def kill(self) -> None:
        if self.running:
            assert self.popen is not None
            self.popen.kill()
            self.popen.wait()
        self.frozen = False

    def stop(self, timeout: float = 15.0) -> None:
        if not self.running:
            return
        assert self.popen is not None
        if self.frozen:
            self.thaw()
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def freeze(self) -> None:
        if self.running and not self.frozen:
            assert self.popen is not None
            os.kill(self.popen.pid, signal.SIGSTOP)
            self.frozen = True

    def thaw(self) -> None:
        if self.running and self.frozen:
            assert self.popen is not None
            os.kill(self.popen.pid, signal.SIGCONT)
        self.frozen = False


@dataclass
class Deployment:
    """Everything a chaos run starts, by name, in one directory."""

    directory: Path
    pg_dsn: str
    cql: EmbeddedCqlServer
    nats: Process
    nats_port: int
    gateways: list[Process] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    def any_ready_url(self) -> str:
        """A node that answers (for reading the store back through REST)."""
        for gateway, url in zip(self.gateways, self.urls, strict=True):
            if gateway.running and not gateway.frozen:
                return url
        raise RuntimeError("no gateway node is running")

    # ------------------------------------------------------------------ faults

    def nats_start(self) -> None:
        if not self.nats.running:
            self.nats.start()
            wait_tcp(self.nats_port)

    def cql_kill(self) -> None:
        self.cql.kill()

    def cql_start(self) -> None:
        if self.cql.process is None or self.cql.process.poll() is not None:
            self.cql.start()

    def cql_freeze(self) -> None:
        if self.cql.process is not None and self.cql.process.poll() is None:
            os.kill(self.cql.process.pid, signal.SIGSTOP)

    def cql_thaw(self) -> None:
        if self.cql.process is not None and self.cql.process.poll() is None:
            os.kill(self.cql.process.pid, signal.SIGCONT)

    def heal(self) -> None:
        """Bring every part back (the end of a run, or after a failed fault)."""
        self.cql_thaw()
        self.cql_start()
        self.nats_start()
        for gateway in self.gateways:
            gateway.thaw()
            if not gateway.running:
                gateway.start()


def gateway_env(
    directory: Path, pg_dsn: str, cql_port: int, nats_port: int, port: int, secret: str
) -> dict[str, str]:
    """A node's settings: the deployment's servers, a shared secret, the run's tunings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_")}
    env.update(GATEWAY_SETTINGS)
    env.update(
        CHAT_DATA_DIR=str(directory / "nodes"),
        CHAT_HOST="127.0.0.1",
        CHAT_PORT=str(port),
        CHAT_PG_DSN=pg_dsn,
        CHAT_CQL_CONTACT_POINTS="127.0.0.1",
        CHAT_CQL_PORT=str(cql_port),
        CHAT_NATS_URL=f"nats://127.0.0.1:{nats_port}",
        CHAT_JWT_SECRET=secret,
        CHAT_AUTO_MIGRATE="true",
    )
    return env


@contextlib.contextmanager
def deployment(directory: Path, pg_dsn: str, nodes: int, secret: str) -> Iterator[Deployment]:
    """Start the CQL server, nats-server and ``nodes`` gateway nodes; stop them all on exit."""
    cql = EmbeddedCqlServer(data_dir=directory / "cql", log_file=directory / "cql.log")
    nats_port = free_port()
    nats = Process(
        "nats",
        [nats_server_binary(), "-a", "127.0.0.1", "-p", str(nats_port)],
        os.environ,
        directory / "nats.log",
    )
    deployed = Deployment(directory, pg_dsn, cql, nats, nats_port)
    try:
        cql.start()
        deployed.nats_start()
        for _ in range(nodes):
            port = free_port()
            env = gateway_env(directory, pg_dsn, cql.port, nats_port, port, secret)
            gateway = Process(
                f"gateway-{port}",
                [sys.executable, "-m", "chat.cli", "serve"],
                env,
                directory / f"gateway-{port}.log",
            )
            gateway.start()
            deployed.gateways.append(gateway)
            deployed.ports.append(port)
            wait_ready(
                deployed.urls[-1] + "/readyz", READY_TIMEOUT
            )  # one at a time: the first one migrates
        yield deployed
    finally:
        for gateway in deployed.gateways:
            gateway.stop()
        nats.stop()
        with contextlib.suppress(Exception):
            cql.stop()
