"""What a node has to publish to NATS, in order, bounded in bytes.

One task drains it (:meth:`Outbox.run`), so NATS sees a node's frames in the order they were
made — the cross-node order depends on it. Past ``limit`` bytes waiting (NATS slow or stuck
while the node keeps producing) a frame is dropped and counted instead of buffered without
end: the other nodes see the gap in the node's sequence numbers and recover, and a node whose
frames stop reaching NATS retires (docs/deploy.md, "One order across nodes").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from nats.aio.client import Client as NatsClient

log = logging.getLogger(__name__)

Frame = tuple[str, bytes, dict[str, str] | None]


class Outbox:
    """A byte-bounded FIFO of (subject, data, headers) and the task that publishes it."""

    def __init__(
        self,
        limit: int,
        *,
        published: Callable[[], None],
        failed: Callable[[], None],
        dropped: Callable[[], None],
    ) -> None:
        self._queue: asyncio.Queue[Frame] = asyncio.Queue()
        self._bytes = 0
        self._limit = limit
        self._published = published
        self._failed = failed
        self._dropped = dropped
        self._drops = 0

    @property
    def waiting_bytes(self) -> int:
        return self._bytes

    def put(self, subject: str, data: bytes, headers: dict[str, str] | None) -> bool:
        """Queue a frame; False (dropped, counted, logged now and then) when over the limit."""
        if self._bytes + len(data) > self._limit:
            self._dropped()
            if self._drops % 1000 == 0:
                log.warning(
                    "bus outbox over %d bytes: frames dropped (%d so far; now to %s)",
                    self._limit,
                    self._drops + 1,
                    subject,
                )
            self._drops += 1
            return False
        self._bytes += len(data)
        self._queue.put_nowait((subject, data, headers))
        return True

    def clear(self) -> None:
        """Forget what waits (the bus was lost: every receiver recovers anyway)."""
        while not self._queue.empty():
            _subject, data, _headers = self._queue.get_nowait()
            self._bytes -= len(data)
            self._queue.task_done()

    async def drained(self) -> None:
        await self._queue.join()

    async def run(self, nc: NatsClient) -> None:
        """Publish frames one by one, in order, until cancelled."""
        while True:
            subject, data, headers = await self._queue.get()
            self._bytes -= len(data)
            try:
                await nc.publish(subject, data, headers=headers)
            except Exception as exc:
                # Subscribers elsewhere see the gap in the sequence numbers and recover.
                self._failed()
                log.warning("bus publish to %s failed: %r", subject, exc)
            else:
                self._published()
            finally:
                self._queue.task_done()
