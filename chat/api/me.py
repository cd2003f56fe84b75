"""REST: the caller's own chat view across events — their recent messages and unread counts."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from chat.api.endpoint import CURSOR_RULE, Api, Call
from chat.api.fields import Cursor, QueryInt
from chat.store.cql.message_history import ActivityItem
from chat.store.cql.unread import UNREAD_CAP
from chat.store.pg import events as event_store

api = Api(prefix="")

TAG = "me"


class ActivityQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: QueryInt = Field(50, ge=1, le=200)
    cursor: Cursor | None = None


class ActivityOut(BaseModel):
    event_id: int
    message_id: uuid.UUID
    created_at: datetime
    text: str
    is_deleted: bool

    @classmethod
    def of(cls, item: ActivityItem) -> ActivityOut:
        return cls(
            event_id=item.event_id,
            message_id=item.message_id,
            created_at=item.created_at,
            text=item.text,
            is_deleted=item.is_deleted,
        )


class ActivityPageOut(BaseModel):
    items: list[ActivityOut]
    next_cursor: str | None


class EventUnread(BaseModel):
    event_id: int
    unread: int


class UnreadSummary(BaseModel):
    items: list[EventUnread] = Field(description="One entry per event I take part in.")
    total: int
    cap: int = Field(description="Each count stops here; show it as 'cap - 1 +'.")


@api.operation(
    "GET",
    "/me/activity",
    summary="My recent messages",
    tag=TAG,
    query=ActivityQuery,
    response=ActivityPageOut,
    errors=(401, 422),
    rules=(CURSOR_RULE,),
)
async def my_activity(call: Call) -> ActivityPageOut:
    """The messages I sent, across all events, newest first; ``next_cursor`` pages older."""
    query: ActivityQuery = call.query
    page = await call.state.stores.history.activity(call.user_id, query.limit, query.cursor)
    return ActivityPageOut(
        items=[ActivityOut.of(i) for i in page.items], next_cursor=page.next_cursor
    )


@api.operation(
    "GET",
    "/me/unread",
    summary="My unread counts",
    tag=TAG,
    response=UnreadSummary,
    errors=(401,),
)
async def my_unread(call: Call) -> UnreadSummary:
    """Unread messages in every event I take part in (the list comes from PostgreSQL, so an
    event I was removed from drops out at once); events without unread messages count 0."""
    async with call.state.pg.acquire() as conn:
        event_ids = await event_store.event_ids_for(conn, call.user_id)
    counts = await call.state.stores.unread.counts(call.user_id, event_ids)
    items = [EventUnread(event_id=e, unread=counts.get(e, 0)) for e in event_ids]
    return UnreadSummary(items=items, total=sum(i.unread for i in items), cap=UNREAD_CAP)
