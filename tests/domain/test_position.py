"""Positions in an event's order, compared as CQL compares the clustering key, without I/O."""

from __future__ import annotations

from chat.domain.messages import message_id_at
from chat.domain.position import Position, order_key


def test_order_keys_sort_as_positions_do_including_millisecond_bounds() -> None:
    start_ms = 1_700_000_000_000
    messages = [message_id_at(start_ms + n // 2, clock_seq=n % 2, node=7) for n in range(6)]
    positions = [Position.of(m) for m in messages]
    bounds = [Position.before_ms(p.created_at_ms) for p in positions]
    everything = positions + bounds
    assert sorted(everything) == sorted(everything, key=lambda p: p.order_key)
    assert [order_key(m) for m in messages] == [p.order_key for p in positions]
