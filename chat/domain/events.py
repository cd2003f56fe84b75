"""The event status machine and the rules about what may change in which state.

No I/O here: the store locks the event row, reads its state, asks these functions whether a
change is allowed, and only then writes. Keeping the rules pure lets them be tested
exhaustively without a database, and keeps the 409 messages (current state, allowed moves) in
one place.

The machine::

    PROPOSED --(every participant confirmed)--> CONFIRMED --(by hand, or end_time passed)--> DONE
    PROPOSED --> CANCELED
    CONFIRMED --> CANCELED

DONE and CANCELED are terminal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum

from chat.errors import Conflict, InvalidTransition


class EventStatus(StrEnum):
    PROPOSED = "PROPOSED"
    CONFIRMED = "CONFIRMED"
    DONE = "DONE"
    CANCELED = "CANCELED"


# Listed in a fixed order so the "allowed" list in a 409 is stable.
TRANSITIONS: Mapping[EventStatus, tuple[EventStatus, ...]] = {
    EventStatus.PROPOSED: (EventStatus.CONFIRMED, EventStatus.CANCELED),
    EventStatus.CONFIRMED: (EventStatus.DONE, EventStatus.CANCELED),
    EventStatus.DONE: (),
    EventStatus.CANCELED: (),
}

TERMINAL: frozenset[EventStatus] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)


def allowed_transitions(current: EventStatus) -> list[EventStatus]:
    """The statuses an event in ``current`` may move to (empty for terminal states)."""
    return list(TRANSITIONS[current])


def is_terminal(status: EventStatus) -> bool:
    return status in TERMINAL


def check_transition(
    current: EventStatus, target: EventStatus, *, unconfirmed: Sequence[int] = ()
) -> None:
    """Raise unless ``current -> target`` is allowed now.

    ``unconfirmed`` lists the participants (user ids) who have not confirmed yet; it only matters
    for CONFIRMED, which needs everyone's agreement, and the 409 names them. Moving to the status
    the event already has is not a transition and is refused like any other illegal move, so a
    client that retries a CANCEL learns that the event is already CANCELED rather than
    silently succeeding twice.
    """
    allowed = TRANSITIONS[current]
    if target not in allowed:
        raise InvalidTransition("event", current.value, target.value, [s.value for s in allowed])
    if target is EventStatus.CONFIRMED and unconfirmed:
        count = len(unconfirmed)
        who = "participant has" if count == 1 else "participants have"
        raise Conflict(
            f"cannot confirm the event: {count} {who} not confirmed yet "
            f"(user ids: {', '.join(map(str, unconfirmed))})",
            current_status=current.value,
            requested_status=target.value,
            unconfirmed_count=count,
            unconfirmed_user_ids=list(unconfirmed),
        )


def check_editable(status: EventStatus) -> None:
    """Title, description, times and location may change only while the event is live."""
    if is_terminal(status):
        raise Conflict(
            f"the event is {status.value}; a {status.value} event can no longer be edited",
            current_status=status.value,
        )


def check_participants_changeable(status: EventStatus) -> None:
    """Participants may be added or removed only while the event is PROPOSED.

    A CONFIRMED event means "everyone taking part has agreed"; adding someone who has not
    agreed would silently break that, and removing someone changes what the others agreed to.
    Cancel and re-propose instead.
    """
    if status is not EventStatus.PROPOSED:
        raise Conflict(
            f"the event is {status.value}; participants can only change while it is PROPOSED",
            current_status=status.value,
        )


def check_can_leave(user_id: int, creator_id: int) -> None:
    """Any participant but the creator may leave, whatever the event's status.

    Being added to an event is not consent, so leaving is never blocked by the status machine:
    a participant of a CONFIRMED event who leaves takes back their own agreement only (everyone
    left still agreed, so the event stays CONFIRMED, and the creator sees who left in the audit
    log), and a DONE or CANCELED event's chat stays readable to the participants only. The
    creator owns the event and cannot walk away from it: they cancel it instead.
    """
    if user_id == creator_id:
        raise Conflict("the creator cannot leave their own event; cancel it instead")


def check_confirmable(status: EventStatus) -> None:
    """A participant may confirm while the event is PROPOSED or CONFIRMED (idempotent there)."""
    if is_terminal(status):
        raise Conflict(
            f"the event is {status.value}; participation can no longer be confirmed",
            current_status=status.value,
        )
