"""Request and response models of the event operations, and the opaque list cursor."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from chat.api.fields import (
    Cursor,
    Id,
    LongText,
    NotNull,
    QueryInt,
    ShortText,
    Timestamp,
    Title,
    bounded_utc,
)
from chat.api.record_out import RecordOut
from chat.domain.events import EventStatus, allowed_transitions
from chat.errors import FieldError, ValidationFailed
from chat.store.pg.events import Event, Participant


def _end_after_start(value: datetime | None, info: ValidationInfo) -> datetime | None:
    start = info.data.get("start_time")
    if value is not None and start is not None and value <= start:
        raise ValueError("end_time must be after start_time")
    return value


class CreateEvent(BaseModel):
    """A new event. Start times in the past are accepted (recording a meeting after the fact,
    or a booking made late); only end > start is required."""

    model_config = ConfigDict(extra="forbid")

    title: Title
    description: LongText | None = None
    start_time: Timestamp
    end_time: Timestamp
    location: ShortText | None = None
    participant_ids: Annotated[list[Id], Field(max_length=100)] = []

    _check_end = field_validator("end_time")(_end_after_start)


class UpdateEvent(BaseModel):
    """Only the fields sent change; ``null`` clears description or location (title and times
    may be left out but not cleared)."""

    model_config = ConfigDict(extra="forbid")

    title: Annotated[Title | None, NotNull()] = None
    description: LongText | None = None
    start_time: Annotated[Timestamp | None, NotNull()] = None
    end_time: Annotated[Timestamp | None, NotNull()] = None
    location: ShortText | None = None

    _check_end = field_validator("end_time")(_end_after_start)


class AddParticipant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: Id


class ChangeStatus(BaseModel):
    """The status to move to; PROPOSED is where events start, never a target."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["CONFIRMED", "CANCELED", "DONE"]


class ListEventsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: QueryInt = Field(20, ge=1, le=100)
    cursor: Cursor | None = None


class ParticipantOut(RecordOut):
    user_id: int
    name: str
    display_name: str | None
    confirmed: bool
    confirmed_at: datetime | None


class EventOut(RecordOut):
    id: int
    title: str
    description: str | None
    start_time: datetime
    end_time: datetime
    location: str | None
    creator_id: int
    status: EventStatus
    created_at: datetime
    updated_at: datetime


class EventDetail(EventOut):
    participants: list[ParticipantOut]
    allowed_transitions: list[EventStatus] = Field(
        description="Statuses the event may move to from its current one."
    )

    @classmethod
    def build(cls, e: Event, participants: list[Participant]) -> EventDetail:
        return cls(
            **EventOut.model_validate(e).model_dump(),
            participants=[ParticipantOut.model_validate(p) for p in participants],
            allowed_transitions=allowed_transitions(e.status),
        )


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str | None


def encode_cursor(event: Event) -> str:
    """The sort key of the last item, base64url: opaque to clients, exact for the keyset."""
    raw = orjson.dumps([event.start_time.isoformat(), event.id])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        start, event_id = orjson.loads(raw)
        when = bounded_utc(datetime.fromisoformat(start))
        if when.tzinfo is None or not isinstance(event_id, int) or not 0 < event_id < 2**63:
            raise ValueError
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise ValidationFailed(
            "the cursor is not one this API returned",
            errors=[FieldError("query/cursor", "not a valid cursor; pass next_cursor as is")],
        ) from None
    return when, event_id
