"""The shape the gateway's PostgreSQL look-ups share: a pool behind a bounded, expiring cache.

Memberships (:mod:`chat.gateway.membership`) and event statuses (:mod:`chat.gateway.event_status`)
are each asked of PostgreSQL once and then remembered for a while; both are sized and timed by
the same options, so those live here once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypedDict, TypeVar

import asyncpg

from chat.gateway.ttl_cache import TtlCache

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class CacheOptions(TypedDict, total=False):
    """How long an answer is kept, how many are kept, and the clock that times them."""

    ttl_seconds: float
    max_entries: int
    clock: Callable[[], float]


class CachedLookup(Generic[K, V]):
    """Answers read through ``pool``, remembered in a :class:`TtlCache` of ``max_entries``."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        ttl_seconds: float = 60.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._cache = TtlCache[K, V](ttl_seconds, max_entries, clock=clock)
