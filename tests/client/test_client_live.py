"""The reference Python client against a live server, through a proxy that breaks the network.

Each test drives :class:`chat.client.ChatClient` as an application would and checks what the
application sees: every message once and in order across dropped connections, sends retried
through a connection that died before their ack and stored once, writes paced under a tight
rate limit, tokens refreshed when the server refuses one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from chat.app import create_app
from chat.client import (
    AuthenticationFailed,
    ChatClient,
    Disconnected,
    RequestFailed,
    Timeline,
    Welcome,
)
from chat.config import Settings
from tests.api_client import Api
from tests.client.live import FAST, TIMEOUT, chat_client
from tests.gateway.live import users_and_event, ws_url
from tests.proxy import TcpProxy, tcp_proxy
from tests.servers import run_server


@pytest.fixture
async def proxy(base_url: str) -> AsyncIterator[TcpProxy]:
    async with tcp_proxy(base_url) as p:
        yield p


async def test_a_client_offline_while_others_send_sees_every_message_once_in_order_on_return(
    base_url: str, api: Api, proxy: TcpProxy
) -> None:
    (ada, bo), event_id = await users_and_event(api, 2)
    async with (
        chat_client(proxy.url(), api, ada) as (a, seen_by_a),
        chat_client(ws_url(base_url), api, bo) as (b, _),
    ):
        await a.subscribe(event_id)
        for i in range(3):
            await b.send(event_id, f"before {i}")
        assert await seen_by_a.wait_messages(event_id, 3) == [f"before {i}" for i in range(3)]

        proxy.go_offline()
        await seen_by_a.wait(lambda seen: any(isinstance(e, Disconnected) for e in seen))
        for i in range(5):
            await b.send(event_id, f"while away {i}")
        proxy.go_online()

        await seen_by_a.wait(lambda seen: sum(isinstance(e, Welcome) for e in seen) >= 2)
        await b.send(event_id, "after")
        expected = [f"before {i}" for i in range(3)]
        expected += [f"while away {i}" for i in range(5)] + ["after"]
        assert await seen_by_a.wait_messages(event_id, 9) == expected
        page = await a.history(event_id, limit=20)
        assert len(page.messages) == 9  # nothing stored twice either
    assert a.session.reconnects >= 1


async def test_a_send_whose_connection_died_before_the_ack_is_retried_and_stored_once(
    base_url: str, api: Api, proxy: TcpProxy
) -> None:
    (ada, bo), event_id = await users_and_event(api, 2)
    async with (
        chat_client(proxy.url(), api, ada) as (a, _),
        chat_client(ws_url(base_url), api, bo) as (b, seen_by_b),
    ):
        await b.subscribe(event_id)
        await a.subscribe(event_id)
        proxy.hold_downstream()  # the server's answers no longer reach ada
        sending = asyncio.create_task(a.send(event_id, "once", client_msg_id="ada-once"))
        assert await seen_by_b.wait_messages(event_id, 1) == ["once"]  # stored and delivered
        assert not sending.done()  # ... but ada never heard the ack
        proxy.cut()
        proxy.hold_downstream(False)
        ack = await asyncio.wait_for(sending, TIMEOUT)
        assert ack.duplicate is True  # the retry got the original ack
        assert ack.client_msg_id == "ada-once"
        await b.send(event_id, "marker")
        assert await seen_by_b.wait_messages(event_id, 2) == ["once", "marker"]
        stored = await b.history(event_id, limit=10)
        assert [m.text for m in stored.messages] == ["marker", "once"]


async def test_messages_sent_while_offline_are_delivered_after_reconnect_in_send_order(
    base_url: str, api: Api, proxy: TcpProxy
) -> None:
    (ada, bo), event_id = await users_and_event(api, 2)
    async with (
        chat_client(proxy.url(), api, ada) as (a, seen_by_a),
        chat_client(ws_url(base_url), api, bo) as (b, seen_by_b),
    ):
        await b.subscribe(event_id)
        await a.subscribe(event_id)
        proxy.go_offline()
        await seen_by_a.wait(lambda seen: any(isinstance(e, Disconnected) for e in seen))
        sends = [asyncio.create_task(a.send(event_id, f"queued {i}")) for i in range(5)]
        await asyncio.sleep(0)
        assert [f["text"] for f in a.session.pending() if f["type"] == "send"] == [
            f"queued {i}" for i in range(5)
        ]
        proxy.go_online()
        acks = await asyncio.wait_for(asyncio.gather(*sends), TIMEOUT)
        assert [ack.duplicate for ack in acks] == [False] * 5
        assert await seen_by_b.wait_messages(event_id, 5) == [f"queued {i}" for i in range(5)]
        assert a.session.pending() == []


async def test_writes_beyond_the_rate_limit_are_paced_and_all_acknowledged_in_order(
    settings: Settings, api: Api
) -> None:
    tight = settings.model_copy(update={"ws_send_rate_per_second": 20.0, "ws_send_burst": 2})
    (ada,), event_id = await users_and_event(api, 1)
    async with run_server(create_app(tight)) as url, chat_client(ws_url(url), api, ada) as (a, _):
        await a.subscribe(event_id)
        acks = await asyncio.wait_for(
            asyncio.gather(*(a.send(event_id, f"burst {i}") for i in range(12))), TIMEOUT
        )
        assert len({ack.message_id for ack in acks}) == 12
        timeline = Timeline(event_id)
        timeline.apply(await a.history(event_id, limit=20))
        assert [m.text for m in timeline] == [f"burst {i}" for i in range(12)]


async def test_a_rejected_token_is_replaced_by_the_token_provider(base_url: str, api: Api) -> None:
    (ada,), event_id = await users_and_event(api, 1)
    fresh: list[str] = []

    async def provider() -> str:
        fresh.append(api.tokens.mint(ada))
        return fresh[-1]

    async with ChatClient(
        ws_url(base_url), "not-a-token", token_provider=provider, auth="hello", backoff=FAST
    ) as chat:
        welcome = await asyncio.wait_for(chat.wait_connected(), TIMEOUT)
        assert welcome.user_id == ada
        assert len(fresh) == 1
        assert (await chat.subscribe(event_id)).event_id == event_id


async def test_without_a_token_provider_a_rejected_token_fails_every_request(
    base_url: str, api: Api
) -> None:
    _, event_id = await users_and_event(api, 1)
    async with ChatClient(ws_url(base_url), "not-a-token", backoff=FAST) as chat:
        with pytest.raises(AuthenticationFailed):
            await asyncio.wait_for(chat.subscribe(event_id), TIMEOUT)


async def test_a_refused_request_raises_with_the_servers_code(base_url: str, api: Api) -> None:
    _, event_id = await users_and_event(api, 2)
    outsider = (await api.create_user())["id"]
    async with chat_client(ws_url(base_url), api, outsider) as (chat, _):
        with pytest.raises(RequestFailed) as refused:
            await chat.subscribe(event_id)
        assert refused.value.error_code == "not_found"
        assert chat.session.subscriptions == frozenset()


async def test_refresh_token_keeps_the_session_or_reconnects_and_keeps_the_subscription(
    base_url: str, api: Api
) -> None:
    (ada, bo), event_id = await users_and_event(api, 2)
    async with (
        chat_client(ws_url(base_url), api, ada, auth="hello") as (a, seen_by_a),
        chat_client(ws_url(base_url), api, bo) as (b, _),
    ):
        await a.subscribe(event_id)
        await b.send(event_id, "one")
        await seen_by_a.wait_messages(event_id, 1)
        fresh = api.tokens.mint(ada)
        await a.refresh_token(fresh)
        await a.wait_connected()
        await b.send(event_id, "two")
        assert await seen_by_a.wait_messages(event_id, 2) == ["one", "two"]
        assert a.session.token == fresh
        # A server with in-session refresh answers `refreshed`; one without answers
        # `unknown_type`, and the client reconnects (closing with 1000) with the new token.
        drops = [e.close_code for e in seen_by_a.seen if isinstance(e, Disconnected)]
        assert drops in ([], [1000])
        assert seen_by_a.count(Welcome) == 1 + len(drops)


async def test_clients_ride_through_a_gateway_restart_and_lose_no_send(
    settings: Settings, api: Api
) -> None:
    (ada, bo), event_id = await users_and_event(api, 2)
    async with contextlib.AsyncExitStack() as first:
        first_url = await first.enter_async_context(run_server(create_app(settings)))
        async with (
            tcp_proxy(first_url) as proxy,  # outlives the first server
            chat_client(proxy.url(), api, ada) as (a, seen_by_a),
            chat_client(proxy.url(), api, bo) as (b, _),
        ):
            await a.subscribe(event_id)
            await b.subscribe(event_id)
            mine = [f"m{i}" for i in range(20)]
            sends = [asyncio.create_task(a.send(event_id, text)) for text in mine]
            await seen_by_a.wait_messages(event_id, 1)
            await first.aclose()  # the gateway drains (ack or `unavailable`), then closes 1001
            await seen_by_a.wait(lambda seen: any(isinstance(e, Disconnected) for e in seen))
            assert any(e.close_code == 1001 for e in seen_by_a.seen if isinstance(e, Disconnected))
            from_bo = asyncio.create_task(b.send(event_id, "sent by bo while it was down"))
            async with run_server(create_app(settings)) as second_url:
                proxy.retarget(second_url)
                acks = await asyncio.wait_for(asyncio.gather(*sends, from_bo), TIMEOUT)
                assert len({ack.message_id for ack in acks}) == 21
                texts = await seen_by_a.wait_messages(event_id, 21)
                assert sorted(texts) == sorted([*mine, "sent by bo while it was down"])
                assert [t for t in texts if t.startswith("m")] == mine  # in send order
