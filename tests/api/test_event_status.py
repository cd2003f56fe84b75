"""The event status machine over HTTP: legal and illegal moves, concurrency, automatic DONE."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.api.events_helpers import at, confirm, create_event, get_event, set_status
from tests.api_client import Api
from tests.polling import until


async def _solo_event(api: Api, **fields: Any) -> tuple[int, dict[str, Any]]:
    """An event whose only participant is its (already confirmed) creator."""
    creator = await api.create_user()
    return creator["id"], await create_event(api, creator["id"], **fields)


async def _walk(api: Api, user_id: int, event_id: int, statuses: list[str]) -> None:
    for status in statuses:
        response = await set_status(api, user_id, event_id, status)
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("path", "allowed_after"),
    [
        (["CONFIRMED"], ["DONE", "CANCELED"]),
        (["CANCELED"], []),
        (["CONFIRMED", "DONE"], []),
        (["CONFIRMED", "CANCELED"], []),
    ],
)
async def test_legal_transitions_succeed_and_report_what_comes_next(
    api: Api, path: list[str], allowed_after: list[str]
) -> None:
    creator_id, event = await _solo_event(api)
    await _walk(api, creator_id, event["id"], path)
    seen = await get_event(api, creator_id, event["id"])
    assert seen["status"] == path[-1]
    assert seen["allowed_transitions"] == allowed_after


@pytest.mark.parametrize(
    ("path", "target", "allowed"),
    [
        ([], "DONE", ["CONFIRMED", "CANCELED"]),
        (["CONFIRMED"], "CONFIRMED", ["DONE", "CANCELED"]),
        (["CANCELED"], "CANCELED", []),
        (["CANCELED"], "CONFIRMED", []),
        (["CANCELED"], "DONE", []),
        (["CONFIRMED", "DONE"], "CANCELED", []),
        (["CONFIRMED", "DONE"], "CONFIRMED", []),
        (["CONFIRMED", "DONE"], "DONE", []),
    ],
)
async def test_illegal_transition_is_409_naming_current_and_allowed(
    api: Api, path: list[str], target: str, allowed: list[str]
) -> None:
    creator_id, event = await _solo_event(api)
    await _walk(api, creator_id, event["id"], path)
    response = await set_status(api, creator_id, event["id"], target)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    current = path[-1] if path else "PROPOSED"
    assert problem["code"] == "invalid_transition"
    assert problem["current_status"] == current
    assert problem["requested_status"] == target
    assert problem["allowed"] == allowed
    assert current in problem["detail"]
    assert (await get_event(api, creator_id, event["id"]))["status"] == current


async def test_confirming_the_event_needs_every_participant_to_confirm(api: Api) -> None:
    creator, a, b = [await api.create_user() for _ in range(3)]
    event = await create_event(api, creator["id"], participants=[a["id"], b["id"]])
    response = await set_status(api, creator["id"], event["id"], "CONFIRMED")
    assert response.status_code == 409
    assert response.json()["unconfirmed_count"] == 2
    assert response.json()["unconfirmed_user_ids"] == sorted([a["id"], b["id"]])
    assert "2 participants have not confirmed" in response.json()["detail"]

    assert (await confirm(api, a["id"], event["id"])).status_code == 200
    response = await set_status(api, creator["id"], event["id"], "CONFIRMED")
    assert response.status_code == 409
    assert response.json()["unconfirmed_count"] == 1
    assert response.json()["unconfirmed_user_ids"] == [b["id"]]
    assert "1 participant has not confirmed" in response.json()["detail"]

    assert (await confirm(api, b["id"], event["id"])).status_code == 200
    response = await set_status(api, creator["id"], event["id"], "CONFIRMED")
    assert response.status_code == 200
    assert response.json()["status"] == "CONFIRMED"


async def test_only_the_creator_changes_the_status(api: Api) -> None:
    creator, friend = await api.create_user(), await api.create_user()
    event = await create_event(api, creator["id"], participants=[friend["id"]])
    response = await set_status(api, friend["id"], event["id"], "CANCELED")
    assert response.status_code == 403
    assert (await get_event(api, creator["id"], event["id"]))["status"] == "PROPOSED"


@pytest.mark.parametrize("status", ["PROPOSED", "done", "FINISHED", "", None, 1])
async def test_unknown_target_status_is_422(api: Api, status: Any) -> None:
    creator_id, event = await _solo_event(api)
    response = await set_status(api, creator_id, event["id"], status)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body/status"


async def test_status_change_without_a_body_is_rejected(api: Api) -> None:
    creator_id, event = await _solo_event(api)
    response = await api.http.post(f"/v1/events/{event['id']}/status", headers=api.auth(creator_id))
    assert response.status_code == 415


async def test_status_of_an_unknown_event_is_404(api: Api) -> None:
    creator_id, _ = await _solo_event(api)
    response = await set_status(api, creator_id, 2**62, "CANCELED")
    assert response.status_code == 404


# --- concurrency -------------------------------------------------------------------------------


async def test_concurrent_cancel_and_confirm_exactly_one_wins(api: Api) -> None:
    for _ in range(5):
        creator_id, event = await _solo_event(api)
        canceled, confirmed = await asyncio.gather(
            set_status(api, creator_id, event["id"], "CANCELED"),
            set_status(api, creator_id, event["id"], "CONFIRMED"),
        )
        codes = sorted([canceled.status_code, confirmed.status_code])
        final = (await get_event(api, creator_id, event["id"]))["status"]
        if codes == [200, 409]:
            winner = "CANCELED" if canceled.status_code == 200 else "CONFIRMED"
            assert final == winner
        else:
            # CONFIRMED first, then CANCELED is also legal (CONFIRMED -> CANCELED).
            assert codes == [200, 200]
            assert final == "CANCELED"


async def test_many_concurrent_cancels_succeed_exactly_once(api: Api) -> None:
    creator_id, event = await _solo_event(api)
    responses = await asyncio.gather(
        *(set_status(api, creator_id, event["id"], "CANCELED") for _ in range(6))
    )
    assert sorted(r.status_code for r in responses) == [200] + [409] * 5
    conflicts = [r.json() for r in responses if r.status_code == 409]
    assert all(p["current_status"] == "CANCELED" for p in conflicts)


async def test_concurrent_done_and_cancel_on_a_confirmed_event_exactly_one_wins(
    api: Api,
) -> None:
    creator_id, event = await _solo_event(api)
    await _walk(api, creator_id, event["id"], ["CONFIRMED"])
    done, canceled = await asyncio.gather(
        set_status(api, creator_id, event["id"], "DONE"),
        set_status(api, creator_id, event["id"], "CANCELED"),
    )
    assert sorted([done.status_code, canceled.status_code]) == [200, 409]
    final = (await get_event(api, creator_id, event["id"]))["status"]
    assert final == ("DONE" if done.status_code == 200 else "CANCELED")


async def test_confirmation_racing_event_confirmation_never_confirms_early(api: Api) -> None:
    """The event may only become CONFIRMED if the last confirmation committed first."""
    for _ in range(5):
        creator, friend = await api.create_user(), await api.create_user()
        event = await create_event(api, creator["id"], participants=[friend["id"]])
        confirmed_by_friend, event_confirmed = await asyncio.gather(
            confirm(api, friend["id"], event["id"]),
            set_status(api, creator["id"], event["id"], "CONFIRMED"),
        )
        assert confirmed_by_friend.status_code == 200
        seen = await get_event(api, creator["id"], event["id"])
        assert all(p["confirmed"] for p in seen["participants"])
        if event_confirmed.status_code == 200:
            assert seen["status"] == "CONFIRMED"
        else:
            assert event_confirmed.status_code == 409
            assert seen["status"] == "PROPOSED"


# --- automatic DONE ----------------------------------------------------------------------------


WAIT_SECONDS = 10.0


async def _wait_for_status(api: Api, user_id: int, event_id: int, status: str) -> dict[str, Any]:
    """The event's view once it has ``status`` (the test fails after ``WAIT_SECONDS``)."""

    async def view_with_status() -> dict[str, Any] | None:
        event = await get_event(api, user_id, event_id)
        return event if event["status"] == status else None

    view: dict[str, Any] = await until(
        view_with_status, within=WAIT_SECONDS, interval=0.05, what=f"the event to be {status}"
    )
    return view


