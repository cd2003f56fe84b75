"""The one asynchronous deadline poller of the suite (``tests/cql/conftest.py:wait_for`` is
the synchronous one): wait for a condition that nothing signals — a process's state, a
server's answer — checking it every ``interval``; the test fails after ``within`` seconds."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import pytest


async def until(
    probe: Callable[[], object],
    *,
    within: float = 10.0,
    interval: float = 0.02,
    what: str = "",
) -> Any:
    """The first truthy result of ``probe`` (a function or a coroutine function)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = probe()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            pytest.fail(f"timed out after {within} s waiting for {what or probe}")
        await asyncio.sleep(interval)
