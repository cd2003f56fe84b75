"""Running the embedded CQL server: the ``chat cql-server`` entry point and a launcher.

The server runs in its own process so that, on a two-core machine, it has a core of its own
while the application and its driver use the other. :func:`main` is that process;
:class:`EmbeddedCqlServer` starts it as a subprocess on a free port, waits until it listens,
and stops it (SIGTERM, then SIGKILL after a deadline) — or kills it outright for crash tests.

Once listening, the process prints one machine-readable line on stdout,
``CQL_SERVER_LISTENING <host> <port>``, which is how the launcher learns the port chosen for
``--port 0``; everything else it says goes to the log on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import uvloop

from chat.embedded.cql import frames, gc_policy
from chat.embedded.cql.auth import PasswordAuthenticator
from chat.embedded.cql.budget import DEFAULT_BUDGET, BudgetError, format_bytes, parse_budget
from chat.embedded.cql.commitlog import FILE_MODE, make_private_dir
from chat.embedded.cql.server import FRAME_TIMEOUT, CqlServer

log = logging.getLogger("chat.embedded.cql")

READY_PREFIX = "CQL_SERVER_LISTENING"
PASSWORD_ENV = "CQL_SERVER_PASSWORD"
"""Where ``--auth-username`` takes its password from, unless a password file is given."""
HOST_ID_FILE = "host-id"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chat cql-server",
        description="Embedded CQL server speaking the native protocol v4 (ScyllaDB stand-in).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=9042, help="port; 0 picks a free one")
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="commit log + snapshots; omit for in-memory"
    )
    parser.add_argument(
        "--commit-sync-ms",
        type=float,
        default=2.0,
        help="group-commit window: writes acknowledged within it share one fsync",
    )
    parser.add_argument(
        "--max-frame-bytes",
        type=int,
        default=frames.MAX_FRAME_BYTES,
        help="largest request body accepted (default 16 MiB); larger ones are refused",
    )
    parser.add_argument(
        "--frame-timeout",
        type=float,
        default=FRAME_TIMEOUT,
        help="seconds a frame may take to arrive once begun; a stalled client is disconnected",
    )
    parser.add_argument(
        "--auth-username",
        default=None,
        help=(
            "require password authentication (PasswordAuthenticator, SASL PLAIN) as this user; "
            f"the password comes from ${PASSWORD_ENV} or --auth-password-file"
        ),
    )
    parser.add_argument(
        "--auth-password-file",
        type=Path,
        default=None,
        help="file holding the password for --auth-username (first line)",
    )
    parser.add_argument(
        "--memory-budget",
        default=DEFAULT_BUDGET,
        help=(
            "stored data past which writes are refused with Overloaded: bytes, a size "
            f"(512MiB, 2GB) or a share of the machine's memory (default {DEFAULT_BUDGET})"
        ),
    )
    parser.add_argument("--log-level", default="INFO")
    return parser


def authenticator_from(args: argparse.Namespace) -> PasswordAuthenticator | None:
    """The authenticator the options ask for; SystemExit naming what is missing."""
    if args.auth_username is None:
        if args.auth_password_file is not None:
            raise SystemExit("--auth-password-file needs --auth-username")
        return None
    if args.auth_password_file is not None:
        lines = args.auth_password_file.read_text().splitlines()
        password = lines[0] if lines else ""
    else:
        password = os.environ.get(PASSWORD_ENV, "")
    if not password:
        raise SystemExit(
            f"--auth-username needs a password: set ${PASSWORD_ENV} or --auth-password-file"
        )
    return PasswordAuthenticator.for_user(args.auth_username, password)


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGTERM/SIGINT; returns the process exit status."""
    args = build_parser().parse_args(argv)
    authenticator = authenticator_from(args)
    try:
        memory_budget = parse_budget(args.memory_budget)
    except BudgetError as exc:
        raise SystemExit(f"--memory-budget: {exc}") from None
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        uvloop.run(
            serve(
                args.host,
                args.port,
                args.data_dir,
                args.commit_sync_ms,
                authenticator=authenticator,
                max_frame=args.max_frame_bytes,
                frame_timeout=args.frame_timeout,
                memory_budget=memory_budget,
            )
        )
    except OSError as exc:
        log.error("cannot start the CQL server on %s:%s: %s", args.host, args.port, exc)
        return 1
    return 0


def _host_id(data_dir: Path | None, host: str, port: int) -> uuid.UUID:
    """A host id that survives restarts, so drivers see the same node come back.

    With a data dir it is stored there; in memory it is derived from the address.
    """
    if data_dir is None:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"cql://{host}:{port}")
    make_private_dir(data_dir)
    path = data_dir / HOST_ID_FILE
    if path.exists():
        return uuid.UUID(path.read_text().strip())
    host_id = uuid.uuid4()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "w") as out:
        out.write(f"{host_id}\n")
    return host_id


