"""REST operations: events, their participants and their status machine.

Visibility: only participants see an event. For anyone else every operation on it answers 404,
exactly as for an event that does not exist, so ids reveal nothing. Participants who are not
the creator get 403 on creator-only operations: they can see the event, so the 403 reveals
nothing new and tells them why.

All changes go through one function per change kind in :mod:`chat.store.pg.events`, which locks
the event row, checks :mod:`chat.domain.events` and writes in one transaction; the handlers here
only translate HTTP to those calls.
"""

from __future__ import annotations

from datetime import UTC, datetime

from chat.api.endpoint import CURSOR_RULE, Api, Call, Rule
from chat.api.events_models import (
    AddParticipant,
    ChangeStatus,
    CreateEvent,
    EventDetail,
    EventOut,
    EventPage,
    ListEventsQuery,
    UpdateEvent,
    decode_cursor,
    encode_cursor,
)
from chat.domain.events import EventStatus
from chat.errors import FieldError, NotFound, ValidationFailed
from chat.store.pg import events as store
from chat.store.pg import users as user_store
from chat.store.pg.events import Actor, Event
from chat.store.pg.pool import Connection

api = Api(prefix="")

TAG = "events"
PATH = "/events/{event_id:id}"


def _actor(call: Call) -> Actor:
    return Actor(call.user_id, call.client_ip, call.user_agent)


async def _detail(conn: Connection, event: Event) -> EventDetail:
    """The event with its participants. After a change, call it inside the change's
    transaction: the event row is still locked, so the list is the one the change produced."""
    return EventDetail.build(event, await store.list_participants(conn, event.id))


@api.operation(
    "POST",
    "/events",
    summary="Propose an event",
    tag=TAG,
    body=CreateEvent,
    response=EventDetail,
    status=201,
    errors=(401, 422),
    rules=(
        Rule(("start_time", "end_time"), "end_time is after start_time."),
        Rule(
            ("participant_ids",),
            "Every id is a live, active user; the answer does not say which one is not.",
        ),
    ),
)
async def create_event(call: Call) -> EventDetail:
    """Create a PROPOSED event with the caller as creator and (already confirmed) participant.

    ``participant_ids`` must all be users who can be added (422 otherwise, without saying
    which: the answer never tells which user ids exist); they start unconfirmed. Start times
    in the past are accepted; only end_time > start_time is required.
    """
    body: CreateEvent = call.body
    async with call.state.pg.acquire() as conn, conn.transaction():
        wanted = sorted(set(body.participant_ids))
        if await user_store.count_addable(conn, wanted) != len(wanted):
            raise ValidationFailed(
                "participant_ids names users who cannot be added to events",
                errors=[
                    FieldError("body/participant_ids", "contains ids of users who cannot be added")
                ],
            )
        event = await store.insert_event(
            conn,
            creator_id=call.user_id,
            title=body.title,
            description=body.description,
            start_time=body.start_time,
            end_time=body.end_time,
            location=body.location,
            participant_ids=wanted,
            actor=_actor(call),
        )
        return await _detail(conn, event)


@api.operation(
    "GET", PATH, summary="Get an event", tag=TAG, response=EventDetail, errors=(401, 404)
)
async def get_event(call: Call) -> EventDetail:
    """The event with its participants and who has confirmed; 404 unless the caller takes part."""
    event_id = call.path_id("event_id")
    async with call.state.pg.acquire() as conn:
        event = await store.get_event_for(conn, event_id, call.user_id)
        if event is None:
            raise NotFound(f"no event {event_id}")
        return await _detail(conn, event)


@api.operation(
    "GET",
    "/events",
    summary="My upcoming events",
    tag=TAG,
    query=ListEventsQuery,
    response=EventPage,
    errors=(401, 422),
    rules=(CURSOR_RULE,),
)
async def list_my_events(call: Call) -> EventPage:
    """Events I take part in that are PROPOSED or CONFIRMED and start now or later, soonest
    first, keyset-paginated: pass ``next_cursor`` back as ``cursor``."""
    query: ListEventsQuery = call.query
    after = decode_cursor(query.cursor) if query.cursor else None
    async with call.state.pg.acquire() as conn:
        # One extra row tells whether another page exists without a second query.
        rows = await store.list_upcoming_for(
            conn, call.user_id, now=datetime.now(UTC), after=after, limit=query.limit + 1
        )
    page = rows[: query.limit]
    next_cursor = encode_cursor(page[-1]) if len(rows) > query.limit else None
    return EventPage(items=[EventOut.model_validate(e) for e in page], next_cursor=next_cursor)


