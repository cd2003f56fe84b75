"""The gateway's own framing of server text frames is byte-for-byte websockets' framing."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode

from chat.gateway.transport import text_frame_header


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 1000, 65535, 65536, 70_000])
def test_text_frame_header_matches_websockets(length: int) -> None:
    payload = b"a" * length
    expected = Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])
    assert text_frame_header(length) + payload == expected
