"""One event's messages in store order, built from whatever frames arrive in whatever order.

The store orders an event's messages by their time-based ``message_id``: its 60-bit
timestamp, then, for the rare tie of two nodes in one 100-ns tick, its last 8 bytes as signed
bytes. Frames reach a client from live delivery, resume replays and ``history`` pages,
possibly overlapping and, across gateway nodes, possibly out of order; inserting each message
at its place by that key, and replacing a message already held (same ``message_id``) instead
of adding it again, gives the one order with no duplicate.
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Iterable, Iterator

from chat.gateway.server_frames import (
    ChatMessage,
    HistoryPage,
    MessagePosted,
    MessageUpdated,
    ReactionChanged,
)

OrderKey = tuple[int, bytes]

_FLIP_SIGN = bytes(b ^ 0x80 for b in range(256))


def order_key(message_id: uuid.UUID) -> OrderKey:
    """The store's order of a message: the id's timestamp, then its last 8 bytes compared as
    signed bytes, as CQL compares timeuuids (flipping each byte's sign bit makes the unsigned
    comparison of ``bytes`` agree)."""
    return (message_id.time, message_id.bytes[8:].translate(_FLIP_SIGN))


class Timeline:
    """The messages of one event, oldest first, each once; reaction tallies beside them."""

    def __init__(self, event_id: int) -> None:
        self.event_id = event_id
        self._keys: list[OrderKey] = []
        self._messages: list[ChatMessage] = []
        self.reactions: dict[uuid.UUID, dict[str, int]] = {}

    def __len__(self) -> int:
        return len(self._messages)

    def __iter__(self) -> Iterator[ChatMessage]:
        return iter(self._messages)

    def add(self, messages: Iterable[ChatMessage]) -> None:
        """Insert (or update in place) each message at its position in store order."""
        for message in messages:
            if message.event_id != self.event_id:
                continue
            key = order_key(message.message_id)
            at = bisect.bisect_left(self._keys, key)
            if at < len(self._keys) and self._keys[at] == key:
                self._messages[at] = message
            else:
                self._keys.insert(at, key)
                self._messages.insert(at, message)

    def apply(self, frame: object) -> None:
        """Take in a frame of this event: ``message``, ``message_updated``, ``history`` or
        ``reaction``; anything else (other events, other frames) is ignored."""
        if isinstance(frame, MessagePosted | MessageUpdated) and frame.event_id == self.event_id:
            self.add([frame.message])
        elif isinstance(frame, HistoryPage) and frame.event_id == self.event_id:
            self.add(frame.messages)
        elif isinstance(frame, ReactionChanged) and frame.event_id == self.event_id:
            self.reactions[frame.message_id] = dict(frame.counts)

    def oldest_cursor(self) -> str | None:
        """Where a ``history`` request with ``before`` continues into the past."""
        return self._messages[0].cursor if self._messages else None
