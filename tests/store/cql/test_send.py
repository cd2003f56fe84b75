"""Sending messages: idempotent retries, healing partial writes, buckets, replies, conflicts.

Everything goes through the real driver to the embedded CQL server. "Another node" is a second
MessageStore on its own driver session: it shares no in-process state with the first.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from chat.config import Settings
from chat.domain.messages import (
    BUCKET_MS,
    MessageIdGenerator,
    NewMessage,
    bucket_of,
    content_hash,
    created_at_ms_of,
    created_at_of,
    datetime_from_ms,
)
from chat.errors import Conflict, ServiceUnavailable, ValidationFailed
from chat.store.cql.messages import MessageStore, claim_key
from chat.store.driver.session import CqlStore, execute_async
from tests.store.cql.messages import new_event_id, new_user_id


async def _rows(cql: CqlStore, query: str, *values: Any) -> list[Any]:
    return await execute_async(cql.session, query, list(values))


async def _event_rows(cql: CqlStore, ks: str, event_id: int) -> list[Any]:
    """Every message row of an event, over every bucket its index lists."""
    buckets = await _rows(
        cql, f"SELECT bucket FROM {ks}.chat_event_buckets WHERE event_id = %s", event_id
    )
    rows: list[Any] = []
    for b in buckets:
        rows += await _rows(
            cql,
            f"SELECT * FROM {ks}.chat_messages_by_event WHERE event_id = %s AND bucket = %s",
            event_id,
            b.bucket,
        )
    return rows


async def _user_rows(cql: CqlStore, ks: str, user_id: int, bucket: int) -> list[Any]:
    return await _rows(
        cql,
        f"SELECT * FROM {ks}.chat_messages_by_user WHERE user_id = %s AND bucket = %s",
        user_id,
        bucket,
    )


def _message(event_id: int, sender_id: int, client_msg_id: str = "m-1", **kw: Any) -> NewMessage:
    return NewMessage(event_id, sender_id, client_msg_id, kw.pop("text", "hello"), **kw)


async def test_send_writes_the_event_row_user_row_and_bucket_indexes(
    message_store: MessageStore, cql_store: CqlStore, settings: Settings
) -> None:
    ks = settings.cql_keyspace
    event, user = new_event_id(), new_user_id()
    ack = await message_store.send(
        _message(event, user, text="hi", attachments=("https://x.test/a.png",), metadata={"k": "v"})
    )
    assert not ack.duplicate
    assert ack.created_at == created_at_of(ack.message_id)
    rows = await _event_rows(cql_store, ks, event)
    assert [(r.message_id, r.message, r.attachments, r.metadata) for r in rows] == [
        (ack.message_id, "hi", ["https://x.test/a.png"], {"k": "v"})
    ]
    bucket = bucket_of(created_at_ms_of(ack.message_id))
    assert [r.message_id for r in await _user_rows(cql_store, ks, user, bucket)] == [ack.message_id]
    user_buckets = await _rows(
        cql_store, f"SELECT bucket FROM {ks}.chat_user_buckets WHERE user_id = %s", user
    )
    assert [b.bucket for b in user_buckets] == [bucket]
    stored = await message_store.get(event, ack.message_id)
    assert stored is not None
    assert (stored.text, stored.sender_id) == ("hi", user)


async def test_a_retry_returns_the_original_id_and_time_and_writes_no_second_row(
    message_store: MessageStore, cql_store: CqlStore, settings: Settings
) -> None:
    event, user = new_event_id(), new_user_id()
    first = await message_store.send(_message(event, user))
    again = await message_store.send(_message(event, user))
    assert (again.message_id, again.created_at, again.duplicate) == (
        first.message_id,
        first.created_at,
        True,
    )
    assert len(await _event_rows(cql_store, settings.cql_keyspace, event)) == 1


async def test_a_retry_racing_the_original_on_the_same_node_gets_the_same_message(
    message_store: MessageStore, cql_store: CqlStore, settings: Settings
) -> None:
    event, user = new_event_id(), new_user_id()
    a, b = await asyncio.gather(
        message_store.send(_message(event, user)), message_store.send(_message(event, user))
    )
    assert a.message_id == b.message_id
    assert sorted([a.duplicate, b.duplicate]) == [False, True]
    assert len(await _event_rows(cql_store, settings.cql_keyspace, event)) == 1


async def test_a_retry_on_another_node_racing_the_original_converges_on_one_message(
    message_store: MessageStore, other_node: MessageStore, cql_store: CqlStore, settings: Settings
) -> None:
    for _ in range(5):
        event, user = new_event_id(), new_user_id()
        a, b = await asyncio.gather(
            message_store.send(_message(event, user)), other_node.send(_message(event, user))
        )
        assert a.message_id == b.message_id
        assert len(await _event_rows(cql_store, settings.cql_keyspace, event)) == 1


async def test_a_retry_days_later_on_another_node_returns_the_original(
    message_store: MessageStore, cql_store: CqlStore, settings: Settings
) -> None:
    event, user = new_event_id(), new_user_id()
    first = await message_store.send(_message(event, user))
    later_clock = lambda: created_at_ms_of(first.message_id) * 1_000_000 + 3 * 86_400 * 10**9  # noqa: E731
    later = MessageStore(cql_store, settings, clock=later_clock)
    await later.start()
    try:
        again = await later.send(_message(event, user))
    finally:
        await later.close()
    assert (again.message_id, again.duplicate) == (first.message_id, True)
    assert len(await _event_rows(cql_store, settings.cql_keyspace, event)) == 1


async def test_reusing_a_client_msg_id_for_different_content_is_a_conflict(
    message_store: MessageStore, other_node: MessageStore
) -> None:
    event, user = new_event_id(), new_user_id()
    await message_store.send(_message(event, user, text="one"))
    with pytest.raises(Conflict, match="client_msg_id"):
        await message_store.send(_message(event, user, text="two"))
    with pytest.raises(Conflict):
        await other_node.send(_message(event, user, text="two"))


async def test_the_same_client_msg_id_from_two_senders_is_two_messages(
    message_store: MessageStore,
) -> None:
    event = new_event_id()
    a = await message_store.send(_message(event, new_user_id()))
    b = await message_store.send(_message(event, new_user_id()))
    assert a.message_id != b.message_id
    assert (a.duplicate, b.duplicate) == (False, False)


async def _write_claim_only(cql: CqlStore, ks: str, msg: NewMessage, message_id: uuid.UUID) -> None:
    await _rows(
        cql,
        f"INSERT INTO {ks}.chat_send_claims (claim_key, sender_id, client_msg_id, event_id, "
        "message_id, created_at, content_hash) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        claim_key(msg.sender_id, msg.client_msg_id),
        msg.sender_id,
        msg.client_msg_id,
        msg.event_id,
        message_id,
        created_at_of(message_id),
        content_hash(msg),
    )


async def _write_rows_late(cql: CqlStore, ks: str, msg: NewMessage, message_id: uuid.UUID) -> None:
    """The first attempt's message row landing late, as its node wrote it (its own timestamp)."""
    created_ms = created_at_ms_of(message_id)
    await _rows(
        cql,
        f"INSERT INTO {ks}.chat_messages_by_event (event_id, bucket, created_at, message_id, "
        "sender_id, client_msg_id, message, message_type, is_deleted) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, 'text', false) USING TIMESTAMP %s",
        msg.event_id,
        bucket_of(created_ms),
        datetime_from_ms(created_ms),
        message_id,
        msg.sender_id,
        msg.client_msg_id,
        msg.text,
        created_ms * 1000,
    )


