"""The deadline pollers of the suite: wait for a condition that nothing signals — a process's
state, a server's answer — checking it every ``interval``; the test fails after ``within``
seconds. :func:`until` in a coroutine, :func:`wait_for` in a synchronous test (the CQL
conformance tests drive the blocking driver API)."""

from __future__ import annotations

import asyncio
import inspect
import time
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


def wait_for(
    condition: Callable[[], object],
    *,
    within: float = 10.0,
    interval: float = 0.02,
    what: str = "",
) -> Any:
    """:func:`until` for synchronous code: the first truthy result of ``condition``."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within} s waiting for {what or condition}")
        time.sleep(interval)
