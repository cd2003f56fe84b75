"""Message ids, buckets, cursors and validation rules (pure domain code, no I/O)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from chat.domain.messages import (
    BUCKET_MS,
    MAX_ATTACHMENTS,
    MAX_METADATA_BYTES,
    MAX_TEXT_BYTES,
    MAX_TEXT_CHARS,
    MessageIdGenerator,
    NewMessage,
    bucket_of,
    content_hash,
    created_at_ms_of,
    created_at_of,
    decode_cursor,
    encode_cursor,
    message_id_at,
    ms_of,
    new_message_id,
    validate_new_message,
)
from chat.errors import ValidationFailed


def _fields(exc: pytest.ExceptionInfo[ValidationFailed]) -> set[str]:
    return {e.field for e in exc.value.errors}


def test_new_message_ids_are_version_1_and_strictly_increasing_in_time() -> None:
    ids = [new_message_id() for _ in range(5000)]
    assert all(i.version == 1 for i in ids)
    times = [i.time for i in ids]
    assert times == sorted(times)
    assert len(set(times)) == len(times)


def test_ids_keep_increasing_when_the_clock_stands_still_or_steps_back() -> None:
    readings = iter([5_000_000_000_000, 5_000_000_000_000, 4_000_000_000_000])
    gen = MessageIdGenerator(lambda: next(readings))
    a, b, c = gen.next(), gen.next(), gen.next()
    assert a.time < b.time < c.time


def test_created_at_is_derived_from_the_id_with_millisecond_precision() -> None:
    gen = MessageIdGenerator(lambda: 1_700_000_000_123_456_789)
    message_id = gen.next()
    assert created_at_ms_of(message_id) == 1_700_000_000_123
    assert created_at_of(message_id) == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    assert ms_of(created_at_of(message_id)) == 1_700_000_000_123


def test_two_generators_never_produce_the_same_id_for_the_same_instant() -> None:
    clock = lambda: 1_700_000_000_000_000_000  # noqa: E731
    assert MessageIdGenerator(clock).next() != MessageIdGenerator(clock).next()


def test_buckets_are_ten_day_windows_split_at_the_boundary() -> None:
    boundary = 2000 * BUCKET_MS
    assert bucket_of(boundary - 1) == 1999
    assert bucket_of(boundary) == 2000
    assert bucket_of(created_at_ms_of(message_id_at(boundary))) == 2000


def test_cursor_round_trips_and_junk_is_a_validation_error() -> None:
    message_id = new_message_id()
    assert decode_cursor(encode_cursor(message_id)) == message_id
    for junk in ["", "abc", "!!!!", encode_cursor(message_id)[:-2], "AQ" + "A" * 21]:
        with pytest.raises(ValidationFailed) as exc:
            decode_cursor(junk)
        assert _fields(exc) == {"cursor"}


def test_a_cursor_holding_a_random_uuid_is_rejected() -> None:
    import base64

    text = base64.urlsafe_b64encode(b"\x01" + uuid.uuid4().bytes).rstrip(b"=").decode()
    with pytest.raises(ValidationFailed):
        decode_cursor(text)


def _msg(**overrides: object) -> NewMessage:
    base: dict[str, object] = {
        "event_id": 1,
        "sender_id": 2,
        "client_msg_id": "c-1",
        "text": "hello",
    }
    base.update(overrides)
    return NewMessage(**base)  # type: ignore[arg-type]


def test_a_plain_message_is_valid() -> None:
    validate_new_message(_msg(attachments=("https://x.test/a.png",), metadata={"k": "v"}))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"text": "x" * (MAX_TEXT_CHARS + 1)}, "text"),
        ({"text": "\U0001f600" * (MAX_TEXT_BYTES // 4 + 1)}, "text"),
        ({"text": "a\x00b"}, "text"),
        ({"text": "   "}, "text"),
        ({"client_msg_id": ""}, "client_msg_id"),
        ({"client_msg_id": "has space"}, "client_msg_id"),
        ({"client_msg_id": "x" * 101}, "client_msg_id"),
        ({"message_type": "video"}, "message_type"),
        ({"event_id": 0}, "event_id"),
        ({"sender_id": -1}, "sender_id"),
        ({"attachments": ("https://x.test/a",) * (MAX_ATTACHMENTS + 1)}, "attachments"),
        ({"attachments": ("ftp://x.test/a",)}, "attachments/0"),
        ({"metadata": {"bad key": "v"}}, "metadata"),
        ({"metadata": {f"k{i}": "v" * 1000 for i in range(8)}}, "metadata"),
        ({"reply_to": uuid.uuid4()}, "reply_to"),
        ({"sender_profile_url": "javascript:alert(1)"}, "sender_profile_url"),
        ({"sender_name": "n" * 201}, "sender_name"),
    ],
)
def test_messages_breaking_a_rule_are_rejected_naming_the_field(
    overrides: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationFailed) as exc:
        validate_new_message(_msg(**overrides))
    assert field in _fields(exc)


def test_metadata_limit_is_counted_in_bytes() -> None:
    assert MAX_METADATA_BYTES == 4096
    validate_new_message(_msg(metadata={f"k{i}": "v" * 500 for i in range(7)}))


def test_an_attachment_alone_makes_a_message_without_text_valid() -> None:
    validate_new_message(_msg(text="", message_type="image", attachments=("https://x.test/a",)))


def test_content_hash_ignores_display_fields_but_not_content() -> None:
    base = _msg()
    assert content_hash(base) == content_hash(_msg(sender_name="renamed"))
    assert content_hash(base) != content_hash(_msg(text="hello!"))
    assert content_hash(base) != content_hash(_msg(event_id=9))
    assert content_hash(_msg(metadata={"a": "b", "c": "d"})) == content_hash(
        _msg(metadata={"c": "d", "a": "b"})
    )
