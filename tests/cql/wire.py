"""A bare native-protocol client for tests that must send what no driver would.

It speaks v4 over a plain socket: build a frame, send it (whole or in pieces), read whole
reply frames. Bodies are built with the driver's own encoders where a valid request is
wanted, and by hand where the point is a malformed one.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from chat.embedded.cql.frames import (
    OP_AUTH_RESPONSE,
    OP_AUTH_SUCCESS,
    OP_AUTHENTICATE,
    OP_BATCH,
    OP_ERROR,
    OP_EXECUTE,
    OP_OPTIONS,
    OP_PREPARE,
    OP_QUERY,
    OP_READY,
    OP_RESULT,
    OP_STARTUP,
    OP_SUPPORTED,
    RESULT_PREPARED,
)

# The protocol's opcodes come from the codec; tests read them from here.
__all__ = [
    "OP_AUTHENTICATE",
    "OP_AUTH_RESPONSE",
    "OP_AUTH_SUCCESS",
    "OP_BATCH",
    "OP_ERROR",
    "OP_EXECUTE",
    "OP_OPTIONS",
    "OP_QUERY",
    "OP_READY",
    "OP_RESULT",
    "OP_SUPPORTED",
    "Reply",
    "WireClient",
]

HEADER = struct.Struct(">BBhBi")


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


NULL = object()
UNSET = object()


def query_body(cql: str, consistency: int = 1) -> bytes:
    """A QUERY body with no values and no flags."""
    return long_string(cql) + struct.pack(">HB", consistency, 0)


def value(raw: object) -> bytes:
    """One [value]: bytes as they are, or :data:`NULL` (-1) / :data:`UNSET` (-2)."""
    if raw is NULL:
        return struct.pack(">i", -1)
    if raw is UNSET:
        return struct.pack(">i", -2)
    assert isinstance(raw, bytes)
    return struct.pack(">i", len(raw)) + raw


def execute_body(statement_id: bytes, values: Sequence[object], consistency: int = 1) -> bytes:
    """An EXECUTE body binding ``values`` exactly as given, whatever the statement's types."""
    head = struct.pack(">H", len(statement_id)) + statement_id
    params = struct.pack(">HBH", consistency, 0x01, len(values))
    return head + params + b"".join(value(v) for v in values)


def batch_body(
    statement_id: bytes, rows: Sequence[Sequence[object]], consistency: int = 1
) -> bytes:
    """An UNLOGGED BATCH body of one prepared statement, one item per row of values."""
    items = b"".join(
        struct.pack(">BH", 1, len(statement_id))
        + statement_id
        + struct.pack(">H", len(row))
        + b"".join(value(v) for v in row)
        for row in rows
    )
    return struct.pack(">BH", 1, len(rows)) + items + struct.pack(">HB", consistency, 0)


def single_bigint(reply: Reply) -> int:
    """The one bigint of a one-row, one-column Rows result (``SELECT COUNT(*)``)."""
    assert reply.opcode == OP_RESULT, reply
    kind, flags, _columns = struct.unpack_from(">iii", reply.body)
    assert kind == 0x0002, "expected a Rows result"
    assert flags & 0x0001, "expected a global table spec"
    pos = 12
    for _ in range(3):  # keyspace, table, column name
        (n,) = struct.unpack_from(">H", reply.body, pos)
        pos += 2 + n
    type_id, rows, size = struct.unpack_from(">Hii", reply.body, pos)
    assert (type_id, rows, size) == (0x0002, 1, 8)
    return int(struct.unpack_from(">q", reply.body, pos + 10)[0])


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

    def prepare(self, cql: str) -> bytes:
        """PREPARE ``cql``; the statement id."""
        reply = self.request(OP_PREPARE, long_string(cql))
        assert reply.opcode == OP_RESULT, reply
        kind, n = struct.unpack_from(">iH", reply.body)
        assert kind == RESULT_PREPARED
        return reply.body[6 : 6 + n]

    def execute(self, statement_id: bytes, values: Sequence[object], stream: int = 0) -> Reply:
        return self.request(OP_EXECUTE, execute_body(statement_id, values), stream=stream)

    def read(self) -> Reply:
        """The next whole reply frame; AssertionError if the server closed the connection."""
        reply = self.read_or_closed()
        assert reply is not None, "the server closed the connection"
        return reply

    def read_or_closed(self) -> Reply | None:
        """The next whole reply frame, or None when the server closed the connection first."""
        while True:
            if len(self._buffer) >= HEADER.size:
                _version, flags, stream, opcode, length = HEADER.unpack_from(self._buffer)
                end = HEADER.size + length
                if len(self._buffer) >= end:
                    body = self._buffer[HEADER.size : end]
                    self._buffer = self._buffer[end:]
                    return Reply(flags, stream, opcode, body)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return None
            if not chunk:
                return None
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
