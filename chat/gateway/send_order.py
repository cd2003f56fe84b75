"""One order for sends: an id before anything is written, settled when the store answers.

The id of a send is assigned before anything is written and announced to the hub
(:meth:`Hub.open_send <chat.gateway.hub.Hub.open_send>`); when the store answers, the send is
settled (:meth:`Hub.settle_send <chat.gateway.hub.Hub.settle_send>`) and the hub's order merge
(:mod:`chat.gateway.ordering`) releases ``message`` frames in the store's order — across nodes
too. A send whose store write failed after the rows were sent has an unknown outcome: it stays
open and is settled from the store (read back; fenced when absent), so nothing can appear
behind what subscribers got.

The store write runs as its own task and the send is settled from its completion, not from the
caller's coroutine: a connection that drops mid-send cancels only its wait, and a message the
store goes on to acknowledge is still released (its retry is a duplicate and releases nothing
new).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from chat.domain.messages import Message, NewMessage, SendAck
from chat.errors import ServiceUnavailable
from chat.gateway.background import BackgroundTasks
from chat.gateway.hub import Hub, SendTicket
from chat.store.cql.messages import MessageStore, SendAttempt, claim_key

log = logging.getLogger(__name__)

SETTLE_RETRY_SECONDS = (0.05, 0.2, 1.0, 2.0)
"""Pauses between attempts to settle a send whose outcome is unknown (then the last, repeated):
the store may be down, and the send stays open — holding its event's order — until settled."""

AckListener = Callable[[SendAck], None]
"""Called with the ack from the store's completion callback, before the message is released."""


class SendOrder:
    """Stores sends and settles each in the hub's order, whatever becomes of its caller.

    ``clock`` (seconds, any origin; the real ``time.perf_counter`` unless given) times each
    store write for ``observe_write``.
    """

    def __init__(
        self,
        hub: Hub,
        messages: MessageStore,
        tasks: BackgroundTasks,
        *,
        observe_write: Callable[[float], None],
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._hub = hub
        self._messages = messages
        self._tasks = tasks
        self._observe_write = observe_write
        self._clock = clock

    async def store(self, new: NewMessage, *, on_ack: AckListener | None = None) -> SendAck:
        """Store ``new`` under an id the hub's order knows; the ack means durable.

        ``on_ack`` lets the caller queue its ``ack`` in the same write-up as the fan-out,
        without waiting for its own task to wake up; an exception from it is logged and the
        caller still gets the ack as the result.
        """
        hub, store = self._hub, self._messages
        attempt = SendAttempt(store.new_message_id(), may_write=hub.may_write)
        ticket = hub.open_send(
            new.event_id, attempt.message_id, claim_key(new.sender_id, new.client_msg_id)
        )
        started = self._clock()
        # The caller waits on a future of its own that the completion resolves (what
        # `asyncio.shield` does, without its second future and two more callbacks).
        loop = asyncio.get_running_loop()
        task = loop.create_task(store.send(new, attempt))
        waiter: asyncio.Future[SendAck] = loop.create_future()
        self._tasks.keep(task)

        def stored(done: asyncio.Task[SendAck]) -> None:
            self._tasks.release(done)
            failure = None if done.cancelled() else done.exception()
            if done.cancelled() or failure is not None:
                if attempt.rows_sent:
                    self._background(self._settle_unknown(ticket, new, attempt))
                else:
                    self.settle(ticket, None)
                    if attempt.claimed:  # its retry must not wait for it to be settled
                        key = claim_key(new.sender_id, new.client_msg_id)
                        self._background(store.abandon(key, attempt.message_id))
            else:
                ack = done.result()
                if not hub.owns(ticket):
                    # This node retired while the send was under way (frozen, or cut off from
                    # the others): they settle it from the store; the retry finds the claim.
                    # (A claim that lost to an earlier attempt's is not this send's to report.)
                    failure = ServiceUnavailable(
                        "this node lost touch with the others mid-send; retry with the same "
                        "client_msg_id"
                    )
                else:
                    self._observe_write(self._clock() - started)
                    if on_ack is not None:
                        try:
                            on_ack(ack)
                        except Exception:
                            log.exception("answering the send of event %d failed", new.event_id)
                    stored_new = ack.message_id == attempt.message_id and not ack.duplicate
                    self.settle(ticket, new.stored(ack) if stored_new else None)
            if waiter.done():
                return  # the caller was cancelled (its connection went away)
            if done.cancelled():
                waiter.cancel()
            elif failure is not None:
                waiter.set_exception(failure)
            else:
                waiter.set_result(done.result())

        task.add_done_callback(stored)
        return await waiter

    def settle(self, ticket: SendTicket, message: Message | None) -> None:
        """End the send of ``ticket``: ``message`` as stored, or None when nothing was."""
        try:
            self._hub.settle_send(ticket, message)
        except Exception:
            log.exception("releasing the messages of event %d failed", ticket.event_id)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        self._tasks.spawn(work, failure="background clean-up failed")

    async def _settle_unknown(
        self, ticket: SendTicket, new: NewMessage, attempt: SendAttempt
    ) -> None:
        """Settle a send whose store write failed after its rows were sent: read it back —
        stored: release it; absent: fence it so a late copy never appears. Until then the send
        stays open and holds its event's later messages back (their order depends on it)."""
        store, hub = self._messages, self._hub
        key = claim_key(new.sender_id, new.client_msg_id)
        for attempt_no in itertools.count():
            if not hub.owns(ticket):
                return  # retired meanwhile: the node settling orphans decides it
            try:
                found = await store.get(new.event_id, attempt.message_id)
                if found is None:
                    await store.fence(new.event_id, attempt.message_id, key)
                if hub.owns(ticket):
                    self.settle(ticket, found)
                return
            except Exception as exc:
                pause = SETTLE_RETRY_SECONDS[min(attempt_no, len(SETTLE_RETRY_SECONDS) - 1)]
                log.warning(
                    "settling message %s of event %d failed (%r); again in %.2f s",
                    attempt.message_id,
                    new.event_id,
                    exc,
                    pause,
                )
                await asyncio.sleep(pause)
