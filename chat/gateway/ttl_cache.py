"""A cache whose entries expire, bounded in entries: the gateway's look-up caches share it.

Membership answers (:mod:`chat.gateway.membership`), "not a participant" answers
(:mod:`chat.gateway.member_checks`) and event statuses (:mod:`chat.gateway.event_status`) are
each remembered for a while in front of PostgreSQL. Clients choose the keys (any event id), so
each cache holds at most ``max_entries``: a put into a full cache first drops expired entries
and then the oldest ones, in insertion order (a dict keeps it; a key put again moves to the
end), so making room costs nothing per entry kept.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

FOREVER = math.inf
"""A ``ttl`` for an entry that never expires (it may still be dropped to make room)."""


class TtlCache(Generic[K, V]):
    """``key -> value`` for ``ttl`` seconds after each put; at most ``max_entries`` keys."""

    def __init__(
        self, ttl: float, max_entries: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"a cache holds at least one entry, not {max_entries}")
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[K, tuple[V, float]] = {}

    def get(self, key: K) -> V | None:
        """The value put under ``key``, or None when there is none or it expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] > self._clock():
            return entry[0]
        del self._entries[key]
        return None

    def __contains__(self, key: K) -> bool:
        return self.get(key) is not None

    def put(self, key: K, value: V, *, ttl: float | None = None) -> None:
        """Remember ``value`` for ``ttl`` seconds (the cache's own unless given)."""
        now = self._clock()
        entries = self._entries
        entries.pop(key, None)  # re-inserted last: the dict stays in insertion order
        while entries:
            oldest, (_, until) = next(iter(entries.items()))
            if until > now and len(entries) < self.max_entries:
                break
            del entries[oldest]
        entries[key] = (value, now + (self.ttl if ttl is None else ttl))

    def pop(self, key: K) -> None:
        """Forget ``key`` (nothing happens when it is not cached)."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        """Entries held, expired ones not yet dropped included."""
        return len(self._entries)
