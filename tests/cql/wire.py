"""A bare native-protocol client for tests that must send what no driver would.

It speaks v4 over a plain socket: build a frame, send it (whole or in pieces), read whole
reply frames. Bodies are built with the driver's own encoders where a valid request is
wanted, and by hand where the point is a malformed one.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from types import TracebackType
from typing import Self

HEADER = struct.Struct(">BBhBi")
OP_ERROR = 0x00
OP_STARTUP = 0x01
OP_READY = 0x02
OP_AUTHENTICATE = 0x03
OP_OPTIONS = 0x05
OP_SUPPORTED = 0x06
OP_QUERY = 0x07
OP_RESULT = 0x08
OP_AUTH_RESPONSE = 0x0F
OP_AUTH_SUCCESS = 0x10


@dataclass(frozen=True)
class Reply:
    flags: int
    stream: int
    opcode: int
    body: bytes

    @property
    def error_code(self) -> int:
        assert self.opcode == OP_ERROR, f"not an error: opcode 0x{self.opcode:02x}"
        return int(struct.unpack_from(">i", self.body)[0])

    @property
    def error_message(self) -> str:
        assert self.opcode == OP_ERROR
        (n,) = struct.unpack_from(">H", self.body, 4)
        return self.body[6 : 6 + n].decode()


def frame(opcode: int, body: bytes, stream: int = 0, flags: int = 0, version: int = 4) -> bytes:
    return HEADER.pack(version, flags, stream, opcode, len(body)) + body


def string(value: str) -> bytes:
    raw = value.encode()
    return struct.pack(">H", len(raw)) + raw


def long_string(value: str) -> bytes:
    raw = value.encode()
    return struct.pack(">i", len(raw)) + raw


def string_map(values: dict[str, str]) -> bytes:
    return struct.pack(">H", len(values)) + b"".join(
        string(k) + string(v) for k, v in values.items()
    )


def query_body(cql: str, consistency: int = 1) -> bytes:
    """A QUERY body with no values and no flags."""
    return long_string(cql) + struct.pack(">HB", consistency, 0)


class WireClient:
    """One raw connection. ``startup()`` negotiates v4 (optionally LZ4) and returns the reply."""

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self._buffer = b""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, opcode: int, body: bytes, stream: int = 0, flags: int = 0) -> Reply:
        self.send(frame(opcode, body, stream, flags))
        return self.read()

    def startup(self, compression: str | None = None) -> Reply:
        options = {"CQL_VERSION": "3.0.0"}
        if compression:
            options["COMPRESSION"] = compression
        return self.request(OP_STARTUP, string_map(options))

    def read(self) -> Reply:
        """The next whole reply frame; AssertionError if the server closed the connection."""
        while True:
            if len(self._buffer) >= HEADER.size:
                _version, flags, stream, opcode, length = HEADER.unpack_from(self._buffer)
                end = HEADER.size + length
                if len(self._buffer) >= end:
                    body = self._buffer[HEADER.size : end]
                    self._buffer = self._buffer[end:]
                    return Reply(flags, stream, opcode, body)
            chunk = self.sock.recv(65536)
            assert chunk, "the server closed the connection"
            self._buffer += chunk

    def closed_by_server(self) -> bool:
        """Whether the server closed (or reset) the connection, reading until it does."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self._buffer += chunk
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
