"""Live gateway across restarts: graceful shutdown (1001, nothing unanswered) and resume.

Each test runs its own short-lived app instances on the session's PostgreSQL and CQL server —
as a deployment replacing one gateway process with another would — and stops them while
clients are connected.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import pytest
from websockets.exceptions import ConnectionClosed

from chat.app import create_app
from chat.config import Settings
from tests.api_client import Api
from tests.gateway.live import TIMEOUT, Frame, client, is_message, users_and_event
from tests.servers import run_server


@contextlib.asynccontextmanager
async def gateway(settings: Settings) -> AsyncIterator[tuple[str, contextlib.AsyncExitStack]]:
    """A fresh app instance; stop it early with ``await stack.aclose()`` (idempotent)."""
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(run_server(create_app(settings)))
        yield url, stack


async def test_resume_after_a_gateway_restart_gets_exactly_the_missed_messages_then_live(
    settings: Settings, api: Api
) -> None:
    (ada, bo), event_id = await users_and_event(api, 2)
    async with gateway(settings) as (first_url, first), client(first_url, api, bo) as b:
        await b.subscribe(event_id)
        async with client(first_url, api, ada) as a:
            seen = [await a.send_message(event_id, f"before {i}") for i in range(3)]
        got = await b.collect(is_message(event_id), 3)
        assert [f["message"]["message_id"] for f in got] == [m["message_id"] for m in seen]
        cursor = got[-1]["message"]["cursor"]

        await first.aclose()  # the first gateway goes away under the connected client
        with pytest.raises(ConnectionClosed) as closed:
            await b.expect("never", wait=TIMEOUT)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1001

    async with gateway(settings) as (second_url, _), client(second_url, api, ada) as a:
        missed = [await a.send_message(event_id, f"while away {i}") for i in range(4)]
        async with client(second_url, api, bo) as b:
            subscribed = await b.subscribe(event_id, since=cursor)
            replayed = b.kept(is_message(event_id))  # the replay precedes `subscribed`
            assert [f["message"]["message_id"] for f in replayed] == [
                m["message_id"] for m in missed
            ]
            assert subscribed["cursor"] == missed[-1]["cursor"]
            b.frames.clear()
            live = [await a.send_message(event_id, f"live {i}") for i in range(2)]
            got = await b.collect(is_message(event_id), 2)
            assert [f["message"]["message_id"] for f in got] == [m["message_id"] for m in live]
            await b.drain()
            assert b.kept(is_message(event_id)) == []


async def test_shutdown_answers_every_send_in_flight_then_closes_with_1001(
    settings: Settings, api: Api
) -> None:
    (ada,), event_id = await users_and_event(api, 1)
    sends = [f"shutdown-{i}" for i in range(10)]
    answers: dict[str, Frame] = {}
    async with gateway(settings) as (url, stack), client(url, api, ada) as a:
        for ref in sends:
            await a.send(type="send", id=ref, event_id=event_id, client_msg_id=ref, text=ref)
        # The server has read every send once it answers this ping (frames are read in order).
        assert (await a.request(type="ping"))["type"] == "pong"
        await stack.aclose()
        for ref in sends:
            answers[ref] = await a.expect(answer_to(ref))
        with pytest.raises(ConnectionClosed) as closed:
            await a.expect("never", wait=TIMEOUT)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1001
    for answer in answers.values():
        assert answer["type"] == "ack" or answer["code"] == "unavailable", answer
    acked = {a["message_id"] for a in answers.values() if a["type"] == "ack"}

    # Everything acked is durable: another gateway on the same stores reads it back.
    response = await api.http.get(
        f"/v1/events/{event_id}/messages", params={"limit": 50}, headers=api.auth(ada)
    )
    assert response.status_code == 200, response.text
    stored = {m["message_id"] for m in response.json()["items"]}
    assert acked <= stored


def answer_to(ref: str) -> Callable[[Frame], bool]:
    """The direct answer to the request sent with ``id`` ``ref``."""
    return lambda frame: frame.get("ref") == ref
