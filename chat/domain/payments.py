"""The payment status machine and who may move a payment along it.

No I/O: the store locks the payment row, reads its status, asks :func:`check_status_change`
whether the caller may make the move, and only then writes.

The machine::

    PENDING --> COMPLETED --> REFUNDED
    PENDING --> FAILED

FAILED and REFUNDED are terminal; every other move (including "to the status it already has")
is refused with 409 naming the current status and the allowed ones.

Who may make which move. Money flows from payer to receiver, so the party that can observe a
fact is the one allowed to assert it:

- COMPLETED: the receiver only. The receiver is the one who sees the money arrive; letting the
  payer mark their own debt as paid would make "COMPLETED" meaningless.
- FAILED: the payer or the receiver. Either side may learn that a pending payment did not go
  through (declined card, abandoned transfer), and a FAILED payment moves no money.
- REFUNDED: the receiver only, since only the party holding the money can give it back.

Legality is checked before the actor, so a client asking for an impossible move learns that it
is impossible (409) rather than that it is not theirs to make (403).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from chat.errors import Forbidden, InvalidTransition


class PaymentStatus(StrEnum):
    PENDING = "PENDING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    REFUNDED = "REFUNDED"


class PaymentMethod(StrEnum):
    TOSS = "TOSS"
    STRIPE = "STRIPE"
    CARD = "CARD"
    BANK_TRANSFER = "BANK_TRANSFER"
    KAKAO_PAY = "KAKAO_PAY"
    NAVER_PAY = "NAVER_PAY"
    PAYPAL = "PAYPAL"
    CASH = "CASH"


class PartyRole(StrEnum):
    """The caller's side of a payment."""

    PAYER = "PAYER"
    RECEIVER = "RECEIVER"


# Fixed order, so the "allowed" list in a 409 is stable.
TRANSITIONS: Mapping[PaymentStatus, tuple[PaymentStatus, ...]] = {
    PaymentStatus.PENDING: (PaymentStatus.COMPLETED, PaymentStatus.FAILED),
    PaymentStatus.COMPLETED: (PaymentStatus.REFUNDED,),
    PaymentStatus.FAILED: (),
    PaymentStatus.REFUNDED: (),
}

WHO_MAY_MOVE_TO: Mapping[PaymentStatus, frozenset[PartyRole]] = {
    PaymentStatus.COMPLETED: frozenset({PartyRole.RECEIVER}),
    PaymentStatus.FAILED: frozenset({PartyRole.PAYER, PartyRole.RECEIVER}),
    PaymentStatus.REFUNDED: frozenset({PartyRole.RECEIVER}),
    PaymentStatus.PENDING: frozenset(),
}

# Bounds of DECIMAL(10,2): amounts are positive, at most two decimals, below 10**8.
MAX_AMOUNT_EXCLUSIVE = 10**8
AMOUNT_DECIMAL_PLACES = 2


def allowed_transitions(current: PaymentStatus) -> list[PaymentStatus]:
    """The statuses a payment in ``current`` may move to (empty for terminal states)."""
    return list(TRANSITIONS[current])


def is_terminal(status: PaymentStatus) -> bool:
    return not TRANSITIONS[status]


def check_status_change(current: PaymentStatus, target: PaymentStatus, actor: PartyRole) -> None:
    """Raise unless ``actor`` may move a payment from ``current`` to ``target`` now.

    Raises :class:`InvalidTransition` (409) for a move the machine does not have and
    :class:`Forbidden` (403) for a legal move the caller's side may not make.
    """
    allowed = TRANSITIONS[current]
    if target not in allowed:
        raise InvalidTransition("payment", current.value, target.value, [s.value for s in allowed])
    if actor not in WHO_MAY_MOVE_TO[target]:
        permitted = " or ".join(sorted(r.value.lower() for r in WHO_MAY_MOVE_TO[target]))
        raise Forbidden(
            f"only the {permitted} may mark a payment {target.value}; you are the "
            f"{actor.value.lower()}"
        )
