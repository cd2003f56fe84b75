"""The frame schema: what clients may send, how mistakes are named, what the server sends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from chat.config import Settings
from chat.domain.messages import Message, SendAck, encode_cursor, message_id_at, new_message_id
from chat.errors import ChatError, FieldError, FrameError, ValidationFailed
from chat.gateway import client_frames, frames
from chat.gateway.client_frames import CLIENT_FRAMES, SendFrame, check_limits, decode_client_frame
from chat.gateway.codes import CloseCode, ErrorCode
from chat.gateway.limits import Limits

LIMITS = Limits.from_settings(Settings(ws_max_text_chars=10, ws_max_attachments=2))


def _error_of(value: Any) -> FrameError:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    with pytest.raises(FrameError) as info:
        decode_client_frame(text)
    return info.value


def _send(**fields: Any) -> dict[str, Any]:
    return {"type": "send", "event_id": 7, "client_msg_id": "c-1", "text": "hi", **fields}


def test_every_client_frame_type_decodes_from_a_minimal_valid_frame() -> None:
    message_id = str(new_message_id())
    examples: list[dict[str, Any]] = [
        {"type": "hello", "token": "t"},
        {"type": "refresh", "token": "t"},
        {"type": "ping"},
        {"type": "pong"},
        {"type": "subscribe", "event_id": 1},
        {"type": "unsubscribe", "event_id": 1},
        _send(),
        {"type": "edit", "event_id": 1, "message_id": message_id, "text": "x"},
        {"type": "delete", "event_id": 1, "message_id": message_id},
        {"type": "react", "event_id": 1, "message_id": message_id, "emoji": "👍"},
        {"type": "unreact", "event_id": 1, "message_id": message_id, "emoji": "👍"},
        {"type": "typing", "event_id": 1, "state": "start"},
        {"type": "read", "event_id": 1, "message_id": message_id},
        {"type": "history", "event_id": 1},
    ]
    decoded = {decode_client_frame(orjson.dumps(e)).type for e in examples}
    assert decoded == set(CLIENT_FRAMES)


def test_send_frame_keeps_every_optional_field() -> None:
    reply_to = new_message_id()
    frame = decode_client_frame(
        orjson.dumps(
            _send(
                id="r1",
                message_type="image",
                attachments=["https://x.test/a.png"],
                reply_to=str(reply_to),
                metadata={"k": "v"},
            )
        )
    )
    assert isinstance(frame, SendFrame)
    assert frame.id == "r1"
    assert frame.reply_to == reply_to
    assert frame.attachments == ["https://x.test/a.png"]
    assert frame.metadata == {"k": "v"}


@pytest.mark.parametrize(
    ("raw", "code", "field"),
    [
        ("{", ErrorCode.MALFORMED_JSON, None),
        ("", ErrorCode.MALFORMED_JSON, None),
        ("[1, 2]", ErrorCode.INVALID_FRAME, None),
        ('"ping"', ErrorCode.INVALID_FRAME, None),
        ({"type": "ping", "id": [1]}, ErrorCode.INVALID_FRAME, "id"),
        ({"type": "ping", "id": True}, ErrorCode.INVALID_FRAME, "id"),
        ({"event_id": 1}, ErrorCode.MISSING_FIELD, "type"),
        ({"type": 3}, ErrorCode.WRONG_TYPE, "type"),
        ({"type": "shout"}, ErrorCode.UNKNOWN_TYPE, "type"),
        ({"type": "subscribe"}, ErrorCode.MISSING_FIELD, "event_id"),
        ({"type": "subscribe", "event_id": "5"}, ErrorCode.WRONG_TYPE, "event_id"),
        ({"type": "subscribe", "event_id": 5.5}, ErrorCode.WRONG_TYPE, "event_id"),
        ({"type": "subscribe", "event_id": 2.0**60}, ErrorCode.WRONG_TYPE, "event_id"),
        ({"type": "subscribe", "event_id": True}, ErrorCode.WRONG_TYPE, "event_id"),
        ({"type": "subscribe", "event_id": 0}, ErrorCode.INVALID_VALUE, "event_id"),
        ({"type": "subscribe", "event_id": 1, "room": 2}, ErrorCode.UNKNOWN_FIELD, "room"),
        ({"type": "subscribe", "event_id": 1, "since": "junk"}, ErrorCode.INVALID_VALUE, "since"),
        (_send(client_msg_id="has space"), ErrorCode.INVALID_VALUE, "client_msg_id"),
        (_send(message_type="video"), ErrorCode.INVALID_VALUE, "message_type"),
        (_send(text=5), ErrorCode.WRONG_TYPE, "text"),
        (_send(attachments="https://x.test"), ErrorCode.WRONG_TYPE, "attachments"),
        (_send(attachments=[1]), ErrorCode.WRONG_TYPE, "attachments/0"),
        (_send(metadata={"k": 1}), ErrorCode.WRONG_TYPE, "metadata/k"),
        (_send(reply_to="not-a-uuid"), ErrorCode.INVALID_VALUE, "reply_to"),
        (_send(reply_to=str(uuid.uuid4())), ErrorCode.INVALID_VALUE, "reply_to"),
        (_send(reply_to=12), ErrorCode.WRONG_TYPE, "reply_to"),
        ({"type": "typing", "event_id": 1, "state": "go"}, ErrorCode.INVALID_VALUE, "state"),
        ({"type": "history", "event_id": 1, "limit": 0}, ErrorCode.INVALID_VALUE, "limit"),
        ({"type": "history", "event_id": 1, "limit": 101}, ErrorCode.INVALID_VALUE, "limit"),
        ({"type": "hello", "token": ""}, ErrorCode.INVALID_VALUE, "token"),
    ],
)
def test_each_kind_of_client_mistake_has_its_own_error_code(
    raw: Any, code: ErrorCode, field: str | None
) -> None:
    error = _error_of(raw)
    assert (error.code, error.field) == (code, field)


def test_integral_numbers_are_integers_however_they_are_written() -> None:
    # JSON Schema's rule, as the REST API reads bodies: a client generated from the AsyncAPI
    # document may write 7.0 or 7e0 for 7.
    for text in ('{"type":"subscribe","event_id":7.0}', '{"type":"subscribe","event_id":7e0}'):
        frame = decode_client_frame(text)
        assert isinstance(frame, client_frames.SubscribeFrame)
        assert frame.event_id == 7
        assert type(frame.event_id) is int
    history = decode_client_frame('{"type":"history","id":3.0,"event_id":1,"limit":20.0}')
    assert isinstance(history, client_frames.HistoryFrame)
    assert (history.id, history.limit) == (3, 20)


def test_history_rejects_before_and_after_together() -> None:
    cursor = encode_cursor(new_message_id())
    error = _error_of({"type": "history", "event_id": 1, "before": cursor, "after": cursor})
    assert error.code is ErrorCode.INVALID_VALUE
    assert "not both" in error.message


def test_a_usable_id_is_echoed_as_ref_even_when_the_rest_of_the_frame_is_wrong() -> None:
    assert _error_of({"type": "shout", "id": 42}).ref == 42
    assert _error_of({"type": "subscribe", "id": "abc"}).ref == "abc"


def test_a_refused_frame_is_an_error_under_the_one_exception_root() -> None:
    refused = _error_of({"type": "shout"})
    assert isinstance(refused, ChatError)
    assert refused.code is ErrorCode.UNKNOWN_TYPE


def test_error_frame_from_a_frame_error_carries_code_field_and_ref() -> None:
    body = orjson.loads(frames.refused(_error_of({"type": "subscribe", "id": 9})))
    assert body == {
        "type": "error",
        "code": "missing_field",
        "message": "`event_id` is required",
        "field": "event_id",
        "ref": 9,
    }


def test_check_limits_names_the_limit_that_was_broken() -> None:
    def code_of(**fields: Any) -> str:
        frame = decode_client_frame(orjson.dumps(_send(**fields)))
        with pytest.raises(FrameError) as info:
            check_limits(frame, LIMITS)
        return info.value.code

    assert code_of(text="x" * 11) is ErrorCode.TEXT_TOO_LONG
    assert code_of(attachments=["https://a.test"] * 3) is ErrorCode.TOO_MANY_ATTACHMENTS
    assert code_of(attachments=["https://a.test/" + "x" * 2100]) is ErrorCode.ATTACHMENT_TOO_LARGE
    check_limits(decode_client_frame(orjson.dumps(_send(text="x" * 10))), LIMITS)


def test_every_error_code_and_close_code_is_documented_in_the_protocol_doc() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    for code in ErrorCode:
        assert f"`{code.value}`" in doc, code
    for close in CloseCode:
        assert f"`{close.value}`" in doc, close
    for kind in CLIENT_FRAMES:
        assert f"`{kind}`" in doc, kind


def test_welcome_lists_every_limit() -> None:
    body = orjson.loads(frames.welcome(user_id=3, session_id="s", limits=LIMITS, ref=1))
    assert body["type"] == "welcome"
    assert body["ref"] == 1
    assert body["heartbeat_ms"] == LIMITS.heartbeat_ms
    assert body["limits"] == LIMITS.as_dict()
    assert {"max_frame_bytes", "send_rate_per_second", "max_subscriptions"} <= set(body["limits"])


def _message(**changes: Any) -> Message:
    message_id = message_id_at(1_700_000_000_123)
    fields: dict[str, Any] = {
        "event_id": 7,
        "message_id": message_id,
        "created_at": datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC),
        "sender_id": 3,
        "sender_name": "Ada",
        "sender_profile_url": None,
        "client_msg_id": "c-1",
        "text": "secret plan",
        "message_type": "text",
        "attachments": ("https://x.test/a.png",),
        "reply_to": None,
        "edited_at": None,
        "is_deleted": False,
        "metadata": {"k": "v"},
    }
    fields.update(changes)
    return Message(**fields)


def test_message_frame_carries_the_message_and_its_resume_cursor() -> None:
    msg = _message()
    body = orjson.loads(frames.message(msg))
    assert body["type"] == "message"
    assert body["event_id"] == 7
    assert body["message"]["message_id"] == str(msg.message_id)
    assert body["message"]["cursor"] == encode_cursor(msg.message_id)
    assert body["message"]["created_at"] == "2023-11-14T22:13:20.123000+00:00"
    assert body["message"]["text"] == "secret plan"


def test_a_deleted_message_is_sent_without_its_content() -> None:
    body = orjson.loads(frames.message_updated(_message(is_deleted=True)))
    assert body["type"] == "message_updated"
    assert body["message"]["is_deleted"] is True
    assert (body["message"]["text"], body["message"]["attachments"]) == ("", [])
    assert body["message"]["metadata"] == {}


def test_ack_frame_carries_the_message_key_and_the_duplicate_flag() -> None:
    message_id = message_id_at(1_700_000_000_000)
    send_ack = SendAck(7, message_id, datetime(2023, 11, 14, tzinfo=UTC), duplicate=True)
    body = orjson.loads(frames.ack("c-1", send_ack, ref="r"))
    assert body == {
        "type": "ack",
        "event_id": 7,
        "client_msg_id": "c-1",
        "message_id": str(message_id),
        "cursor": encode_cursor(message_id),
        "created_at": "2023-11-14T00:00:00+00:00",
        "duplicate": True,
        "ref": "r",
    }


def test_fan_out_frames_have_sorted_user_lists() -> None:
    assert orjson.loads(frames.typing(7, {5, 2})) == {
        "type": "typing",
        "event_id": 7,
        "user_ids": [2, 5],
    }
    assert orjson.loads(frames.presence(7, [3, 1], joined=[3])) == {
        "type": "presence",
        "event_id": 7,
        "user_ids": [1, 3],
        "joined": [3],
        "left": [],
    }
    reaction = orjson.loads(
        frames.reaction(
            event_id=7,
            message_id=message_id_at(0),
            user_id=2,
            emoji="👍",
            action="add",
            counts={"👍": 1},
        )
    )
    assert reaction["counts"] == {"👍": 1}
    assert orjson.loads(frames.unread(7, 4)) == {"type": "unread", "event_id": 7, "count": 4}


def test_error_from_a_service_error_keeps_its_code_and_field_errors() -> None:
    exc = ValidationFailed("bad", errors=[FieldError("text", "too long")])
    body = orjson.loads(frames.error_from(exc, ref=5))
    assert body == {
        "type": "error",
        "code": "validation_failed",
        "message": "bad",
        "errors": [{"field": "text", "message": "too long"}],
        "ref": 5,
    }


def test_history_frame_lists_messages_and_next_cursor() -> None:
    body = orjson.loads(frames.history(7, [_message()], "abc", ref=1))
    assert [m["text"] for m in body["messages"]] == ["secret plan"]
    assert (body["next_cursor"], body["ref"]) == ("abc", 1)


def test_settings_refuse_an_idle_timeout_that_leaves_no_time_to_answer_a_ping() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="must exceed CHAT_WS_HEARTBEAT_MS"):
        Settings(ws_heartbeat_ms=5000, ws_idle_timeout_ms=5000)


def test_limits_come_from_the_ws_settings() -> None:
    limits = Limits.from_settings(Settings(ws_send_burst=7, ws_outgoing_queue_size=64))
    assert (limits.send_burst, limits.outgoing_queue_size) == (7, 64)
