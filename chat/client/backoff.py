"""Jittered exponential back-off, for reconnects and for retried requests.

"Full jitter": the n-th wait is uniform in ``[0, min(cap, base * 2**n)]``. Spreading the waits
over the whole window is what keeps thousands of clients that lost the same server from
coming back in one wave.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """The policy: ``base`` seconds doubling per attempt up to ``cap``, fully jittered."""

    base: float = 0.25
    cap: float = 30.0

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before attempt number ``attempt`` + 1 (``attempt`` counts from 0)."""
        window: float = min(self.cap, self.base * 2.0 ** min(attempt, 62))
        return window * rng()


DEFAULT_BACKOFF = Backoff()
"""0.25 s doubling to 30 s."""
