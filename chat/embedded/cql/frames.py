"""The CQL native protocol (v3/v4) framing: headers, frames cut from a byte stream, compression.

No I/O happens here, in the manner of ``websockets.frames``: the server feeds what the socket
delivered to a :class:`FrameDecoder` and gets complete :class:`Frame` objects; their bodies are
read by :mod:`request_bodies` and the answers built by :mod:`responses`. This module also holds
the protocol's vocabulary both share (opcodes, flags, result kinds, header layout). That keeps
the codec testable by feeding bytes, and keeps the per-request cost visible: it sits on the
hot path of every INSERT.

Compression: LZ4 is offered when the ``lz4`` package is importable — exactly when the driver
itself can use it, so a default ``Cluster`` neither logs "no compression in common" nor finds
the server unable to read its frames. Requests are decompressed when flagged; responses are
compressed only above :data:`COMPRESS_MIN_BYTES`, since the per-frame flag lets small answers
(Void, most of the write path) go out as they are. Snappy is not offered; a client that asks
for an unoffered algorithm gets a ProtocolError naming it.
"""

from __future__ import annotations

import importlib
import struct
from typing import Any, NamedTuple

from chat.embedded.cql.errors import (
    InvalidRequest,
    ProtocolError,
)

_lz4: Any
try:
    _lz4 = importlib.import_module("lz4.block")
except ImportError:  # pragma: no cover - lz4 comes with the dev extras and cqlsh
    _lz4 = None

# Opcodes (native protocol spec, section 2.4).
OP_ERROR = 0x00
OP_STARTUP = 0x01
OP_READY = 0x02
OP_AUTHENTICATE = 0x03
OP_OPTIONS = 0x05
OP_SUPPORTED = 0x06
OP_QUERY = 0x07
OP_RESULT = 0x08
OP_PREPARE = 0x09
OP_EXECUTE = 0x0A
OP_REGISTER = 0x0B
OP_EVENT = 0x0C
OP_BATCH = 0x0D
OP_AUTH_CHALLENGE = 0x0E
OP_AUTH_RESPONSE = 0x0F
OP_AUTH_SUCCESS = 0x10

PASSWORD_AUTHENTICATOR = "org.apache.cassandra.auth.PasswordAuthenticator"

# Frame header flags.
FLAG_COMPRESSED = 0x01
FLAG_TRACING = 0x02
FLAG_CUSTOM_PAYLOAD = 0x04
FLAG_WARNING = 0x08

# Query parameter flags (one byte in v3/v4).
QF_VALUES = 0x01
QF_SKIP_METADATA = 0x02
QF_PAGE_SIZE = 0x04
QF_PAGING_STATE = 0x08
QF_SERIAL_CONSISTENCY = 0x10
QF_TIMESTAMP = 0x20
QF_NAMES_FOR_VALUES = 0x40

# RESULT kinds.
RESULT_VOID = 0x0001
RESULT_ROWS = 0x0002
RESULT_SET_KEYSPACE = 0x0003
RESULT_PREPARED = 0x0004
RESULT_SCHEMA_CHANGE = 0x0005

# Rows metadata flags.
MF_GLOBAL_TABLES_SPEC = 0x0001
MF_HAS_MORE_PAGES = 0x0002
MF_NO_METADATA = 0x0004

# Error codes that carry extra fields and have no class in errors.py (never produced by the
# engine today, but encodable so that the server could report them with the right layout).
ERR_UNAVAILABLE = 0x1000
ERR_WRITE_TIMEOUT = 0x1100
ERR_READ_TIMEOUT = 0x1200

CONSISTENCY_ONE = 0x0001

MIN_VERSION = 3
MAX_VERSION = 4
HEADER_SIZE = 9
MAX_FRAME_BYTES = 16 * 1024 * 1024
"""The largest request body accepted, compressed or not (Cassandra 4's default)."""

CQL_VERSION = "3.4.5"
COMPRESSIONS: tuple[str, ...] = ("lz4",) if _lz4 is not None else ()
COMPRESS_MIN_BYTES = 2048

HEADER = struct.Struct(">BBhBi")
"""A frame header: version (with the direction bit), flags, stream, opcode, body length."""
INT = struct.Struct(">i")
SHORT = struct.Struct(">H")
NULL_VALUE = b"\xff\xff\xff\xff"
"""A [bytes] or [value] of length -1: null."""


class Frame(NamedTuple):
    """One complete request frame; ``version`` is without the direction bit."""

    version: int
    flags: int
    stream: int
    opcode: int
    body: bytes


class FrameTooLarge(NamedTuple):
    """A request whose header announced a body over :data:`MAX_FRAME_BYTES`.

    Its body is skipped as it arrives (never buffered), and only once it is all skipped does
    the decoder yield this, so that the client has finished sending it when the server answers
    the stream with an Invalid error (as Cassandra does); the connection stays usable.
    """

    version: int
    stream: int
    length: int


