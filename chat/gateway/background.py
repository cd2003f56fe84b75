"""Background tasks a component starts, keeps hold of, and stops when it closes.

asyncio keeps only weak references to tasks: one nobody holds may vanish mid-flight, and one
nobody awaits at shutdown may outlive the resources it uses. The chat service, the NATS hub and
the cross-node settling each start such work (clean-ups, bus subscriptions, store reads); they
all keep it in a :class:`BackgroundTasks` and end it at close, by waiting or by cancelling.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from typing import Any

log = logging.getLogger(__name__)


class BackgroundTasks:
    """The running tasks of one component; a finished task is dropped by itself."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(
        self, work: Coroutine[Any, Any, Any], *, failure: str | None = None
    ) -> asyncio.Task[Any]:
        """Run ``work`` in a task held until it is done.

        With ``failure``, an exception of the work is logged (a warning with that message and
        the traceback) rather than left in the task: for work whose outcome nobody awaits.
        """
        loop = asyncio.get_running_loop()
        task = loop.create_task(work if failure is None else _logged(work, failure))
        self.hold(task)
        return task

    def hold(self, task: asyncio.Task[Any]) -> None:
        """Keep ``task`` (started elsewhere) until it is done."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def keep(self, task: asyncio.Task[Any]) -> None:
        """Keep ``task`` until :meth:`release`: for a caller whose own done-callback releases
        it, which saves the second callback :meth:`hold` adds (the send path has one per
        message)."""
        self._tasks.add(task)

    def release(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)

    async def wait(self) -> None:
        """Wait for every task running now; their errors are ignored (each logs its own, or
        was awaited by whoever cared)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def cancel(self) -> None:
        """Cancel every task and wait until all have ended."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(list(self._tasks))

    def __len__(self) -> int:
        return len(self._tasks)


async def _logged(work: Coroutine[Any, Any, Any], failure: str) -> None:
    try:
        await work
    except Exception:
        log.warning(failure, exc_info=True)
