"""The session state machine, driven by feeding frames and a fake clock: no sockets, no sleeps."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat.config import Settings
from chat.domain.messages import SendAck, encode_cursor, message_id_at, new_message_id
from chat.errors import Forbidden, NotFound, Unauthorized
from chat.gateway.client_frames import CLIENT_FRAMES
from chat.gateway.codes import CloseCode
from chat.gateway.limits import Limits
from chat.gateway.protocol import (
    Authenticate,
    Command,
    Delete,
    Edit,
    History,
    InvalidState,
    React,
    Read,
    Send,
    Session,
    State,
    Subscribe,
    Typing,
    Unreact,
    Unsubscribe,
)

LIMITS = Limits.from_settings(
    Settings(
        ws_max_frame_bytes=4096,
        ws_send_rate_per_second=2.0,
        ws_send_burst=3,
        ws_max_subscriptions=2,
        ws_max_text_chars=100,
        ws_heartbeat_ms=1000,
        ws_idle_timeout_ms=3000,
        ws_auth_timeout_ms=500,
    )
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _new_session(clock: FakeClock | None = None) -> tuple[Session, FakeClock]:
    clock = clock or FakeClock()
    return Session(LIMITS, clock=clock), clock


def _feed(session: Session, frame: dict[str, Any]) -> None:
    session.receive_text(orjson.dumps(frame).decode())


def _sent(session: Session) -> list[dict[str, Any]]:
    return [orjson.loads(f) for f in session.frames_to_send()]


def _open_session(user_id: int = 3) -> tuple[Session, FakeClock]:
    session, clock = _new_session()
    _feed(session, {"type": "hello", "token": "tok", "id": "h"})
    [cmd] = session.commands()
    assert isinstance(cmd, Authenticate)
    session.authenticated(cmd, user_id, "sess-1")
    session.frames_to_send()
    return session, clock


def _state_of(session: Session) -> State:
    # A function call, so that mypy does not carry one assertion's narrowing to the next.
    return session.state


def _only_command(session: Session) -> Command:
    commands = session.commands()
    assert len(commands) == 1, commands
    return commands[0]


def _send_frame(n: int = 1, **fields: Any) -> dict[str, Any]:
    return {"type": "send", "id": n, "event_id": 7, "client_msg_id": f"c{n}", "text": "hi"} | (
        fields
    )


# ------------------------------------------------------------------ authentication


def test_hello_asks_the_service_to_authenticate_and_welcome_answers_with_the_ref() -> None:
    session, _ = _new_session()
    _feed(session, {"type": "hello", "token": "tok", "id": "h1"})
    cmd = _only_command(session)
    assert cmd == Authenticate("tok", "h1")
    assert _state_of(session) is State.AWAITING_AUTH
    session.authenticated(cmd, 42, "sess-9")
    [welcome] = _sent(session)
    assert welcome["type"] == "welcome"
    assert (welcome["user_id"], welcome["session_id"], welcome["ref"]) == (42, "sess-9", "h1")
    assert welcome["heartbeat_ms"] == 1000
    assert welcome["limits"]["max_subscriptions"] == 2
    assert _state_of(session) is State.OPEN


def test_header_token_authenticates_without_a_hello_frame() -> None:
    session, _ = _new_session()
    session.use_header_token("tok")
    cmd = _only_command(session)
    assert cmd == Authenticate("tok")
    session.authenticated(cmd, 1, "s")
    assert "ref" not in _sent(session)[0]


def test_a_rejected_token_gets_an_error_and_closes_with_4401() -> None:
    session, _ = _new_session()
    _feed(session, {"type": "hello", "token": "bad", "id": 1})
    session.failed(_only_command(session), Unauthorized("the access token has expired"))
    [error] = _sent(session)
    assert (error["code"], error["ref"]) == ("unauthorized", 1)
    assert _state_of(session) is State.CLOSING
    assert session.close_code is CloseCode.UNAUTHORIZED
    assert session.close_code.value == 4401


def test_no_token_before_the_auth_deadline_closes_with_4401() -> None:
    session, clock = _new_session()
    assert session.next_deadline() == pytest.approx(1000.5)
    clock.advance(0.49)
    session.tick()
    assert _state_of(session) is State.AWAITING_AUTH
    clock.advance(0.02)
    session.tick()
    assert _state_of(session) is State.CLOSING
    assert session.close_code == 4401
    assert _sent(session)[0]["code"] == "unauthorized"


def test_chat_frames_before_authentication_get_not_authenticated_but_ping_works() -> None:
    session, _ = _new_session()
    _feed(session, {"type": "subscribe", "event_id": 1, "id": 5})
    _feed(session, {"type": "ping", "id": 6})
    assert _sent(session) == [
        {
            "type": "error",
            "code": "not_authenticated",
            "message": (
                "send `hello` with a token first; `subscribe` needs an authenticated session"
            ),
            "ref": 5,
        },
        {"type": "pong", "ref": 6},
    ]
    assert session.commands() == []


def test_a_second_hello_is_refused_while_authenticating_and_after() -> None:
    session, _ = _new_session()
    _feed(session, {"type": "hello", "token": "a"})
    _feed(session, {"type": "hello", "token": "b"})
    assert _sent(session)[0]["code"] == "already_authenticated"
    cmd = _only_command(session)
    assert isinstance(cmd, Authenticate)
    session.authenticated(cmd, 1, "s")
    session.frames_to_send()
    _feed(session, {"type": "hello", "token": "c"})
    assert _sent(session)[0]["code"] == "already_authenticated"


def test_answers_in_the_wrong_state_raise_an_error_naming_the_state() -> None:
    session, _ = _new_session()
    with pytest.raises(InvalidState, match="AWAITING_AUTH"):
        session.subscribed(Subscribe(1, None), None)
    session.connection_closed()
    with pytest.raises(InvalidState, match="CLOSED"):
        session.receive_text('{"type": "ping"}')


def test_answers_arriving_after_the_session_started_closing_are_dropped() -> None:
    session, _ = _open_session()
    _feed(session, _send_frame())
    cmd = _only_command(session)
    assert isinstance(cmd, Send)
    session.close(CloseCode.GOING_AWAY, "server shutting down")
    session.acked(cmd, SendAck(7, message_id_at(0), datetime.now(UTC), duplicate=False))
    assert _sent(session) == []
    assert (session.close_code, session.close_reason) == (1001, "server shutting down")


# ------------------------------------------------------------------ commands and answers


def test_every_chat_frame_becomes_its_command_carrying_the_frame_id_as_ref() -> None:
    session, clock = _open_session()
    mid = new_message_id()
    cursor = encode_cursor(mid)
    frames_and_commands: list[tuple[dict[str, Any], Command]] = [
        ({"type": "subscribe", "event_id": 7, "since": cursor}, Subscribe(7, cursor)),
        ({"type": "unsubscribe", "event_id": 7}, Unsubscribe(7)),
        (
            {
                "type": "send",
                "event_id": 7,
                "client_msg_id": "m1",
                "text": "hi",
                "reply_to": str(mid),
                "attachments": ["https://x.test/a"],
                "metadata": {"k": "v"},
            },
            Send(7, "m1", "hi", "text", ("https://x.test/a",), mid, {"k": "v"}),
        ),
        ({"type": "edit", "event_id": 7, "message_id": str(mid), "text": "e"}, Edit(7, mid, "e")),
        ({"type": "delete", "event_id": 7, "message_id": str(mid)}, Delete(7, mid)),
        (
            {"type": "react", "event_id": 7, "message_id": str(mid), "emoji": "x"},
            React(7, mid, "x"),
        ),
        (
            {"type": "unreact", "event_id": 7, "message_id": str(mid), "emoji": "x"},
            Unreact(7, mid, "x"),
        ),
        ({"type": "typing", "event_id": 7, "state": "start"}, Typing(7, "start")),
        ({"type": "read", "event_id": 7, "message_id": str(mid)}, Read(7, mid)),
        (
            {"type": "history", "event_id": 7, "before": cursor, "limit": 20},
            History(7, cursor, None, 20),
        ),
    ]
    for n, (frame, expected) in enumerate(frames_and_commands):
        clock.advance(1.0)  # stay within the write rate
        _feed(session, frame | {"id": n})
        got = _only_command(session)
        assert got.ref == n
        assert type(got) is type(expected)
        assert got == expected.__class__(**{**_fields(expected), "ref": n})
    assert _sent(session) == []


def _fields(cmd: Command) -> dict[str, Any]:
    return {name: getattr(cmd, name) for name in cmd.__dataclass_fields__}


def test_send_command_builds_the_store_input_for_the_sender() -> None:
    cmd = Send(7, "m1", "hi", "text", (), None, {"k": "v"}, ref=1)
    msg = cmd.to_new_message(3, sender_name="Ada")
    assert (msg.event_id, msg.sender_id, msg.client_msg_id, msg.sender_name) == (7, 3, "m1", "Ada")
    assert msg.metadata == {"k": "v"}


def test_each_answer_method_sends_the_matching_frame_with_the_ref() -> None:
    session, _ = _open_session()
    mid = message_id_at(1_700_000_000_000)
    created = datetime(2023, 11, 14, tzinfo=UTC)
    session.subscribed(Subscribe(7, None, ref="s"), "cur")
    session.unsubscribed(Unsubscribe(7, ref="u"))
    session.acked(
        Send(7, "m1", "hi", "text", (), None, {}, ref="a"), SendAck(7, mid, created, False)
    )
    session.done(Edit(7, mid, "x", ref="e"))
    session.done(Typing(7, "stop", ref="t"))
    session.read_done(Read(7, mid, ref="r"), 0)
    session.history_page(History(7, None, None, 50, ref="h"), [], None)
    session.failed(Delete(7, mid, ref="d"), Forbidden("only the sender may delete"))
    sent = _sent(session)
    assert [(f["type"], f["ref"]) for f in sent] == [
        ("subscribed", "s"),
        ("unsubscribed", "u"),
        ("ack", "a"),
        ("ok", "e"),
        ("ok", "t"),
        ("unread", "r"),
        ("history", "h"),
        ("error", "d"),
    ]
    assert sent[0]["cursor"] == "cur"
    assert sent[3]["op"] == "edit"
    assert sent[-1]["code"] == "forbidden"
    assert _state_of(session) is State.OPEN


def test_ping_gets_pong_with_the_ref_and_no_command() -> None:
    session, _ = _open_session()
    _feed(session, {"type": "ping", "id": "p"})
    assert _sent(session) == [{"type": "pong", "ref": "p"}]
    assert session.commands() == []


# ------------------------------------------------------------------ subscriptions


def test_subscription_is_recorded_only_once_the_service_confirms_it() -> None:
    session, _ = _open_session()
    _feed(session, {"type": "subscribe", "event_id": 7})
    cmd = _only_command(session)
    assert isinstance(cmd, Subscribe)
    assert session.subscriptions == frozenset()
    session.subscribed(cmd, None)
    assert session.subscriptions == {7}


def test_a_refused_subscription_frees_its_slot_and_reports_not_found() -> None:
    session, _ = _open_session()
    _feed(session, {"type": "subscribe", "event_id": 7, "id": 1})
    session.failed(_only_command(session), NotFound("no event 7 that you take part in"))
    assert _sent(session)[0]["code"] == "not_found"
    assert session.subscriptions == frozenset()
    _feed(session, {"type": "subscribe", "event_id": 7})
    assert isinstance(_only_command(session), Subscribe)


def test_more_subscriptions_than_the_limit_are_refused() -> None:
    session, _ = _open_session()
    for event_id in (1, 2, 3):
        _feed(session, {"type": "subscribe", "event_id": event_id, "id": event_id})
    assert [c.event_id for c in session.commands() if isinstance(c, Subscribe)] == [1, 2]
    [error] = _sent(session)
    assert (error["code"], error["ref"]) == ("too_many_subscriptions", 3)


def test_subscribing_twice_to_one_event_is_refused() -> None:
    session, _ = _open_session()
    _feed(session, {"type": "subscribe", "event_id": 1})
    _feed(session, {"type": "subscribe", "event_id": 1})
    assert len(session.commands()) == 1
    assert _sent(session)[0]["code"] == "already_subscribed"


def test_unsubscribe_frees_the_slot_and_unknown_unsubscribe_is_refused() -> None:
    session, _ = _open_session()
    _feed(session, {"type": "unsubscribe", "event_id": 1})
    assert _sent(session)[0]["code"] == "not_subscribed"
    _feed(session, {"type": "subscribe", "event_id": 1})
    session.subscribed(_only_command(session), None)  # type: ignore[arg-type]
    _feed(session, {"type": "unsubscribe", "event_id": 1})
    assert _only_command(session) == Unsubscribe(1)
    assert session.subscriptions == frozenset()


def test_removal_from_the_event_ends_the_subscription_with_an_unsubscribed_frame() -> None:
    session, _ = _open_session()
    session.subscribed(Subscribe(7, None), None)
    _feed(session, {"type": "subscribe", "event_id": 7})  # already subscribed
    session.frames_to_send()
    session.subscription_ended(7)
    assert _sent(session) == [{"type": "unsubscribed", "event_id": 7, "reason": "removed"}]
    assert session.subscriptions == frozenset()


# ------------------------------------------------------------------ limits


def test_writes_over_the_token_bucket_get_rate_limited_with_retry_after() -> None:
    session, clock = _open_session()
    for n in range(4):  # burst 3
        _feed(session, _send_frame(n))
    assert len(session.commands()) == 3
    [error] = _sent(session)
    assert (error["code"], error["ref"]) == ("rate_limited", 3)
    assert error["retry_after_ms"] == 500  # one token at 2 per second
    assert _state_of(session) is State.OPEN
    clock.advance(0.5)
    _feed(session, _send_frame(4))
    assert len(session.commands()) == 1
    assert _sent(session) == []


def test_reads_and_pings_do_not_draw_on_the_write_bucket() -> None:
    session, _ = _open_session()
    for n in range(10):
        _feed(session, {"type": "history", "event_id": 7, "id": n})
        _feed(session, {"type": "ping"})
    assert len(session.commands()) == 10


def test_a_frame_over_the_size_limit_closes_with_1009() -> None:
    session, _ = _open_session()
    _feed(session, _send_frame(text="x" * 5000))
    assert _state_of(session) is State.CLOSING
    assert session.close_code is CloseCode.MESSAGE_TOO_BIG
    assert session.close_code.value == 1009
    assert session.commands() == []


def test_a_multibyte_frame_is_measured_in_utf8_bytes() -> None:
    session, _ = _open_session()
    _feed(session, _send_frame(text="가" * 1400))  # 1400 chars, 4200 bytes
    assert session.close_code == 1009


def test_frames_after_closing_are_ignored() -> None:
    session, _ = _open_session()
    session.receive_bytes(b"x" * 5000)
    assert session.close_code == 1009
    _feed(session, {"type": "ping"})
    assert _sent(session) == []


def test_text_longer_than_the_limit_is_refused_with_text_too_long() -> None:
    session, _ = _open_session()
    _feed(session, _send_frame(text="x" * 101))
    assert _sent(session)[0]["code"] == "text_too_long"
    assert session.commands() == []


def test_binary_frames_get_an_error_and_the_session_stays_open() -> None:
    session, _ = _open_session()
    session.receive_bytes(b'{"type": "ping"}')
    assert _sent(session)[0]["code"] == "binary_not_supported"
    assert _state_of(session) is State.OPEN


# ------------------------------------------------------------------ heartbeat


def test_server_pings_every_heartbeat_interval() -> None:
    session, clock = _open_session()
    assert session.next_deadline() == pytest.approx(clock.now + 1.0)
    clock.advance(1.0)
    session.tick()
    assert _sent(session) == [{"type": "ping"}]
    clock.advance(0.5)
    session.tick()
    assert _sent(session) == []


def test_a_client_silent_past_the_idle_timeout_is_closed_with_4408() -> None:
    session, clock = _open_session()
    for _ in range(2):
        clock.advance(1.0)
        session.tick()
    _feed(session, {"type": "pong"})  # any frame proves the client is alive
    clock.advance(2.9)
    session.tick()
    assert _state_of(session) is State.OPEN
    clock.advance(0.2)
    session.tick()
    assert _state_of(session) is State.CLOSING
    assert session.close_code is CloseCode.IDLE_TIMEOUT
    assert session.close_code.value == 4408


def test_close_is_idempotent_and_connection_closed_ends_the_session() -> None:
    session, _ = _open_session()
    session.close(CloseCode.TOO_SLOW, "too slow")
    session.close(CloseCode.GOING_AWAY)
    assert session.close_code == 4008
    session.connection_closed()
    assert _state_of(session) is State.CLOSED
    assert session.next_deadline() == float("inf")
    session.tick()  # harmless after the end


# ------------------------------------------------------------------ robustness

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
_field_names = st.sampled_from(
    [
        *("id", "event_id", "since", "text", "client_msg_id", "message_id", "emoji", "state"),
        *("limit", "attachments", "metadata", "reply_to", "before", "after", "token", "type"),
    ]
)
_framelike = st.builds(
    lambda kind, fields: {"type": kind, **fields},
    st.sampled_from([*CLIENT_FRAMES, "nope"]),
    st.dictionaries(_field_names, _json, max_size=5),
)
_inputs = st.one_of(
    _json.map(lambda v: ("text", json.dumps(v))),
    _framelike.map(lambda v: ("text", json.dumps(v))),
    st.text(max_size=200).map(lambda t: ("text", t)),
    st.binary(max_size=200).map(lambda b: ("bytes", b)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_inputs, min_size=10, max_size=40))
def test_random_frames_never_break_the_session_and_ping_still_gets_pong(
    inputs: list[tuple[str, Any]],
) -> None:
    session, _ = _open_session()
    for kind, value in inputs:
        if kind == "text":
            session.receive_text(value)
        else:
            session.receive_bytes(value)
        for frame in session.frames_to_send():
            assert orjson.loads(frame)["type"] in {"error", "pong"}
        for cmd in session.commands():
            if isinstance(cmd, Subscribe):
                session.subscribed(cmd, None)
            elif isinstance(cmd, Unsubscribe):
                session.unsubscribed(cmd)
            else:
                session.failed(cmd, NotFound("nothing here"))
        session.frames_to_send()
    assert _state_of(session) is State.OPEN
    _feed(session, {"type": "ping", "id": "last"})
    assert _sent(session) == [{"type": "pong", "ref": "last"}]


@settings(max_examples=50, deadline=None)
@given(st.lists(_inputs, min_size=5, max_size=20))
def test_random_frames_before_authentication_never_raise(inputs: list[tuple[str, Any]]) -> None:
    session, _ = _new_session()
    for kind, value in inputs:
        if kind == "text":
            session.receive_text(value)
        else:
            session.receive_bytes(value)
    assert _state_of(session) is State.AWAITING_AUTH
    session.frames_to_send()
    _feed(session, {"type": "ping"})
    assert _sent(session) == [{"type": "pong"}]
