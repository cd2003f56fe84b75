"""Token buckets, and a bounded table of them keyed by client: the rules of every rate limit.

No I/O and no clock of its own: callers pass the time (monotonic seconds), so the rules are
tested by moving a number, not by sleeping. The REST API charges requests to tables keyed by
client address, by user and by sign-up address (:mod:`chat.api.rate_limits`); the WebSocket
session draws its writes from one :class:`TokenBucket` (:mod:`chat.gateway.protocol`).

Why not the ``limits`` package: its in-memory storage keeps one entry per key until a background
timer expires it, with no bound on the number of keys, so a client with many addresses grows it
at will. A :class:`BucketTable` holds at most ``max_keys`` buckets whatever the traffic.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Quota:
    """``units`` per ``window_seconds``: a bucket of ``units`` tokens refilled evenly over the
    window, so a client may spend the whole quota at once and then ``units / window`` per second.

    The same two numbers are the ``q`` and ``w`` of a ``RateLimit-Policy`` item
    (draft-ietf-httpapi-ratelimit-headers).
    """

    units: int
    window_seconds: int

    def __post_init__(self) -> None:
        if self.units < 1 or self.window_seconds < 1:
            raise ValueError(
                f"a quota needs at least 1 unit in a window of at least 1 s, got "
                f"{self.units} per {self.window_seconds} s"
            )

    @property
    def rate(self) -> float:
        """Units restored per second."""
        return self.units / self.window_seconds


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second; each request takes one (or ``cost``)."""

    __slots__ = ("_tokens", "_updated", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1, got {rate}, {burst}")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._updated = now

    def tokens(self, now: float) -> float:
        """The tokens available at ``now`` (a clock that went backwards refills nothing)."""
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
        self._updated = max(self._updated, now)
        return self._tokens

    def try_take(self, now: float, cost: float = 1.0) -> float:
        """0.0 when ``cost`` tokens were taken, else the seconds until they will be there.

        A refused request takes nothing, so a client that keeps retrying too early is not
        pushed further back by its own retries.
        """
        available = self.tokens(now)
        if available >= cost:
            self._tokens = available - cost
            return 0.0
        return (cost - available) / self.rate

    def take(self, now: float) -> int:
        """0 when a token was taken, else the milliseconds until one will be available."""
        wait = self.try_take(now)
        return max(1, math.ceil(wait * 1000)) if wait else 0

    def seconds_to_next_token(self, now: float) -> float:
        """Seconds until the count of whole tokens goes up by one (a full bucket: one token's
        refill time, the soonest the next token can come back after one is spent)."""
        fraction = self.tokens(now) % 1.0
        return (1.0 - fraction) / self.rate

    def is_full(self, now: float) -> bool:
        return self.tokens(now) >= self.burst


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one request against one quota.

    ``remaining`` is the whole tokens left after this request; ``reset_seconds`` the seconds
    until one more comes back, within which the client can use no more than ``remaining``
    (the ``r`` and ``t`` of a ``RateLimit`` item). ``retry_after_seconds`` is 0 when allowed.
    """

    allowed: bool
    remaining: int
    reset_seconds: float
    retry_after_seconds: float


class BucketTable(Generic[Key]):
    """One token bucket per key, for at most ``max_keys`` keys at a time.

    A bucket that has refilled completely is the same as no bucket, so idle keys are forgotten
    first (the least recently used key is checked on every insertion, which keeps that
    amortised O(1)). When every tracked key is still spending, the least recently used is
    forgotten anyway and counted in :attr:`evictions`: that can only hand the forgotten client
    a fresh quota early, never refuse anyone, and it takes more distinct active clients than
    ``max_keys`` within one refill time, which a healthy deployment sizes above.
    """

    def __init__(self, quota: Quota, max_keys: int) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self.quota = quota
        self.max_keys = max_keys
        self.evictions = 0
        self._buckets: OrderedDict[Key, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: Key, now: float, cost: float = 1.0) -> Decision:
        """Charge ``cost`` units to ``key``'s bucket and say whether the request may proceed."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._insert(key, now)
        else:
            self._buckets.move_to_end(key)
        wait = bucket.try_take(now, cost)
        return Decision(
            allowed=wait == 0.0,
            remaining=math.floor(bucket.tokens(now)),
            reset_seconds=bucket.seconds_to_next_token(now),
            retry_after_seconds=wait,
        )

    def _insert(self, key: Key, now: float) -> TokenBucket:
        buckets = self._buckets
        while buckets:
            oldest = next(iter(buckets.values()))
            if not oldest.is_full(now):
                break
            buckets.popitem(last=False)
        if len(buckets) >= self.max_keys:
            buckets.popitem(last=False)
            self.evictions += 1
        bucket = TokenBucket(self.quota.rate, self.quota.units, now)
        buckets[key] = bucket
        return bucket
