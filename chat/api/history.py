"""REST: an event's change history (the audit log), and the relay that runs after each commit.

The store functions stage history records in PostgreSQL inside each change's transaction
(:mod:`chat.store.cql.event_history`). :func:`relay_after_commit` wraps every operation so that,
once the handler has returned — its transaction committed — the records that request staged
are moved to ScyllaDB before the response goes out: a client that changes an event and then
reads its history sees the change. It is best effort: if the relay fails the rows stay in the
outbox and the history read (or the background relay) moves them later.
"""

from __future__ import annotations

import functools
import logging
import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from chat.api.endpoint import CURSOR_RULE, Api, Call, Handler
from chat.api.fields import Cursor, QueryInt
from chat.errors import NotFound
from chat.store.cql.event_history import HistoryEntry, tracking_staged
from chat.store.pg import events as event_store

log = logging.getLogger(__name__)

api = Api(prefix="")


def relay_after_commit(module_api: Api) -> Api:
    """The same operations, each followed by the relay of the history it staged."""
    wrapped = Api(prefix=module_api.prefix)
    wrapped.operations.extend(
        replace(op, handler=_relaying(op.handler)) for op in module_api.operations
    )
    return wrapped


def _relaying(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def run(call: Call) -> BaseModel | Response | None:
        with tracking_staged() as staged:
            try:
                return await handler(call)
            finally:
                # Handlers commit before they return. After a rollback the ids match no row.
                if staged:
                    try:
                        await call.state.stores.event_history.relay(staged)
                    except Exception:  # best effort: the rows wait in the outbox
                        log.warning(
                            "relaying %d history row(s) after commit failed; they stay queued",
                            len(staged),
                            exc_info=True,
                        )

    return run


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: QueryInt = Field(50, ge=1, le=200)
    cursor: Cursor | None = None


class HistoryActor(BaseModel):
    id: int | None = Field(description="None for the service itself (e.g. automatic DONE).")
    name: str = Field(description="The actor's name when they made the change, or 'system'.")


class HistoryItem(BaseModel):
    change_id: uuid.UUID
    event_id: int
    changed_at: datetime
    change_type: str
    field_name: str | None
    old_value: Any = Field(description="The value before the change (JSON), if any.")
    new_value: Any = Field(description="The value after the change (JSON), if any.")
    actor: HistoryActor
    ip_address: str | None = Field(
        description="Where the change came from: shown only on the caller's own changes."
    )
    user_agent: str | None = Field(
        description="The client that made the change: shown only on the caller's own changes."
    )
    metadata: dict[str, str]

    @classmethod
    def of(cls, entry: HistoryEntry, viewer_id: int) -> HistoryItem:
        """The entry as ``viewer_id`` may see it: other people's addresses and user agents
        are personal data and stay with the operators (the ``event_history`` table)."""
        own = entry.actor_id == viewer_id
        return cls(
            change_id=entry.change_id,
            event_id=entry.event_id,
            changed_at=entry.changed_at,
            change_type=entry.change_type,
            field_name=entry.field_name,
            old_value=orjson.loads(entry.old_value) if entry.old_value is not None else None,
            new_value=orjson.loads(entry.new_value) if entry.new_value is not None else None,
            actor=HistoryActor(id=entry.actor_id, name=entry.actor_name),
            ip_address=entry.ip_address if own else None,
            user_agent=entry.user_agent if own else None,
            metadata=entry.metadata,
        )


class HistoryPageOut(BaseModel):
    items: list[HistoryItem]
    next_cursor: str | None


@api.operation(
    "GET",
    "/events/{event_id:id}/history",
    summary="An event's change history",
    tag="events",
    query=HistoryQuery,
    response=HistoryPageOut,
    errors=(401, 404, 422),
    rules=(CURSOR_RULE,),
)
async def get_event_history(call: Call) -> HistoryPageOut:
    """Every change made to the event, newest first, with who made it.

    The IP address and user agent a change came from are shown only on the caller's own
    changes; on everyone else's they are null, for the event's creator too (an address locates
    a person). Operators keep the full record. Participants only (404 otherwise, as for every
    event operation). Records whose relay to ScyllaDB has not happened yet are relayed first, so
    the page is never missing a change that committed. Pass ``next_cursor`` back as ``cursor``
    for older changes.
    """
    query: HistoryQuery = call.query
    event_id = call.path_id("event_id")
    async with call.state.pg.acquire() as conn:
        if not await event_store.is_participant(conn, event_id, call.user_id):
            raise NotFound(f"no event {event_id}")
    history = call.state.stores.event_history
    try:
        await history.relay_event(event_id)
    except Exception:  # the read still answers with what ScyllaDB has
        log.warning("relaying event %d's queued history failed", event_id, exc_info=True)
    page = await history.page(event_id, query.limit, query.cursor)
    return HistoryPageOut(
        items=[HistoryItem.of(e, call.user_id) for e in page.entries],
        next_cursor=page.next_cursor,
    )
