"""Framing: frames cut from a byte stream, protocol versions, LZ4 compression.

Requests are encoded by ``cassandra.protocol`` exactly as the driver sends them and fed to
our decoder; our responses are decoded by the driver's ``ProtocolHandler``. No sockets.
"""

from __future__ import annotations

import struct

import pytest
from cassandra import ConsistencyLevel, cqltypes
from cassandra.protocol import (
    OptionsMessage,
    ProtocolHandler,
    QueryMessage,
)

from chat.embedded.cql import frames, request_bodies, responses
from chat.embedded.cql.errors import ProtocolError
from chat.embedded.cql.results import ColumnSpec, Rows
from tests.cql.driver_codec import FEATURES, driver_decode, driver_request, single_frame


def test_decoder_yields_frames_split_at_every_byte_boundary() -> None:
    data = driver_request(OptionsMessage(), stream=3) + driver_request(OptionsMessage(), stream=4)
    for cut in range(len(data) + 1):
        decoder = frames.FrameDecoder()
        got = decoder.feed(data[:cut]) + decoder.feed(data[cut:])
        assert [(f.stream, f.opcode) for f in got if isinstance(f, frames.Frame)] == [
            (3, frames.OP_OPTIONS),
            (4, frames.OP_OPTIONS),
        ]


def test_decoder_reassembles_a_large_frame_from_many_small_reads() -> None:
    query = "SELECT * FROM t WHERE k = '" + "x" * 100_000 + "'"
    data = driver_request(QueryMessage(query, ConsistencyLevel.ONE), stream=9)
    decoder = frames.FrameDecoder()
    got: list[frames.Frame | frames.FrameTooLarge] = []
    for start in range(0, len(data), 1000):
        got += decoder.feed(data[start : start + 1000])
    assert len(got) == 1
    assert isinstance(got[0], frames.Frame)
    assert request_bodies.decode_query(got[0]).query == query


def test_decoder_skips_the_body_of_a_frame_over_the_limit_and_resumes_after_it() -> None:
    big = driver_request(QueryMessage("SELECT * FROM t WHERE k = '" + "x" * 5000 + "'", 1), 2)
    after = driver_request(OptionsMessage(), stream=3)
    data = big + after
    for cut in (5, 9, 100, len(big) - 1, len(big), len(big) + 4):
        decoder = frames.FrameDecoder(max_frame=1000)
        got = decoder.feed(data[:cut]) + decoder.feed(data[cut:])
        assert got[0] == frames.FrameTooLarge(4, 2, len(big) - 9)
        assert isinstance(got[1], frames.Frame)
        assert (got[1].stream, got[1].opcode) == (3, frames.OP_OPTIONS)
        assert not decoder.pending


def test_decoder_rejects_negative_body_length() -> None:
    with pytest.raises(ProtocolError, match="invalid frame body length"):
        frames.FrameDecoder().feed(struct.pack(">BBhBi", 4, 0, 1, 5, -1))


@pytest.mark.parametrize("version", [1, 2, 5, 6])
def test_unsupported_versions_are_refused_with_the_phrase_the_driver_downgrades_on(
    version: int,
) -> None:
    frame = single_frame(struct.pack(">BBhBi", version, 0, 7, frames.OP_OPTIONS, 0))
    with pytest.raises(ProtocolError) as info:
        frames.check_version(frame)
    reply = responses.encode_cql_error(frame.stream, info.value)
    assert reply[0] == 0x84
    message = driver_decode(reply)
    assert message.stream_id_for_test == 7
    assert "unsupported protocol version" in message.message


@pytest.mark.parametrize("version", [3, 4])
def test_versions_three_and_four_are_accepted(version: int) -> None:
    frames.check_version(single_frame(driver_request(OptionsMessage(), version=version)))


INT = cqltypes.Int32Type
TEXT = cqltypes.UTF8Type
COLUMNS = [ColumnSpec("ks", "t", "k", INT), ColumnSpec("ks", "t", "v", TEXT)]


def test_lz4_request_bodies_are_inflated_like_the_driver_deflates_them() -> None:
    from cassandra.connection import locally_supported_compressions

    compressor, _ = locally_supported_compressions["lz4"]
    message = QueryMessage("SELECT * FROM t", ConsistencyLevel.ONE)
    data = ProtocolHandler.encode_message(message, 3, 4, compressor, False, FEATURES)
    frame = single_frame(data)
    assert frame.flags & frames.FLAG_COMPRESSED
    assert request_bodies.decode_query(frames.decompress(frame)).query == "SELECT * FROM t"


def test_large_responses_are_lz4_compressed_and_small_ones_left_alone() -> None:
    from cassandra.connection import locally_supported_compressions

    _, decompressor = locally_supported_compressions["lz4"]
    rows = Rows(COLUMNS, [[INT.serialize(i, 4), b"v" * 100] for i in range(100)])
    data = frames.compress(responses.encode_rows(3, rows))
    _, flags, stream, opcode, _ = struct.unpack_from(">BBhBi", data)
    assert flags & frames.FLAG_COMPRESSED
    message = ProtocolHandler.decode_message(
        4, FEATURES, {}, stream, flags, opcode, data[9:], decompressor, None
    )
    assert len(message.parsed_rows) == 100
    assert frames.compress(responses.encode_void(1)) == responses.encode_void(1)
