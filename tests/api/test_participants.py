"""Participants: adding, removing, confirming; who may do it, in which status, under races."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chat.store.pg import users
from tests.api.events_helpers import confirm, create_event, get_event, set_status
from tests.api_client import Api


async def _add(api: Api, actor_id: int, event_id: int, user_id: Any) -> Any:
    return await api.http.post(
        f"/v1/events/{event_id}/participants", json={"user_id": user_id}, headers=api.auth(actor_id)
    )


async def _remove(api: Api, actor_id: int, event_id: int, user_id: int) -> Any:
    return await api.http.delete(
        f"/v1/events/{event_id}/participants/{user_id}", headers=api.auth(actor_id)
    )


def _ids(event: dict[str, Any]) -> set[int]:
    return {p["user_id"] for p in event["participants"]}


async def test_creator_adds_a_participant_who_then_sees_the_event(api: Api) -> None:
    creator, friend = await api.create_user(), await api.create_user()
    event = await create_event(api, creator["id"])
    response = await _add(api, creator["id"], event["id"], friend["id"])
    assert response.status_code == 201, response.text
    assert _ids(response.json()) == {creator["id"], friend["id"]}
    added = next(p for p in response.json()["participants"] if p["user_id"] == friend["id"])
    assert added["confirmed"] is False
    assert (await get_event(api, friend["id"], event["id"]))["id"] == event["id"]


async def test_adding_someone_already_taking_part_is_409(api: Api) -> None:
    creator, friend = await api.create_user(), await api.create_user()
    event = await create_event(api, creator["id"], participants=[friend["id"]])
    response = await _add(api, creator["id"], event["id"], friend["id"])
    assert response.status_code == 409
    assert "already" in response.json()["detail"]


async def test_adding_an_unknown_or_deactivated_user_is_the_same_422(api: Api) -> None:
    creator, deactivated = await api.create_user(), await api.create_user()
    await api.operator(users.set_active, deactivated["id"], False)
    event = await create_event(api, creator["id"])
    answers = []
    for user_id in (2**62 + 11, deactivated["id"]):
        response = await _add(api, creator["id"], event["id"], user_id)
        assert response.status_code == 422
        assert str(user_id) not in response.text
        answers.append(response.json())
    assert (
        answers[0]["errors"]
        == answers[1]["errors"]
        == [{"field": "body/user_id", "message": "not a user who can be added"}]
    )
    assert answers[0]["detail"] == answers[1]["detail"]


@pytest.mark.parametrize("user_id", [0, -5, "7", None, 2**63, True])
async def test_adding_with_a_malformed_user_id_is_422(api: Api, user_id: Any) -> None:
    creator = await api.create_user()
    event = await create_event(api, creator["id"])
    response = await _add(api, creator["id"], event["id"], user_id)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body/user_id"


async def test_participant_who_is_not_the_creator_cannot_add(api: Api) -> None:
    creator, friend, other = [await api.create_user() for _ in range(3)]
    event = await create_event(api, creator["id"], participants=[friend["id"]])
    response = await _add(api, friend["id"], event["id"], other["id"])
    assert response.status_code == 403
    assert _ids(await get_event(api, creator["id"], event["id"])) == {
        creator["id"],
        friend["id"],
    }


@pytest.mark.parametrize("path", [["CONFIRMED"], ["CANCELED"], ["CONFIRMED", "DONE"]])
async def test_participants_change_only_while_proposed(api: Api, path: list[str]) -> None:
    creator, friend, newcomer = [await api.create_user() for _ in range(3)]
    event = await create_event(api, creator["id"], participants=[friend["id"]])
    assert (await confirm(api, friend["id"], event["id"])).status_code == 200
    for status in path:
        assert (await set_status(api, creator["id"], event["id"], status)).status_code == 200
    added = await _add(api, creator["id"], event["id"], newcomer["id"])
    assert added.status_code == 409
    assert added.json()["current_status"] == path[-1]
    removed = await _remove(api, creator["id"], event["id"], friend["id"])
    assert removed.status_code == 409
    assert removed.json()["current_status"] == path[-1]
    assert _ids(await get_event(api, creator["id"], event["id"])) == {
        creator["id"],
        friend["id"],
    }


async def test_creator_removes_a_participant_who_then_loses_sight_of_the_event(
    api: Api,
) -> None:
    creator, friend = await api.create_user(), await api.create_user()
    event = await create_event(api, creator["id"], participants=[friend["id"]])
    response = await _remove(api, creator["id"], event["id"], friend["id"])
    assert response.status_code == 204
    assert response.content == b""
    gone = await api.http.get(f"/v1/events/{event['id']}", headers=api.auth(friend["id"]))
    assert gone.status_code == 404
    assert _ids(await get_event(api, creator["id"], event["id"])) == {creator["id"]}


async def test_removing_the_last_unconfirmed_participant_lets_the_event_be_confirmed(
    api: Api,
) -> None:
    creator, friend = await api.create_user(), await api.create_user()
    event = await create_event(api, creator["id"], participants=[friend["id"]])
    assert (await set_status(api, creator["id"], event["id"], "CONFIRMED")).status_code == 409
    assert (await _remove(api, creator["id"], event["id"], friend["id"])).status_code == 204
    assert (await set_status(api, creator["id"], event["id"], "CONFIRMED")).status_code == 200


async def test_the_creator_cannot_be_removed(api: Api) -> None:
    creator = await api.create_user()
    event = await create_event(api, creator["id"])
    response = await _remove(api, creator["id"], event["id"], creator["id"])
    assert response.status_code == 409
    assert "creator" in response.json()["detail"]


async def test_removing_someone_who_does_not_take_part_is_404(api: Api) -> None:
    creator, stranger = await api.create_user(), await api.create_user()
    event = await create_event(api, creator["id"])
    response = await _remove(api, creator["id"], event["id"], stranger["id"])
    assert response.status_code == 404


async def test_participant_who_is_not_the_creator_cannot_remove(api: Api) -> None:
    creator, a, b = [await api.create_user() for _ in range(3)]
    event = await create_event(api, creator["id"], participants=[a["id"], b["id"]])
    assert (await _remove(api, a["id"], event["id"], b["id"])).status_code == 403
    myself = await _remove(api, a["id"], event["id"], a["id"])
    assert myself.status_code == 403
    assert f"/v1/events/{event['id']}/leave" in myself.json()["detail"]


async def test_confirming_my_participation_is_recorded_and_idempotent(api: Api) -> None:
    creator, friend = await api.create_user(), await api.create_user()
    event = await create_event(api, creator["id"], participants=[friend["id"]])
    first = await confirm(api, friend["id"], event["id"])
    assert first.status_code == 200
    mine = next(p for p in first.json()["participants"] if p["user_id"] == friend["id"])
    assert mine["confirmed"] is True
    assert mine["confirmed_at"] is not None
    second = await confirm(api, friend["id"], event["id"])
    assert second.status_code == 200
    again = next(p for p in second.json()["participants"] if p["user_id"] == friend["id"])
    assert again == mine
    assert second.json()["status"] == "PROPOSED"


async def test_confirming_a_confirmed_event_again_is_fine(api: Api) -> None:
    creator = await api.create_user()
    event = await create_event(api, creator["id"])
    assert (await set_status(api, creator["id"], event["id"], "CONFIRMED")).status_code == 200
    assert (await confirm(api, creator["id"], event["id"])).status_code == 200


@pytest.mark.parametrize("path", [["CANCELED"], ["CONFIRMED", "DONE"]])
async def test_confirming_a_finished_event_is_409(api: Api, path: list[str]) -> None:
    creator, friend = await api.create_user(), await api.create_user()
    event = await create_event(api, creator["id"], participants=[friend["id"]])
    if "CONFIRMED" in path:
        await confirm(api, friend["id"], event["id"])
        await set_status(api, creator["id"], event["id"], "CONFIRMED")
        await set_status(api, creator["id"], event["id"], "DONE")
    else:
        await set_status(api, creator["id"], event["id"], "CANCELED")
    response = await confirm(api, friend["id"], event["id"])
    assert response.status_code == 409
    assert response.json()["current_status"] == path[-1]


async def test_removal_racing_event_confirmation_leaves_a_consistent_event(api: Api) -> None:
    """Either the removal lands first (then CONFIRMED succeeds with the rest) or CONFIRMED
    lands first (then removal is refused): never a CONFIRMED event missing a participant who
    was removed after it was confirmed, and never an unconfirmed participant in it."""
    outcomes = set()
    for _ in range(6):
        creator, a, b = [await api.create_user() for _ in range(3)]
        event = await create_event(api, creator["id"], participants=[a["id"], b["id"]])
        await confirm(api, a["id"], event["id"])
        await confirm(api, b["id"], event["id"])
        removed, confirmed = await asyncio.gather(
            _remove(api, creator["id"], event["id"], b["id"]),
            set_status(api, creator["id"], event["id"], "CONFIRMED"),
        )
        assert confirmed.status_code == 200
        seen = await get_event(api, creator["id"], event["id"])
        assert seen["status"] == "CONFIRMED"
        assert all(p["confirmed"] for p in seen["participants"])
        if removed.status_code == 204:
            assert _ids(seen) == {creator["id"], a["id"]}
        else:
            assert removed.status_code == 409
            assert _ids(seen) == {creator["id"], a["id"], b["id"]}
        outcomes.add(removed.status_code)
    assert outcomes <= {204, 409}


async def test_adding_racing_event_confirmation_never_confirms_with_an_unconfirmed_member(
    api: Api,
) -> None:
    for _ in range(6):
        creator, newcomer = await api.create_user(), await api.create_user()
        event = await create_event(api, creator["id"])
        added, confirmed = await asyncio.gather(
            _add(api, creator["id"], event["id"], newcomer["id"]),
            set_status(api, creator["id"], event["id"], "CONFIRMED"),
        )
        seen = await get_event(api, creator["id"], event["id"])
        if seen["status"] == "CONFIRMED":
            assert all(p["confirmed"] for p in seen["participants"])
            assert added.status_code == 409
        else:
            assert added.status_code == 201
            assert confirmed.status_code == 409
            assert confirmed.json()["unconfirmed_count"] == 1


async def test_confirmation_racing_own_removal_never_leaves_a_ghost_participant(
    api: Api,
) -> None:
    for _ in range(6):
        creator, friend = await api.create_user(), await api.create_user()
        event = await create_event(api, creator["id"], participants=[friend["id"]])
        removed, confirmed = await asyncio.gather(
            _remove(api, creator["id"], event["id"], friend["id"]),
            confirm(api, friend["id"], event["id"]),
        )
        assert removed.status_code == 204
        if confirmed.status_code == 200:
            assert friend["id"] in _ids(confirmed.json())
        else:
            assert confirmed.status_code == 404
        assert _ids(await get_event(api, creator["id"], event["id"])) == {creator["id"]}


async def _leave(api: Api, user_id: int, event_id: int) -> Any:
    return await api.http.post(f"/v1/events/{event_id}/leave", headers=api.auth(user_id))


@pytest.mark.parametrize("path", [[], ["CONFIRMED"], ["CANCELED"], ["CONFIRMED", "DONE"]])
async def test_a_participant_leaves_an_event_in_any_status_and_loses_sight_of_it(
    api: Api, path: list[str]
) -> None:
    creator, friend, other = [await api.create_user() for _ in range(3)]
    event = await create_event(api, creator["id"], participants=[friend["id"], other["id"]])
    for user in (friend, other):
        assert (await confirm(api, user["id"], event["id"])).status_code == 200
    for status in path:
        assert (await set_status(api, creator["id"], event["id"], status)).status_code == 200

    response = await _leave(api, friend["id"], event["id"])
    assert response.status_code == 204, response.text
    assert response.content == b""
    for what in ("", "/history", "/messages", "/payments"):
        gone = await api.http.get(f"/v1/events/{event['id']}{what}", headers=api.auth(friend["id"]))
        assert gone.status_code == 404, what
    seen = await get_event(api, creator["id"], event["id"])
    assert _ids(seen) == {creator["id"], other["id"]}
    # Leaving does not move the status machine: everyone still in it agreed.
    assert seen["status"] == (path[-1] if path else "PROPOSED")
    again = await _leave(api, friend["id"], event["id"])
    assert again.status_code == 404


async def test_the_creator_cannot_leave_their_own_event(api: Api) -> None:
    creator, friend = await api.create_user(), await api.create_user()
    event = await create_event(api, creator["id"], participants=[friend["id"]])
    response = await _leave(api, creator["id"], event["id"])
    assert response.status_code == 409
    assert "cancel" in response.json()["detail"]
    assert _ids(await get_event(api, creator["id"], event["id"])) == {creator["id"], friend["id"]}


async def test_leaving_an_event_one_never_took_part_in_is_404(api: Api) -> None:
    creator, stranger = await api.create_user(), await api.create_user()
    event = await create_event(api, creator["id"])
    assert (await _leave(api, stranger["id"], event["id"])).status_code == 404
    assert (await _leave(api, stranger["id"], 2**62)).status_code == 404


async def test_leaving_the_last_unconfirmed_place_lets_the_creator_confirm(api: Api) -> None:
    creator, friend = await api.create_user(), await api.create_user()
    event = await create_event(api, creator["id"], participants=[friend["id"]])
    assert (await set_status(api, creator["id"], event["id"], "CONFIRMED")).status_code == 409
    assert (await _leave(api, friend["id"], event["id"])).status_code == 204
    assert (await set_status(api, creator["id"], event["id"], "CONFIRMED")).status_code == 200
