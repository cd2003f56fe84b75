"""Coalesced reads: callers asking for the same data at about the same time share one read.

Why: when a node restarts, every client of a busy event reconnects within a second or so and
resumes from about the same cursor, so the message store would be asked the same page
hundreds of times at once. Large chat services put request coalescing in front of their
message store for this; here it sits in the history-reading layer, below the gateway.

The rule that keeps it correct: **a read never starts before the callers it answers asked.**
Callers of one *group* (e.g. one page: event, direction, cursor, limit) that ask while no
read of that group has gone out yet join the read that is being gathered; it goes out at the
end of the current event-loop pass. Callers that ask while a read of their group is already
under way do not take its answer — it may have been read before their question, and a
resuming client must see every message stored before it asked — they wait for the next read,
which goes out as soon as that one is answered, carrying all of them. So a storm costs one
read per group per read latency, whatever the number of callers; a lone caller pays nothing
but the wait to the end of the loop pass.

A group may also gather several *keys* answered by one read (the unread counts of many users
of one event share one read of the event's newest messages): the read function gets all the
keys asked for and returns a value for each.

Every caller gets the read's outcome — the value or the exception; a read that is itself
cancelled (the loop shutting down) cancels its callers. Cancelling a caller does not cancel
the read the others wait for. Memory is bounded by the callers waiting: a group
holds at most the keys of one gathering read and one read under way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

G = TypeVar("G", bound=Hashable)
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(slots=True)
class _Gathering(Generic[K, V]):
    """The callers of the next read of one group, by key."""

    waiters: dict[K, list[asyncio.Future[V]]] = field(default_factory=dict)


class ReadCoalescer(Generic[G, K, V]):
    """Coalesces reads by group; ``read(group, keys)`` returns a value for every key.

    ``reads_sent`` and ``callers`` count what the coalescing saved (callers / reads).
    """

    def __init__(self, read: Callable[[G, list[K]], Awaitable[Mapping[K, V]]]) -> None:
        self._read = read
        self._gathering: dict[G, _Gathering[K, V]] = {}
        self._running: dict[G, asyncio.Task[None]] = {}
        self.reads_sent = 0
        self.callers = 0

    def get(self, group: G, key: K) -> asyncio.Future[V]:
        """A future for ``key`` of ``group``, answered by a read that starts after this call."""
        loop = asyncio.get_running_loop()
        result: asyncio.Future[V] = loop.create_future()
        self.callers += 1
        gathering = self._gathering.get(group)
        if gathering is None:
            gathering = self._gathering[group] = _Gathering()
            if group not in self._running:
                loop.call_soon(self._start, group)
            # else: started when the running read of this group is answered (``_finished``)
        gathering.waiters.setdefault(key, []).append(result)
        return result

    @property
    def groups_waiting(self) -> int:
        """Groups with callers waiting for a read that has not gone out yet."""
        return len(self._gathering)

    def _start(self, group: G) -> None:
        gathering = self._gathering.pop(group, None)
        if gathering is None:
            return
        self.reads_sent += 1
        task = asyncio.get_running_loop().create_task(self._run(group, gathering))
        self._running[group] = task
        task.add_done_callback(lambda _: self._finished(group))

    def _finished(self, group: G) -> None:
        del self._running[group]
        if group in self._gathering:
            self._start(group)

    async def _run(self, group: G, gathering: _Gathering[K, V]) -> None:
        waiters = gathering.waiters
        try:
            values = await self._read(group, list(waiters))
        except BaseException as exc:  # every caller gets the outcome, cancellation included
            for futures in waiters.values():
                for future in futures:
                    if future.done():
                        continue
                    if isinstance(exc, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for key, futures in waiters.items():
            live = [future for future in futures if not future.done()]  # not cancelled
            if key in values:
                for future in live:
                    future.set_result(values[key])
                continue
            log.error("the read of %r returned no value for %r", group, key)
            for future in live:
                future.set_exception(LookupError(f"no value read for {key!r}"))
