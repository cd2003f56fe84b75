"""Errors the reference client raises; all under the project's one root, :class:`ChatError`."""

from __future__ import annotations

from chat.errors import ChatError
from chat.gateway.server_frames import ErrorFrame


class RequestFailed(ChatError):
    """The server answered a request with an ``error`` frame that retrying cannot fix.

    ``error_code`` is the frame's ``code`` (branch on it); ``frame`` is the whole answer.
    """

    def __init__(self, frame: ErrorFrame) -> None:
        super().__init__(f"{frame.code}: {frame.message}")
        self.frame = frame
        self.error_code = frame.code


class ConnectionLost(ChatError):
    """The connection dropped while a request that is not retried (``typing``, ``ping``) was
    waiting for its answer; the client itself reconnects."""

    code = "unavailable"


class FrameTooLarge(ChatError):
    """A request would exceed the server's ``max_frame_bytes``; it was not sent."""

    code = "payload_too_large"
    status = 413


class AuthenticationFailed(ChatError):
    """The server refused the token and no token provider could supply a new one."""

    code = "unauthorized"
    status = 401


class ClientClosed(ChatError):
    """The client was closed (or stopped for good) before the request completed."""

    code = "unavailable"
