"""Clocks a test sets by hand."""

from __future__ import annotations

from collections.abc import Callable


class SettableClock:
    """A clock for the id generator that reads whatever millisecond the test set."""

    def __init__(self) -> None:
        self.now_ms = 0

    def __call__(self) -> int:
        return self.now_ms * 1_000_000


class _Scheduled:
    def __init__(self, at: float, callback: Callable[[], object]) -> None:
        self.at = at
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualTimers:
    """A batcher's clock (its ``call_later``) that moves only when the test advances it, so a
    test can let any number of delays pass at once and look at what did not happen."""

    def __init__(self) -> None:
        self.now = 0.0
        self.fired = 0
        self._scheduled: list[_Scheduled] = []

    def call_later(self, delay: float, callback: Callable[[], object]) -> _Scheduled:
        scheduled = _Scheduled(self.now + delay, callback)
        self._scheduled.append(scheduled)
        return scheduled

    def advance(self, seconds: float) -> None:
        """Move the clock on, running every callback that comes due (in order)."""
        self.now += seconds
        while due := [s for s in self._scheduled if s.at <= self.now and not s.cancelled]:
            first = min(due, key=lambda s: s.at)
            self._scheduled.remove(first)
            self.fired += 1
            first.callback()
        self._scheduled = [s for s in self._scheduled if not s.cancelled]
