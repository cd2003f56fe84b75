"""Headless Chromium (Debian's ``chromium`` package) driven by Playwright, for the console tests.

Playwright's own browser builds cannot be downloaded here, so the system browser is launched
by path (``CHAT_TEST_CHROMIUM``, else ``chromium`` on PATH). These tests carry the ``browser``
marker and are left out of the default run; ``pytest -m browser`` runs them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests run as root in CI
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    configured = os.environ.get("CHAT_TEST_CHROMIUM") or shutil.which("chromium")
    if not configured or not Path(configured).exists():
        pytest.fail(
            "the browser tests need Chromium: `apt-get install -y chromium` "
            "(or set CHAT_TEST_CHROMIUM to its executable)"
        )
    return configured


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One browser for the run; each test opens fresh contexts (fresh profiles) in it."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the run's screenshots go: ``CHAT_SCREENSHOT_DIR``, else the run's temp dir."""
    configured = os.environ.get("CHAT_SCREENSHOT_DIR")
    directory = Path(configured) if configured else tmp_path_factory.mktemp("screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory
