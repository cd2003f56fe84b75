"""History reads through the real driver: latest, before/after cursors, time ranges, activity.

Messages are placed at chosen times with an injected clock, on both sides of 10-day bucket
boundaries and with an empty bucket in between, so that paging must cross partitions.
"""

from __future__ import annotations

import uuid

import pytest

from chat.config import Settings
from chat.domain.messages import (
    BUCKET_MS,
    datetime_from_ms,
    encode_cursor,
)
from chat.errors import ValidationFailed
from chat.store.cql.message_history import MAX_PAGE_SIZE, MessageHistory, MessagePage
from chat.store.cql.messages import MessageStore
from chat.store.driver.session import CqlStore, execute_async
from tests.store.clocks import SettableClock
from tests.store.cql.messages import new_event_id, new_user_id, post
from tests.store.cql.server_reads import ServerReads

BOUNDARY_BUCKET = 2000
BOUNDARY_MS = BOUNDARY_BUCKET * BUCKET_MS  # a bucket boundary in October 2024


async def post_at(
    store: MessageStore, clock: SettableClock, event_id: int, sender_id: int, *offsets_ms: int
) -> list[uuid.UUID]:
    """One message per offset from BOUNDARY_MS, in the order given (which must be ascending)."""
    ids = []
    for offset in offsets_ms:
        clock.now_ms = BOUNDARY_MS + offset
        ids.append(await post(store, event_id, sender_id, f"at {offset}"))
    return ids


# Buckets 1999, 2000 and 2002 hold messages, 2001 is empty. Several messages share a
# millisecond on each side of the boundary, so ties on created_at are ordered by id.
BOUNDARY_OFFSETS = (-BUCKET_MS, -1, -1, -1, 0, 0, 0, 5, 2 * BUCKET_MS + 1, 2 * BUCKET_MS + 1)


@pytest.fixture
async def boundary_event(
    timed_store: MessageStore, clock: SettableClock
) -> tuple[int, list[uuid.UUID]]:
    """An event with BOUNDARY_OFFSETS messages; returns it and the ids oldest first."""
    event_id = new_event_id()
    ids = await post_at(timed_store, clock, event_id, new_user_id(), *BOUNDARY_OFFSETS)
    return event_id, ids


async def walk_down(history: MessageHistory, event_id: int, limit: int) -> list[uuid.UUID]:
    page = await history.latest(event_id, limit)
    seen = [m.message_id for m in page.messages]
    while page.next_cursor is not None:
        assert len(page.messages) == limit
        page = await history.before(event_id, page.next_cursor, limit)
        seen += [m.message_id for m in page.messages]
    return seen


async def walk_up(history: MessageHistory, event_id: int, limit: int) -> list[uuid.UUID]:
    page: MessagePage = await history.after(event_id, None, limit)
    seen = [m.message_id for m in page.messages]
    while page.next_cursor is not None:
        assert len(page.messages) == limit
        page = await history.after(event_id, page.next_cursor, limit)
        seen += [m.message_id for m in page.messages]
    return seen


async def test_messages_are_spread_over_the_buckets_of_their_times(
    cql_store: CqlStore, settings: Settings, boundary_event: tuple[int, list[uuid.UUID]]
) -> None:
    event_id, _ = boundary_event
    rows = await execute_async(
        cql_store.session,
        f"SELECT bucket FROM {settings.cql_keyspace}.chat_event_buckets WHERE event_id = %s",
        (event_id,),
    )
    assert [row.bucket for row in rows] == [2002, 2000, 1999]


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 9, 10, 11])
async def test_paging_newest_first_walks_every_message_once_across_bucket_boundaries(
    history: MessageHistory, boundary_event: tuple[int, list[uuid.UUID]], limit: int
) -> None:
    event_id, ids = boundary_event
    assert await walk_down(history, event_id, limit) == ids[::-1]


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 9, 10, 11])
async def test_paging_oldest_first_walks_every_message_once_across_bucket_boundaries(
    history: MessageHistory, boundary_event: tuple[int, list[uuid.UUID]], limit: int
) -> None:
    event_id, ids = boundary_event
    assert await walk_up(history, event_id, limit) == ids


