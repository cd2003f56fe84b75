"""Users: sign-up, reading and updating one's own profile, uniqueness of phone and email."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest

from tests.api_client import Api, unique_phone


def _email() -> str:
    return f"u{secrets.token_hex(6)}@example.com"


async def _signup(api: Api, **fields: Any) -> Any:
    body = {"phone": unique_phone(), "name": "Kim"}
    body.update(fields)
    return await api.http.post("/v1/users", json=body)


async def test_signup_returns_the_user_and_a_token_that_works(api: Api) -> None:
    email = _email()
    response = await _signup(
        api,
        email=email,
        display_name="Kimmy",
        profile_image_url="https://img.example.com/k.png",
        region="Seoul",
        interests=["golf", " tea "],
    )
    assert response.status_code == 201, response.text
    body = response.json()
    user = body["user"]
    assert user["email"] == email
    assert user["role"] == "USER"
    assert user["interests"] == ["golf", "tea"]
    assert user["region"] == "Seoul"
    me = await api.http.get(
        "/v1/users/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json() == user


async def test_signup_defaults_role_to_user_and_interests_to_empty(api: Api) -> None:
    response = await _signup(api)
    assert response.status_code == 201
    user = response.json()["user"]
    assert user["role"] == "USER"
    assert user["interests"] == []
    assert user["email"] is None


@pytest.mark.parametrize("role", ["BUSINESS", "ADMIN", None, 1])
async def test_signup_cannot_choose_a_role_other_than_user(api: Api, role: Any) -> None:
    phone = unique_phone()
    response = await _signup(api, phone=phone, role=role)
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "body/role"
    assert "operator" in error["message"]
    # Nothing was created: the phone number is still free.
    assert (await _signup(api, phone=phone)).status_code == 201


async def test_signup_may_still_say_role_user(api: Api) -> None:
    response = await _signup(api, role="USER")
    assert response.status_code == 201, response.text
    assert response.json()["user"]["role"] == "USER"


async def test_signup_needs_no_token(api: Api) -> None:
    response = await _signup(api, name="No Auth")
    assert response.status_code == 201


async def test_duplicate_phone_is_409_naming_phone(api: Api) -> None:
    phone = unique_phone()
    assert (await _signup(api, phone=phone)).status_code == 201
    response = await _signup(api, phone=phone)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "phone"
    assert "phone" in response.json()["detail"]


async def test_duplicate_email_differing_only_in_case_is_409_naming_email(api: Api) -> None:
    email = _email()
    assert (await _signup(api, email=email)).status_code == 201
    response = await _signup(api, email=email.upper())
    assert response.status_code == 409
    assert response.json()["field"] == "email"


async def test_concurrent_signups_with_one_phone_exactly_one_wins(api: Api) -> None:
    phone = unique_phone()
    responses = await asyncio.gather(*(_signup(api, phone=phone) for _ in range(4)))
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"phone": "12ab"}, "body/phone"),
        ({"phone": "+1" + "2" * 20}, "body/phone"),
        ({"email": "not-an-email"}, "body/email"),
        ({"name": "   "}, "body/name"),
        ({"name": "x" * 101}, "body/name"),
        ({"interests": ["x"] * 21}, "body/interests"),
        ({"interests": [""]}, "body/interests/0"),
        ({"profile_image_url": "javascript:alert(1)"}, "body/profile_image_url"),
        ({"region": "r" * 51}, "body/region"),
        ({"display_name": "a\x00b"}, "body/display_name"),
        ({"is_active": False}, "body/is_active"),
    ],
)
async def test_signup_with_invalid_field_is_422_naming_it(
    api: Api, fields: dict[str, Any], field: str
) -> None:
    response = await _signup(api, **fields)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in response.json()["errors"]]


async def test_signup_without_phone_is_422(api: Api) -> None:
    response = await api.http.post("/v1/users", json={"name": "No Phone"})
    assert response.status_code == 422
    assert "body/phone" in [e["field"] for e in response.json()["errors"]]


async def test_get_me_requires_a_token(api: Api) -> None:
    response = await api.http.get("/v1/users/me")
    assert response.status_code == 401


async def test_get_me_for_a_token_of_an_unknown_user_is_401(api: Api) -> None:
    response = await api.http.get("/v1/users/me", headers=api.auth(2**62))
    assert response.status_code == 401


async def test_patch_me_changes_only_the_fields_sent(api: Api) -> None:
    user = await api.create_user(region="Busan", display_name="Before")
    response = await api.http.patch(
        "/v1/users/me",
        json={"display_name": "After", "interests": ["hiking"]},
        headers=api.auth(user["id"]),
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["display_name"] == "After"
    assert updated["interests"] == ["hiking"]
    assert updated["region"] == "Busan"
    assert updated["phone"] == user["phone"]


async def test_patch_me_null_clears_an_optional_field(api: Api) -> None:
    user = await api.create_user(region="Busan")
    response = await api.http.patch(
        "/v1/users/me", json={"region": None}, headers=api.auth(user["id"])
    )
    assert response.status_code == 200
    assert response.json()["region"] is None


@pytest.mark.parametrize("field", ["phone", "name", "interests"])
async def test_patch_me_cannot_null_a_required_field(api: Api, field: str) -> None:
    user = await api.create_user()
    response = await api.http.patch(
        "/v1/users/me", json={field: None}, headers=api.auth(user["id"])
    )
    assert response.status_code == 422
    assert f"body/{field}" in [e["field"] for e in response.json()["errors"]]


async def test_patch_me_cannot_change_role(api: Api) -> None:
    user = await api.create_user()
    response = await api.http.patch(
        "/v1/users/me", json={"role": "BUSINESS"}, headers=api.auth(user["id"])
    )
    assert response.status_code == 422


async def test_patch_me_to_a_taken_phone_is_409(api: Api) -> None:
    other = await api.create_user()
    user = await api.create_user()
    response = await api.http.patch(
        "/v1/users/me", json={"phone": other["phone"]}, headers=api.auth(user["id"])
    )
    assert response.status_code == 409
    assert response.json()["field"] == "phone"


async def test_patch_me_to_a_taken_email_is_409(api: Api) -> None:
    email = _email()
    await api.create_user(email=email)
    user = await api.create_user()
    response = await api.http.patch(
        "/v1/users/me", json={"email": email.upper()}, headers=api.auth(user["id"])
    )
    assert response.status_code == 409
    assert response.json()["field"] == "email"


async def test_patch_me_keeping_my_own_phone_is_fine(api: Api) -> None:
    user = await api.create_user()
    response = await api.http.patch(
        "/v1/users/me", json={"phone": user["phone"]}, headers=api.auth(user["id"])
    )
    assert response.status_code == 200


async def test_patch_me_for_an_unknown_user_is_401(api: Api) -> None:
    response = await api.http.patch(
        "/v1/users/me", json={"region": "x"}, headers=api.auth(2**62 + 1)
    )
    assert response.status_code == 401
