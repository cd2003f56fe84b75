"""The chat logic behind the WebSocket gateway; it never touches a socket.

The connection adapter (:mod:`chat.gateway.connection`) turns each session command into one
call here and reports the outcome back to the session. This module owns the guarantees of
``docs/protocol.md``:

- **Membership.** Every call naming an event checks that the user takes part in it
  (:class:`~chat.gateway.membership.Membership`, PostgreSQL behind a cache, and in front of it
  :class:`~chat.gateway.member_checks.MemberChecks`, which makes a "no" cheap); a REST removal
  ends the user's live subscriptions at once (:meth:`ChatService.participant_changed`).
- **REST writes reach live sockets.** A message deleted or a read position moved over REST is
  announced through ``AppState.notifications`` (:mod:`chat.notifications`), and
  :meth:`ChatService.message_changed` / :meth:`ChatService.read_moved` deliver it.
- **Ack after durable.** :meth:`ChatService.send` returns only when
  :meth:`MessageStore.send <chat.store.messages.MessageStore.send>` has; a retried send
  (``duplicate``) gets the original ack and publishes nothing.
- **One order.** Concurrent sends complete out of order (they ride different batches), but
  message ids are assigned strictly increasing in this process. The per-event
  :class:`Sequencer` holds a finished message back until every send that might have an
  earlier id has finished, then publishes in id order — the store's order.
- **Resume without gap or duplicate.** :meth:`ChatService.subscribe` joins the hub *first*
  (live frames buffer), then replays from the store up to a *cut* below which every message of
  this process has already been published, then the adapter goes live: buffered frames are all
  past the cut, so nothing is missed and nothing repeats at the seam.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from chat.auth import TokenService, VerifiedToken
from chat.config import Settings
from chat.domain.messages import Message, SendAck, encode_cursor
from chat.errors import NotFound, ServiceUnavailable, Unauthorized
from chat.gateway import frames
from chat.gateway.hub import Hub, Mailbox, Subscription
from chat.gateway.member_checks import MemberChecks
from chat.gateway.membership import Membership
from chat.gateway.protocol import (
    Delete,
    Edit,
    History,
    React,
    Read,
    Send,
    Subscribe,
    Typing,
    Unreact,
)
from chat.gateway.throttle import BroadcastThrottle
from chat.state import AppState
from chat.store import events as event_store
from chat.store import users as user_store
from chat.store.message_history import MessageHistory, Position
from chat.store.messages import MessageStore
from chat.store.reactions import ReactionStore
from chat.store.typing import TypingStore
from chat.store.unread import UNREAD_CAP, UnreadStore

log = logging.getLogger(__name__)

REPLAY_PAGE = 100
"""Messages read from the store per replay page while resuming (queued at the client's pace:
the replay waits while the connection's mailbox is half full)."""

SEAM_MEMORY_MS = 60_000
"""With several nodes, how long a resumed subscription remembers replayed messages so that
their live copies, still on the bus, are dropped (far above any bus delay)."""

TYPING_BROADCAST_SECONDS = 1.0
"""At most one ``typing`` broadcast per user and event in this long (the state as it is at
the end of it goes out then): a start/stop flood costs the others one frame a second."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a connection speaks for, with what their messages carry about them."""

    user_id: int
    name: str
    profile_url: str | None


@dataclass(slots=True)
class Client:
    """One authenticated connection, as the service sees it."""

    identity: Identity
    mailbox: Mailbox
    typing_in: set[int] = field(default_factory=set)

    @property
    def user_id(self) -> int:
        return self.identity.user_id


# --------------------------------------------------------------------------- ordering


@dataclass(order=True, slots=True)
class _Finished:
    position: Position
    barrier: int = field(compare=False)
    message: Message = field(compare=False)


class _EventOrder:
    """The sends of one event that are under way, and finished ones waiting their turn."""

    __slots__ = ("inflight", "published", "waiting")

    def __init__(self) -> None:
        self.inflight: dict[int, int] = {}  # send token -> start time in ms
        self.waiting: list[_Finished] = []
        self.published: Position | None = None


class Sequencer:
    """Publishes each event's new messages in id order although sends finish out of order.

    Ids are assigned strictly increasing within the process, after a send starts. So when a
    message X finishes, only sends that *started* before X finished can hold an earlier id;
    X waits until all of them have finished (acked, duplicate or failed), then every waiting
    message is released smallest id first. A send that starts later gets a later id.
    """

    def __init__(self, release: Callable[[Message, Position], None]) -> None:
        self._release = release
        self._events: dict[int, _EventOrder] = {}
        self._tokens = itertools.count()
        self._next_token = 0

    def begin(self, event_id: int) -> int:
        token = next(self._tokens)
        self._next_token = token + 1
        self._events.setdefault(event_id, _EventOrder()).inflight[token] = _now_ms()
        return token

    def finish(self, event_id: int, token: int, message: Message | None) -> None:
        order = self._events[event_id]
        del order.inflight[token]
        if message is not None:
            finished = _Finished(Position.of(message.message_id), self._next_token, message)
            heapq.heappush(order.waiting, finished)
        while order.waiting:
            head = order.waiting[0]
            # Tokens increase and dicts keep insertion order: the first is the oldest send.
            if order.inflight and next(iter(order.inflight)) < head.barrier:
                break
            heapq.heappop(order.waiting)
            order.published = head.position
            self._release(head.message, head.position)
        # Nothing under way: the event costs no memory. The replay cut then falls back to
        # "now", which the last published message (stored before it finished) is below unless
        # it shares the current millisecond: only then is the entry kept.
        if (
            not order.inflight
            and not order.waiting
            and (order.published is None or order.published < Position.before_ms(_now_ms()))
        ):
            del self._events[event_id]

    def replay_cut(self, event_id: int) -> Position:
        """A store position such that every message of this process at or below it has been
        published, and every message above it is still to be published (or from elsewhere)."""
        order = self._events.get(event_id)
        floor_ms = _now_ms()
        if order is not None and order.inflight:
            floor_ms = next(iter(order.inflight.values()))
        cut = Position.before_ms(floor_ms)
        if order is not None and order.published is not None and order.published > cut:
            cut = order.published
        return cut

    def tracked_events(self) -> int:
        """Events with sends under way or messages waiting their turn (a bounded number)."""
        return len(self._events)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# --------------------------------------------------------------------------- the service


@dataclass(frozen=True, slots=True)
class Stores:
    """The chat stores the service calls (the lifespan owns their start and close)."""

    messages: MessageStore
    history: MessageHistory
    unread: UnreadStore
    reactions: ReactionStore
    typing: TypingStore


class PendingSubscription:
    """A subscription whose replay is queued; :meth:`go_live` switches it to live delivery.

    The adapter queues the ``subscribed`` answer between the replay and :meth:`go_live`, so
    the client sees replay, ``subscribed``, then live frames.
    """

    def __init__(
        self, service: ChatService, client: Client, subscription: Subscription, cut: Position
    ) -> None:
        self._service = service
        self._client = client
        self._subscription = subscription
        self._cut = cut

    def go_live(self, unread_count: int) -> None:
        event_id = self._subscription.event_id
        if self._subscription not in self._service.active_subscriptions(self._client, event_id):
            return  # ended (removed from the event) while it was being set up
        subscription = self._subscription
        if self._service.hub.distributed:
            # Over a bus the cut says nothing about other nodes' messages: a buffered frame at
            # or below it may never have been replayed (stored after the replay read its page).
            # So the seam dedupes by the replayed positions instead; a replayed message's live
            # copy can lag on the bus only briefly, so older positions are forgotten.
            subscription.go_live(None)
            horizon = _now_ms() - SEAM_MEMORY_MS
            subscription.skip = {p for p in subscription.skip if p.created_at_ms >= horizon}
        else:
            subscription.go_live(self._cut)
        self._service.hub.announce(subscription)
        self._client.mailbox.put(frames.unread(event_id, unread_count).decode())


class ChatService:
    """Every chat operation the gateway offers, over the stores, the hub and PostgreSQL."""

    def __init__(
        self,
        state: AppState,
        hub: Hub,
        stores: Stores,
        membership: Membership,
        *,
        settings: Settings | None = None,
    ) -> None:
        self._state = state
        self.hub = hub
        self.stores = stores
        self.membership = membership
        self.settings = settings or state.settings
        self._tokens: TokenService = state.tokens
        self._sequencer = Sequencer(self._publish_message)
        self._unread: dict[tuple[int, int], int] = {}
        self._typing: dict[int, dict[int, asyncio.TimerHandle]] = {}
        self._subscriptions: dict[tuple[int, int], Subscription] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.member_checks = MemberChecks(
            membership,
            lookups_per_user=self.settings.ws_membership_lookups_per_user,
            non_member_seconds=self.settings.ws_non_member_cache_seconds,
        )
        self._typing_broadcasts = BroadcastThrottle[tuple[int, int]](
            TYPING_BROADCAST_SECONDS, self._broadcast_typing
        )
        membership.add_listener(self.participant_changed)

    async def close(self) -> None:
        """Stop timers; wait for sends under way (their messages publish) and clean-ups."""
        self.membership.remove_listener(self.participant_changed)
        self.member_checks.close()
        self._typing_broadcasts.close()
        for users in self._typing.values():
            for handle in users.values():
                handle.cancel()
        self._typing.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---------------------------------------------------------------- connections

    def verify_token(self, token: str) -> VerifiedToken:
        """Whose token it is and when it expires; Unauthorized for a bad token. No I/O: the
        connection can apply per-user limits before it costs a database round trip."""
        return self._tokens.verify_expiring(token)

    async def load_identity(self, user_id: int) -> Identity:
        """The user a verified token speaks for; Unauthorized for a deleted or deactivated
        user (a dependency error when PostgreSQL is down: the token may be good)."""
        async with self._state.pg.acquire() as conn:
            user = await user_store.get_user(conn, user_id)
        if user is None or not user.is_active:
            raise Unauthorized("the token's user does not exist or is deactivated")
        return Identity(user_id, user.display_name or user.name, user.profile_image_url)

    def connected(self, identity: Identity, mailbox: Mailbox) -> Client:
        mailbox.user_id = identity.user_id
        self.hub.connect(mailbox)
        return Client(identity, mailbox)

    def disconnected(self, client: Client) -> None:
        """The connection is gone: leave every topic, clear its typing at once."""
        for event_id in self.hub.disconnect(client.mailbox):
            self._subscriptions.pop((client.mailbox.id, event_id), None)
            self._forget_unread(client.user_id, event_id)
        for event_id in sorted(client.typing_in):
            self._clear_typing(event_id, client.user_id, store=True)
        client.typing_in.clear()

    def subscription_count(self) -> int:
        """Subscriptions of open connections, live or replaying (the metrics gauge)."""
        return len(self._subscriptions)

    def active_subscriptions(self, client: Client, event_id: int) -> list[Subscription]:
        found = self._subscriptions.get((client.mailbox.id, event_id))
        return [found] if found is not None else []

    # ---------------------------------------------------------------- membership

    async def _require_member(self, client: Client, event_id: int) -> None:
        await self.member_checks.require(event_id, client.user_id)

    def participant_changed(self, event_id: int, user_id: int, present: bool) -> None:
        """REST added or removed a participant; a removed one loses the event at once."""
        if present:
            return
        for mailbox in self.hub.subscribers(event_id):
            if mailbox.user_id == user_id:
                self.hub.unsubscribe(mailbox, event_id)
                self._subscriptions.pop((mailbox.id, event_id), None)
                mailbox.subscription_removed(event_id)
        self._forget_unread(user_id, event_id)
        self._clear_typing(event_id, user_id, store=True)

    def resync(self, event_id: int | None) -> None:
        """Live delivery had a hole (the bus was lost, or a gap in another node's frames): end
        the local subscriptions — of one event, or all — with ``unsubscribed`` ``resync``, so
        their clients subscribe again with ``since`` and the store replays what they missed."""
        for (mailbox_id, subscribed_to), subscription in list(self._subscriptions.items()):
            if event_id is not None and subscribed_to != event_id:
                continue
            mailbox = subscription.mailbox
            self.hub.unsubscribe(mailbox, subscribed_to)
            self._subscriptions.pop((mailbox_id, subscribed_to), None)
            self._forget_unread(mailbox.user_id, subscribed_to)
            mailbox.subscription_removed(subscribed_to, "resync")

    # ---------------------------------------------------------------- subscriptions

    async def subscribe(
        self, client: Client, cmd: Subscribe
    ) -> tuple[str | None, int, PendingSubscription]:
        """Join the topic (buffering), replay after ``since``; the adapter then goes live.

        Returns the ``subscribed`` cursor, the exact unread count and the pending subscription.
        """
        event_id, user_id = cmd.event_id, client.user_id
        epoch = self.membership.epoch(event_id, user_id)
        await self._require_member(client, event_id)
        subscription = self.hub.subscribe(client.mailbox, event_id)
        key = (client.mailbox.id, event_id)
        self._subscriptions[key] = subscription
        try:
            await self.hub.ready(subscription)  # a bus: frames from other nodes now buffer
            cut = self._sequencer.replay_cut(event_id)
            cursor: str | None
            if cmd.since is not None:
                cursor = await self._replay(subscription, event_id, cmd.since, cut)
            else:
                cursor = await self._newest_at_or_before(event_id, cut)
            count = await self.stores.unread.count(user_id, event_id)
            if self.membership.epoch(event_id, user_id) != epoch:
                raise NotFound(f"no event {event_id}")  # removed while subscribing
            if self._subscriptions.get(key) is not subscription:
                # Ended while it was being set up (a resync of live delivery): answering
                # `subscribed` now would promise live frames that will never come.
                raise ServiceUnavailable("live delivery was interrupted; subscribe again")
        except BaseException:
            if self._subscriptions.get(key) is subscription:
                del self._subscriptions[key]
            self.hub.unsubscribe(client.mailbox, event_id)
            raise
        self._unread[(user_id, event_id)] = count
        return cursor, count, PendingSubscription(self, client, subscription, cut)

    async def _replay(
        self, subscription: Subscription, event_id: int, since: str, cut: Position
    ) -> str:
        """Replay after ``since``; in process up to the cut, over a bus to the end.

        The cut only knows this process's sends. A message another node stored above it may
        have been published before this node listened, so with a distributed hub the replay
        reads on to the end of the store and marks what it sent past the cut in
        ``subscription.skip``: its live copy (buffered or still to come) is then dropped.
        """
        mailbox = subscription.mailbox
        beyond = self.hub.distributed
        cursor = since
        after: str | None = since
        while after is not None and not mailbox.closed:
            page = await self.stores.history.after(
                event_id, after, REPLAY_PAGE, unchanged_since=self.hub.unchanged_since(event_id)
            )
            for message in page.messages:
                position = Position.of(message.message_id)
                if position > cut and not beyond:
                    return cursor  # the rest comes live: it is published after the cut
                if beyond:
                    subscription.skip.add(position)
                # Keep room for live frames: the replay goes at the client's pace.
                await mailbox.wait_for_room()
                if mailbox.closed:
                    break
                mailbox.put(frames.message(message).decode())
                cursor = encode_cursor(message.message_id)
            after = page.next_cursor
        return cursor

    async def _newest_at_or_before(self, event_id: int, cut: Position) -> str | None:
        history, hub = self.stores.history, self.hub
        page = await history.latest(event_id, 10, unchanged_since=hub.unchanged_since(event_id))
        while True:
            for message in page.messages:  # newest first
                if Position.of(message.message_id) <= cut:
                    return encode_cursor(message.message_id)
            if page.next_cursor is None:
                return None
            page = await history.before(
                event_id, page.next_cursor, 50, unchanged_since=hub.unchanged_since(event_id)
            )

    def unsubscribe(self, client: Client, event_id: int) -> None:
        self.hub.unsubscribe(client.mailbox, event_id)
        self._subscriptions.pop((client.mailbox.id, event_id), None)
        self._forget_unread(client.user_id, event_id)

    def _forget_unread(self, user_id: int, event_id: int) -> None:
        if not any(m.user_id == user_id for m in self.hub.subscribers(event_id)):
            self._unread.pop((user_id, event_id), None)

    # ---------------------------------------------------------------- messages

    async def send(
        self,
        client: Client,
        cmd: Send,
        *,
        on_ack: Callable[[Send, SendAck], None] | None = None,
    ) -> SendAck:
        """Store the message; the ack means durable. New messages are published in order.

        ``on_ack`` is called with the ack from the store's completion callback, before the
        message is published — so the caller can queue the ``ack`` in the same write-up as
        the fan-out, without waiting for its own task to wake up. An exception from it is
        logged; the caller still gets the ack as the result.
        """
        await self._require_member(client, cmd.event_id)
        identity = client.identity
        new = cmd.to_new_message(
            identity.user_id,
            sender_name=identity.name,
            sender_profile_url=identity.profile_url,
        )
        event_id = cmd.event_id
        token = self._sequencer.begin(event_id)
        started = time.perf_counter()
        # The store write runs as its own task and the sequencer is finished from its
        # completion, not from this coroutine: a connection that drops mid-send cancels only
        # the wait here, and a message the store goes on to acknowledge is still published
        # (its retry is a duplicate and publishes nothing).
        # The caller waits on a future of its own that the completion resolves (what
        # `asyncio.shield` does, without its second future and two more callbacks).
        loop = asyncio.get_running_loop()
        task = loop.create_task(self.stores.messages.send(new))
        waiter: asyncio.Future[SendAck] = loop.create_future()
        self._tasks.add(task)

        def stored(done: asyncio.Task[SendAck]) -> None:
            self._tasks.discard(done)
            message: Message | None = None
            failure = None if done.cancelled() else done.exception()
            if not done.cancelled() and failure is None:
                ack = done.result()
                self._state.metrics.store_write_seconds.observe(time.perf_counter() - started)
                if on_ack is not None:
                    try:
                        on_ack(cmd, ack)
                    except Exception:
                        log.exception("answering the send of event %d failed", event_id)
                if not ack.duplicate:
                    message = new.stored(ack)
            if message is None:
                # Failed (it may still have been stored) or a retry of a stored message: no
                # frame announces it, so reads shared by resuming clients must start afresh.
                self.hub.changed(event_id)
            try:
                self._sequencer.finish(event_id, token, message)
            except Exception:
                log.exception("publishing the messages of event %d failed", event_id)
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

    def _publish_message(self, message: Message, position: Position) -> None:
        event_id = message.event_id
        self.hub.publish(event_id, frames.message(message), position=position)
        # One pass over the subscribers: each reader's count moves once and is encoded once
        # (shared by the reader's connections). It goes in as a latest value: a newer count
        # supersedes one still queued, so a burst of messages costs one `unread` per write-up.
        unread_key = ("unread", event_id)
        counted: dict[int, str | None] = {message.sender_id: None}
        for mailbox in self.hub.subscribers(event_id):
            user_id = mailbox.user_id
            if user_id in counted:
                frame = counted[user_id]
            else:
                frame = counted[user_id] = self._count_new_message(user_id, event_id)
            if frame is not None:
                mailbox.put_latest(unread_key, frame)

    def _count_new_message(self, user_id: int, event_id: int) -> str | None:
        """Add one to the user's tracked unread count; its frame, or None when not tracked."""
        key = (user_id, event_id)
        count = self._unread.get(key)
        if count is None:
            return None
        count = min(UNREAD_CAP, count + 1)
        self._unread[key] = count
        return frames.unread(event_id, count).decode()

    async def edit(self, client: Client, cmd: Edit) -> None:
        await self._require_member(client, cmd.event_id)
        message = await self.stores.messages.edit(
            cmd.event_id, cmd.message_id, client.user_id, cmd.text
        )
        self.hub.publish(cmd.event_id, frames.message_updated(message))

    async def delete(self, client: Client, cmd: Delete) -> None:
        await self._require_member(client, cmd.event_id)  # cheap for a non-member
        async with self._state.pg.acquire() as conn:
            event = await event_store.get_event_for(conn, cmd.event_id, client.user_id)
        if event is None:
            raise NotFound(f"no event {cmd.event_id}")
        message = await self.stores.messages.soft_delete(
            cmd.event_id,
            cmd.message_id,
            client.user_id,
            may_moderate=event.creator_id == client.user_id,
        )
        self.hub.publish(cmd.event_id, frames.message_updated(message))

    async def react(self, client: Client, cmd: React | Unreact) -> None:
        await self._require_member(client, cmd.event_id)
        reactions = self.stores.reactions
        if isinstance(cmd, React):
            await reactions.add(cmd.message_id, cmd.event_id, client.user_id, cmd.emoji)
        else:
            await reactions.remove(cmd.message_id, cmd.event_id, client.user_id, cmd.emoji)
        summary = await reactions.summary(cmd.message_id)
        frame = frames.reaction(
            event_id=cmd.event_id,
            message_id=cmd.message_id,
            user_id=client.user_id,
            emoji=cmd.emoji,
            action="add" if isinstance(cmd, React) else "remove",
            counts=summary.counts,
        )
        self.hub.publish(cmd.event_id, frame)

    async def read(self, client: Client, cmd: Read) -> int:
        """Mark read; the exact new count goes to the user's other connections too."""
        await self._require_member(client, cmd.event_id)
        count = await self.stores.unread.mark_read(client.user_id, cmd.event_id, cmd.message_id)
        self._read_moved(client.user_id, cmd.event_id, count, exclude=client.mailbox)
        return count

    def read_moved(self, user_id: int, event_id: int, count: int) -> None:
        """REST moved the user's read position: every connection of theirs hears the count."""
        self._read_moved(user_id, event_id, count, exclude=None)

    def _read_moved(
        self, user_id: int, event_id: int, count: int, *, exclude: Mailbox | None
    ) -> None:
        key = (user_id, event_id)
        if key in self._unread:
            self._unread[key] = count  # later messages count up from the exact value
        self.hub.send_to_user(
            user_id, frames.unread(event_id, count), exclude=exclude, latest=("unread", event_id)
        )

    def message_changed(self, message: Message) -> None:
        """REST edited or deleted a message: its subscribers get ``message_updated``."""
        self.hub.publish(message.event_id, frames.message_updated(message))

    async def history(self, client: Client, cmd: History) -> tuple[list[Message], str | None]:
        await self._require_member(client, cmd.event_id)
        history = self.stores.history
        if cmd.before is not None:
            page = await history.before(cmd.event_id, cmd.before, cmd.limit)
        elif cmd.after is not None:
            page = await history.after(cmd.event_id, cmd.after, cmd.limit)
        else:
            page = await history.latest(cmd.event_id, cmd.limit)
        return page.messages, page.next_cursor

    # ---------------------------------------------------------------- typing

    async def typing(self, client: Client, cmd: Typing) -> None:
        """Start (or refresh) / stop the user's typing indicator in the event."""
        event_id, user_id = cmd.event_id, client.user_id
        await self._require_member(client, event_id)
        if cmd.state == "stop":
            await self.stores.typing.stop(event_id, user_id)
            client.typing_in.discard(event_id)
            self._clear_typing(event_id, user_id, store=False)
            return
        await self.stores.typing.start(event_id, user_id)
        client.typing_in.add(event_id)
        users = self._typing.setdefault(event_id, {})
        previous = users.get(user_id)
        loop = asyncio.get_running_loop()
        ttl = self.settings.typing_ttl_seconds
        users[user_id] = loop.call_later(ttl, self._clear_typing, event_id, user_id, False)
        if previous is not None:
            previous.cancel()  # a refresh: the set of typing users did not change
        else:
            self._publish_typing(event_id, user_id)

    def _clear_typing(self, event_id: int, user_id: int, store: bool) -> None:
        users = self._typing.get(event_id)
        handle = users.pop(user_id, None) if users is not None else None
        if handle is None:
            return
        handle.cancel()
        if users is not None and not users:
            del self._typing[event_id]
        if store:
            self._background(self.stores.typing.stop(event_id, user_id))
        # Gone (disconnected, removed) is said at once: it happens once per connection.
        self._publish_typing(event_id, user_id, at_once=store)

    def _publish_typing(self, event_id: int, actor_id: int, *, at_once: bool = False) -> None:
        if at_once:
            self._typing_broadcasts.flush((event_id, actor_id))
        else:
            self._typing_broadcasts.request((event_id, actor_id))

    def _broadcast_typing(self, key: tuple[int, int]) -> None:
        """The event's typing users as they are now, to its subscribers but the actor; queued
        as a current value, superseding one not yet written."""
        event_id, actor_id = key
        users = sorted(self._typing.get(event_id, {}))
        self.hub.publish(
            event_id,
            frames.typing(event_id, users),
            exclude_user=actor_id,
            latest=("typing", event_id),
        )

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.warning("background clean-up failed", exc_info=True)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
