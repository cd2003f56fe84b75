"""How unread counts are read: few grouped requests, a bounded scan, shared reads of one event.

Every count is compared with a recount made independently from the history (messages after
the read position, not the reader's own, not deleted), and the requests it took are read from
the CQL server's own per-table counters.
"""

from __future__ import annotations

import asyncio

from chat.config import Settings
from chat.domain.messages import BUCKET_MS, NewMessage
from chat.store.cql.message_history import MessageHistory
from chat.store.cql.messages import MessageStore
from chat.store.cql.unread import CHUNK, GROUP_WINDOW, UNREAD_SCAN_LIMIT, UnreadStore
from chat.store.driver.session import CqlStore
from tests.store.clocks import SettableClock
from tests.store.cql.messages import new_event_id, new_user_id, post, recount
from tests.store.cql.server_reads import ServerReads

MESSAGES = "chat_messages_by_event"


async def test_a_count_looks_at_no_more_than_the_scan_limit_of_own_messages(
    unread: UnreadStore, message_store: MessageStore, server_reads: ServerReads
) -> None:
    event_id, reader, other = new_event_id(), new_user_id(), new_user_id()
    for _ in range(3):
        await post(message_store, event_id, other)  # beyond the window: not looked at
    own = 5500  # more than the scan limit looks at, and than that limit plus a chunk
    assert own > UNREAD_SCAN_LIMIT + CHUNK + GROUP_WINDOW + 20
    for _ in range(own // 500):
        await asyncio.gather(*(post(message_store, event_id, reader) for _ in range(500)))
    for _ in range(2):
        await post(message_store, event_id, other)
    await server_reads.start()
    assert await unread.count(reader, event_id) == 2
    reads = await server_reads.since_start()
    # An unbounded count would read every one of the reader's own messages (and all of
    # them again for every count): 5,500 rows here.
    assert reads["rows_read"] <= UNREAD_SCAN_LIMIT + CHUNK + GROUP_WINDOW + 20
    assert await unread.count(other, event_id) == 1000  # the cap


async def test_counts_of_many_events_take_a_few_grouped_reads(
    unread: UnreadStore, message_store: MessageStore, server_reads: ServerReads
) -> None:
    reader, other = new_user_id(), new_user_id()
    events = [new_event_id() for _ in range(150)]  # more than one IN list of 100

    async def fill(n: int, event_id: int) -> None:
        last = None
        for _ in range(3):
            last = await post(message_store, event_id, other)
        if n % 3 and last is not None:
            await unread.mark_read(reader, event_id, last)
        for _ in range(n % 5):
            await post(message_store, event_id, other if n % 2 else reader)

    await asyncio.gather(*(fill(n, e) for n, e in enumerate(events)))
    await server_reads.start()
    counts = await unread.counts(reader, events)
    reads = await server_reads.since_start()
    expected = {e: (3 if n % 3 == 0 else 0) + (n % 5 if n % 2 else 0) for n, e in enumerate(events)}
    assert counts == expected
    # Positions, bucket listings and the newest messages: two requests each (150 events).
    assert reads["chat_read_positions"] == 2
    assert reads["chat_event_buckets"] == 2
    assert reads[MESSAGES] == 2


async def test_counts_match_a_recount_across_buckets_positions_and_long_backlogs(
    unread: UnreadStore,
    history: MessageHistory,
    timed_store: MessageStore,
    clock: SettableClock,
    server_reads: ServerReads,
) -> None:
    reader, other = new_user_id(), new_user_id()
    base = 1000 * BUCKET_MS
    plans = {
        # event: (message offsets in buckets from base, index of the message marked read)
        new_event_id(): ([0, 0, 1, 1, 1], None),  # never read: both buckets
        new_event_id(): ([0, 1, 2, 5], 0),  # position in an older bucket, empty buckets between
        new_event_id(): ([0] * (GROUP_WINDOW + 40), 3),  # more than the grouped window
        new_event_id(): ([b for b in range(40) for _ in (0, 1)], None),  # 40 buckets, never read
        new_event_id(): ([b for b in range(40)], 20),  # position in the middle of 40 buckets
        new_event_id(): ([0, 0], 1),  # read to the end
        new_event_id(): ([], None),  # no messages at all
    }
    for index, (event_id, (offsets, marked)) in enumerate(plans.items()):
        ids = []
        for n, bucket in enumerate(offsets):  # each event in a later stretch of time
            clock.now_ms = base + (index * 50 + bucket) * BUCKET_MS + n
            ids.append(await post(timed_store, event_id, reader if n % 7 == 6 else other))
        if marked is not None:
            await unread.mark_read(reader, event_id, ids[marked])
    if plans:
        deleted_in = next(iter(plans))
        page = await history.latest(deleted_in, 1)
        victim = page.messages[0]
        await timed_store.soft_delete(
            deleted_in, victim.message_id, victim.sender_id, may_moderate=True
        )
    counts = await unread.counts(reader, list(plans))
    for event_id in plans:
        assert counts[event_id] == await recount(history, unread, reader, event_id), event_id
        assert await unread.count(reader, event_id) == counts[event_id]


async def test_counts_of_one_event_asked_by_many_users_at_once_share_its_reads(
    unread: UnreadStore,
    history: MessageHistory,
    message_store: MessageStore,
    server_reads: ServerReads,
) -> None:
    event_id = new_event_id()
    users = [new_user_id() for _ in range(250)]
    sent = [await post(message_store, event_id, users[n % 10]) for n in range(60)]
    for n, user in enumerate(users[:200]):
        await unread.mark_read(user, event_id, sent[n % 60])
    alone = {user: await unread.count(user, event_id) for user in users}
    await server_reads.start()
    together = await asyncio.gather(*(unread.count(user, event_id) for user in users))
    reads = await server_reads.since_start()
    assert dict(zip(users, together, strict=True)) == alone
    for user in users[::25]:
        assert alone[user] == await recount(history, unread, user, event_id)
    assert reads[MESSAGES] <= 3  # not one per user
    assert reads["chat_read_positions"] == 3  # 100 users per read


async def test_counts_are_exact_after_retried_sends_while_many_users_count_at_once(
    unread: UnreadStore,
    history: MessageHistory,
    message_store: MessageStore,
    cql_store: CqlStore,
    settings: Settings,
) -> None:
    event_id = new_event_id()
    users = [new_user_id() for _ in range(30)]
    other_node = MessageStore(cql_store, settings)
    await other_node.start()
    try:

        async def send_twice(n: int) -> None:
            message = NewMessage(event_id, users[n % 30], f"retry-{n}", f"message {n}")
            first, retry = await asyncio.gather(
                message_store.send(message), other_node.send(message)
            )
            assert first.message_id == retry.message_id
            if n % 4 == 0:
                await unread.mark_read(users[(n * 7) % 30], event_id, first.message_id)

        counting = asyncio.gather(
            *(unread.count(user, event_id) for _ in range(3) for user in users)
        )
        await asyncio.gather(*(send_twice(n) for n in range(120)))
        await counting
    finally:
        await other_node.close()
    counts = await asyncio.gather(*(unread.count(user, event_id) for user in users))
    for user, count in zip(users, counts, strict=True):
        assert count == await recount(history, unread, user, event_id)


async def test_a_count_over_sparse_buckets_reads_only_those_after_the_position(
    unread: UnreadStore,
    history: MessageHistory,
    timed_store: MessageStore,
    clock: SettableClock,
    server_reads: ServerReads,
) -> None:
    event_id, reader, other = new_event_id(), new_user_id(), new_user_id()
    buckets = list(range(1600, 1720, 3))  # 40 messages, one in every third of 120 buckets
    ids = []
    for bucket in buckets:
        clock.now_ms = bucket * BUCKET_MS + 5
        ids.append(await post(timed_store, event_id, other))
    await unread.mark_read(reader, event_id, ids[29])
    await server_reads.start()
    assert await unread.count(reader, event_id) == 10
    reads = await server_reads.since_start()
    # The ten buckets after the position: the newest in the grouped read, then one read each
    # for the other nine, and the position's own bucket (read above the position): 11.
    assert reads["chat_messages_by_event"] <= 11
    assert reads["chat_event_buckets"] == 1
    await server_reads.start()
    assert await unread.count(new_user_id(), event_id) == 40  # no position: every bucket
    reads = await server_reads.since_start()
    assert reads["chat_messages_by_event"] <= 40
    assert reads["chat_event_buckets"] <= 1 + 40 // 16  # listed sixteen at a time
    assert await recount(history, unread, reader, event_id) == 10


async def test_counts_reaching_into_older_buckets_read_them_for_many_events_at_once(
    unread: UnreadStore, timed_store: MessageStore, clock: SettableClock, server_reads: ServerReads
) -> None:
    reader, other = new_user_id(), new_user_id()
    events = [new_event_id() for _ in range(150)]
    for bucket in (1800, 1802, 1803):  # every event: one message in each, 1801 stays empty
        for n, event_id in enumerate(events):
            clock.now_ms = bucket * BUCKET_MS + n
            await post(timed_store, event_id, other)
    await server_reads.start()
    assert await unread.counts(reader, events) == dict.fromkeys(events, 3)  # never read
    reads = await server_reads.since_start()
    # Three buckets, each read for 100 and then 50 events at once: not once per event.
    assert reads[MESSAGES] == 6
    assert reads["chat_event_buckets"] == 2
