"""Resume without gap or duplicate: replay from the store below the hub's replay bound.

A subscription joins the hub *first* (live frames buffer in it), then the store is read below
the hub's *replay bound*, below which every message is settled and released; the connection
then goes live (:meth:`PendingSubscription.go_live`): buffered frames below the bound are
dropped, so nothing is missed and nothing repeats at the seam. Reads name the instant after
which the event is known unchanged (:meth:`Hub.unchanged_since
<chat.gateway.hub.Hub.unchanged_since>`), so the clients of a resume storm share them.
"""

from __future__ import annotations

from collections.abc import Callable

from chat.domain.messages import encode_cursor
from chat.domain.position import Position
from chat.gateway import frames
from chat.gateway.hub import Hub, Subscription
from chat.store.cql.message_history import BEGINNING_CURSOR, MessageHistory

REPLAY_PAGE = 100
"""Messages read from the store per replay page while resuming (queued at the client's pace:
the replay waits while the connection's mailbox is half full)."""


async def replay(
    history: MessageHistory, hub: Hub, subscription: Subscription, since: str, cut: Position
) -> str:
    """Replay the messages after ``since`` and below the cut (the rest comes live); the cursor
    of the last one replayed (``since`` when none was)."""
    mailbox, event_id = subscription.mailbox, subscription.event_id
    cursor = since
    after: str | None = since
    while after is not None and not mailbox.closed:
        page = await history.after(
            event_id, after, REPLAY_PAGE, unchanged_since=hub.unchanged_since(event_id)
        )
        for message in page.messages:
            if Position.of(message.message_id) >= cut:
                return cursor
            # Keep room for live frames: the replay goes at the client's pace.
            await mailbox.wait_for_room()
            if mailbox.closed:
                break
            mailbox.put(frames.message(message).decode())
            cursor = encode_cursor(message.message_id)
        after = page.next_cursor
    return cursor


async def newest_below(history: MessageHistory, hub: Hub, event_id: int, cut: Position) -> str:
    """The cursor of the newest message below the cut; the beginning's when there is none
    (a client that drops before its first message resumes from there, missing nothing)."""
    page = await history.latest(event_id, 10, unchanged_since=hub.unchanged_since(event_id))
    while True:
        for message in page.messages:  # newest first
            if Position.of(message.message_id) < cut:
                return encode_cursor(message.message_id)
        if page.next_cursor is None:
            return BEGINNING_CURSOR
        page = await history.before(
            event_id, page.next_cursor, 50, unchanged_since=hub.unchanged_since(event_id)
        )


class PendingSubscription:
    """A subscription whose replay is queued; :meth:`go_live` switches it to live delivery.

    The adapter queues the ``subscribed`` answer between the replay and :meth:`go_live`, so
    the client sees replay, ``subscribed``, then live frames. ``active`` says whether the
    subscription still stands (it may have been ended while it was being set up).
    """

    def __init__(
        self, hub: Hub, subscription: Subscription, cut: Position, active: Callable[[], bool]
    ) -> None:
        self._hub = hub
        self._subscription = subscription
        self._cut = cut
        self._active = active

    def go_live(self, unread_count: int) -> None:
        if not self._active():
            return  # ended (removed from the event) while it was being set up
        subscription = self._subscription
        subscription.go_live(self._cut)
        self._hub.announce(subscription)
        subscription.mailbox.put(frames.unread(subscription.event_id, unread_count).decode())
