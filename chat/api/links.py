"""OpenAPI links: which response's ids feed which operation.

Generated clients and stateful contract fuzzers follow them: create an event, then read, edit,
confirm or pay within it; offer a slot, then read, change, book or withdraw it; create a
payment, then read it or move its status. Keyed by the source operation's id; each link names
its target operation and where its parameters (``path.x``) or body fields come from, as OpenAPI
runtime expressions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Link:
    target: str
    parameters: dict[str, str] = field(default_factory=dict)
    request_body: dict[str, Any] | None = None

    def as_openapi(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"operationId": self.target}
        if self.parameters:
            spec["parameters"] = self.parameters
        if self.request_body is not None:
            spec["requestBody"] = self.request_body
        return spec


_EVENT_ID = {"path.event_id": "$response.body#/id"}
_SECOND_PARTICIPANT = "$response.body#/participants/1/user_id"

# Operations that answer with an event (EventDetail) lead to everything done within one.
_WITHIN_AN_EVENT = (
    Link("get_event", _EVENT_ID),
    Link("update_event", _EVENT_ID),
    Link("add_participant", _EVENT_ID),
    Link(
        "remove_participant",
        {**_EVENT_ID, "path.user_id": _SECOND_PARTICIPANT},
    ),
    Link("confirm_participation", _EVENT_ID),
    Link("leave_event", _EVENT_ID),
    Link("change_status", _EVENT_ID),
    Link("get_event_history", _EVENT_ID),
    Link("list_messages", _EVENT_ID),
    Link("list_event_payments", _EVENT_ID),
    Link(
        "create_payment",
        request_body={"event_id": "$response.body#/id", "receiver_id": _SECOND_PARTICIPANT},
    ),
)

_SLOT_ID = {"path.slot_id": "$response.body#/id"}
_WITHIN_A_SLOT = (
    Link("get_slot", _SLOT_ID),
    Link("update_slot", _SLOT_ID),
    Link("withdraw_slot", _SLOT_ID),
    Link("book_slot", _SLOT_ID),
)

_PAYMENT_ID = {"path.payment_id": "$response.body#/id"}
_WITHIN_A_PAYMENT = (
    Link("get_payment", _PAYMENT_ID),
    Link("change_payment_status", _PAYMENT_ID),
)

LINKS: dict[str, tuple[Link, ...]] = {
    # A new user can be invited into a new event, which then has a second participant.
    "create_user": (
        Link("create_event", request_body={"participant_ids": ["$response.body#/user/id"]}),
    ),
    "create_event": _WITHIN_AN_EVENT,
    "get_event": _WITHIN_AN_EVENT,
    "update_event": _WITHIN_AN_EVENT,
    "add_participant": _WITHIN_AN_EVENT,
    "confirm_participation": _WITHIN_AN_EVENT,
    "change_status": _WITHIN_AN_EVENT,
    "create_slot": _WITHIN_A_SLOT,
    "update_slot": _WITHIN_A_SLOT,
    "book_slot": (
        Link("get_event", {"path.event_id": "$response.body#/event_id"}),
        Link("get_slot", {"path.slot_id": "$response.body#/slot/id"}),
    ),
    "create_payment": _WITHIN_A_PAYMENT,
    "get_payment": _WITHIN_A_PAYMENT,
}


def links_for(operation_id: str) -> dict[str, Any]:
    """The ``links`` object of an operation's success response (empty when it has none)."""
    return {link.target: link.as_openapi() for link in LINKS.get(operation_id, ())}
