"""Coalesced reads: callers asking for the same data at about the same time share one read.

Why: when a node restarts, every client of a busy event reconnects within a second or so and
resumes from about the same cursor, so the message store would be asked the same page
hundreds of times at once. Large chat services put request coalescing in front of their
message store for this; here it sits in the history-reading layer, below the gateway.

The rule that keeps it correct: **a caller is answered by a read that started after the
data could last have changed for it.** By default that is the moment it asks: callers of one
*group* (e.g. one page: event, direction, cursor, limit) that ask while no read of that group
has gone out yet join the read that is being gathered; it goes out at the end of the current
event-loop pass. Callers that ask while a read of their group is already under way do not
take its answer — it may have been read before their question, and a resuming client must
see every message stored before it asked — they wait for the next read, which goes out as
soon as that one is answered, carrying all of them. So a storm costs one read per group per
read latency, whatever the number of callers; a lone caller pays nothing but the wait to the
end of the loop pass.

A caller that knows more may say so: ``unchanged_since`` is an instant (``time.monotonic()``)
after which the data cannot have changed for it — the gateway knows it for an event whose
every change it would have seen (see ``Hub.unchanged_since``). Such a caller joins a read under
way that started after that instant, or takes the answer of one that finished within the last
``keep_seconds`` (kept answers are bounded in weight and age). That is what makes a storm
spread over seconds cost one read per page instead of one per read latency.

A group may also gather several *keys* answered by one read (the unread counts of many users
of one event share one read of the event's newest messages): the read function gets all the
keys asked for and returns a value for each.

Every caller gets the read's outcome — the value or the exception; a read that is itself
cancelled (the loop shutting down) cancels its callers. Cancelling a caller does not cancel
the read the others wait for. Memory is bounded by the callers waiting — a group holds at most
the keys of one gathering read and one read under way — plus the kept answers' weight.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

G = TypeVar("G", bound=Hashable)
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

Waiters = dict[K, list[asyncio.Future[V]]]


@dataclass(slots=True)
class _Read(Generic[K, V]):
    """One read of a group: its callers by key, and when it went out (``time.monotonic()``)."""

    waiters: Waiters[K, V] = field(default_factory=dict)
    started: float = 0.0
    answered: bool = False
    """Its outcome is in (its waiters are being told): too late to join."""


@dataclass(frozen=True, slots=True)
class _Kept(Generic[K, V]):
    """A finished read's answer, kept for callers whose data has not changed since it began."""

    started: float
    finished: float
    values: Mapping[K, V]
    weight: int


class ReadCoalescer(Generic[G, K, V]):
    """Coalesces reads by group; ``read(group, keys)`` returns a value for every key.

    ``reads_sent`` and ``callers`` count what the coalescing saved (callers / reads). With
    ``keep_seconds`` and a ``weigh`` function, finished answers are kept that long for callers
    that pass ``unchanged_since``, at most ``keep_weight`` (as ``weigh`` counts) in all.
    """

    def __init__(
        self,
        read: Callable[[G, list[K]], Awaitable[Mapping[K, V]]],
        *,
        keep_seconds: float = 0.0,
        keep_weight: int = 0,
        weigh: Callable[[V], int] | None = None,
    ) -> None:
        self._read = read
        self._gathering: dict[G, _Read[K, V]] = {}
        self._running: dict[G, _Read[K, V]] = {}
        self._kept: OrderedDict[G, _Kept[K, V]] = OrderedDict()
        self._kept_weight = 0
        self._keep_seconds = keep_seconds if weigh is not None else 0.0
        self._keep_weight = keep_weight
        self._weigh = weigh
        self.reads_sent = 0
        self.callers = 0

    def get(self, group: G, key: K, *, unchanged_since: float | None = None) -> asyncio.Future[V]:
        """A future for ``key`` of ``group``, answered by a read that starts after this call —
        or, with ``unchanged_since``, by any read that started after that instant."""
        loop = asyncio.get_running_loop()
        result: asyncio.Future[V] = loop.create_future()
        self.callers += 1
        if unchanged_since is not None and self._answer_early(
            group, key, unchanged_since, result, time.monotonic()
        ):
            return result
        gathering = self._gathering.get(group)
        if gathering is None:
            gathering = self._gathering[group] = _Read()
            if group not in self._running:
                loop.call_soon(self._start, group)
            # else: started when the running read of this group is answered (``_finished``)
        gathering.waiters.setdefault(key, []).append(result)
        return result

    @property
    def groups_waiting(self) -> int:
        """Groups with callers waiting for a read that has not gone out yet."""
        return len(self._gathering)

    @property
    def kept_weight(self) -> int:
        """The weight of the answers kept for later callers."""
        return self._kept_weight

    def _answer_early(
        self, group: G, key: K, since: float, result: asyncio.Future[V], now: float
    ) -> bool:
        """Answer from a kept answer, or join the read under way, when either began after
        ``since``; False when the caller must wait for a read of its own time."""
        self._drop_kept(now)
        kept = self._kept.get(group)
        if kept is not None and kept.started > since and key in kept.values:
            result.set_result(kept.values[key])
            return True
        running = self._running.get(group)
        if (
            running is not None
            and not running.answered
            and running.started > since
            and key in running.waiters
        ):
            running.waiters[key].append(result)
            return True
        return False

    def _start(self, group: G) -> None:
        read = self._gathering.pop(group, None)
        if read is None:
            return
        self.reads_sent += 1
        loop = asyncio.get_running_loop()
        read.started = time.monotonic()  # no later than the read itself: it goes out after this
        self._running[group] = read
        task = loop.create_task(self._run(group, read))
        task.add_done_callback(lambda _: self._finished(group))

    def _finished(self, group: G) -> None:
        del self._running[group]
        if group in self._gathering:
            self._start(group)

    async def _run(self, group: G, read: _Read[K, V]) -> None:
        waiters = read.waiters
        try:
            values = await self._read(group, list(waiters))
        except BaseException as exc:  # every caller gets the outcome, cancellation included
            read.answered = True
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
        read.answered = True
        self._keep(group, read.started, values)
        for key, futures in waiters.items():
            live = [future for future in futures if not future.done()]  # not cancelled
            if key in values:
                for future in live:
                    future.set_result(values[key])
                continue
            log.error("the read of %r returned no value for %r", group, key)
            for future in live:
                future.set_exception(LookupError(f"no value read for {key!r}"))

    def _keep(self, group: G, started: float, values: Mapping[K, V]) -> None:
        if not self._keep_seconds or self._weigh is None:
            return
        now = time.monotonic()
        weight = sum(self._weigh(value) for value in values.values())
        previous = self._kept.pop(group, None)
        if previous is not None:
            self._kept_weight -= previous.weight
        if weight > self._keep_weight:
            return
        self._kept[group] = _Kept(started, now, values, weight)
        self._kept_weight += weight
        self._drop_kept(now)

    def _drop_kept(self, now: float) -> None:
        """Forget answers older than ``keep_seconds``, and the oldest while over weight."""
        kept = self._kept
        while kept:
            group, oldest = next(iter(kept.items()))
            if now - oldest.finished <= self._keep_seconds and self._kept_weight <= (
                self._keep_weight
            ):
                return
            del kept[group]
            self._kept_weight -= oldest.weight