async def test_confirmed_event_becomes_done_once_it_has_ended(api: Api) -> None:
    creator_id, event = await _solo_event(api, start=at(-1), end=at(0, seconds=1))
    await _walk(api, creator_id, event["id"], ["CONFIRMED"])
    seen = await _wait_for_status(api, creator_id, event["id"], "DONE")
    assert seen["status"] == "DONE"
    assert seen["allowed_transitions"] == []


async def test_confirmed_event_that_already_ended_becomes_done(api: Api) -> None:
    creator_id, event = await _solo_event(api, start=at(-3), end=at(-2))
    await _walk(api, creator_id, event["id"], ["CONFIRMED"])
    assert (await _wait_for_status(api, creator_id, event["id"], "DONE"))["status"] == "DONE"


async def test_proposed_and_canceled_events_are_not_completed_automatically(api: Api) -> None:
    creator_id, proposed = await _solo_event(api, start=at(-3), end=at(-2))
    canceled = await create_event(api, creator_id, start=at(-3), end=at(-2))
    await _walk(api, creator_id, canceled["id"], ["CANCELED"])
    # A confirmed event that ended at the same time is the witness that a sweep has run.
    witness = await create_event(api, creator_id, start=at(-3), end=at(-2))
    await _walk(api, creator_id, witness["id"], ["CONFIRMED"])
    assert (await _wait_for_status(api, creator_id, witness["id"], "DONE"))["status"] == "DONE"
    assert (await get_event(api, creator_id, proposed["id"]))["status"] == "PROPOSED"
    assert (await get_event(api, creator_id, canceled["id"]))["status"] == "CANCELED"


async def test_confirmed_event_that_has_not_ended_stays_confirmed(api: Api) -> None:
    creator_id, event = await _solo_event(api, start=at(-1), end=at(1))
    await _walk(api, creator_id, event["id"], ["CONFIRMED"])
    witness = await create_event(api, creator_id, start=at(-3), end=at(-2))
    await _walk(api, creator_id, witness["id"], ["CONFIRMED"])
    assert (await _wait_for_status(api, creator_id, witness["id"], "DONE"))["status"] == "DONE"
    assert (await get_event(api, creator_id, event["id"]))["status"] == "CONFIRMED"
