"""Clocks a test sets by hand."""

from __future__ import annotations


class SettableClock:
    """A clock for the id generator that reads whatever millisecond the test set."""

    def __init__(self) -> None:
        self.now_ms = 0

    def __call__(self) -> int:
        return self.now_ms * 1_000_000
