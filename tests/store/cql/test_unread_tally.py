"""The counting rules on a newest-first prefix of an event's messages, without I/O."""

from __future__ import annotations

import uuid

import pytest

from chat.domain.messages import message_id_at
from chat.domain.position import Position, order_key
from chat.store.cql.unread_tally import UNREAD_CAP, UNREAD_SCAN_LIMIT, EventRows

READER, OTHER = 1, 2


def ids(count: int, start_ms: int = 1_700_000_000_000) -> list[uuid.UUID]:
    """``count`` message ids, oldest first, two per millisecond."""
    return [message_id_at(start_ms + n // 2, clock_seq=n % 2, node=7) for n in range(count)]


def rows_of(
    messages: list[uuid.UUID],
    sender: dict[int, int] | None = None,
    deleted: frozenset[int] = frozenset(),
) -> list[tuple[int, int, bool]]:
    """Newest-first rows; ``sender`` maps an index (oldest first) to a sender (else OTHER)."""
    senders = sender or {}
    return [
        (order_key(m), senders.get(i, OTHER), i in deleted)
        for i, m in reversed(list(enumerate(messages)))
    ]


def key(message_id: uuid.UUID) -> int:
    return Position.of(message_id).order_key


def test_a_count_is_decided_once_the_rows_reach_the_position() -> None:
    messages = ids(10)
    rows = EventRows()
    rows.add(rows_of(messages)[:3])  # the newest three
    assert rows.count(READER, key(messages[6])) is None  # three read, position further down
    rows.cover(rows_of(messages)[2][0])
    assert rows.count(READER, key(messages[7])) == 2  # messages 8 and 9
    rows.add(rows_of(messages)[3:])
    assert rows.count(READER, key(messages[6])) is None  # read, but not known to be all
    rows.cover(rows_of(messages)[-1][0])
    assert rows.count(READER, key(messages[6])) == 3
    assert rows.count(READER, None) is None  # no position: the whole event is needed
    rows.finish()
    assert rows.count(READER, None) == 10


def test_own_and_deleted_messages_do_not_count() -> None:
    messages = ids(6)
    rows = EventRows()
    rows.add(rows_of(messages, sender={5: READER, 3: READER}, deleted=frozenset({4})))
    rows.finish()
    assert rows.count(READER, key(messages[0])) == 2  # 1 and 2; 3, 5 own, 4 deleted
    assert rows.count(OTHER, key(messages[0])) == 2  # 3 and 5 (READER's); 4 deleted


def test_counts_stop_at_the_cap_without_reading_to_the_position() -> None:
    messages = ids(UNREAD_CAP + 10)
    rows = EventRows()
    rows.add(rows_of(messages)[:UNREAD_CAP])
    assert rows.count(READER, None) == UNREAD_CAP
    assert rows.count(OTHER, None) is None  # all of them are OTHER's own


def test_no_more_than_the_scan_limit_of_rows_after_the_position_are_looked_at() -> None:
    messages = ids(UNREAD_SCAN_LIMIT + 20)
    own = {i: READER for i in range(10, UNREAD_SCAN_LIMIT + 18)}
    rows = EventRows()
    rows.add(rows_of(messages, sender=own)[:UNREAD_SCAN_LIMIT])
    # Others' messages: 0-9 (beyond the window) and the newest two (inside it).
    assert rows.count(READER, None) == 2
    assert rows.count(READER, key(messages[5])) == 2


def test_rows_must_come_newest_first_and_once() -> None:
    messages = ids(3)
    rows = EventRows()
    rows.add(rows_of(messages)[:2])
    with pytest.raises(ValueError, match="newest first"):
        rows.add(rows_of(messages)[1:2])
