"""Who takes part in which event, as the gateway sees it: PostgreSQL behind a small cache.

Every chat frame that names an event needs a membership check, and a busy event sees many
frames per second; asking PostgreSQL each time would make the database the gateway's limit.
So *positive* answers are cached per ``(event_id, user_id)``. Negative answers are not
cached here (they would need an invalidation on every event creation too); the gateway keeps
them only briefly, in front of this cache (:mod:`chat.gateway.member_checks`), so that a client
probing events it is not in cannot keep the pool busy.

The cache must never let a removed participant keep reading. The REST layer therefore reports
every participant add/remove right after it commits (``AppState.notifications``, see
:mod:`chat.notifications`); the gateway passes it to :meth:`Membership.changed`, which drops the
cached answer, bumps the pair's *epoch* (a subscription that was being set up while the removal
happened sees the change and ends) and tells the listeners — the gateway's service, which ends
the user's live subscriptions at once, and with several nodes the bus, which carries the change
to the other nodes' caches. A TTL bounds how long an entry could outlive a change whose
notification was lost.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Unpack

import asyncpg

from chat.gateway.cached_lookup import CachedLookup, CacheOptions
from chat.store.pg import events as event_store

log = logging.getLogger(__name__)

Listener = Callable[[int, int, bool], None]
"""Called with ``(event_id, user_id, present)`` after a participant was added or removed."""


class Membership(CachedLookup[tuple[int, int], bool]):
    """Cached participant checks, invalidated by :func:`participants_changed`."""

    def __init__(self, pool: asyncpg.Pool, **options: Unpack[CacheOptions]) -> None:
        super().__init__(pool, **options)
        self._max = self._cache.max_entries
        # The stamp of each pair's last change, oldest first; at most ``max_entries`` of them.
        self._epochs: dict[tuple[int, int], int] = {}
        self._stamp = 0
        self._listeners: list[Listener] = []

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def epoch(self, event_id: int, user_id: int) -> int:
        """Changes when the pair's membership changes; compare before and after a check.

        Only the latest ``max_entries`` changes are remembered: a pair whose change was
        forgotten since reads as changed again, which at worst fails one check that raced it.
        """
        return self._epochs.get((event_id, user_id), 0)

    @property
    def remembered_changes(self) -> int:
        """Pairs whose last change is remembered for :meth:`epoch` (at most ``max_entries``)."""
        return len(self._epochs)

    def cached(self, event_id: int, user_id: int) -> bool:
        """Whether a positive answer for the pair is cached (no database round trip needed)."""
        return (event_id, user_id) in self._cache

    async def is_participant(self, event_id: int, user_id: int) -> bool:
        key = (event_id, user_id)
        if key in self._cache:
            return True
        epoch = self.epoch(event_id, user_id)
        async with self._pool.acquire() as conn:
            found = await event_store.is_participant(conn, event_id, user_id)
        # Cache only if nothing changed while we asked: a removal racing this read wins.
        if found and self.epoch(event_id, user_id) == epoch:
            self._cache.put(key, True)
        return found

    def forget_all(self) -> None:
        """Drop every cached answer: a change may have been lost (bus trouble), so each pair
        is asked of PostgreSQL again when next needed."""
        self._cache.clear()

    def changed(self, event_id: int, user_id: int, *, present: bool) -> None:
        key = (event_id, user_id)
        self._cache.pop(key)
        self._stamp += 1
        self._epochs.pop(key, None)  # re-inserted last: the dict stays oldest change first
        self._epochs[key] = self._stamp
        if len(self._epochs) > self._max:
            for old in list(itertools.islice(self._epochs, len(self._epochs) - self._max // 2)):
                del self._epochs[old]
        for listener in list(self._listeners):
            try:
                listener(event_id, user_id, present)
            except Exception:  # a listener's bug must not fail the REST request that committed
                log.exception("membership listener failed for event %d user %d", event_id, user_id)
