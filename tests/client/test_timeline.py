"""Timeline: messages in the store's order by their time-based id, each held once."""

from __future__ import annotations

import uuid

from chat.client import MessagePosted, Timeline, order_key
from chat.domain.messages import MessageIdGenerator, encode_cursor
from chat.gateway.server_frames import ChatMessage
from tests.client.frames import message_fields


def chat_message(message_id: uuid.UUID, text: str, event_id: int = 7) -> ChatMessage:
    return ChatMessage.model_validate(message_fields(event_id, text, message_id))


def test_messages_arriving_out_of_order_and_twice_are_held_once_in_id_order() -> None:
    ids = MessageIdGenerator()
    first, second, third = (ids.next() for _ in range(3))
    timeline = Timeline(7)
    timeline.add([chat_message(third, "third"), chat_message(first, "first")])
    timeline.apply(MessagePosted(type="message", event_id=7, message=chat_message(second, "2")))
    timeline.add([chat_message(second, "second"), chat_message(first, "other event", 8)])
    assert [m.text for m in timeline] == ["first", "second", "third"]
    assert timeline.oldest_cursor() == encode_cursor(first)


def test_the_order_key_is_the_ids_timestamp_before_its_node() -> None:
    early = uuid.UUID("1b3e0c80-f5e1-11ef-8000-0100000000ff")
    later = uuid.UUID("0a3e0c80-f5e2-11ef-8000-010000000001")
    same_tick = uuid.UUID("1b3e0c80-f5e1-11ef-8000-010000000100")
    assert order_key(early) < order_key(same_tick) < order_key(later)


def test_a_tie_in_one_tick_is_broken_by_signed_bytes_as_cql_compares_timeuuids() -> None:
    negative = uuid.UUID("1b3e0c80-f5e1-11ef-8000-800000000000")  # byte 0x80 is -128
    positive = uuid.UUID("1b3e0c80-f5e1-11ef-8000-7f0000000000")  # byte 0x7f is 127
    assert order_key(negative) < order_key(positive)
