"""A session's life on a live gateway: frames sent right after the upgrade, the token's expiry,
``refresh``, and authentication while PostgreSQL is down (1013, not 4401)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from websockets.asyncio.client import connect

from chat.config import Settings
from tests.api_client import Api
from tests.gateway.live import TIMEOUT, WsClient, client, users_and_event, ws_url
from tests.ops.test_postgres_outage import app_on_own_postgres

EARLY_CONNECTIONS = 20


async def test_subscribe_sent_as_soon_as_the_socket_opens_is_answered_after_welcome(
    base_url: str, api: Api
) -> None:
    """Most client libraries take a socket as usable once it opens: a header-authenticated
    client's first frames arrive while its token is being checked, and are held for it."""
    users, event_id = await users_and_event(api, EARLY_CONNECTIONS)

    async def early_subscriber(user_id: int) -> list[str]:
        headers = {"Authorization": f"Bearer {api.tokens.mint(user_id)}"}
        async with connect(ws_url(base_url), additional_headers=headers) as ws:
            c = WsClient(ws)
            await c.send(type="subscribe", id="first", event_id=event_id)
            await c.send(type="history", id="second", event_id=event_id, limit=1)
            kinds = [(await c.expect("welcome"))["type"]]
            answer = await c.expect(lambda f: f.get("ref") == "first")
            kinds.append(answer["type"])
            kinds.append((await c.expect(lambda f: f.get("ref") == "second"))["type"])
            return kinds

    results = await asyncio.gather(*(early_subscriber(u) for u in users))
    assert results == [["welcome", "subscribed", "history"]] * EARLY_CONNECTIONS


async def test_an_open_session_ends_with_4401_when_its_token_expires(
    base_url: str, api: Api
) -> None:
    (ada,), _ = await users_and_event(api, 1)
    token = api.tokens.mint(ada, ttl_seconds=2)
    headers = {"Authorization": f"Bearer {token}"}
    async with connect(ws_url(base_url), additional_headers=headers) as ws:
        c = WsClient(ws)
        welcome = await c.expect("welcome")
        assert welcome["expires_at"] is not None
        expired = await c.expect("error", wait=5)
        assert expired["code"] == "unauthorized"
        assert "expired" in expired["message"]
        assert await c.close_code() == 4401


async def test_a_refresh_with_a_fresh_token_keeps_the_session_past_the_old_expiry(
    base_url: str, api: Api
) -> None:
    (ada,), event_id = await users_and_event(api, 1)
    headers = {"Authorization": f"Bearer {api.tokens.mint(ada, ttl_seconds=2)}"}
    async with connect(ws_url(base_url), additional_headers=headers) as ws:
        c = WsClient(ws)
        welcome = await c.expect("welcome")
        refreshed = await c.request(type="refresh", token=api.tokens.mint(ada))
        assert refreshed["type"] == "refreshed", refreshed
        assert refreshed["user_id"] == ada
        assert refreshed["session_id"] == welcome["session_id"]
        assert refreshed["expires_at"] > welcome["expires_at"]
        await c.drain(quiet=3.0)  # past the first token's expiry
        assert c.kept(lambda f: f["type"] == "error") == []
        assert (await c.subscribe(event_id))["type"] == "subscribed"


async def test_a_refresh_with_another_users_token_closes_with_4401(base_url: str, api: Api) -> None:
    (ada, bo), _ = await users_and_event(api, 2)
    async with client(base_url, api, ada) as c:
        refused = await c.request(type="refresh", token=api.tokens.mint(bo))
        assert refused["code"] == "unauthorized", refused
        assert "another user" in refused["message"]
        assert await c.close_code() == 4401


async def test_authentication_while_postgres_is_down_closes_with_1013_not_4401(
    settings: Settings, api: Api, tmp_path: Path
) -> None:
    """The token may be good: a client told 4401 would throw it away for a database outage."""
    async with app_on_own_postgres(settings, tmp_path) as (url, pg):
        await asyncio.to_thread(pg.stop)
        headers = {"Authorization": f"Bearer {api.tokens.mint(1)}"}
        async with connect(ws_url(url), additional_headers=headers, open_timeout=TIMEOUT) as ws:
            c = WsClient(ws)
            error = await c.expect("error")
            assert error["code"] == "unavailable", error
            assert await c.close_code() == 1013
        async with connect(ws_url(url), open_timeout=TIMEOUT) as ws:
            c = WsClient(ws)
            error = await c.request(type="hello", token=api.tokens.mint(1))
            assert error["code"] == "unavailable", error
            assert await c.close_code() == 1013
