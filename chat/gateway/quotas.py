"""What one user may hold of a gateway process, across all of their connections.

A connection's own limits (its frame and write buckets, its queues) do not stop a user who
opens many connections: each would start with full buckets. So the gateway keeps, per user:

- the number of open connections, capped at ``limits.max_connections_per_user`` (one more is
  refused with ``too_many_connections`` and close 4429);
- one write bucket (``limits.user_send_rate_per_second``, ``limits.user_send_burst``) that
  every connection of the user draws on besides its own.

The state is process-local: with several gateway processes each enforces its own limits (a
user may have that many connections, and that write rate, on each). It is bounded: a user's
entry lives while they have connections, and after the last one closes only until their
bucket would have refilled (``burst / rate`` seconds) — reconnecting sooner finds the bucket
as it was left, so a new connection is no way to a new bucket — with at most
:data:`MAX_IDLE_USERS` such entries.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from chat.errors import TooManyConnections
from chat.gateway.protocol import WriteQuota
from chat.ratelimit import TokenBucket

MAX_IDLE_USERS = 100_000
"""Most users without connections whose write bucket is still remembered."""


@dataclass(slots=True)
class _UserQuota:
    connections: int
    writes: TokenBucket


class UserQuotas:
    """Per-user connection count and write bucket of this process."""

    def __init__(
        self,
        *,
        max_connections: int,
        write_rate: float,
        write_burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_idle: int = MAX_IDLE_USERS,
    ) -> None:
        self.max_connections = max_connections
        self._rate = write_rate
        self._burst = write_burst
        self._clock = clock
        self._max_idle = max_idle
        self._users: dict[int, _UserQuota] = {}
        # Users without connections, oldest first, with the time their entry may go.
        self._idle: dict[int, float] = {}

    def admit(self, user_id: int) -> None:
        """Count one more connection of the user; TooManyConnections when at the cap."""
        now = self._clock()
        self._forget_idle(now)
        quota = self._users.get(user_id)
        if quota is None:
            quota = self._users[user_id] = _UserQuota(0, TokenBucket(self._rate, self._burst, now))
        if quota.connections >= self.max_connections:
            raise TooManyConnections(
                f"this user already has {self.max_connections} connections open on this "
                "server; close one before opening another"
            )
        quota.connections += 1
        self._idle.pop(user_id, None)

    def release(self, user_id: int) -> None:
        """One connection of the user (admitted before) is gone."""
        quota = self._users.get(user_id)
        if quota is None or quota.connections <= 0:
            return
        quota.connections -= 1
        if quota.connections == 0:
            now = self._clock()
            self._idle[user_id] = now + self._burst / self._rate
            self._forget_idle(now)

    def connections(self, user_id: int) -> int:
        quota = self._users.get(user_id)
        return quota.connections if quota is not None else 0

    def writes(self, user_id: int) -> WriteQuota:
        """The user's shared write bucket, for the session of a connection admitted before."""
        bucket = self._users[user_id].writes
        clock = self._clock
        return lambda: bucket.take(clock())

    @property
    def remembered_users(self) -> int:
        """Users with state here: with connections, or idle with a bucket still refilling."""
        return len(self._users)

    def _forget_idle(self, now: float) -> None:
        idle = self._idle
        # Every idle entry waits the same time, so the oldest is the first to go.
        while idle:
            user_id, until = next(iter(idle.items()))
            if until > now and len(idle) <= self._max_idle:
                break
            del idle[user_id]
            self._users.pop(user_id, None)
