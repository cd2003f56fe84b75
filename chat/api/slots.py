"""REST operations: open slots offered by business users, their search, and booking.

Slots are public listings: any signed-in user may search and read them. Only their business
owner may change or withdraw them, and only while nobody has booked them. Who booked a slot,
and which event the booking created, is shown only to the owner and the booker.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from chat.api.endpoint import CURSOR_RULE, Api, Call, Rule
from chat.api.fields import (
    MAX_ID,
    Cursor,
    DecimalAmount,
    LongText,
    Name,
    NotNull,
    QueryInt,
    ShortText,
    Timestamp,
    Title,
)
from chat.api.record_out import RecordOut
from chat.domain.currencies import ISO_4217_ACTIVE, is_active_currency
from chat.domain.numbers import integral
from chat.domain.slots import MAX_DURATION_MINUTES, MIN_DURATION_MINUTES, check_slot_start
from chat.errors import (
    Conflict,
    FieldError,
    Forbidden,
    NotFound,
    ValidationFailed,
)
from chat.store.pg import slots as store
from chat.store.pg import users as user_store
from chat.store.pg.events import Actor

api = Api(prefix="")

SLOT_START_RULE = Rule(
    ("start_time",), "start_time is in the future, and at most three years ahead."
)
DEFAULT_PAGE = 50
MAX_PAGE = 100


def _currency(code: str) -> str:
    if not is_active_currency(code):
        raise ValueError("must be an active ISO 4217 currency code such as KRW, USD or EUR")
    return code


Currency = Annotated[
    str,
    AfterValidator(_currency),
    WithJsonSchema(
        {
            "type": "string",
            "enum": sorted(ISO_4217_ACTIVE),
            "description": "An active ISO 4217 currency code.",
        }
    ),
]
Price = Annotated[
    Decimal,
    DecimalAmount(
        positive=False,
        below=10**8,
        places=2,
        description="At least 0, at most two decimals, below 10^8; a decimal string or a number.",
    ),
]
Duration = Annotated[
    int,
    Field(ge=MIN_DURATION_MINUTES, le=MAX_DURATION_MINUTES, strict=True),
    BeforeValidator(integral),
]
Region = Annotated[ShortText, Field(min_length=1, max_length=50)]
ServiceType = Annotated[Name, Field(max_length=100)]


class CreateSlot(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service_type: ServiceType
    title: Title
    description: LongText | None = None
    start_time: Timestamp
    duration_minutes: Duration = 60
    price: Price | None = None
    currency: Currency = "KRW"
    region: Region | None = None


class UpdateSlot(BaseModel):
    """Only the fields present change; ``description``, ``price`` and ``region`` may be null."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    service_type: Annotated[ServiceType | None, NotNull()] = None
    title: Annotated[Title | None, NotNull()] = None
    description: LongText | None = None
    start_time: Annotated[Timestamp | None, NotNull()] = None
    duration_minutes: Annotated[Duration | None, NotNull()] = None
    price: Price | None = None
    currency: Annotated[Currency | None, NotNull()] = None
    region: Region | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> UpdateSlot:
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        return self


class SlotOut(RecordOut):
    id: int
    business_user_id: int
    service_type: str
    title: str
    description: str | None
    start_time: datetime
    end_time: datetime
    duration_minutes: int
    price: Decimal | None
    currency: str
    region: str | None
    is_available: bool
    booked_by: int | None = Field(description="Shown to the slot's owner and its booker only.")
    booked_event_id: int | None = Field(
        description="Shown to the slot's owner and its booker only."
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, slot: store.Slot, viewer_id: int) -> SlotOut:
        """The slot as ``viewer_id`` sees it: who booked it only for its owner and booker."""
        out = cls.model_validate(slot)
        if viewer_id in (slot.business_user_id, slot.booked_by):
            return out
        return out.model_copy(update={"booked_by": None, "booked_event_id": None})


class SlotPage(BaseModel):
    items: list[SlotOut]
    next_cursor: str | None


class SearchSlots(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False)

    region: Region | None = None
    from_: Timestamp | None = Field(
        None, alias="from", description="Earliest start (never earlier than now)."
    )
    to: Timestamp | None = Field(None, description="Slots starting before this time.")
    limit: QueryInt = Field(DEFAULT_PAGE, ge=1, le=MAX_PAGE)
    cursor: Cursor | None = None


class Booking(BaseModel):
    event_id: int
    slot: SlotOut


