"""The bus's pieces without a server: the outbox's byte budget, presence in parts, and the
event frames' numbers."""

from __future__ import annotations

import orjson

from chat.bus.outbox import Outbox
from chat.bus.presence import PresenceTable, presence_parts
from chat.bus.sequences import EventSequences


def test_the_outbox_drops_and_counts_frames_past_its_byte_budget() -> None:
    dropped: list[int] = []
    outbox = Outbox(
        1000, published=lambda: None, failed=lambda: None, dropped=lambda: dropped.append(1)
    )
    assert outbox.put("chat.node", b"x" * 600, None)
    assert outbox.put("chat.node", b"x" * 400, None)
    assert not outbox.put("chat.node", b"x", None)
    assert (outbox.waiting_bytes, len(dropped)) == (1000, 1)
    outbox.clear()
    assert outbox.waiting_bytes == 0
    assert outbox.put("chat.node", b"x" * 1000, None)


def test_a_large_presence_map_goes_in_parts_each_far_below_max_payload_and_reassembles() -> None:
    presence = {event_id: frozenset(range(10**12, 10**12 + 50)) for event_id in range(2000)}
    limit = 64 * 1024
    parts = presence_parts(presence, limit)
    assert len(parts) > 10
    for part in parts:
        assert len(orjson.dumps({"k": "beat", "events": part})) <= limit + 2048
    clock = [0.0]
    table = PresenceTable(lambda: clock[0], ttl=5.0)
    assembled = None
    for i, part in enumerate(parts):
        assert assembled is None
        body = {"b": 7, "i": i, "m": len(parts), "events": part, "ttl": 5.0}
        assembled = table.heartbeat_part("other", body)
    assert assembled == {e: set(u) for e, u in presence.items()}


def test_a_heartbeat_with_a_lost_part_never_replaces_the_last_complete_one() -> None:
    table = PresenceTable(lambda: 0.0, ttl=5.0)
    full = {"b": 1, "i": 0, "m": 1, "events": {"1": [5]}, "ttl": 5.0}
    assert table.heartbeat_part("other", full) == {1: {5}}
    table.nodes["other"].events = {1: {5}}
    assert table.heartbeat_part("other", {"b": 2, "i": 0, "m": 2, "events": {}, "ttl": 5.0}) is None
    # Part 1 of beat 2 never comes; beat 3 starts afresh.
    assert table.heartbeat_part("other", {"b": 3, "i": 1, "m": 2, "events": {}, "ttl": 5.0}) is None
    assert table.nodes["other"].events == {1: {5}}


def test_a_skipped_event_frame_number_is_a_gap_and_a_restart_at_one_is_a_new_baseline() -> None:
    seqs = EventSequences(idle=10.0, now=0.0)
    assert [seqs.received(7, "a", n) for n in (5, 6)] == [None, None]  # first: a baseline
    assert seqs.received(7, "a", 8) == 6  # 7 was lost
    assert seqs.received(7, "a", 1) is None  # the sender forgot the idle event's number
    seqs.forget_node("a")
    assert seqs.received(7, "a", 40) is None


def test_an_event_unused_for_a_whole_idle_period_is_numbered_from_one_again() -> None:
    seqs = EventSequences(idle=10.0, now=0.0)
    assert [seqs.next(7), seqs.next(7), seqs.next(8)] == [1, 2, 1]
    seqs.sweep(10.0)
    assert seqs.next(8) == 2  # used in the period before: kept
    seqs.sweep(20.0)
    assert (seqs.next(7), seqs.next(8)) == (1, 3)