@api.operation(
    "PATCH",
    PATH,
    summary="Edit an event",
    tag=TAG,
    body=UpdateEvent,
    response=EventDetail,
    errors=(401, 403, 404, 409, 422),
    rules=(
        Rule(
            ("start_time", "end_time"),
            "After the change end_time is after start_time; a time left out keeps its value.",
        ),
    ),
)
async def update_event(call: Call) -> EventDetail:
    """Change title, description, times or location. Creator only; not once DONE or CANCELED
    (409 naming the status). The resulting times must have end after start (422).

    Editing a CONFIRMED event keeps it CONFIRMED and keeps everyone's confirmations: the
    event history records what changed after they confirmed.
    """
    body: UpdateEvent = call.body
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    async with call.state.pg.acquire() as conn, conn.transaction():
        event = await store.update_event(conn, _actor(call), call.path_id("event_id"), changes)
        return await _detail(conn, event)


@api.operation(
    "POST",
    PATH + "/participants",
    summary="Add a participant",
    tag=TAG,
    body=AddParticipant,
    response=EventDetail,
    status=201,
    errors=(401, 403, 404, 409, 422),
    rules=(Rule(("user_id",), "A live, active user; the answer does not say which is missing."),),
)
async def add_participant(call: Call) -> EventDetail:
    """Add an existing user (creator only). Allowed only while the event is PROPOSED: a
    CONFIRMED event means everyone taking part has agreed, and a newcomer has not (409).
    Already a participant is a 409; an unknown user is a 422 naming ``user_id``."""
    body: AddParticipant = call.body
    async with call.state.pg.acquire() as conn, conn.transaction():
        event = await store.add_participant(
            conn, _actor(call), call.path_id("event_id"), body.user_id
        )
        detail = await _detail(conn, event)
    call.state.notifications.participants_changed(event.id, body.user_id, present=True)
    return detail


@api.operation(
    "DELETE",
    PATH + "/participants/{user_id:id}",
    summary="Remove a participant",
    tag=TAG,
    status=204,
    errors=(401, 403, 404, 409),
)
async def remove_participant(call: Call) -> None:
    """Remove a participant (creator only, while PROPOSED). The creator cannot be removed
    (409: cancel the event instead); a user who does not take part is a 404. Participants
    leave by themselves with ``POST /v1/events/{event_id}/leave``."""
    async with call.state.pg.acquire() as conn:
        await store.remove_participant(
            conn, _actor(call), call.path_id("event_id"), call.path_id("user_id")
        )
    # Committed: live delivery (the gateway) ends the removed user's subscriptions at once.
    call.state.notifications.participants_changed(
        call.path_id("event_id"), call.path_id("user_id"), present=False
    )


@api.operation(
    "POST",
    PATH + "/leave",
    summary="Leave an event",
    tag=TAG,
    status=204,
    errors=(401, 404, 409),
)
async def leave_event(call: Call) -> None:
    """Stop taking part in an event I was added to, whatever its status: being added is not
    consent. I no longer see the event, its chat or its history, and my live subscriptions to it
    end at once. The creator cannot leave (409: cancel the event instead). A CONFIRMED event
    stays CONFIRMED: everyone still in it agreed; the audit log records who left."""
    event_id = call.path_id("event_id")
    async with call.state.pg.acquire() as conn:
        await store.leave_event(conn, _actor(call), event_id)
    call.state.notifications.participants_changed(event_id, call.user_id, present=False)


@api.operation(
    "POST",
    PATH + "/confirm",
    summary="Confirm my participation",
    tag=TAG,
    response=EventDetail,
    errors=(401, 404, 409),
)
async def confirm_participation(call: Call) -> EventDetail:
    """Confirm that I take part. Idempotent: confirming again changes nothing. Not possible
    once the event is DONE or CANCELED (409). Confirming does not confirm the event itself —
    the creator does that once everyone has confirmed."""
    async with call.state.pg.acquire() as conn, conn.transaction():
        event = await store.confirm_participation(conn, _actor(call), call.path_id("event_id"))
        return await _detail(conn, event)


@api.operation(
    "POST",
    PATH + "/status",
    summary="Change the event's status",
    tag=TAG,
    body=ChangeStatus,
    response=EventDetail,
    errors=(401, 403, 404, 409, 422),
)
async def change_status(call: Call) -> EventDetail:
    """Move the event along its status machine (creator only).

    PROPOSED -> CONFIRMED (only when every participant has confirmed; otherwise 409 with
    ``unconfirmed_count``), PROPOSED|CONFIRMED -> CANCELED, CONFIRMED -> DONE (by hand at any
    time; the service also does it once end_time has passed). Anything else is a 409 problem
    with ``current_status`` and ``allowed``. Concurrent changes serialise on the event row, so
    of two conflicting requests exactly one wins.
    """
    body: ChangeStatus = call.body
    async with call.state.pg.acquire() as conn, conn.transaction():
        event = await store.change_status(
            conn, _actor(call), call.path_id("event_id"), EventStatus(body.status)
        )
        detail = await _detail(conn, event)
    # Committed: every gateway node applies the status to the event's chat (CANCELED: read-only).
    call.state.notifications.status_changed(event.id, event.status.value)
    return detail