async def test_latest_is_newest_first_with_created_at_derived_from_the_id(
    history: MessageHistory, boundary_event: tuple[int, list[uuid.UUID]]
) -> None:
    event_id, ids = boundary_event
    page = await history.latest(event_id, 3)
    assert [m.message_id for m in page.messages] == ids[::-1][:3]
    assert [m.text for m in page.messages] == [f"at {2 * BUCKET_MS + 1}"] * 2 + ["at 5"]
    assert page.messages[0].created_at == datetime_from_ms(BOUNDARY_MS + 2 * BUCKET_MS + 1)
    assert page.next_cursor is not None


async def test_before_a_cursor_in_one_bucket_continues_in_the_older_bucket(
    history: MessageHistory, boundary_event: tuple[int, list[uuid.UUID]]
) -> None:
    event_id, ids = boundary_event
    first_of_bucket_2000 = ids[4]
    page = await history.before(event_id, encode_cursor(first_of_bucket_2000), 2)
    assert [m.message_id for m in page.messages] == [ids[3], ids[2]]


async def test_after_a_cursor_skips_the_empty_bucket_and_is_oldest_first(
    history: MessageHistory, boundary_event: tuple[int, list[uuid.UUID]]
) -> None:
    event_id, ids = boundary_event
    page = await history.after(event_id, encode_cursor(ids[7]), 10)
    assert [m.message_id for m in page.messages] == ids[8:]
    assert page.next_cursor is None
    assert page.resume_cursor == encode_cursor(ids[-1])


async def test_after_the_last_message_is_empty_until_a_new_one_arrives(
    history: MessageHistory, message_store: MessageStore
) -> None:
    event_id, sender = new_event_id(), new_user_id()
    first = await post(message_store, event_id, sender)
    caught_up = await history.after(event_id, encode_cursor(first), 50)
    assert caught_up.messages == []
    assert caught_up.next_cursor is None
    second = await post(message_store, event_id, sender)
    resumed = await history.after(event_id, encode_cursor(first), 50)
    assert [m.message_id for m in resumed.messages] == [second]


async def test_an_event_without_messages_has_an_empty_history(history: MessageHistory) -> None:
    event_id = new_event_id()
    assert await history.latest(event_id, 10) == MessagePage([], None)
    assert await history.after(event_id, None, 10) == MessagePage([], None)


async def test_history_shows_edits_and_soft_deletes(
    history: MessageHistory, message_store: MessageStore
) -> None:
    event_id, sender = new_event_id(), new_user_id()
    edited = await post(message_store, event_id, sender, "draft")
    deleted = await post(message_store, event_id, sender, "oops")
    await message_store.edit(event_id, edited, sender, "final")
    await message_store.soft_delete(event_id, deleted, sender, may_moderate=False)
    newest, oldest = (await history.latest(event_id, 10)).messages
    assert (newest.message_id, newest.is_deleted, newest.text) == (deleted, True, "")
    assert (oldest.message_id, oldest.text) == (edited, "final")
    assert oldest.edited_at is not None


async def test_between_reads_a_half_open_time_range_newest_first_across_buckets(
    history: MessageHistory, boundary_event: tuple[int, list[uuid.UUID]]
) -> None:
    event_id, ids = boundary_event
    start, end = datetime_from_ms(BOUNDARY_MS - 1), datetime_from_ms(BOUNDARY_MS + 5)
    page = await history.between(event_id, start, end, 100)
    assert [m.message_id for m in page.messages] == ids[1:7][::-1]
    assert page.next_cursor is None


async def test_between_pages_with_a_cursor_through_the_whole_range(
    history: MessageHistory, boundary_event: tuple[int, list[uuid.UUID]]
) -> None:
    event_id, ids = boundary_event
    start = datetime_from_ms(BOUNDARY_MS - BUCKET_MS)
    end = datetime_from_ms(BOUNDARY_MS + 2 * BUCKET_MS + 1)  # excludes the last two
    seen: list[uuid.UUID] = []
    cursor: str | None = None
    while True:
        page = await history.between(event_id, start, end, 3, cursor)
        seen += [m.message_id for m in page.messages]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == ids[:8][::-1]


async def test_between_rejects_an_empty_range(history: MessageHistory) -> None:
    at = datetime_from_ms(BOUNDARY_MS)
    with pytest.raises(ValidationFailed, match="start must be before end"):
        await history.between(new_event_id(), at, at, 10)


async def test_a_cursor_not_issued_by_the_service_is_rejected(history: MessageHistory) -> None:
    with pytest.raises(ValidationFailed, match="cursor"):
        await history.before(new_event_id(), "not-a-cursor", 10)


