"""REST rate limits through a real server: per address, per user and for sign-up, answered
with 429 problem+json, ``Retry-After`` and the RateLimit fields of the IETF draft (parsed here
as RFC 9651 Structured Fields by ``http-sf``, not by this project's code).

The limited app trusts 127.0.0.1 and 10.0.0.0/8 as proxies, so each test speaks as its own
client address through ``X-Forwarded-For`` and the tests share one app without sharing quotas.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import http_sf
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from chat.app import create_app
from chat.config import Settings
from tests.api_client import Api, unique_phone
from tests.servers import run_server

ADDRESS_QUOTA, USER_QUOTA, SIGNUP_QUOTA, WINDOW = 5, 3, 2, 600
_addresses = itertools.count(1)


def fresh_address() -> str:
    """A client address no other test has used (TEST-NET-3, 203.0.113.0/24, then onwards)."""
    n = next(_addresses)
    return f"203.0.{113 + n // 250}.{n % 250 + 1}"


def sf_list(response: httpx.Response, name: str) -> dict[str, dict[str, Any]]:
    """A RateLimit field as {policy: parameters}; every member must be a String item."""
    members: Any = http_sf.parse(response.headers[name].encode(), tltype="list")
    assert isinstance(members, list), members
    parsed: dict[str, dict[str, Any]] = {}
    for value, params in members:
        assert isinstance(value, str), value
        assert not isinstance(value, http_sf.Token), f"{value} is a Token, not a String"
        parsed[value] = dict(params)
    return parsed


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    raise AssertionError(f"{name}{labels} not in /metrics")


@pytest.fixture(scope="module")
async def limited(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    small = settings.model_copy(
        update={
            "trusted_proxies": "127.0.0.1,10.0.0.0/8",
            "rest_address_quota": ADDRESS_QUOTA,
            "rest_address_window_seconds": WINDOW,
            "rest_user_quota": USER_QUOTA,
            "rest_user_window_seconds": WINDOW,
            "rest_signup_quota": SIGNUP_QUOTA,
            "rest_signup_window_seconds": 3600,
            "rest_rate_limit_max_keys": 100,
        }
    )
    async with run_server(create_app(small)) as url, httpx.AsyncClient(base_url=url) as http:
        yield http


def as_client(address: str, **headers: str) -> dict[str, str]:
    return {"X-Forwarded-For": address, **headers}


async def test_an_address_over_its_quota_gets_429_problem_json_with_retry_after_and_fields(
    limited: httpx.AsyncClient,
) -> None:
    address = fresh_address()
    answers = [
        await limited.get("/v1/openapi.json", headers=as_client(address))
        for _ in range(ADDRESS_QUOTA + 1)
    ]
    assert [a.status_code for a in answers] == [200] * ADDRESS_QUOTA + [429]
    first, refused = answers[0], answers[-1]
    assert sf_list(first, "RateLimit-Policy") == {"address": {"q": ADDRESS_QUOTA, "w": WINDOW}}
    assert sf_list(first, "RateLimit") == {
        "address": {"r": ADDRESS_QUOTA - 1, "t": WINDOW // ADDRESS_QUOTA}
    }
    assert [sf_list(a, "RateLimit")["address"]["r"] for a in answers] == [4, 3, 2, 1, 0, 0]

    assert refused.headers["content-type"] == "application/problem+json"
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= WINDOW // ADDRESS_QUOTA
    assert sf_list(refused, "RateLimit") == {"address": {"r": 0, "t": retry_after}}
    assert sf_list(refused, "RateLimit-Policy") == {"address": {"q": ADDRESS_QUOTA, "w": WINDOW}}
    assert refused.headers["X-Request-ID"]
    body = refused.json()
    assert body["status"] == 429
    assert body["code"] == "rate_limited"
    assert body["violated-policies"] == ["address"]
    assert body["detail"] == (
        f"too many requests from your address: at most {ADDRESS_QUOTA} per {WINDOW} s; "
        f"retry in {retry_after} s"
    )
    other = await limited.get("/v1/openapi.json", headers=as_client(fresh_address()))
    assert other.status_code == 200, "another address has its own quota"


async def test_sign_up_has_its_own_quota_per_address(limited: httpx.AsyncClient) -> None:
    address = fresh_address()

    async def sign_up() -> httpx.Response:
        body = {"phone": unique_phone(), "name": "Flood"}
        return await limited.post("/v1/users", json=body, headers=as_client(address))

    answers = [await sign_up() for _ in range(SIGNUP_QUOTA + 1)]
    assert [a.status_code for a in answers] == [201] * SIGNUP_QUOTA + [429]
    assert answers[-1].json()["violated-policies"] == ["signup"]
    assert (
        int(answers[-1].headers["Retry-After"]) == sf_list(answers[-1], "RateLimit")["signup"]["t"]
    )
    assert 1700 <= int(answers[-1].headers["Retry-After"]) <= 1800, "1 sign-up per 30 min"
    assert sf_list(answers[0], "RateLimit-Policy") == {
        "address": {"q": ADDRESS_QUOTA, "w": WINDOW},
        "signup": {"q": SIGNUP_QUOTA, "w": 3600},
    }
    other_request = await limited.get("/v1/openapi.json", headers=as_client(address))
    assert other_request.status_code == 200, "the address may still do everything else"


async def test_a_user_over_their_quota_gets_429_whatever_address_they_come_from(
    limited: httpx.AsyncClient, api: Api
) -> None:
    user = await api.create_user()
    answers = [
        await limited.get(
            "/v1/users/me", headers=as_client(fresh_address(), **api.auth(user["id"]))
        )
        for _ in range(USER_QUOTA + 1)
    ]
    assert [a.status_code for a in answers] == [200] * USER_QUOTA + [429]
    refused = answers[-1]
    assert refused.json()["violated-policies"] == ["user"]
    assert sf_list(refused, "RateLimit-Policy") == {
        "address": {"q": ADDRESS_QUOTA, "w": WINDOW},
        "user": {"q": USER_QUOTA, "w": WINDOW},
    }
    limits = sf_list(refused, "RateLimit")
    assert limits["address"]["r"] == ADDRESS_QUOTA - 1
    assert limits["user"] == {"r": 0, "t": int(refused.headers["Retry-After"])}

    someone_else = await api.create_user()
    other = await limited.get(
        "/v1/users/me", headers=as_client(fresh_address(), **api.auth(someone_else["id"]))
    )
    assert other.status_code == 200


async def test_a_bad_token_is_charged_to_the_address_only(limited: httpx.AsyncClient) -> None:
    answer = await limited.get(
        "/v1/users/me", headers=as_client(fresh_address(), Authorization="Bearer forged")
    )
    assert answer.status_code == 401
    assert set(sf_list(answer, "RateLimit")) == {"address"}


async def test_x_forwarded_for_is_read_from_the_right_past_trusted_proxies_only(
    limited: httpx.AsyncClient,
) -> None:
    client, spoofed = fresh_address(), itertools.count(1)
    statuses = []
    for _ in range(ADDRESS_QUOTA + 1):
        # The client made up the leftmost entry; the edge proxy 10.1.2.3 appended the client's
        # real address, and the proxy at 127.0.0.1 (the socket peer) appended 10.1.2.3.
        chain = f"198.51.100.{next(spoofed)}, {client}, 10.1.2.3"
        statuses.append(
            (await limited.get("/v1/openapi.json", headers=as_client(chain))).status_code
        )
    assert statuses == [200] * ADDRESS_QUOTA + [429], "a made-up leftmost hop buys nothing"


async def test_an_ipv6_site_shares_one_quota_across_its_64_prefix(
    limited: httpx.AsyncClient,
) -> None:
    site = f"2001:db8:{next(_addresses)}:7::"
    statuses = [
        (await limited.get("/v1/openapi.json", headers=as_client(f"{site}{n:x}"))).status_code
        for n in range(1, ADDRESS_QUOTA + 2)
    ]
    assert statuses == [200] * ADDRESS_QUOTA + [429]
    neighbour = site.replace(":7::", ":8::") + "1"
    assert (await limited.get("/v1/openapi.json", headers=as_client(neighbour))).status_code == 200


async def test_refusals_are_counted_and_the_probes_count_against_the_quota_too(
    limited: httpx.AsyncClient,
) -> None:
    address = fresh_address()
    statuses = [
        (await limited.get(path, headers=as_client(address))).status_code
        for path in ("/healthz", "/readyz", "/metrics", "/v1/openapi.json", "/healthz", "/healthz")
    ]
    assert statuses == [200] * ADDRESS_QUOTA + [429]
    text = (await limited.get("/metrics", headers=as_client(fresh_address()))).text
    assert metric(text, "chat_rest_rate_limited_total", policy="address") >= 1


async def test_many_client_addresses_cannot_grow_the_limiter_tables_past_their_bound(
    limited: httpx.AsyncClient,
) -> None:
    for _ in range(300):
        answer = await limited.get("/v1/openapi.json", headers=as_client(fresh_address()))
        assert answer.status_code == 200
    text = (await limited.get("/metrics", headers=as_client(fresh_address()))).text
    assert metric(text, "chat_rest_rate_limit_keys", policy="address") == 100


async def test_without_trusted_proxies_x_forwarded_for_is_ignored(settings: Settings) -> None:
    direct = settings.model_copy(update={"rest_address_quota": 3})
    async with run_server(create_app(direct)) as url, httpx.AsyncClient(base_url=url) as http:
        statuses = [
            (await http.get("/v1/openapi.json", headers=as_client(fresh_address()))).status_code
            for _ in range(4)
        ]
    assert statuses == [200, 200, 200, 429], "every request came from 127.0.0.1"