def _later_store(
    cql: CqlStore, settings: Settings, after: uuid.UUID, seconds: float
) -> MessageStore:
    """A store on another node whose clock runs ``seconds`` after the ``after`` id's time."""
    shift = created_at_ms_of(after) * 1_000_000 + round(seconds * 1e9) - time.time_ns()
    return MessageStore(cql, settings, clock=lambda: time.time_ns() + shift)


async def test_a_retry_that_finds_only_a_recent_claim_answers_unavailable_and_writes_nothing(
    message_store: MessageStore, cql_store: CqlStore, settings: Settings
) -> None:
    """The first attempt may still be writing (or its node settling it): storing the message
    at that attempt's old position now could put it behind what subscribers already got."""
    ks = settings.cql_keyspace
    msg = _message(new_event_id(), new_user_id())
    await _write_claim_only(cql_store, ks, msg, MessageIdGenerator().next())
    with pytest.raises(ServiceUnavailable, match="still being settled"):
        await message_store.send(msg)
    assert await _event_rows(cql_store, ks, msg.event_id) == []


async def test_a_retry_after_the_settle_time_fences_the_first_attempt_and_stores_a_new_id(
    cql_store: CqlStore, settings: Settings
) -> None:
    ks = settings.cql_keyspace
    msg = _message(new_event_id(), new_user_id())
    original_id = MessageIdGenerator().next()
    await _write_claim_only(cql_store, ks, msg, original_id)
    later = _later_store(cql_store, settings, original_id, settings.send_settle_seconds + 1)
    await later.start()
    try:
        ack = await later.send(msg)
        assert not ack.duplicate
        assert ack.message_id != original_id
        # The first attempt's rows landing now stay invisible: the fence shadows them.
        await _write_rows_late(cql_store, ks, msg, original_id)
        assert [r.message_id for r in await _event_rows(cql_store, ks, msg.event_id)] == [
            ack.message_id
        ]
        again = await later.send(msg)
        assert (again.message_id, again.duplicate) == (ack.message_id, True)
    finally:
        await later.close()


