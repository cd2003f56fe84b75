"""REST: an event's chat messages — history paging, moderation, and "mark read".

Sending is the gateway's job (WebSocket); REST serves the reads a client needs when it opens an
event (a page of history, what it missed) and the moderation and read-position writes.

Visibility is PostgreSQL's: every operation first checks that the caller takes part in the
event and answers 404 otherwise, exactly as the event operations do. The messages themselves
live in ScyllaDB (:mod:`chat.store.cql.message_history`, :mod:`chat.store.cql.messages`,
:mod:`chat.store.cql.unread`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from chat.api.endpoint import Api, Call, Rule
from chat.api.fields import Cursor, QueryInt, Timestamp, Uuid
from chat.api.uuid_path import path_uuid
from chat.domain.events import check_chat_writable
from chat.domain.messages import Message
from chat.errors import FieldError, NotFound, ValidationFailed
from chat.store.cql.message_history import MessagePage
from chat.store.cql.unread import UNREAD_CAP
from chat.store.pg import events as event_store
from chat.store.pg.events import Event

api = Api(prefix="")

TAG = "messages"
PATH = "/events/{event_id:id}"

# Open ends of a time range: a CQL timestamp holds these, and no message is outside them.
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


class MessagesQuery(BaseModel):
    """``before``/``after`` are cursors (``next_cursor`` values, or a message's cursor);
    ``from``/``to`` bound the creation time, ``to`` exclusive."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    limit: QueryInt = Field(50, ge=1, le=200)
    before: Cursor | None = None
    after: Cursor | None = None
    start: Timestamp | None = Field(None, alias="from")
    end: Timestamp | None = Field(None, alias="to")


class MessageOut(BaseModel):
    message_id: uuid.UUID
    event_id: int
    created_at: datetime
    sender_id: int
    sender_name: str | None
    sender_profile_url: str | None
    client_msg_id: str
    text: str = Field(description="Empty once the message is deleted.")
    message_type: str
    attachments: list[str]
    reply_to: uuid.UUID | None
    edited_at: datetime | None
    is_deleted: bool
    metadata: dict[str, str]

    @classmethod
    def of(cls, message: Message) -> MessageOut:
        return cls(
            message_id=message.message_id,
            event_id=message.event_id,
            created_at=message.created_at,
            sender_id=message.sender_id,
            sender_name=message.sender_name,
            sender_profile_url=message.sender_profile_url,
            client_msg_id=message.client_msg_id,
            text=message.text,
            message_type=message.message_type,
            attachments=list(message.attachments),
            reply_to=message.reply_to,
            edited_at=message.edited_at,
            is_deleted=message.is_deleted,
            metadata=dict(message.metadata),
        )


class MessagePageOut(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None = Field(
        description="Pass back as `before` (or as `after` when paging with `after`)."
    )

    @classmethod
    def of(cls, page: MessagePage) -> MessagePageOut:
        return cls(items=[MessageOut.of(m) for m in page.messages], next_cursor=page.next_cursor)


class MarkRead(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message_id: Uuid = Field(description="The newest message the reader has seen.")


class UnreadOut(BaseModel):
    event_id: int
    unread: int = Field(description=f"Capped at {UNREAD_CAP}: show it as '{UNREAD_CAP - 1}+'.")


async def _event_for(call: Call) -> Event:
    """The event if the caller takes part in it; 404 otherwise (existence is not revealed)."""
    event_id = call.path_id("event_id")
    async with call.state.pg.acquire() as conn:
        event = await event_store.get_event_for(conn, event_id, call.user_id)
    if event is None:
        raise NotFound(f"no event {event_id}")
    return event


@api.operation(
    "GET",
    PATH + "/messages",
    summary="Page through an event's messages",
    tag=TAG,
    query=MessagesQuery,
    response=MessagePageOut,
    errors=(401, 404, 422),
    rules=(
        Rule(
            ("before", "after", "cursor"),
            "`before` and `after` are cursors this API returned (a `next_cursor`), unchanged.",
        ),
        Rule(("before", "after"), "`before` and `after` are not sent together."),
        Rule(("after",), "`after` is not combined with `from`/`to`."),
        Rule(("from", "to"), "`from` is before `to`."),
    ),
)
async def list_messages(call: Call) -> MessagePageOut:
    """The event's messages in a stable ``(created_at, message_id)`` order.

    Without ``after``: newest first — the latest page, or the page older than ``before``,
    optionally within ``from``/``to``. With ``after``: the messages newer than it, **oldest
    first** (what a reconnecting client missed, in the order they were sent); ``next_cursor``
    then continues with ``after``. ``before`` and ``after`` together are a 422, as is ``after``
    with a time range. Participants only.
    """
    query: MessagesQuery = call.query
    if query.before is not None and query.after is not None:
        raise ValidationFailed(
            "page either before or after a cursor, not both",
            errors=[FieldError("query/after", "not allowed together with before")],
        )
    ranged = query.start is not None or query.end is not None
    if query.after is not None and ranged:
        raise ValidationFailed(
            "a time range pages newest first; use before, not after, with from/to",
            errors=[FieldError("query/after", "not allowed together with from/to")],
        )
    start, end = query.start or _EARLIEST, query.end or _LATEST
    if ranged and start >= end:
        raise ValidationFailed(
            "the time range is empty: from must be before to",
            errors=[FieldError("query/to", "must be after from")],
        )
    event = await _event_for(call)
    history = call.state.stores.history
    if ranged:
        page = await history.between(event.id, start, end, query.limit, query.before)
    elif query.after is not None:
        page = await history.after(event.id, query.after, query.limit)
    elif query.before is not None:
        page = await history.before(event.id, query.before, query.limit)
    else:
        page = await history.latest(event.id, query.limit)
    return MessagePageOut.of(page)


@api.operation(
    "DELETE",
    PATH + "/messages/{message_id:uuid}",
    summary="Delete a message",
    tag=TAG,
    status=204,
    errors=(401, 403, 404, 409),
)
async def delete_message(call: Call) -> None:
    """Soft-delete a message: its text is cleared and ``is_deleted`` set (no tombstones).

    Its sender may delete it, and so may the event's creator (moderation); other participants
    get 403, non-participants 404; in a CANCELED event (read-only) 409. Deleting an already
    deleted message changes nothing.
    """
    event = await _event_for(call)
    check_chat_writable(event.status)
    store = call.state.stores.messages
    message = await store.soft_delete(
        event.id,
        path_uuid(call, "message_id"),
        call.user_id,
        may_moderate=event.creator_id == call.user_id,
    )
    # Committed: live subscribers see `message_updated`, as after a delete over the socket.
    call.state.notifications.message_changed(message)


@api.operation(
    "POST",
    PATH + "/read",
    summary="Mark messages read",
    tag=TAG,
    body=MarkRead,
    response=UnreadOut,
    errors=(401, 404, 422),
)
async def mark_read(call: Call) -> UnreadOut:
    """Everything up to and including ``message_id`` is read; returns the new unread count.

    The read position only moves forward: marking an older message than one already marked
    changes nothing. A message that is not in this event is a 404.
    """
    body: MarkRead = call.body
    event = await _event_for(call)
    unread = await call.state.stores.unread.mark_read(call.user_id, event.id, body.message_id)
    # The user's open sockets get the exact new count, as after a `read` frame.
    call.state.notifications.read_moved(call.user_id, event.id, unread)
    return UnreadOut(event_id=event.id, unread=unread)
