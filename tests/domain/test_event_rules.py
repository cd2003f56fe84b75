"""The event status machine and edit rules, checked exhaustively without a database."""

from __future__ import annotations

import itertools

import pytest

from chat.domain.events import (
    TERMINAL,
    TRANSITIONS,
    EventStatus,
    allowed_transitions,
    check_confirmable,
    check_editable,
    check_participants_changeable,
    check_transition,
    is_terminal,
)
from chat.errors import Conflict, InvalidTransition

P, C, D, X = (
    EventStatus.PROPOSED,
    EventStatus.CONFIRMED,
    EventStatus.DONE,
    EventStatus.CANCELED,
)
LEGAL = {(P, C), (P, X), (C, D), (C, X)}


def test_every_status_has_an_entry_in_the_transition_table() -> None:
    assert set(TRANSITIONS) == set(EventStatus)


def test_done_and_canceled_are_the_only_terminal_states() -> None:
    assert {D, X} == TERMINAL
    assert all(is_terminal(s) == (s in {D, X}) for s in EventStatus)


def test_allowed_transitions_are_listed_in_a_stable_order() -> None:
    assert allowed_transitions(P) == [C, X]
    assert allowed_transitions(C) == [D, X]
    assert allowed_transitions(D) == []
    assert allowed_transitions(X) == []


@pytest.mark.parametrize(("current", "target"), list(itertools.product(EventStatus, repeat=2)))
def test_exactly_the_legal_transitions_pass(current: EventStatus, target: EventStatus) -> None:
    if (current, target) in LEGAL:
        check_transition(current, target, unconfirmed=())
    else:
        with pytest.raises(InvalidTransition) as info:
            check_transition(current, target, unconfirmed=())
        problem = info.value.problem()
        assert problem["status"] == 409
        assert problem["current_status"] == current.value
        assert problem["requested_status"] == target.value
        assert problem["allowed"] == [s.value for s in allowed_transitions(current)]


def test_terminal_state_message_says_nothing_is_allowed() -> None:
    with pytest.raises(InvalidTransition, match="none \\(terminal state\\)"):
        check_transition(D, X, unconfirmed=())


@pytest.mark.parametrize("unconfirmed", [[7], [3, 9], list(range(1, 51))])
def test_confirming_with_unconfirmed_participants_is_a_conflict_naming_them(
    unconfirmed: list[int],
) -> None:
    with pytest.raises(Conflict) as info:
        check_transition(P, C, unconfirmed=unconfirmed)
    assert not isinstance(info.value, InvalidTransition)
    assert info.value.extra["unconfirmed_count"] == len(unconfirmed)
    assert info.value.extra["unconfirmed_user_ids"] == unconfirmed
    assert f"{len(unconfirmed)} participant" in info.value.detail


def test_unconfirmed_participants_do_not_block_cancel_or_done() -> None:
    check_transition(P, X, unconfirmed=[3])
    check_transition(C, D, unconfirmed=[3])
    check_transition(C, X, unconfirmed=[3])


def test_an_illegal_move_is_reported_before_missing_confirmations() -> None:
    with pytest.raises(InvalidTransition):
        check_transition(X, C, unconfirmed=[2])


@pytest.mark.parametrize("status", list(EventStatus))
def test_edits_are_allowed_only_before_done_or_canceled(status: EventStatus) -> None:
    if status in {P, C}:
        check_editable(status)
    else:
        with pytest.raises(Conflict, match=status.value):
            check_editable(status)


@pytest.mark.parametrize("status", list(EventStatus))
def test_participants_change_only_while_proposed(status: EventStatus) -> None:
    if status is P:
        check_participants_changeable(status)
    else:
        with pytest.raises(Conflict) as info:
            check_participants_changeable(status)
        assert info.value.extra["current_status"] == status.value


@pytest.mark.parametrize("status", list(EventStatus))
def test_participation_can_be_confirmed_until_the_event_is_over(status: EventStatus) -> None:
    if status in {P, C}:
        check_confirmable(status)
    else:
        with pytest.raises(Conflict):
            check_confirmable(status)
