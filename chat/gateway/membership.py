"""Who takes part in which event, as the gateway sees it: PostgreSQL behind a small cache.

Every chat frame that names an event needs a membership check, and a busy event sees many
frames per second; asking PostgreSQL each time would make the database the gateway's limit.
So *positive* answers are cached per ``(event_id, user_id)``. Negative answers are not: they
are rare (a client probing events it is not in) and caching them would need an invalidation
on every event creation too.

The cache must never let a removed participant keep reading. The REST layer therefore calls
:func:`participants_changed` right after a participant add/remove commits; that drops the
cached answer, bumps the pair's *epoch* (a subscription that was being set up while the removal
happened sees the change and ends) and tells the listeners — the gateway, which ends the user's
live subscriptions at once. A TTL bounds how long an entry can outlive a change made on
another node, until the multi-node bus (issue 7) carries these notifications between nodes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import asyncpg

from chat.state import AppState
from chat.store import events as event_store

log = logging.getLogger(__name__)

STATE_KEY = "membership"
"""Where the lifespan keeps the :class:`Membership` in ``AppState.extras``."""

Listener = Callable[[int, int, bool], None]
"""Called with ``(event_id, user_id, present)`` after a participant was added or removed."""


class Membership:
    """Cached participant checks, invalidated by :func:`participants_changed`."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        ttl_seconds: float = 60.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._cache: dict[tuple[int, int], float] = {}
        self._epochs: dict[tuple[int, int], int] = {}
        self._listeners: list[Listener] = []

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def epoch(self, event_id: int, user_id: int) -> int:
        """Changes when the pair's membership changes; compare before and after a check."""
        return self._epochs.get((event_id, user_id), 0)

    async def is_participant(self, event_id: int, user_id: int) -> bool:
        key = (event_id, user_id)
        now = self._clock()
        expires = self._cache.get(key)
        if expires is not None and expires > now:
            return True
        epoch = self.epoch(event_id, user_id)
        async with self._pool.acquire() as conn:
            found = await event_store.is_participant(conn, event_id, user_id)
        # Cache only if nothing changed while we asked: a removal racing this read wins.
        if found and self.epoch(event_id, user_id) == epoch:
            if len(self._cache) >= self._max:
                self._cache.clear()
            self._cache[key] = now + self._ttl
        return found

    def changed(self, event_id: int, user_id: int, *, present: bool) -> None:
        key = (event_id, user_id)
        self._cache.pop(key, None)
        self._epochs[key] = self._epochs.get(key, 0) + 1
        for listener in list(self._listeners):
            try:
                listener(event_id, user_id, present)
            except Exception:  # a listener's bug must not fail the REST request that committed
                log.exception("membership listener failed for event %d user %d", event_id, user_id)


def membership(state: AppState) -> Membership:
    """The app's :class:`Membership` (created on first use, like the stores in chat.api)."""
    found = state.extras.get(STATE_KEY)
    if not isinstance(found, Membership):
        found = Membership(state.pg)
        state.extras[STATE_KEY] = found
    return found


def participants_changed(state: AppState, event_id: int, user_id: int, *, present: bool) -> None:
    """REST calls this after a participant add (``present``) or removal has committed."""
    found = state.extras.get(STATE_KEY)
    if isinstance(found, Membership):
        found.changed(event_id, user_id, present=present)
