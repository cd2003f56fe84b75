"""Live gateway limits that need a stalled or silent client: slow consumers, heartbeats, idling.

Each runs against its own app on the session's PostgreSQL and CQL server, tuned so the limit is
reached in well under a second (a 16-frame outgoing queue; 100 ms heartbeats).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from websockets.exceptions import ConnectionClosed

from chat.app import create_app
from chat.config import Settings
from tests.api_client import Api
from tests.gateway.live import (
    TIMEOUT,
    UNLIMITED_RATES,
    Frame,
    WsClient,
    answer_to,
    client,
    is_message,
    users_and_event,
)
from tests.servers import run_server

FLOOD = 150
"""Messages published at the stalled client: far more than the bounded socket buffers hold
(about 200 KiB, roughly 60 of these messages) plus the 16-frame queue."""
FLOOD_TEXT = "x" * 3000
WINDOW = 25
"""Sends in flight at once while flooding (the flooder reads its acks between windows)."""


@pytest.fixture(scope="module")
async def small_queue_url(settings: Settings) -> AsyncIterator[str]:
    """An app whose clients may fall only 16 frames behind, with no practical write limit."""
    tuned = settings.model_copy(
        update={
            "ws_outgoing_queue_size": 16,
            **UNLIMITED_RATES,
        }
    )
    async with run_server(create_app(tuned)) as url:
        yield url


@pytest.fixture(scope="module")
async def fast_heartbeat_url(settings: Settings) -> AsyncIterator[str]:
    """An app that pings every 100 ms and closes clients silent for 400 ms."""
    tuned = settings.model_copy(update={"ws_heartbeat_ms": 100, "ws_idle_timeout_ms": 400})
    async with run_server(create_app(tuned)) as url:
        yield url


async def _tiny_receive_buffer_socket(url: str) -> socket.socket:
    """A connected socket whose kernel receive buffer is a few KiB (set before connecting,
    which also stops Linux from growing it), so a client that does not read holds back the
    server almost at once instead of absorbing megabytes."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
    return sock


async def _flood(sender: WsClient, event_id: int, count: int) -> list[str]:
    """Send ``count`` messages, ``WINDOW`` at a time; their ids in send order (acked)."""
    acked: list[str] = []
    for start in range(0, count, WINDOW):
        refs = [f"flood-{n}" for n in range(start, min(start + WINDOW, count))]
        for ref in refs:
            await sender.send(
                type="send", id=ref, event_id=event_id, client_msg_id=ref, text=FLOOD_TEXT
            )
        for ref in refs:
            answer = await sender.expect(answer_to(ref))
            assert answer["type"] == "ack", answer
            acked.append(answer["message_id"])
    return acked


async def test_a_client_that_stops_reading_is_closed_with_4008_and_resumes_from_its_cursor(
    small_queue_url: str, api: Api
) -> None:
    (ada, bo), event_id = await users_and_event(api, 2)
    sock = await _tiny_receive_buffer_socket(small_queue_url)
    async with (
        client(small_queue_url, api, ada) as sender,
        # max_queue=1: the client library stops reading the socket once a frame waits for us;
        # no compression, so that the flood's bytes really fill the buffers.
        client(small_queue_url, api, bo, sock=sock, max_queue=1, compression=None) as slow,
    ):
        subscribed = await slow.subscribe(event_id)
        # The flooder is not subscribed: it only reads its acks, so only `slow` falls behind.
        flood = await _flood(sender, event_id, FLOOD)

        # Every message has been published (publishing precedes the ack): `slow` overflowed.
        # Now read what the socket buffers held, then the close frame.
        with pytest.raises(ConnectionClosed) as closed:
            await slow.expect("never", wait=TIMEOUT)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4008
        received = [f["message"]["message_id"] for f in slow.kept(is_message(event_id))]
        assert len(received) < FLOOD
        assert received == flood[: len(received)]  # a prefix, in order: nothing skipped
        cursor = _last_cursor(slow.frames, subscribed)

        # The sender was never held back by the slow client, and is still served.
        assert (await sender.request(type="ping"))["type"] == "pong"

    async with client(small_queue_url, api, bo) as again:
        await again.subscribe(event_id, since=cursor)
        replayed = await again.collect(is_message(event_id), FLOOD - len(received))
        assert [f["message"]["message_id"] for f in replayed] == flood[len(received) :]
        async with client(small_queue_url, api, ada) as sender:
            live = await sender.send_message(event_id, "after the resume")
        got = await again.expect(is_message(event_id))
        assert got["message"]["message_id"] == live["message_id"]
        await again.drain()
        assert again.kept(is_message(event_id)) == []


def _last_cursor(frames: list[Frame], subscribed: Frame) -> str | None:
    cursor: str | None = subscribed["cursor"]
    for frame in frames:
        if frame.get("type") == "message":
            cursor = frame["message"]["cursor"]
    return cursor


async def test_the_server_pings_and_closes_a_silent_client_with_4408(
    fast_heartbeat_url: str, api: Api
) -> None:
    (ada,), _ = await users_and_event(api, 1)
    async with client(fast_heartbeat_url, api, ada) as silent:
        assert silent.welcome["heartbeat_ms"] == 100
        assert silent.welcome["limits"]["idle_timeout_ms"] == 400
        assert await silent.expect("ping", wait=2)
        with pytest.raises(ConnectionClosed) as closed:
            await silent.expect("never", wait=TIMEOUT)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4408
    assert len(silent.kept(lambda f: f["type"] == "ping")) >= 2


async def test_a_client_answering_pings_stays_connected_past_the_idle_timeout(
    fast_heartbeat_url: str, api: Api
) -> None:
    (ada,), _ = await users_and_event(api, 1)
    async with client(fast_heartbeat_url, api, ada) as lively:
        loop = asyncio.get_running_loop()
        until = loop.time() + 1.2  # three idle timeouts
        pings = 0
        while loop.time() < until:
            assert await lively.expect("ping", wait=2)
            await lively.send(type="pong")
            pings += 1
        assert pings >= 5
        assert (await lively.request(type="ping"))["type"] == "pong"
