"""Token buckets: how the gateway meters what a client may do per second.

A bucket holds ``burst`` tokens and refills at ``rate`` per second; an action takes one. The
session keeps a connection's buckets (frames, writes) and :mod:`chat.gateway.quotas` one per
user (writes across the user's connections). Pure arithmetic on a clock passed in: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable

WriteQuota = Callable[[], int]
"""Takes one write from a bucket shared beyond the connection (the user's): 0 when granted,
else the milliseconds until one will be available."""


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second; one action costs one token."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._updated = now

    def take(self, now: float) -> int:
        """0 when a token was taken, else the milliseconds until one will be available."""
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0
        return max(1, math.ceil((1.0 - self._tokens) / self.rate * 1000))

    def wait_seconds(self, now: float) -> float:
        """How long until a token is available (0 when one is now); takes nothing."""
        tokens = min(float(self.burst), self._tokens + max(0.0, now - self._updated) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def give_back(self) -> None:
        """Return the token just taken (the action it paid for was refused elsewhere)."""
        self._tokens = min(float(self.burst), self._tokens + 1.0)
