"""At most one broadcast per key and interval; the latest state always goes out.

``typing`` frames describe a current state (who is typing). A client toggling ``start`` and
``stop`` as fast as it may would otherwise make every other subscriber's queue carry one frame
per toggle. :class:`BroadcastThrottle` lets the first request of a key go out at once and folds
every further request within ``interval`` into one that goes out when the interval ends —
computed then, so it carries the state as it is by that time.

Memory: one entry per key that broadcast within the last interval or has one pending; expired
entries are dropped as new requests come in (every entry waits the same interval, so the
oldest are first).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(slots=True)
class _Sent:
    at: float
    pending: asyncio.TimerHandle | None = None


class BroadcastThrottle(Generic[K]):
    """Calls ``send(key)`` at most once per ``interval`` seconds per key, trailing requests
    folded into one at the end of the interval."""

    def __init__(
        self,
        interval: float,
        send: Callable[[K], None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = interval
        self._send = send
        self._clock = clock
        self._sent: dict[K, _Sent] = {}

    def request(self, key: K) -> None:
        now = self._clock()
        self._forget_expired(now)
        sent = self._sent.get(key)
        if sent is None or (sent.pending is None and now >= sent.at + self._interval):
            self._send_now(key, now)
        elif sent.pending is None:
            delay = sent.at + self._interval - now
            sent.pending = asyncio.get_running_loop().call_later(delay, self._fire, key)

    def flush(self, key: K) -> None:
        """Send now, whatever the interval (a pending send is folded into this one): for a
        change that happens once, such as a connection going away."""
        sent = self._sent.get(key)
        if sent is not None and sent.pending is not None:
            sent.pending.cancel()
        self._send_now(key, self._clock())

    def close(self) -> None:
        """Cancel pending broadcasts (shutdown)."""
        for sent in self._sent.values():
            if sent.pending is not None:
                sent.pending.cancel()
        self._sent.clear()

    @property
    def tracked_keys(self) -> int:
        return len(self._sent)

    def _fire(self, key: K) -> None:
        sent = self._sent.get(key)
        if sent is not None:
            sent.pending = None
        self._send_now(key, self._clock())

    def _send_now(self, key: K, now: float) -> None:
        self._sent.pop(key, None)  # re-inserted last: the dict stays oldest broadcast first
        self._sent[key] = _Sent(now)
        self._send(key)

    def _forget_expired(self, now: float) -> None:
        sent = self._sent
        while sent:
            key, oldest = next(iter(sent.items()))
            if oldest.pending is not None or now < oldest.at + self._interval:
                break
            del sent[key]