class FrameDecoder:
    """Accumulates received bytes and yields complete frames.

    Bytes that belong to an incomplete frame are kept as a list of chunks and joined only once
    the frame is complete, so a large frame arriving in many reads is not copied repeatedly.
    What it holds is bounded by the largest frame it accepts, ``max_frame`` bytes of body.
    """

    __slots__ = ("_buffered", "_chunks", "_discard", "_needed", "_refused", "max_frame")

    def __init__(self, max_frame: int = MAX_FRAME_BYTES) -> None:
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._needed = HEADER_SIZE
        self._discard = 0  # body bytes of a refused frame still to skip
        self._refused: FrameTooLarge | None = None  # yielded once its body is skipped
        self.max_frame = max_frame

    @property
    def pending(self) -> bool:
        """Whether part of a frame has arrived and the rest has not (header or body)."""
        return self._buffered > 0 or self._discard > 0

    def feed(self, data: bytes) -> list[Frame | FrameTooLarge]:
        """Add received bytes; return the frames they complete (possibly none).

        Raises ProtocolError for a frame whose header announces a negative body length; the
        connection cannot be resynchronised after that and should be closed.
        """
        frames: list[Frame | FrameTooLarge] = []
        if self._discard:
            if len(data) < self._discard:
                self._discard -= len(data)
                return frames
            data = data[self._discard :]
            self._discard = 0
            assert self._refused is not None
            frames.append(self._refused)
            self._refused = None
        if self._chunks:
            self._chunks.append(data)
            self._buffered += len(data)
            if self._buffered < self._needed:
                return frames
            data = b"".join(self._chunks)
            self._chunks.clear()
        pos = 0
        end = len(data)
        unpack = HEADER.unpack_from
        while end - pos >= HEADER_SIZE:
            version, flags, stream, opcode, length = unpack(data, pos)
            if length < 0:
                raise ProtocolError(f"invalid frame body length {length}")
            if length > self.max_frame:
                refused = FrameTooLarge(version & 0x7F, stream, length)
                skip = pos + HEADER_SIZE + length
                if skip > end:
                    self._discard = skip - end
                    self._refused = refused
                    pos = end
                    break
                frames.append(refused)
                pos = skip
                continue
            body_end = pos + HEADER_SIZE + length
            if body_end > end:
                self._needed = body_end - pos
                break
            frames.append(
                Frame(version & 0x7F, flags, stream, opcode, data[pos + HEADER_SIZE : body_end])
            )
            pos = body_end
        else:
            self._needed = HEADER_SIZE
        if pos < end:
            rest = data[pos:] if pos else data
            self._chunks.append(rest)
            self._buffered = len(rest)
        else:
            self._buffered = 0
            self._needed = HEADER_SIZE
        return frames


def too_large_message(length: int, limit: int = MAX_FRAME_BYTES) -> str:
    """ScyllaDB's answer to an oversized request (an Invalid error on that stream)."""
    return f"request size too large (frame size {length + HEADER_SIZE}; allowed {limit})"


def check_version(frame: Frame) -> None:
    """Refuse frames in a protocol version this server does not speak.

    The driver starts at v5 and retries one version lower when the ERROR message contains
    "unsupported protocol version"; any other wording makes it give up.
    """
    if not MIN_VERSION <= frame.version <= MAX_VERSION:
        raise ProtocolError(
            f"Invalid or unsupported protocol version ({frame.version}); "
            f"supported versions are {MIN_VERSION}/v{MIN_VERSION}-{MAX_VERSION}/v{MAX_VERSION}"
        )


def decompress(frame: Frame, limit: int = MAX_FRAME_BYTES) -> Frame:
    """The frame with its LZ4 body inflated (big-endian length prefix, then an LZ4 block).

    The length prefix is what the client claims; the buffer for it is allocated up front, so
    a claim over ``limit`` (or below zero) is refused before anything is allocated.
    """
    if _lz4 is None:
        raise ProtocolError("compressed frame received but no compression was negotiated")
    body = frame.body
    if len(body) < 4:
        raise ProtocolError("compressed frame body shorter than its length prefix")
    (claimed,) = INT.unpack_from(body, 0)
    if claimed < 0:
        raise ProtocolError(f"LZ4 frame body claims a negative length ({claimed})")
    if claimed > limit:
        # The same answer as for an uncompressed request that size.
        raise InvalidRequest(too_large_message(claimed, limit))
    try:
        inflated: bytes = _lz4.decompress(body[4:], uncompressed_size=claimed)
    except Exception as exc:
        raise ProtocolError(f"cannot decompress LZ4 frame body: {exc}") from exc
    return frame._replace(body=inflated, flags=frame.flags & ~FLAG_COMPRESSED)


def compress(data: bytes) -> bytes:
    """An encoded response frame with its body LZ4-compressed, if it is worth it."""
    if _lz4 is None or len(data) < COMPRESS_MIN_BYTES + HEADER_SIZE:
        return data
    version, flags, stream, opcode, length = HEADER.unpack_from(data)
    packed: bytes = _lz4.compress(data[HEADER_SIZE:], store_size=False)
    body = INT.pack(length) + packed
    return HEADER.pack(version, flags | FLAG_COMPRESSED, stream, opcode, len(body)) + body
