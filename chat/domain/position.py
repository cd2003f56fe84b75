"""Where a message stands in an event's order: the ``(created_at, message_id)`` clustering key.

A value type shared by the store (its read bounds and cursors), the gateway (the order it
delivers live messages in) and the bus (the cross-node order), so it lives with the other
message rules rather than in any one of them; it does no I/O.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from chat.domain.messages import created_at_ms_of, datetime_from_ms, first_tick_of_ms, ms_of_ticks

MIN_TIMEUUID = uuid.UUID(fields=(0, 0, 0x1000, 0x80, 0x80, 0x808080808080))
"""A version-1 UUID with the smallest timestamp: sorts before every real id of a millisecond."""

_FLIP_SIGN = bytes(b ^ 0x80 for b in range(256))


def _tie_break(message_id: uuid.UUID) -> bytes:
    """The last 8 bytes of a timeuuid as CQL compares them: signed, byte by byte (flipping
    each byte's sign bit makes Python's unsigned byte comparison agree)."""
    return message_id.bytes[8:].translate(_FLIP_SIGN)


MAX_TIE_BREAK_UUID_FIELDS = (0xBF, 0x7F, 0x7F7F7F7F7F7F)
"""clock_seq_hi_variant, clock_seq_low and node of the greatest RFC 4122 timeuuid of a tick in
CQL's order (what the driver's ``max_uuid_from_time`` uses)."""


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A point in the ``(created_at, message_id)`` order of one partition's clustering key.

    Compared exactly as CQL compares the key: milliseconds, then the id's timestamp, then the
    rest of the id as signed bytes (ids of two nodes can share a 100-ns tick, and the gateway's
    cross-node order must then agree with the store's).
    """

    created_at_ms: int
    id_time: int
    tie_break: bytes
    id_bytes: bytes = field(compare=False)

    @classmethod
    def of(cls, message_id: uuid.UUID) -> Position:
        """The key of an existing message."""
        return cls(
            created_at_ms_of(message_id), message_id.time, _tie_break(message_id), message_id.bytes
        )

    @classmethod
    def before_ms(cls, created_at_ms: int) -> Position:
        """A bound just before every message of millisecond ``created_at_ms``."""
        return cls(created_at_ms, MIN_TIMEUUID.time, _tie_break(MIN_TIMEUUID), MIN_TIMEUUID.bytes)

    @classmethod
    def after_ticks(cls, ticks: int) -> Position:
        """A bound at the greatest possible id whose timestamp is ``ticks`` (100-ns units of
        ``uuid.time``): every id of a later tick is above it, every id of that tick or an
        earlier one at or below it."""
        hi_variant, low, node = MAX_TIE_BREAK_UUID_FIELDS
        bound = uuid.UUID(
            fields=(
                ticks & 0xFFFFFFFF,
                (ticks >> 32) & 0xFFFF,
                ((ticks >> 48) & 0x0FFF) | 0x1000,
                hi_variant,
                low,
                node,
            )
        )
        return cls(ms_of_ticks(ticks), ticks, _tie_break(bound), bound.bytes)

    @property
    def message_id(self) -> uuid.UUID:
        """The id at this position (a real message's, or the bound's own timeuuid)."""
        return uuid.UUID(bytes=self.id_bytes)

    def bind(self) -> tuple[datetime, uuid.UUID]:
        """The two bind values of a tuple relation ``(created_at, message_id) < (?, ?)``."""
        return datetime_from_ms(self.created_at_ms), uuid.UUID(bytes=self.id_bytes)

    @property
    def order_key(self) -> int:
        """This position as one integer in the same order (see :func:`order_key`)."""
        first_tick = first_tick_of_ms(self.created_at_ms)
        if self.id_time < first_tick:
            return first_tick << 128  # a bound below every id of its millisecond
        return self.id_time << 128 | int.from_bytes(self.id_bytes)


def order_key(message_id: uuid.UUID) -> int:
    """A message's place in the clustering order as one integer: its timestamp, then its
    bytes — :class:`Position`'s order (whose milliseconds follow from the timestamp), at a
    fraction of the cost of building one (counting compares thousands of keys)."""
    n = message_id.int
    ticks = ((n >> 64) & 0x0FFF) << 48 | ((n >> 80) & 0xFFFF) << 32 | n >> 96
    return ticks << 128 | n
