"""Unread counts have zero drift under concurrent senders, retried sends and racing "mark read".

After every storm of concurrent operations the stored count is compared with a recount made
independently from the history (every message after the read position that is not the
reader's own and not deleted) — the two must agree exactly.
"""

from __future__ import annotations

import asyncio
import uuid

from chat.config import Settings
from chat.domain.messages import MessageIdGenerator, NewMessage
from chat.domain.position import Position
from chat.store.cql.message_history import MessageHistory
from chat.store.cql.messages import MessageStore
from chat.store.cql.unread import UnreadStore, write_timestamp_of
from chat.store.driver.session import CqlStore
from tests.store.cql.messages import new_event_id, new_user_id, recount


async def all_messages(history: MessageHistory, event_id: int) -> list[uuid.UUID]:
    page = await history.after(event_id, None, 500)
    ids = [m.message_id for m in page.messages]
    while page.next_cursor is not None:
        page = await history.after(event_id, page.next_cursor, 500)
        ids += [m.message_id for m in page.messages]
    return ids


async def test_zero_drift_under_concurrent_senders_retries_and_racing_mark_read(
    unread: UnreadStore,
    history: MessageHistory,
    message_store: MessageStore,
    other_node: MessageStore,
) -> None:
    event_id, reader = new_event_id(), new_user_id()
    senders = [reader, *(new_user_id() for _ in range(4))]
    marked: list[uuid.UUID] = []

    async def send_retry_and_mark(n: int) -> uuid.UUID:
        message = NewMessage(event_id, senders[n % len(senders)], f"storm-{n}", f"message {n}")
        node = (message_store, other_node)[n % 2]
        original, racing_retry = await asyncio.gather(node.send(message), node.send(message))
        late_retry = await (other_node, message_store)[n % 2].send(message)  # the other node
        assert racing_retry.message_id == original.message_id == late_retry.message_id
        assert late_retry.duplicate
        if n % 3 == 0:
            await unread.mark_read(reader, event_id, original.message_id)
            marked.append(original.message_id)
        return original.message_id

    sent = await asyncio.gather(*(send_retry_and_mark(n) for n in range(150)))
    stored = await all_messages(history, event_id)
    assert sorted(stored) == sorted(sent)  # every send once: no retry wrote a second row
    position = await unread.read_position(reader, event_id)
    assert position == max(marked, key=Position.of)  # the latest marked message won
    expected = await recount(history, unread, reader, event_id)
    assert await unread.count(reader, event_id) == expected
    others_after = [m for m in stored if Position.of(m) > Position.of(position)]
    assert expected == sum(1 for m in others_after if sent.index(m) % len(senders) != 0)


async def test_mark_read_requests_arriving_in_any_order_leave_the_newest_position(
    unread: UnreadStore, history: MessageHistory, message_store: MessageStore
) -> None:
    event_id, reader, other = new_event_id(), new_user_id(), new_user_id()
    ids = [
        (await message_store.send(NewMessage(event_id, other, f"m{n}", "x"))).message_id
        for n in range(40)
    ]
    counts = await asyncio.gather(
        *(unread.mark_read(reader, event_id, m) for m in [*reversed(ids), *ids[::3]])
    )
    assert all(0 <= c <= 39 for c in counts)
    assert await unread.read_position(reader, event_id) == ids[-1]
    assert await unread.count(reader, event_id) == 0
    assert await recount(history, unread, reader, event_id) == 0


async def test_messages_racing_a_mark_read_are_unread_exactly_when_they_sort_after_it(
    unread: UnreadStore,
    history: MessageHistory,
    message_store: MessageStore,
    other_node: MessageStore,
) -> None:
    event_id, reader, other = new_event_id(), new_user_id(), new_user_id()
    first = await message_store.send(NewMessage(event_id, other, "first", "x"))
    racing = [NewMessage(event_id, other, f"race-{n}", "x") for n in range(60)]
    results = await asyncio.gather(
        unread.mark_read(reader, event_id, first.message_id),
        *((message_store, other_node)[n % 2].send(message) for n, message in enumerate(racing)),
    )
    assert isinstance(results[0], int)
    assert await unread.count(reader, event_id) == 60
    assert await recount(history, unread, reader, event_id) == 60
    # Retrying every racing send (on the other node) adds nothing.
    await asyncio.gather(
        *((other_node, message_store)[n % 2].send(message) for n, message in enumerate(racing))
    )
    assert await unread.count(reader, event_id) == 60
    assert await recount(history, unread, reader, event_id) == 60


async def test_two_messages_in_the_same_microsecond_resolve_to_the_later_one(
    unread: UnreadStore, cql_store: CqlStore, settings: Settings
) -> None:
    """Equal write timestamps fall back to the greater value, which is the later id."""
    frozen = MessageIdGenerator(lambda: 1_700_000_000_000_000_000)  # clock standing still
    store = MessageStore(cql_store, settings, ids=frozen)
    await store.start()
    try:
        event_id, other = new_event_id(), new_user_id()
        ids = [
            (await store.send(NewMessage(event_id, other, f"same-us-{n}", "x"))).message_id
            for n in range(3)
        ]
    finally:
        await store.close()
    assert len({write_timestamp_of(m) for m in ids}) == 1
    for order in (ids, ids[::-1]):
        reader = new_user_id()
        await asyncio.gather(*(unread.mark_read(reader, event_id, m) for m in order))
        assert await unread.read_position(reader, event_id) == ids[-1]
        assert await unread.count(reader, event_id) == 0
