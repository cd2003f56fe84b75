"""Accounts: a deactivated user's tokens are refused at once on every REST operation."""

from __future__ import annotations

from chat.store.pg import users
from tests.api.builders import in_hours
from tests.api_client import Api


async def test_a_deactivated_users_valid_token_is_refused_until_reactivated(api: Api) -> None:
    user = await api.create_user()
    headers = api.auth(user["id"])
    assert (await api.http.get("/v1/users/me", headers=headers)).status_code == 200

    await api.operator(users.set_active, user["id"], False)
    event = {"title": "x", "start_time": in_hours(1), "end_time": in_hours(2)}
    refused = [
        await api.http.get("/v1/users/me", headers=headers),
        await api.http.get("/v1/events", headers=headers),
        await api.http.post("/v1/events", json=event, headers=headers),
        await api.http.get("/v1/me/unread", headers=headers),
    ]
    for response in refused:
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["code"] == "unauthorized"
        assert "deactivated" in response.json()["detail"]

    await api.operator(users.set_active, user["id"], True)
    assert (await api.http.get("/v1/users/me", headers=headers)).status_code == 200


async def test_a_deactivated_user_is_refused_before_the_body_is_looked_at(api: Api) -> None:
    user = await api.create_user()
    await api.operator(users.set_active, user["id"], False)
    response = await api.http.post("/v1/events", content=b"not json", headers=api.auth(user["id"]))
    assert response.status_code == 401
