"""Requests encoded and responses decoded by the driver's own protocol handler.

The codec tests check ours against someone else's implementation: requests go in exactly
as ``cassandra.protocol`` puts them on the wire, and our responses are read back by it.
"""

from __future__ import annotations

import struct
from typing import Any

from cassandra.protocol import (
    ProtocolHandler,
)
from cassandra.protocol_features import ProtocolFeatures

from chat.embedded.cql import frames

FEATURES = ProtocolFeatures()


def driver_request(message: Any, stream: int = 1, version: int = 4) -> bytes:
    """Encode a request exactly as the driver would put it on the wire."""
    encoded: bytes = ProtocolHandler.encode_message(message, stream, version, None, False, FEATURES)
    return encoded


def single_frame(data: bytes) -> frames.Frame:
    decoded = frames.FrameDecoder().feed(data)
    assert len(decoded) == 1
    assert isinstance(decoded[0], frames.Frame)
    return decoded[0]


def driver_decode(data: bytes, result_metadata: Any = None) -> Any:
    """Decode one response frame with the driver's protocol handler; returns the message."""
    version, flags, stream, opcode, length = struct.unpack_from(">BBhBi", data)
    assert version & 0x80, "responses carry the direction bit"
    assert length == len(data) - 9
    message = ProtocolHandler.decode_message(
        version & 0x7F, FEATURES, {}, stream, flags, opcode, data[9:], None, result_metadata
    )
    message.stream_id_for_test = stream
    return message