@pytest.mark.parametrize("limit", [0, -1, MAX_PAGE_SIZE + 1])
async def test_page_sizes_outside_the_allowed_range_are_rejected(
    history: MessageHistory, limit: int
) -> None:
    with pytest.raises(ValidationFailed, match="limit"):
        await history.latest(new_event_id(), limit)


async def test_activity_lists_a_users_messages_across_events_and_buckets_newest_first(
    history: MessageHistory, timed_store: MessageStore, clock: SettableClock
) -> None:
    user, other = new_user_id(), new_user_id()
    events = [new_event_id() for _ in range(3)]
    mine: list[tuple[int, uuid.UUID]] = []
    for n, offset in enumerate((-BUCKET_MS, -1, 0, 0, 3, 3 * BUCKET_MS)):
        clock.now_ms = BOUNDARY_MS + offset
        event_id = events[n % 3]
        mine.append((event_id, await post(timed_store, event_id, user, f"mine {n}")))
        await post(timed_store, event_id, other, f"theirs {n}")
    seen: list[tuple[int, uuid.UUID]] = []
    page = await history.activity(user, 4)
    seen += [(item.event_id, item.message_id) for item in page.items]
    assert page.next_cursor is not None
    page = await history.activity(user, 4, page.next_cursor)
    seen += [(item.event_id, item.message_id) for item in page.items]
    assert page.next_cursor is None
    assert seen == mine[::-1]
    assert page.items[-1].text == "mine 0"
    assert page.items[-1].user_id == user


SPARSE_BUCKETS = list(range(1500, 1560, 3))  # one message in every third bucket: 20 of 60


@pytest.fixture
async def sparse_event(
    timed_store: MessageStore, clock: SettableClock
) -> tuple[int, list[uuid.UUID]]:
    """An event with one message in each of SPARSE_BUCKETS; returns it and the ids, oldest
    first."""
    event_id = new_event_id()
    ids = []
    for bucket in SPARSE_BUCKETS:
        clock.now_ms = bucket * BUCKET_MS + 17
        ids.append(await post(timed_store, event_id, new_user_id()))
    return event_id, ids


async def test_paging_a_sparse_event_reads_only_buckets_that_hold_messages(
    history: MessageHistory, sparse_event: tuple[int, list[uuid.UUID]], server_reads: ServerReads
) -> None:
    event_id, ids = sparse_event
    limit = 3
    for newest in (True, False):
        seen: list[uuid.UUID] = []
        cursor: str | None = None
        while True:
            await server_reads.start()
            if newest:
                page = await (
                    history.before(event_id, cursor, limit)
                    if cursor
                    else history.latest(event_id, limit)
                )
            else:
                page = await history.after(event_id, cursor, limit)
            reads = await server_reads.since_start()
            remaining = len(ids) - len(seen)
            # One message per bucket: a page of `limit` (plus the row that shows another
            # page exists) is that many bucket reads; a cursor's own bucket, read first
            # because it is known to hold messages, adds at most one that has none left.
            assert reads.get("chat_messages_by_event", 0) <= min(limit + 1, remaining) + (
                1 if cursor else 0
            )
            assert reads.get("chat_event_buckets", 0) <= 1
            seen += [m.message_id for m in page.messages]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == (ids[::-1] if newest else ids)


async def test_a_page_within_the_cursors_bucket_is_one_read(
    history: MessageHistory, boundary_event: tuple[int, list[uuid.UUID]], server_reads: ServerReads
) -> None:
    event_id, ids = boundary_event  # ids[4:8] share bucket 2000
    await server_reads.start()
    page = await history.before(event_id, encode_cursor(ids[7]), 2)
    assert [m.message_id for m in page.messages] == [ids[6], ids[5]]
    reads = await server_reads.since_start()
    assert reads["chat_messages_by_event"] == 1
    assert "chat_event_buckets" not in reads  # the index is not needed for a full page


async def test_newest_first_reads_sparse_buckets_several_at_a_time(
    history: MessageHistory, sparse_event: tuple[int, list[uuid.UUID]], server_reads: ServerReads
) -> None:
    event_id, ids = sparse_event
    await server_reads.start()
    page = await history.latest(event_id, 19)
    reads = await server_reads.since_start()
    assert [m.message_id for m in page.messages] == ids[::-1][:19]
    assert page.next_cursor is not None
    # 20 rows wanted from 20 one-message buckets: 1, then 2, 4, 8 and the last 5 at once.
    assert reads["chat_messages_by_event"] == 5
    assert reads["chat_event_buckets"] == 1
