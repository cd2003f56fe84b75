"""Waiting for a freshly started server to listen, for the embedded servers that do not say so.

A server started as a subprocess says nothing when its socket is ready, so the caller polls the
port until a connection is accepted, the process exits, or the deadline passes.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable


def wait_listening(
    host: str,
    port: int,
    *,
    within: float,
    exited: Callable[[], int | None] | None = None,
) -> None:
    """Return once something accepts connections on ``host:port``.

    ``exited`` (a process's ``poll``) ends the wait with :class:`RuntimeError` as soon as the
    server has exited, rather than at the deadline; past ``within`` seconds, :class:`TimeoutError`.
    """
    deadline = time.monotonic() + within
    while True:
        if exited is not None and (status := exited()) is not None:
            raise RuntimeError(f"the server for {host}:{port} exited with status {status}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.2):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on {host}:{port} after {within} s")
        time.sleep(0.05)  # polling a port against a deadline
