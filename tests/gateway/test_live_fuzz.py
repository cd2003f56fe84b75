"""Random frames over a real connection: errors for the sender, service as usual for others.

Each example opens an authenticated connection, sends a few dozen random frames — JSON values
of every kind, frame-shaped objects with wrong types and unknown fields, random text, random
bytes — and checks that everything that comes back is a known frame, that every ``error`` has
a documented client-mistake code (never ``internal_error``), that the connection is still open
and answers a ``ping``. Afterwards another client still gets a send acknowledged.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat.gateway.codes import ErrorCode
from chat.gateway.server_frames import SERVER_FRAMES
from tests.api_client import Api
from tests.gateway.live import client, users_and_event

CLIENT_TYPES = [
    "hello",
    "ping",
    "pong",
    "subscribe",
    "unsubscribe",
    "send",
    "edit",
    "delete",
    "react",
    "unreact",
    "typing",
    "read",
    "history",
]
SERVER_TYPES = set(SERVER_FRAMES)
MISTAKES = {code.value for code in ErrorCode} - {"internal_error"}
"""Every code but ``internal_error`` is a legitimate answer to a random frame."""

_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=30)  # no lone surrogates
_json: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what orjson can encode
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=12,
)
_fields = st.sampled_from(
    [
        *("id", "event_id", "since", "client_msg_id", "text", "message_id", "emoji", "state"),
        *("before", "after", "limit", "attachments", "metadata", "reply_to", "token", "bogus"),
    ]
)
_framelike = st.builds(
    lambda kind, fields: {"type": kind, **fields},
    st.sampled_from([*CLIENT_TYPES, "nope", ""]),
    st.dictionaries(_fields, _json | st.integers(min_value=1, max_value=2**63 - 1), max_size=5),
)
_inputs = st.one_of(
    _framelike.map(lambda f: orjson.dumps(f, option=orjson.OPT_NON_STR_KEYS).decode()),
    _json.map(lambda v: orjson.dumps(v).decode()),
    _text,
    st.binary(max_size=64),
)


NO_SUCH_EVENT = 2**62
"""An event nobody takes part in: asking about it is answered by the connection's worker."""


@pytest.fixture(scope="module")
async def fuzzer_id(api: Api) -> int:
    """One user for every example (authentication is not what is being fuzzed)."""
    user: dict[str, Any] = await api.create_user()
    return int(user["id"])


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(frames=st.lists(_inputs, min_size=40, max_size=80))
async def test_random_frames_get_error_answers_and_never_break_the_gateway(
    base_url: str, api: Api, fuzzer_id: int, frames: list[str | bytes]
) -> None:
    async with client(base_url, api, fuzzer_id) as fuzzer:
        for frame in frames:
            await fuzzer.ws.send(frame)
        pong = await fuzzer.request(type="ping")  # still open, still answering
        assert pong["type"] == "pong"
        # Commands run in order on one worker: once this is answered, every earlier one was.
        sentinel = await fuzzer.request(type="history", event_id=NO_SUCH_EVENT)
        assert sentinel["code"] == "not_found"
        for received in fuzzer.frames:
            assert received["type"] in SERVER_TYPES, received
            if received["type"] == "error":
                assert received["code"] in MISTAKES, received


async def test_after_the_fuzzing_another_client_still_gets_its_send_acked(
    base_url: str, api: Api
) -> None:
    (ada, bo), event_id = await users_and_event(api, 2)
    async with client(base_url, api, ada) as a, client(base_url, api, bo) as b:
        await b.subscribe(event_id)
        ack = await a.send_message(event_id, "still serving")
        got = await b.expect(lambda f: f["type"] == "message")
        assert got["message"]["message_id"] == ack["message_id"]
