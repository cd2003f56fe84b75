"""The store reads and fences the cross-node order asks for, run in the background.

The order merge (:mod:`chat.gateway.ordering`) never touches the store; it says what it needs:

- **catch-up reads** — a node died: every watched event is read above the dead node's last
  floor, for messages it stored and never published;
- **fetches** — a send was announced as published but its frame did not come: read it;
- **orphans** — open sends of a dead node: on the node chosen to settle them, read each back;
  stored, it is published from the store, absent, it is fenced (so a copy landing later stays
  invisible) and settled as void.

Each piece of work runs once at a time; one that fails (the store is down) is tried again at
the next :meth:`Settling.run`. Results are applied only to the merge they were asked for: a
node that retired meanwhile has a new one, whose own reads cover the same ground.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, Protocol

from chat.domain.messages import Message
from chat.domain.position import Position
from chat.gateway import frames
from chat.gateway.background import BackgroundTasks
from chat.gateway.ordering import CatchUp, Fetch, Held, OpenSend, OrderMerge, Settled

log = logging.getLogger(__name__)


class MessageSource(Protocol):
    """The store, as the cross-node order reads it (the chat service provides it)."""

    async def read_after(self, event_id: int, after: Position) -> list[Message]:
        """Every message of the event above ``after``, oldest first."""

    async def read_one(self, event_id: int, message_id: uuid.UUID) -> Message | None:
        """The message, or None when it is not stored."""

    async def fence(self, event_id: int, message_id: uuid.UUID, claim_key: str) -> None:
        """Make sure the message of a send with an unknown outcome never appears."""


OrphanSettled = Callable[[OpenSend, Settled, Message | None], None]
"""Called when this node settled an orphan: announce it (and publish the message, if any)."""


def held_of(message: Message) -> Held:
    """A message read from the store, as the merge holds it."""
    return Held(
        Position.of(message.message_id), frames.message(message).decode(), message.sender_id
    )


class Settling:
    """Runs what the current merge asks of the store, each piece at most once at a time."""

    def __init__(
        self,
        merge: Callable[[], OrderMerge],
        source: MessageSource,
        orphan_settled: OrphanSettled,
    ) -> None:
        self._merge = merge
        self._source = source
        self._orphan_settled = orphan_settled
        self._running: set[Hashable] = set()
        self._tasks = BackgroundTasks()

    def run(self, *, orphans_older_than: float) -> None:
        """Start whatever is asked and not under way (cheap when nothing is): the orphans of
        dead nodes at once on the node chosen to settle them, elsewhere those left open for
        ``orphans_older_than`` seconds."""
        merge = self._merge()
        for catch_up in merge.pending_catch_ups():
            self._spawn(("catch-up", catch_up.token), self._catch_up(merge, catch_up))
        for fetch in merge.fetches():
            self._spawn(("fetch", fetch.event_id, fetch.position), self._fetch(merge, fetch))
        for send in merge.orphans(all_older_than=orphans_older_than):
            key = ("orphan", send.event_id, send.position)
            self._spawn(key, self._settle_orphan(merge, send))

    async def close(self) -> None:
        await self._tasks.cancel()

    def _spawn(self, key: Hashable, work: Coroutine[Any, Any, None]) -> None:
        if key in self._running:
            work.close()
            return
        self._running.add(key)

        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("store work for the cross-node order failed (%r); retrying", exc)
            finally:
                self._running.discard(key)

        self._tasks.spawn(guarded())

    async def _catch_up(self, merge: OrderMerge, catch_up: CatchUp) -> None:
        found = await self._source.read_after(catch_up.event_id, catch_up.after)
        if self._merge() is merge:
            merge.catch_up_done(catch_up.event_id, catch_up.token, map(held_of, found))

    async def _fetch(self, merge: OrderMerge, fetch: Fetch) -> None:
        found = await self._source.read_one(fetch.event_id, fetch.position.message_id)
        if found is None:
            log.warning(
                "message %s of event %d was announced but is not stored: taken as void",
                fetch.position.message_id,
                fetch.event_id,
            )
        if self._merge() is merge:
            merge.fetched(fetch.event_id, fetch.position, held_of(found) if found else None)

    async def _settle_orphan(self, merge: OrderMerge, send: OpenSend) -> None:
        message_id = send.position.message_id
        found = await self._source.read_one(send.event_id, message_id)
        if found is None:
            await self._source.fence(send.event_id, message_id, send.claim_key)
        if self._merge() is not merge:
            return
        outcome = merge.settle_orphan(send, held_of(found) if found else None)
        if outcome is not None:
            log.info(
                "settled message %s of event %d left open by node %s: %s",
                message_id,
                send.event_id,
                send.node_id,
                "published from the store" if found else "fenced",
            )
            self._orphan_settled(send, outcome, found)
