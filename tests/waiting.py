"""The asynchronous deadline poller (``tests/cql/conftest.py:wait_for`` is the synchronous one).

For conditions no frame announces — a server-side counter, rows in ``pg_stat_activity`` —
poll against a deadline instead of sleeping and hoping.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

import pytest

POLL_SECONDS = 0.02


async def wait_until(
    condition: Callable[[], Awaitable[object] | object], within: float = 10.0, what: str = ""
) -> None:
    """Poll ``condition`` (sync or async) until it is truthy; fail after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within} s waiting for {what or condition}")
        await asyncio.sleep(POLL_SECONDS)
