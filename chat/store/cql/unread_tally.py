"""Unread counts over the newest messages of an event read so far: the rules, without I/O.

A user's unread count in an event is the number of messages after their read position that
others sent and nobody deleted, **among the first** :data:`UNREAD_SCAN_LIMIT` **messages after
the position**, and at most :data:`UNREAD_CAP`. Messages are read newest first, so both
limits bound the read: a count never needs more than ``UNREAD_SCAN_LIMIT`` rows after the
position, however many of them are the reader's own or deleted (without that bound a user who
wrote thousands of messages without reading — or a moderator who deleted thousands — made
every count of theirs scan all of them).

:class:`EventRows` holds a newest-first *prefix* of one event's messages (every message newer
than :attr:`EventRows.covered_below` is in it) and answers, for any reader and position,
either the count or "read further". Many readers of one event share one prefix (a resume
storm: a thousand users subscribing at once cost one read of the event), and each answer is a
couple of binary searches, not a pass over the rows.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

UNREAD_CAP = 1000
"""Counts stop here; clients show "999+"-style badges, and the read stays bounded."""

UNREAD_SCAN_LIMIT = 4 * UNREAD_CAP
"""At most this many messages after the position are looked at, own and deleted ones included.

Four times the cap, so that only a reader whose own (or deleted) messages are more than three
quarters of the newest 4,000 after their position can see a count below what an unbounded
scan would say — and then a count of at least what it shows."""

Row = tuple[int, int, bool]
"""A message as a count sees it: its order key (``chat.domain.position.order_key``), its sender,
whether it is deleted."""


class EventRows:
    """The newest messages of one event read so far, newest first, and how complete they are.

    Rows are added in reading order (newest first, each chunk continuing below the last).
    ``covered_below`` says how far down the prefix is complete: every message whose key is
    above it has been added. ``complete`` means every message of the event has been added.
    Keys and positions are order keys (``chat.domain.position.order_key``, ``Position.order_key``).
    """

    __slots__ = ("_kept", "_kept_by_sender", "_keys", "complete", "covered_below")

    def __init__(self) -> None:
        self._keys: list[int] = []
        # _kept[i]: messages not deleted among the first i rows.
        self._kept: list[int] = [0]
        # Row indexes of each sender's messages that are not deleted, ascending.
        self._kept_by_sender: dict[int, list[int]] = {}
        self.covered_below: int | None = None
        self.complete = False

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, rows: Iterable[Row]) -> None:
        """Append ``(key, sender_id, is_deleted)`` rows, each older than the previous."""
        keys, kept, by_sender = self._keys, self._kept, self._kept_by_sender
        for key, sender_id, is_deleted in rows:
            if keys and not key < keys[-1]:
                raise ValueError("rows must be added newest first, without repeats")
            index = len(keys)
            keys.append(key)
            if is_deleted:
                kept.append(kept[-1])
            else:
                kept.append(kept[-1] + 1)
                by_sender.setdefault(sender_id, []).append(index)

    def cover(self, bound: int) -> None:
        """Every message above ``bound`` has now been added."""
        if self.covered_below is None or bound < self.covered_below:
            self.covered_below = bound

    def finish(self) -> None:
        """Every message of the event has been added."""
        self.complete = True

    def _newer_than(self, position: int | None) -> int:
        """How many rows read so far are newer than ``position`` (all of them for None)."""
        keys = self._keys
        if position is None:
            return len(keys)
        lo, hi = 0, len(keys)
        while lo < hi:  # keys descend: find the first key at or below the position
            mid = (lo + hi) // 2
            if keys[mid] > position:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def count(self, user_id: int, position: int | None) -> int | None:
        """The user's unread count if the rows read so far decide it, else None."""
        window = min(self._newer_than(position), UNREAD_SCAN_LIMIT)
        own = self._kept_by_sender.get(user_id)
        others = self._kept[window] - (bisect.bisect_left(own, window) if own else 0)
        if others >= UNREAD_CAP:
            return UNREAD_CAP
        if window >= UNREAD_SCAN_LIMIT or self.complete:
            return others
        covered = self.covered_below
        if position is not None and covered is not None and position >= covered:
            return others
        return None
