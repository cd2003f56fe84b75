"""The chat logic behind the WebSocket gateway; it never touches a socket.

The connection adapter (:mod:`chat.gateway.connection`) turns each session command into one
call here and reports the outcome back to the session. This module owns the guarantees of
``docs/protocol.md``:

- **Membership.** Every call naming an event checks that the user takes part in it
  (:class:`~chat.gateway.membership.Membership`, PostgreSQL behind a cache, and in front of it
  :class:`~chat.gateway.member_checks.MemberChecks`, which makes a "no" cheap); a REST removal
  ends the user's live subscriptions at once (:meth:`ChatService.participant_changed`); after
  any trouble on the bus, which may have lost a removal, the cache is dropped and every live
  subscription re-checked (:meth:`ChatService.bus_trouble`). Writes also need the event's chat
  to be open: a CANCELED event is read-only (:class:`~chat.gateway.event_status.EventStatuses`).
- **REST writes reach live sockets.** A message deleted or a read position moved over REST is
  announced through ``AppState.notifications`` (:mod:`chat.notifications`), and
  :meth:`ChatService.message_changed` / :meth:`ChatService.read_moved` deliver it.
- **Ack after durable.** :meth:`ChatService.send` returns only when
  :meth:`MessageStore.send <chat.store.cql.messages.MessageStore.send>` has; a retried send
  (``duplicate``) gets the original ack and publishes nothing new.
- **One order.** The id of a send is assigned before anything is written and announced to the
  hub, and the send is settled when the store answers, so the hub's order merge releases
  ``message`` frames in the store's order — across nodes too (:mod:`chat.gateway.send_order`,
  :mod:`chat.gateway.ordering`).
- **Resume without gap or duplicate.** :meth:`ChatService.subscribe` joins the hub *first*
  (live frames buffer), then replays from the store below the hub's *replay bound*; the
  adapter then goes live (:mod:`chat.gateway.resume`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from chat.auth import TokenService, VerifiedToken
from chat.config import Settings
from chat.domain.events import check_chat_writable
from chat.domain.messages import Message, SendAck, decode_cursor
from chat.domain.position import Position
from chat.errors import Conflict, NotFound, ServiceUnavailable, Unauthorized
from chat.gateway import frames
from chat.gateway.background import BackgroundTasks
from chat.gateway.event_status import EventStatuses
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
from chat.gateway.resume import PendingSubscription, newest_below, replay
from chat.gateway.send_order import SendOrder
from chat.gateway.throttle import BroadcastThrottle
from chat.state import AppState
from chat.store.cql.unread import UNREAD_CAP
from chat.store.pg import events as event_store
from chat.store.pg import users as user_store
from chat.store.stores import Stores

log = logging.getLogger(__name__)

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


# --------------------------------------------------------------------------- the service


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
        statuses: EventStatuses | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """``clock`` times store writes (seconds, any origin; the real clock unless given)."""
        self._state = state
        self.hub = hub
        self.stores = stores
        self.membership = membership
        self.statuses = statuses
        self.settings = settings or state.settings
        self._tokens: TokenService = state.tokens
        hub.on_message = self._count_message
        self._unread: dict[tuple[int, int], int] = {}
        self._typing: dict[int, dict[int, asyncio.TimerHandle]] = {}
        self._subscriptions: dict[tuple[int, int], Subscription] = {}
        self._tasks = BackgroundTasks()
        self._rechecking: asyncio.Task[None] | None = None
        self._recheck_again = False
        self._sends = SendOrder(
            hub,
            stores.messages,
            self._tasks,
            observe_write=state.metrics.store_write_seconds.observe,
            clock=clock,
        )
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
        await self._tasks.wait()

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

    async def _require_writable(self, client: Client, event_id: int) -> None:
        """A participant, and the event's chat takes writes (a CANCELED one is read-only)."""
        await self._require_member(client, event_id)
        if self.statuses is not None:
            status = await self.statuses.status(event_id)
            if status is None:
                raise NotFound(f"no event {event_id}")
            check_chat_writable(status)

    def status_changed(self, event_id: int, status: str) -> None:
        """An event's status changed (REST here, or another node): applied at once."""
        if self.statuses is not None:
            self.statuses.changed(event_id, status)

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

    def bus_trouble(self) -> None:
        """Something other nodes said may have been lost (the bus dropped, a gap in a node's
        frames, a node died): a participant removal among it would leave a removed user
        reading here. Forget the cached memberships and re-check every live subscription."""
        self.membership.forget_all()
        if self.statuses is not None:
            self.statuses.forget_all()
        if self._rechecking is not None and not self._rechecking.done():
            self._recheck_again = True
            return
        self._rechecking = self._tasks.spawn(self._recheck_subscriptions())

    async def _recheck_subscriptions(self) -> None:
        while True:
            self._recheck_again = False
            pairs = {
                (event_id, s.mailbox.user_id) for (_, event_id), s in self._subscriptions.items()
            }
            for event_id, user_id in sorted(pairs):
                try:
                    member = await self.membership.is_participant(event_id, user_id)
                except Exception as exc:
                    log.warning("re-checking memberships failed (%r); again shortly", exc)
                    self._recheck_again = True
                    await asyncio.sleep(1.0)
                    break
                if not member:
                    log.info(
                        "user %d is no longer in event %d: subscriptions end", user_id, event_id
                    )
                    self.participant_changed(event_id, user_id, False)
            if not self._recheck_again:
                return

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
        if cmd.since is not None:
            subscription.after = Position.of(decode_cursor(cmd.since))
        key = (client.mailbox.id, event_id)
        self._subscriptions[key] = subscription
        try:
            await self.hub.ready(subscription)  # a bus: frames from other nodes now buffer
            cut = self.hub.replay_bound(event_id)
            cursor: str | None
            if cmd.since is not None:
                cursor = await replay(self.stores.history, self.hub, subscription, cmd.since, cut)
            else:
                cursor = await newest_below(self.stores.history, self.hub, event_id, cut)
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

        def active() -> bool:
            return subscription in self.active_subscriptions(client, event_id)

        return cursor, count, PendingSubscription(self.hub, subscription, cut, active)

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
        """Store the message; the ack means durable. New messages are released in order.

        ``on_ack`` is called with the ack from the store's completion callback, before the
        message is released — so the caller can queue the ``ack`` in the same write-up as the
        fan-out, without waiting for its own task to wake up. An exception from it is logged;
        the caller still gets the ack as the result.
        """
        try:
            await self._require_writable(client, cmd.event_id)
        except (Conflict, NotFound):
            # A retry the event no longer takes (canceled, or the sender removed) still gets
            # the original ack when an earlier attempt was stored: exactly once, either way.
            identity = client.identity
            earlier = await self.stores.messages.find_stored(
                cmd.to_new_message(
                    identity.user_id,
                    sender_name=identity.name,
                    sender_profile_url=identity.profile_url,
                )
            )
            if earlier is None:
                raise
            if on_ack is not None:
                on_ack(cmd, earlier)
            return earlier
        if not self.hub.may_write():
            raise ServiceUnavailable(
                "this node is not in touch with the other nodes; retry shortly (on any node) "
                "with the same client_msg_id"
            )
        identity = client.identity
        new = cmd.to_new_message(
            identity.user_id,
            sender_name=identity.name,
            sender_profile_url=identity.profile_url,
        )
        acked = None if on_ack is None else functools.partial(on_ack, cmd)
        return await self._sends.store(new, on_ack=acked)

    def _count_message(self, event_id: int, sender_id: int) -> None:
        """A ``message`` frame went to the event's local subscribers: their unread counts.

        One pass over the subscribers: each reader's count moves once and is encoded once
        (shared by the reader's connections). It goes in as a latest value: a newer count
        supersedes one still queued, so a burst of messages costs one `unread` per write-up.
        """
        unread_key = ("unread", event_id)
        counted: dict[int, str | None] = {sender_id: None}
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
        await self._require_writable(client, cmd.event_id)
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
        check_chat_writable(event.status)
        message = await self.stores.messages.soft_delete(
            cmd.event_id,
            cmd.message_id,
            client.user_id,
            may_moderate=event.creator_id == client.user_id,
        )
        self.hub.publish(cmd.event_id, frames.message_updated(message))

    async def react(self, client: Client, cmd: React | Unreact) -> None:
        await self._require_writable(client, cmd.event_id)
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
        if cmd.state == "stop":
            await self._require_member(client, event_id)  # stopping is never refused
        else:
            await self._require_writable(client, event_id)
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
        self.hub.publish_typing(event_id, self._typing.get(event_id, {}), exclude_user=actor_id)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        self._tasks.spawn(work, failure="background clean-up failed")