async def test_a_retry_of_a_fenced_attempt_stores_the_message_under_a_new_id_at_once(
    message_store: MessageStore, other_node: MessageStore, cql_store: CqlStore, settings: Settings
) -> None:
    ks = settings.cql_keyspace
    msg = _message(new_event_id(), new_user_id())
    original_id = MessageIdGenerator().next()
    await _write_claim_only(cql_store, ks, msg, original_id)
    await message_store.fence(
        msg.event_id, original_id, claim_key(msg.sender_id, msg.client_msg_id)
    )
    ack = await other_node.send(msg)
    assert (ack.duplicate, ack.message_id != original_id) == (False, True)
    await _write_rows_late(cql_store, ks, msg, original_id)
    rows = await _event_rows(cql_store, ks, msg.event_id)
    assert [r.message_id for r in rows] == [ack.message_id]
    assert (await message_store.send(msg)).message_id == ack.message_id


async def test_a_retry_after_the_claim_and_event_row_but_no_index_rows_heals_the_rest(
    message_store: MessageStore, cql_store: CqlStore, settings: Settings
) -> None:
    ks = settings.cql_keyspace
    msg = _message(new_event_id(), new_user_id())
    original_id = MessageIdGenerator().next()
    created_ms = created_at_ms_of(original_id)
    bucket = bucket_of(created_ms)
    await _write_claim_only(cql_store, ks, msg, original_id)
    await _rows(
        cql_store,
        f"INSERT INTO {ks}.chat_messages_by_event (event_id, bucket, created_at, message_id, "
        "sender_id, client_msg_id, message, message_type, is_deleted) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, 'text', false)",
        msg.event_id,
        bucket,
        datetime_from_ms(created_ms),
        original_id,
        msg.sender_id,
        msg.client_msg_id,
        msg.text,
    )
    ack = await message_store.send(msg)
    assert ack.message_id == original_id
    assert len(await _event_rows(cql_store, ks, msg.event_id)) == 1
    assert len(await _user_rows(cql_store, ks, msg.sender_id, bucket)) == 1


