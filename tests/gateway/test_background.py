"""Background tasks of the gateway and the bus: held until done, ended at close."""

from __future__ import annotations

import asyncio

import pytest

from chat.gateway.background import BackgroundTasks


async def test_a_finished_task_is_let_go_and_a_failure_is_logged_when_asked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = BackgroundTasks()

    async def fail() -> None:
        raise RuntimeError("the store went away")

    task = tasks.spawn(fail(), failure="clean-up failed")
    await tasks.wait()
    assert task.done()
    assert task.exception() is None  # logged instead of left in the task
    assert len(tasks) == 0
    assert "clean-up failed" in caplog.text
    assert "the store went away" in caplog.text


async def test_cancel_ends_every_task_and_wait_waits_for_them() -> None:
    tasks = BackgroundTasks()
    release = asyncio.Event()
    finished: list[str] = []

    async def until_released() -> None:
        await release.wait()
        finished.append("released")

    waited = tasks.spawn(until_released())
    release.set()
    await tasks.wait()
    assert finished == ["released"]
    assert waited.done()

    forever = tasks.spawn(asyncio.Event().wait())
    held = asyncio.get_running_loop().create_task(asyncio.Event().wait())
    tasks.hold(held)
    assert set(tasks) == {forever, held}
    await tasks.cancel()
    assert forever.cancelled()
    assert held.cancelled()
    assert len(tasks) == 0


async def test_a_kept_task_stays_held_after_it_ends_until_its_owner_releases_it() -> None:
    tasks = BackgroundTasks()
    task = asyncio.get_running_loop().create_task(asyncio.sleep(0))
    tasks.keep(task)
    await task
    assert list(tasks) == [task]  # no callback of its own: the owner's releases it
    tasks.release(task)
    assert len(tasks) == 0
