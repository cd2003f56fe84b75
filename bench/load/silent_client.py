"""A WebSocket client that sends and does not read (or reads slowly): a slow consumer.

Ordinary client libraries keep reading the socket into their own buffers (websockets up to its
``max_queue`` frames, picows everything), so a client built on them that "stops reading" still
takes megabytes from the server. This one is a plain socket with a small kernel receive buffer
(set before connecting, which also stops Linux from growing it) driven by websockets' sans-I/O
:class:`~websockets.client.ClientProtocol` for the handshake and the framing: after the
upgrade it reads nothing until :meth:`SilentClient.read_until_closed` — so what it does not
read stays in the server's buffers, where the server's limits must hold it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
from collections.abc import Mapping

import orjson
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

RECEIVE_BUFFER_BYTES = 4096
READ_CHUNK = 256 * 1024


class HandshakeRefused(ConnectionError):
    """The server answered the upgrade request with something other than 101."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the upgrade was refused with HTTP {status}")
        self.status = status


class SilentClient:
    """One connection that sends text frames and reads only when told to."""

    def __init__(self, sock: socket.socket, protocol: ClientProtocol) -> None:
        self._sock = sock
        self._protocol = protocol
        self.received_bytes = 0
        self.received: collections.Counter[str] = collections.Counter()
        """Frames read by :meth:`read_until_closed`, by type (``error:<code>`` for errors)."""

    @classmethod
    async def connect(
        cls,
        url: str,
        headers: Mapping[str, str] | None = None,
        *,
        receive_buffer: int = RECEIVE_BUFFER_BYTES,
    ) -> SilentClient:
        """Open ``ws://host:port/path`` (``headers`` in the upgrade request), complete the
        handshake and stop reading."""
        uri = parse_uri(url)
        protocol = ClientProtocol(uri, max_size=None)
        request = protocol.connect()
        for name, value in (headers or {}).items():
            request.headers[name] = value
        protocol.send_request(request)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_connect(sock, (uri.host, uri.port))
            await loop.sock_sendall(sock, b"".join(protocol.data_to_send()))
            while True:
                data = await loop.sock_recv(sock, READ_CHUNK)
                if not data:
                    raise ConnectionError("the server closed the connection during the upgrade")
                protocol.receive_data(data)
                for event in protocol.events_received():
                    if isinstance(event, Response):
                        if event.status_code != 101:
                            raise HandshakeRefused(event.status_code)
                        return cls(sock, protocol)
        except BaseException:
            sock.close()
            raise

    async def send_text(self, text: str) -> None:
        """Send one text frame (waits while the kernel's send buffer is full)."""
        self._protocol.send_text(text.encode())
        data = b"".join(self._protocol.data_to_send())
        await asyncio.get_running_loop().sock_sendall(self._sock, data)

    async def read_some(self, max_bytes: int) -> int:
        """One read of at most ``max_bytes`` (waits for data): a slow reader's step. Returns
        the bytes read (0 once the connection has ended); frames go to :attr:`received`."""
        try:
            data = await asyncio.get_running_loop().sock_recv(self._sock, max_bytes)
        except ConnectionError:
            return 0
        self._feed(data)
        return len(data)

    def _feed(self, data: bytes) -> None:
        self.received_bytes += len(data)
        self._protocol.receive_data(data)
        for event in self._protocol.events_received():
            if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                self.received[_kind(bytes(event.data))] += 1

    @property
    def close_code(self) -> int | None:
        """The code of the server's close frame, once read."""
        close = self._protocol.close_rcvd
        return close.code if close is not None else None

    async def read_until_closed(self) -> int | None:
        """Read everything the server sent, to its close frame: the close code, or None when
        the connection ended without one (the server dropped it)."""
        loop = asyncio.get_running_loop()
        protocol = self._protocol
        while protocol.close_rcvd is None:
            try:
                data = await loop.sock_recv(self._sock, READ_CHUNK)
            except ConnectionError:
                return None
            if not data:
                return None
            self._feed(data)
        return protocol.close_rcvd.code

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()


def _kind(payload: bytes) -> str:
    frame = orjson.loads(payload)
    kind = str(frame.get("type"))
    return f"error:{frame.get('code')}" if kind == "error" else kind