async def test_a_late_retry_does_not_undo_an_edit_or_a_delete(
    message_store: MessageStore, other_node: MessageStore
) -> None:
    event, user = new_event_id(), new_user_id()
    ack = await message_store.send(_message(event, user, text="original"))
    await message_store.edit(event, ack.message_id, user, "edited")
    await other_node.send(_message(event, user, text="original"))
    stored = await message_store.get(event, ack.message_id)
    assert stored is not None
    assert stored.text == "edited"
    await message_store.soft_delete(event, ack.message_id, user, may_moderate=False)
    await other_node.send(_message(event, user, text="original"))
    stored = await message_store.get(event, ack.message_id)
    assert stored is not None
    assert (stored.is_deleted, stored.text) == (True, "")


def _clock_at(ms: int) -> Callable[[], int]:
    return lambda: ms * 1_000_000


async def test_messages_on_both_sides_of_a_bucket_boundary_land_in_their_own_buckets(
    cql_store: CqlStore, settings: Settings
) -> None:
    ks = settings.cql_keyspace
    event, user = new_event_id(), new_user_id()
    boundary = (bucket_of(1_700_000_000_000) + 1) * BUCKET_MS
    acks = []
    for n, at in enumerate([boundary - 1, boundary, boundary + 1]):
        store = MessageStore(cql_store, settings, clock=_clock_at(at))
        await store.start()
        try:
            acks.append(await store.send(_message(event, user, f"b-{n}")))
        finally:
            await store.close()
    assert [created_at_ms_of(a.message_id) for a in acks] == [boundary - 1, boundary, boundary + 1]
    buckets = await _rows(
        cql_store, f"SELECT bucket FROM {ks}.chat_event_buckets WHERE event_id = %s", event
    )
    first = boundary // BUCKET_MS
    assert [b.bucket for b in buckets] == [first, first - 1]
    by_bucket = {
        b: await _rows(
            cql_store,
            f"SELECT message_id FROM {ks}.chat_messages_by_event WHERE event_id = %s "
            "AND bucket = %s",
            event,
            b,
        )
        for b in (first - 1, first)
    }
    assert [r.message_id for r in by_bucket[first - 1]] == [acks[0].message_id]
    assert [r.message_id for r in by_bucket[first]] == [acks[2].message_id, acks[1].message_id]
    user_buckets = await _rows(
        cql_store, f"SELECT bucket FROM {ks}.chat_user_buckets WHERE user_id = %s", user
    )
    assert [b.bucket for b in user_buckets] == [first, first - 1]


async def test_a_reply_must_name_a_message_of_the_same_event(
    message_store: MessageStore,
) -> None:
    event, other_event, user = new_event_id(), new_event_id(), new_user_id()
    parent = await message_store.send(_message(event, user, "parent"))
    reply = await message_store.send(_message(event, user, "reply", reply_to=parent.message_id))
    stored = await message_store.get(event, reply.message_id)
    assert stored is not None
    assert stored.reply_to == parent.message_id
    with pytest.raises(ValidationFailed) as exc:
        await message_store.send(_message(other_event, user, "x", reply_to=parent.message_id))
    assert [e.field for e in exc.value.errors] == ["reply_to"]
    with pytest.raises(ValidationFailed):
        await message_store.send(_message(event, user, "y", reply_to=MessageIdGenerator().next()))


async def test_an_invalid_message_is_rejected_before_anything_is_written(
    message_store: MessageStore, cql_store: CqlStore, settings: Settings
) -> None:
    event = new_event_id()
    with pytest.raises(ValidationFailed):
        await message_store.send(_message(event, new_user_id(), text="x" * 5000))
    assert await _event_rows(cql_store, settings.cql_keyspace, event) == []


async def test_many_concurrent_sends_are_all_stored_once_each(
    message_store: MessageStore, cql_store: CqlStore, settings: Settings
) -> None:
    event = new_event_id()
    users = [new_user_id() for _ in range(10)]
    acks = await asyncio.gather(
        *(message_store.send(_message(event, users[i % 10], f"c-{i}")) for i in range(300))
    )
    assert len({a.message_id for a in acks}) == 300
    assert len(await _event_rows(cql_store, settings.cql_keyspace, event)) == 300
    assert message_store.stats["batches"] < 300


