"""Each event's status as the gateway's write path checks it: PostgreSQL behind a small cache.

A CANCELED event's chat is read-only (:func:`chat.domain.events.check_chat_writable`), so every
write command needs the event's status; like memberships (:mod:`chat.gateway.membership`) it is
cached, and every change REST commits is applied at once (``AppState.notifications``) and, with
several nodes, carried to the others over the bus. CANCELED is terminal, so it is kept until
evicted; any other status expires after ``ttl_seconds``, which bounds how long a change whose
news was lost could go unseen — and after any bus trouble the whole cache is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Unpack

import asyncpg

from chat.domain.events import EventStatus
from chat.gateway.cached_lookup import CachedLookup, CacheOptions
from chat.gateway.ttl_cache import FOREVER
from chat.store.pg import events as event_store

log = logging.getLogger(__name__)

Listener = Callable[[int, str], None]
"""Called with ``(event_id, status)`` after an event's status changed on this node."""


class EventStatuses(CachedLookup[int, EventStatus]):
    """Cached event statuses, invalidated by :meth:`changed`."""

    def __init__(self, pool: asyncpg.Pool, **options: Unpack[CacheOptions]) -> None:
        super().__init__(pool, **options)
        self.on_change: Listener | None = None
        """Told of every change made through :meth:`changed` (the bus relays it)."""

    async def status(self, event_id: int) -> EventStatus | None:
        """The event's status (None: no such event)."""
        cached = self._cache.get(event_id)
        if cached is not None:
            return cached
        async with self._pool.acquire() as conn:
            status = await event_store.event_status(conn, event_id)
        if status is not None:
            self._remember(event_id, status)
        return status

    def _remember(self, event_id: int, status: EventStatus) -> None:
        # CANCELED is terminal: no later change can make the cached answer wrong.
        self._cache.put(event_id, status, ttl=FOREVER if status is EventStatus.CANCELED else None)

    def changed(self, event_id: int, status: str) -> None:
        """The event's status changed (here or on another node): applied at once."""
        self._remember(event_id, EventStatus(status))
        if self.on_change is not None:
            try:
                self.on_change(event_id, status)
            except Exception:  # a listener's bug must not fail the REST request that committed
                log.exception("relaying the status of event %d failed", event_id)

    def forget_all(self) -> None:
        """Drop every cached status: a change may have been lost (bus trouble)."""
        self._cache.clear()
