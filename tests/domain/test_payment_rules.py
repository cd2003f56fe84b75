"""The payment status machine and who may move it, exhaustively, without a database."""

from __future__ import annotations

import itertools

import pytest

from chat.domain.currencies import is_active_currency
from chat.domain.payments import (
    PartyRole,
    PaymentStatus,
    allowed_transitions,
    check_status_change,
    is_terminal,
)
from chat.errors import Forbidden, InvalidTransition

P = PaymentStatus
LEGAL = {
    (P.PENDING, P.COMPLETED),
    (P.PENDING, P.FAILED),
    (P.COMPLETED, P.REFUNDED),
}


@pytest.mark.parametrize(("current", "target"), sorted(itertools.product(P, P)))
def test_only_the_three_reference_moves_are_legal(
    current: PaymentStatus, target: PaymentStatus
) -> None:
    if (current, target) in LEGAL:
        check_status_change(current, target, PartyRole.RECEIVER)
    else:
        with pytest.raises(InvalidTransition) as caught:
            check_status_change(current, target, PartyRole.RECEIVER)
        problem = caught.value.problem()
        assert problem["status"] == 409
        assert problem["current_status"] == current.value
        assert problem["allowed"] == [s.value for s in allowed_transitions(current)]


def test_failed_and_refunded_are_terminal() -> None:
    assert [s for s in P if is_terminal(s)] == [P.FAILED, P.REFUNDED]
    with pytest.raises(InvalidTransition, match="none \\(terminal state\\)"):
        check_status_change(P.REFUNDED, P.COMPLETED, PartyRole.RECEIVER)


def test_only_the_receiver_completes_or_refunds() -> None:
    for current, target in [(P.PENDING, P.COMPLETED), (P.COMPLETED, P.REFUNDED)]:
        check_status_change(current, target, PartyRole.RECEIVER)
        with pytest.raises(Forbidden, match="only the receiver"):
            check_status_change(current, target, PartyRole.PAYER)


def test_either_party_may_mark_a_pending_payment_failed() -> None:
    check_status_change(P.PENDING, P.FAILED, PartyRole.PAYER)
    check_status_change(P.PENDING, P.FAILED, PartyRole.RECEIVER)


def test_an_illegal_move_is_a_conflict_even_for_the_wrong_party() -> None:
    with pytest.raises(InvalidTransition):
        check_status_change(P.PENDING, P.REFUNDED, PartyRole.PAYER)


def test_currency_list_holds_real_codes_only() -> None:
    assert all(is_active_currency(c) for c in ["KRW", "USD", "EUR", "JPY", "GBP"])
    assert not any(is_active_currency(c) for c in ["XYZ", "usd", "XXX", "XTS", "KR", ""])