@pytest.fixture
async def strict_store(cql_store: CqlStore, settings: Settings) -> AsyncIterator[MessageStore]:
    strict = settings.model_copy(update={"send_dedup": "strict"})
    async with MessageStore(cql_store, strict) as store:
        yield store


async def test_strict_mode_claims_with_a_transaction_and_dedups_across_nodes(
    strict_store: MessageStore, other_node: MessageStore, cql_store: CqlStore, settings: Settings
) -> None:
    event, user = new_event_id(), new_user_id()
    first = await strict_store.send(_message(event, user))
    again = await strict_store.send(_message(event, user))
    assert (again.message_id, again.duplicate) == (first.message_id, True)
    from_fast_node = await other_node.send(_message(event, user))
    assert from_fast_node.message_id == first.message_id
    with pytest.raises(Conflict):
        await strict_store.send(_message(event, user, text="different"))
    assert len(await _event_rows(cql_store, settings.cql_keyspace, event)) == 1


async def test_strict_mode_fences_a_settled_claim_without_a_message_and_stores_a_new_id(
    strict_store: MessageStore, cql_store: CqlStore, settings: Settings
) -> None:
    msg = _message(new_event_id(), new_user_id())
    original_id = MessageIdGenerator().next()
    ks = settings.cql_keyspace
    await _write_claim_only(cql_store, ks, msg, original_id)
    with pytest.raises(ServiceUnavailable):
        await strict_store.send(msg)
    key = claim_key(msg.sender_id, msg.client_msg_id)
    await strict_store.fence(msg.event_id, original_id, key)
    ack = await strict_store.send(msg)
    assert (ack.duplicate, ack.message_id != original_id) == (False, True)
    rows = await _event_rows(cql_store, ks, msg.event_id)
    assert [r.message_id for r in rows] == [ack.message_id]


async def test_claim_lookups_never_put_more_than_100_keys_in_one_read(
    message_store: MessageStore,
) -> None:
    """ScyllaDB rejects an IN over more partition keys than
    max_partition_key_restrictions_per_query (100 by default)."""
    event = new_event_id()
    before = message_store.stats["claim_reads"]
    await asyncio.gather(
        *(message_store.send(_message(event, new_user_id(), f"in-{i}")) for i in range(350))
    )
    assert message_store.stats["claim_reads"] - before >= 4


async def test_a_retry_racing_an_original_that_fails_gets_the_same_error(
    message_store: MessageStore, cql_store: CqlStore, settings: Settings
) -> None:
    event, user = new_event_id(), new_user_id()
    msg = _message(event, user, reply_to=MessageIdGenerator().next())  # no such message
    results = await asyncio.gather(
        message_store.send(msg), message_store.send(msg), return_exceptions=True
    )
    assert [type(r) for r in results] == [ValidationFailed, ValidationFailed]
    assert await _event_rows(cql_store, settings.cql_keyspace, event) == []


async def test_cancelling_the_original_send_neither_cancels_its_retry_nor_the_write(
    message_store: MessageStore, cql_store: CqlStore, settings: Settings
) -> None:
    event, user = new_event_id(), new_user_id()
    original = asyncio.create_task(message_store.send(_message(event, user)))
    await asyncio.sleep(0)  # the original is under way
    retry = asyncio.create_task(message_store.send(_message(event, user)))
    await asyncio.sleep(0)  # the retry waits for it
    original.cancel()  # its caller went away (a dropped connection)
    ack = await retry
    assert ack.duplicate
    assert original.cancelled()
    rows = await _event_rows(cql_store, settings.cql_keyspace, event)
    assert [row.message_id for row in rows] == [ack.message_id]
    # The flight is over: a later retry is answered from the claim, as usual.
    again = await message_store.send(_message(event, user))
    assert (again.message_id, again.duplicate) == (ack.message_id, True)
