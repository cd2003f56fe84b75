"""Unread counts from read positions: what counts, what does not, and across buckets."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from chat.config import Settings
from chat.domain.messages import BUCKET_MS, MessageIdGenerator, message_id_at
from chat.errors import NotFound
from chat.store.cql.messages import MessageStore
from chat.store.cql.unread import UNREAD_CAP, UnreadStore
from chat.store.driver.session import CqlStore
from tests.store.cql.messages import new_event_id, new_user_id, post


async def test_without_a_read_position_every_message_of_others_is_unread(
    unread: UnreadStore, message_store: MessageStore
) -> None:
    event_id, reader, other = new_event_id(), new_user_id(), new_user_id()
    for sender in (other, reader, other, other, reader):
        await post(message_store, event_id, sender)
    assert await unread.count(reader, event_id) == 3
    assert await unread.count(other, event_id) == 2
    assert await unread.read_position(reader, event_id) is None


async def test_mark_read_returns_the_count_after_the_position_and_never_moves_back(
    unread: UnreadStore, message_store: MessageStore
) -> None:
    event_id, reader, other = new_event_id(), new_user_id(), new_user_id()
    ids = [await post(message_store, event_id, other) for _ in range(5)]
    assert await unread.mark_read(reader, event_id, ids[2]) == 2
    assert await unread.mark_read(reader, event_id, ids[0]) == 2  # older: position stays
    assert await unread.read_position(reader, event_id) == ids[2]
    assert await unread.mark_read(reader, event_id, ids[4]) == 0
    assert await unread.mark_read(reader, event_id, ids[4]) == 0  # a retry changes nothing


async def test_mark_read_of_a_message_not_in_the_event_is_not_found(
    unread: UnreadStore, message_store: MessageStore
) -> None:
    event_id, elsewhere, reader = new_event_id(), new_event_id(), new_user_id()
    foreign = await post(message_store, elsewhere, new_user_id())
    never_sent = message_id_at(1_700_000_000_000, clock_seq=1, node=2)
    for message_id in (foreign, never_sent, uuid.uuid4()):
        with pytest.raises(NotFound, match="not found in event"):
            await unread.mark_read(reader, event_id, message_id)
    assert await unread.read_position(reader, event_id) is None


async def test_soft_deleted_messages_are_not_unread(
    unread: UnreadStore, message_store: MessageStore
) -> None:
    event_id, reader, other = new_event_id(), new_user_id(), new_user_id()
    kept = await post(message_store, event_id, other)
    gone = await post(message_store, event_id, other)
    await message_store.soft_delete(event_id, gone, other, may_moderate=False)
    assert await unread.count(reader, event_id) == 1
    assert await unread.mark_read(reader, event_id, gone) == 0  # still a message to read up to
    assert kept != gone


async def test_counts_cross_bucket_boundaries(
    unread: UnreadStore, cql_store: CqlStore, settings: Settings
) -> None:
    now_ms = [2000 * BUCKET_MS - 2]
    store = MessageStore(cql_store, settings, ids=MessageIdGenerator(lambda: now_ms[0] * 10**6))
    await store.start()
    try:
        event_id, reader, other = new_event_id(), new_user_id(), new_user_id()
        ids = []
        for offset in (0, 1, 2, 3, 3 * BUCKET_MS):  # buckets 1999, 1999, 2000, 2000, 2003
            now_ms[0] = 2000 * BUCKET_MS - 2 + offset
            ids.append(await post(store, event_id, other))
    finally:
        await store.close()
    assert await unread.count(reader, event_id) == 5
    assert await unread.mark_read(reader, event_id, ids[1]) == 3
    assert await unread.mark_read(reader, event_id, ids[2]) == 2
    assert await unread.mark_read(reader, event_id, ids[4]) == 0


async def test_counts_of_several_events_at_once(
    unread: UnreadStore, message_store: MessageStore
) -> None:
    reader, other = new_user_id(), new_user_id()
    busy, read, quiet = new_event_id(), new_event_id(), new_event_id()
    for _ in range(3):
        await post(message_store, busy, other)
    last = await post(message_store, read, other)
    await unread.mark_read(reader, read, last)
    assert await unread.counts(reader, [busy, read, quiet, busy]) == {busy: 3, read: 0, quiet: 0}
    assert await unread.counts(reader, []) == {}


async def test_counts_stop_at_the_cap(unread: UnreadStore, message_store: MessageStore) -> None:
    event_id, reader = new_event_id(), new_user_id()
    senders = [new_user_id() for _ in range(5)]
    await asyncio.gather(
        *(post(message_store, event_id, senders[n % 5]) for n in range(UNREAD_CAP + 5))
    )
    assert await unread.count(reader, event_id) == UNREAD_CAP
    own = len(range(0, UNREAD_CAP + 5, 5))
    assert await unread.count(senders[0], event_id) == UNREAD_CAP + 5 - own  # below the cap
