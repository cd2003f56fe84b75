"""A minimal WebSocket client for the load generators: frames in by a plain call, no tasks.

The generators share the machine's cores with the gateway they measure, so every microsecond
they spend per frame is taken from the system under test. ``websockets``' asyncio client costs
a generator-based stream reader, an assembler queue and a task wake-up per received frame, and
each message fans out to five connections; this client parses frames in ``data_received`` and
hands each complete text frame's payload (``bytes``, which ``orjson.loads`` takes as is) to a
callback, in arrival order.

It speaks exactly what the bench needs of RFC 6455 and checks what it receives: the upgrade
(``Sec-WebSocket-Accept`` verified), unmasked server frames with FIN / continuation, close
(echoed; the code is kept), ping (answered with pong). Client frames are masked with a random
key per frame (``websockets``' C ``apply_mask``). A protocol violation by the server closes
the connection with 1002 and is reported as that close code.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
from collections.abc import Callable, Mapping
from typing import cast
from urllib.parse import urlsplit

from websockets.speedups import apply_mask

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
MAX_HEADER_BYTES = 65536


class HandshakeError(ConnectionError):
    """The server did not accept the upgrade."""


class ClosedError(ConnectionError):
    """A send on a connection that is closing or closed."""


def _frame(opcode: int, payload: bytes) -> bytes:
    """A final, masked client frame (RFC 6455 section 5.2)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    key = random.getrandbits(32).to_bytes(4, "big")
    return head + key + apply_mask(payload, key)


class WsClient(asyncio.Protocol):
    """One client connection; :meth:`listen` says where its frames go.

    Frames can arrive with the upgrade response itself, before :meth:`connect` has returned:
    they are kept until :meth:`listen` and then delivered first, in order.
    """

    def __init__(self, host: str, path: str, headers: Mapping[str, str] | None) -> None:
        self._key = base64.b64encode(os.urandom(16))
        self._request = self._upgrade_request(host, path, headers or {})
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._handshake_done = False
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self.close_sent = False
        self._early: list[bytes] = []
        self._on_text: Callable[[bytes], None] = self._early.append
        self._on_close: Callable[[], None] | None = None
        self._lost = False

    def listen(self, on_text: Callable[[bytes], None], on_close: Callable[[], None]) -> None:
        """Deliver each text frame's payload to ``on_text`` (those that came before this call
        first) and call ``on_close`` once the connection has ended (now, if it already has)."""
        early, self._early = self._early, []
        self._on_text = on_text
        self._on_close = on_close
        for payload in early:
            on_text(payload)
        if self._lost:
            on_close()

    @classmethod
    async def connect(cls, url: str, headers: Mapping[str, str] | None = None) -> WsClient:
        """Open ``ws://host:port/path`` and complete the upgrade (bound it with a timeout)."""
        parts = urlsplit(url)
        if parts.scheme != "ws" or parts.hostname is None:
            raise ValueError(f"only ws:// URLs are supported: {url}")
        port = parts.port or 80
        host = f"{parts.hostname}:{port}"
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        loop = asyncio.get_running_loop()
        _, client = await loop.create_connection(
            lambda: cls(host, path, headers), parts.hostname, port
        )
        await client.opened
        return client

    @staticmethod
    def _upgrade_request(host: str, path: str, headers: Mapping[str, str]) -> bytes:
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 13",
        ]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n").encode() + b"Sec-WebSocket-Key: %s\r\n\r\n"

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(self._request % self._key)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if not self._handshake_done and not self._handshake(buffer):
            return
        pos = 0
        end = len(buffer)
        while end - pos >= 2 and self.close_code is None:
            b0 = buffer[pos]
            b1 = buffer[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if end - pos < 4:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
                head = 10
            if b1 & 0x80 or b0 & 0x70:
                self._fail("a masked server frame, or reserved bits set")
                return
            if end - pos < head + length:
                break
            payload = bytes(buffer[pos + head : pos + head + length])
            pos += head + length
            self._frame(b0 & 0x80 != 0, b0 & 0x0F, payload)
        del buffer[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.close_code is None:
            self.close_code = 1006
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection lost during the upgrade: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)
        self._lost = True
        if self._on_close is not None:
            self._on_close()

    # ------------------------------------------------------------------ receiving

    def _handshake(self, buffer: bytearray) -> bool:
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEADER_BYTES:
                self._abort(HandshakeError("the upgrade response is too long"))
            return False
        head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
        del buffer[: end + 4]
        status = head[0].split(" ", 2)
        fields = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        accept = base64.b64encode(hashlib.sha1(self._key + GUID).digest()).decode()
        if len(status) < 2 or status[1] != "101":
            self._abort(HandshakeError(f"the server answered {head[0]!r}"))
            return False
        if fields.get("sec-websocket-accept") != accept:
            self._abort(HandshakeError("wrong Sec-WebSocket-Accept"))
            return False
        self._handshake_done = True
        self.opened.set_result(None)
        return True

    def _frame(self, fin: bool, opcode: int, payload: bytes) -> None:
        if opcode >= OP_CLOSE:
            if not fin or len(payload) > 125:
                self._fail("a fragmented or oversized control frame")
            elif opcode == OP_CLOSE:
                self._closing(payload)
            elif opcode == OP_PING:
                self._write(OP_PONG, payload)
            return  # pongs: this client sends no pings
        if opcode == OP_CONT:
            if not self._fragments:
                self._fail("a continuation frame without a message")
                return
            self._fragments.append(payload)
            if fin:
                opcode, payload = self._fragment_opcode, b"".join(self._fragments)
                self._fragments = []
                self._deliver(opcode, payload)
            return
        if self._fragments:
            self._fail("a new message inside a fragmented one")
        elif fin:
            self._deliver(opcode, payload)
        else:
            self._fragment_opcode, self._fragments = opcode, [payload]

    def _deliver(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_TEXT:
            self._on_text(payload)
        elif opcode != OP_BINARY:
            self._fail(f"unknown opcode {opcode}")

    def _closing(self, payload: bytes) -> None:
        code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
        self.close_code = code
        if not self.close_sent:
            self._write(OP_CLOSE, payload[:2])
            self.close_sent = True
        if self._transport is not None:
            self._transport.close()

    def _fail(self, why: str) -> None:
        """A protocol violation by the server: close 1002 and drop the connection."""
        self.close_code = 1002
        if not self.close_sent:
            self._write(OP_CLOSE, (1002).to_bytes(2, "big") + why[:100].encode())
            self.close_sent = True
        if self._transport is not None:
            self._transport.close()

    def _abort(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        if self._transport is not None:
            self._transport.abort()

    # ------------------------------------------------------------------ sending

    def _write(self, opcode: int, payload: bytes) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(_frame(opcode, payload))

    def send(self, text: str) -> None:
        """Send a text frame (buffered by the transport: this never waits)."""
        if self.close_sent or self.close_code is not None or self._transport is None:
            raise ClosedError(f"the connection is closed ({self.close_code})")
        self._transport.write(_frame(OP_TEXT, text.encode()))

    async def close(self, code: int = 1000) -> None:
        """Send a close frame and wait for the server's close (or the connection's end)."""
        if not self.close_sent and self.close_code is None:
            self._write(OP_CLOSE, code.to_bytes(2, "big"))
            self.close_sent = True
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), 5)
        except TimeoutError:
            if self._transport is not None:
                self._transport.abort()