async def serve(
    host: str,
    port: int,
    data_dir: Path | None,
    commit_sync_ms: float,
    *,
    authenticator: PasswordAuthenticator | None = None,
    max_frame: int = frames.MAX_FRAME_BYTES,
    frame_timeout: float = FRAME_TIMEOUT,
    memory_budget: int | None = None,
) -> None:
    """Bind, start the engine (replaying the commit log), serve until a stop signal, close."""
    from chat.embedded.cql.engine import Engine, NodeInfo, QueryOptions

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    server = CqlServer(
        options_type=QueryOptions,
        authenticator=authenticator,
        max_frame=max_frame,
        frame_timeout=frame_timeout,
    )
    bound_host, bound_port = await server.bind(host, port)
    node = NodeInfo(
        address=bound_host,
        port=bound_port,
        host_id=await asyncio.to_thread(_host_id, data_dir, host, port),
    )
    engine = Engine(data_dir, node, commit_sync_ms=commit_sync_ms, memory_budget=memory_budget)
    started = time.monotonic()
    await engine.start()
    usage = engine.catalog.usage
    log.info(
        "engine started in %.3f s (data dir: %s; %d rows, %s of a memory budget of %s)",
        time.monotonic() - started,
        data_dir,
        usage.rows,
        format_bytes(usage.memory),
        format_bytes(engine.memory_budget),
    )
    gc_policy.install()
    await server.start_serving(engine)
    log.info(
        "listening on %s:%d (authentication: %s, max frame %d bytes, frame timeout %.0f s)",
        bound_host,
        bound_port,
        f"password, user {authenticator.username}" if authenticator else "none",
        max_frame,
        frame_timeout,
    )
    print(f"{READY_PREFIX} {bound_host} {bound_port}", flush=True)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await server.close()
        await engine.close()
        log.info("stopped")


class EmbeddedCqlServer:
    """Starts ``chat cql-server`` as a subprocess and knows where it listens.

    Usable as a context manager (sync or async)::

        async with EmbeddedCqlServer(data_dir=path) as cql:
            cluster = Cluster([cql.host], port=cql.port)

    ``restart()`` brings the server back on the same port (drivers reconnect to the same
    address); ``kill()`` is a SIGKILL for crash tests.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        commit_sync_ms: float | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        log_file: Path | None = None,
        credentials: tuple[str, str] | None = None,
        frame_timeout: float | None = None,
        memory_budget: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.memory_budget = memory_budget
        self.host = host
        self.port = port
        self.commit_sync_ms = commit_sync_ms
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.log_file = log_file
        self.credentials = credentials
        self.frame_timeout = frame_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the CQL server is not running: call start() first")
        return self.process.pid

    def command(self) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "chat.embedded.cql.process",
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        if self.data_dir is not None:
            argv += ["--data-dir", str(self.data_dir)]
        if self.commit_sync_ms is not None:
            argv += ["--commit-sync-ms", str(self.commit_sync_ms)]
        if self.frame_timeout is not None:
            argv += ["--frame-timeout", str(self.frame_timeout)]
        if self.credentials is not None:
            argv += ["--auth-username", self.credentials[0]]
        if self.memory_budget is not None:
            argv += ["--memory-budget", self.memory_budget]
        return argv

    def environment(self) -> dict[str, str]:
        """The child's environment: ours, plus the password when authentication is on."""
        env = os.environ.copy()
        env.pop(PASSWORD_ENV, None)
        if self.credentials is not None:
            env[PASSWORD_ENV] = self.credentials[1]
        return env

    def start(self) -> None:
        """Start the subprocess and block until it prints its listening line (or fails)."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"the CQL server is already running (pid {self.process.pid})")
        stderr: IO[bytes] | None = None
        if self.log_file is not None:
            stderr = self.log_file.open("ab")
        try:
            self.process = subprocess.Popen(
                self.command(), stdout=subprocess.PIPE, stderr=stderr, env=self.environment()
            )
        finally:
            if stderr is not None:
                stderr.close()
        self._lines = queue.Queue()
        threading.Thread(
            target=_pump_lines, args=(self.process.stdout, self._lines), daemon=True
        ).start()
        deadline = time.monotonic() + self.startup_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise TimeoutError(
                    f"the CQL server did not report listening within {self.startup_timeout} s"
                )
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                code = self.process.wait()
                raise RuntimeError(
                    f"the CQL server exited with status {code} before listening; see its log"
                )
            if line.startswith(READY_PREFIX):
                _, host, port = line.split()
                self.host, self.port = host, int(port)
                return

    def stop(self) -> int:
        """SIGTERM, wait up to ``stop_timeout`` for a clean exit, then SIGKILL. Idempotent."""
        process = self.process
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                return process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("CQL server pid %d ignored SIGTERM; killing it", process.pid)
                process.kill()
        return process.wait()

    def kill(self) -> None:
        """SIGKILL: no flush, no snapshot — what a crash looks like to the commit log."""
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def restart(self) -> None:
        """Stop (if running) and start again on the same port and data dir."""
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)


def _pump_lines(stream: IO[bytes] | None, lines: queue.Queue[str | None]) -> None:
    """Forward the child's stdout lines (and keep its pipe drained); None marks EOF."""
    if stream is not None:
        with contextlib.closing(stream):
            for raw in stream:
                lines.put(raw.decode(errors="replace").strip())
    lines.put(None)


if __name__ == "__main__":
    sys.exit(main())