def encode_cursor(slot: store.Slot) -> str:
    raw = orjson.dumps([slot.start_time.isoformat(), slot.id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The (start_time, id) a cursor continues after; a 422 for anything we did not issue."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value: Any = orjson.loads(raw)
        start_text, slot_id = value
        start = datetime.fromisoformat(start_text)
        if not isinstance(slot_id, int) or not 0 < slot_id <= MAX_ID or start.tzinfo is None:
            raise ValueError("bad cursor")
        return start.astimezone(UTC), slot_id
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError, OverflowError):
        raise ValidationFailed(
            "the cursor is not one this API issued",
            errors=[FieldError("query/cursor", "pass next_cursor from the previous page")],
        ) from None


def _refusal(problem: store.SlotProblem, slot_id: int, action: str) -> Exception:
    if problem is store.SlotProblem.MISSING:
        return NotFound(f"slot {slot_id} does not exist or was withdrawn")
    if problem is store.SlotProblem.NOT_OWNER:
        return Forbidden(f"only the business that offers slot {slot_id} may {action} it")
    if problem is store.SlotProblem.OWN_SLOT:
        return Conflict(f"slot {slot_id} is your own; a business cannot book its own slot")
    if problem is store.SlotProblem.STARTED:
        return Conflict(f"slot {slot_id} has already started and can no longer be booked")
    return Conflict(f"slot {slot_id} is already booked; a booked slot cannot be {action}ed")


async def _require_business(call: Call) -> None:
    async with call.state.pg.acquire() as conn:
        user = await user_store.get_user(conn, call.user_id)
    if user is None or user.role != "BUSINESS":
        raise Forbidden("only business accounts (role BUSINESS) can offer slots")


@api.operation(
    "POST",
    "/slots",
    summary="Offer an open slot",
    tag="slots",
    body=CreateSlot,
    response=SlotOut,
    status=201,
    errors=(401, 403),
    rules=(SLOT_START_RULE,),
)
async def create_slot(call: Call) -> SlotOut:
    """Business accounts only (403 otherwise). The slot must start in the future."""
    body: CreateSlot = call.body
    await _require_business(call)
    check_slot_start(body.start_time, datetime.now(UTC))
    async with call.state.pg.acquire() as conn:
        slot = await store.insert_slot(
            conn,
            business_user_id=call.user_id,
            service_type=body.service_type,
            title=body.title,
            description=body.description,
            start_time=body.start_time,
            duration_minutes=body.duration_minutes,
            price=body.price,
            currency=body.currency,
            region=body.region,
        )
    return SlotOut.of(slot, call.user_id)


@api.operation(
    "GET",
    "/slots",
    summary="Search available slots",
    tag="slots",
    query=SearchSlots,
    response=SlotPage,
    rules=(CURSOR_RULE,),
)
async def search_slots(call: Call) -> SlotPage:
    """Available slots (optionally in one region) that have not started,
    soonest first, then by id; keyset-paginated with ``next_cursor``."""
    query: SearchSlots = call.query
    after = decode_cursor(query.cursor) if query.cursor else None
    async with call.state.pg.acquire() as conn:
        slots = await store.search_available(
            conn,
            region=query.region,
            start_from=query.from_,
            start_before=query.to,
            after=after,
            limit=query.limit + 1,
        )
    page = slots[: query.limit]
    more = len(slots) > query.limit
    return SlotPage(
        items=[SlotOut.of(s, call.user_id) for s in page],
        next_cursor=encode_cursor(page[-1]) if more else None,
    )


@api.operation(
    "GET",
    "/slots/{slot_id:id}",
    summary="Get a slot",
    tag="slots",
    response=SlotOut,
    errors=(404,),
)
async def get_slot(call: Call) -> SlotOut:
    """Any signed-in user may read a slot that has not been withdrawn."""
    slot_id = call.path_id("slot_id")
    async with call.state.pg.acquire() as conn:
        slot = await store.get_slot(conn, slot_id)
    if slot is None:
        raise NotFound(f"slot {slot_id} does not exist or was withdrawn")
    return SlotOut.of(slot, call.user_id)


@api.operation(
    "PATCH",
    "/slots/{slot_id:id}",
    summary="Change an available slot",
    tag="slots",
    body=UpdateSlot,
    response=SlotOut,
    errors=(403, 404, 409),
    rules=(SLOT_START_RULE,),
)
async def update_slot(call: Call) -> SlotOut:
    """The owner only (403 for others), and only while the slot is not booked (409)."""
    slot_id = call.path_id("slot_id")
    body: UpdateSlot = call.body
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    if "start_time" in changes:
        check_slot_start(changes["start_time"], datetime.now(UTC))
    async with call.state.pg.acquire() as conn:
        slot = await store.update_available_slot(conn, slot_id, call.user_id, changes)
        if slot is None:
            raise _refusal(
                await store.diagnose(conn, slot_id, call.user_id, booking=False), slot_id, "change"
            )
    return SlotOut.of(slot, call.user_id)


@api.operation(
    "DELETE",
    "/slots/{slot_id:id}",
    summary="Withdraw an available slot",
    tag="slots",
    errors=(403, 404, 409),
)
async def withdraw_slot(call: Call) -> None:
    """Soft delete by the owner (403 for others) while not booked (409 once booked)."""
    slot_id = call.path_id("slot_id")
    async with call.state.pg.acquire() as conn:
        if not await store.withdraw_slot(conn, slot_id, call.user_id):
            raise _refusal(
                await store.diagnose(conn, slot_id, call.user_id, booking=False),
                slot_id,
                "withdraw",
            )


@api.operation(
    "POST",
    "/slots/{slot_id:id}/book",
    summary="Book a slot",
    tag="slots",
    response=Booking,
    status=201,
    errors=(401, 404, 409),
)
async def book_slot(call: Call) -> Booking:
    """Atomically takes the slot and creates a PROPOSED event whose creator is the business
    (already confirmed) and whose other participant is the booker. Of concurrent bookings of one
    slot exactly one succeeds; the others get 409, as does booking your own slot or one that
    has started."""
    slot_id = call.path_id("slot_id")
    actor = Actor(call.user_id, call.client_ip, call.user_agent)
    async with call.state.pg.acquire() as conn:
        result = await store.book_slot(conn, slot_id, actor)
    if isinstance(result, store.SlotProblem):
        raise _refusal(result, slot_id, "book")
    return Booking(event_id=result.event.id, slot=SlotOut.of(result.slot, call.user_id))
