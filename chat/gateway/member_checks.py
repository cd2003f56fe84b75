"""Membership checks that cost little when the answer is "no".

:class:`~chat.gateway.membership.Membership` caches positive answers only. Without more, a
client naming random event ids in ``subscribe``, ``history`` or ``read`` would cost one
PostgreSQL query each — and enough such clients would hold every connection of the pool. So
in front of it:

- a short **negative cache**: "user U is not in event E" is remembered for
  ``CHAT_WS_NON_MEMBER_CACHE_SECONDS`` (an add of U to E drops it at once, through the
  membership listeners that every node's add notifications reach); at most ``max_entries``
  pairs (:class:`~chat.gateway.ttl_cache.TtlCache`);
- a **per-user cap on look-ups under way** (``CHAT_WS_MEMBERSHIP_LOOKUPS_PER_USER``): one
  user's connections together hold at most that many pool connections for membership; their
  further look-ups wait their turn, so the cost stays with the user who probes.

Both are process-local and bounded: the cap's state exists only while a look-up waits or runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from chat.errors import NotFound
from chat.gateway.membership import Membership
from chat.gateway.ttl_cache import TtlCache

MAX_NON_MEMBERS = 100_000
"""Most remembered "not a participant" answers."""


@dataclass(slots=True)
class _UserLookups:
    semaphore: asyncio.Semaphore
    users: int = 0
    """Look-ups of the user running or waiting: the entry goes when it drops to 0."""


class MemberChecks:
    """``require(event_id, user_id)``: NotFound unless the user takes part in the event."""

    def __init__(
        self,
        membership: Membership,
        *,
        lookups_per_user: int,
        non_member_seconds: float,
        max_entries: int = MAX_NON_MEMBERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._membership = membership
        self._per_user = lookups_per_user
        self._ttl = non_member_seconds
        # (event_id, user_id) whose "no" still holds.
        self._non_members = TtlCache[tuple[int, int], bool](
            non_member_seconds, max_entries, clock=clock
        )
        self._lookups: dict[int, _UserLookups] = {}
        membership.add_listener(self._changed)

    def close(self) -> None:
        self._membership.remove_listener(self._changed)

    async def require(self, event_id: int, user_id: int) -> None:
        if not await self.is_participant(event_id, user_id):
            raise NotFound(f"no event {event_id}")

    async def is_participant(self, event_id: int, user_id: int) -> bool:
        key = (event_id, user_id)
        if key in self._non_members:
            return False
        membership = self._membership
        if membership.cached(event_id, user_id):
            return True
        epoch = membership.epoch(event_id, user_id)
        async with self._lookup_slot(user_id):
            found = await membership.is_participant(event_id, user_id)
        # Remember "no" only if nothing changed meanwhile: an add racing this read wins.
        if not found and self._ttl > 0 and membership.epoch(event_id, user_id) == epoch:
            self._non_members.put(key, True)
        return found

    @property
    def remembered_non_members(self) -> int:
        return len(self._non_members)

    @property
    def users_looking_up(self) -> int:
        """Users with a membership look-up running or waiting."""
        return len(self._lookups)

    @contextlib.asynccontextmanager
    async def _lookup_slot(self, user_id: int) -> AsyncIterator[None]:
        entry = self._lookups.get(user_id)
        if entry is None:
            entry = self._lookups[user_id] = _UserLookups(asyncio.Semaphore(self._per_user))
        entry.users += 1
        try:
            async with entry.semaphore:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._lookups[user_id]

    def _changed(self, event_id: int, user_id: int, present: bool) -> None:
        self._non_members.pop((event_id, user_id))
