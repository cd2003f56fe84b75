"""Graceful drain of a real ``chat serve`` process on SIGTERM, with a send burst under way.

What a rolling deploy relies on: the process stops accepting, answers every send it had read
(ack or ``error unavailable``), closes each WebSocket with 1001 so clients reconnect
elsewhere, flushes the store, and exits 0 within ``CHAT_DRAIN_SECONDS``. Every acked message
is then readable from another node.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path

from websockets.exceptions import ConnectionClosed

from chat.config import Settings
from tests.api_client import Api
from tests.gateway.live import TIMEOUT, Frame, WsClient, client, users_and_event
from tests.ops.processes import serve_process

DRAIN_SECONDS = 8
CLIENTS = 3
SENDS_READ_BEFORE_SIGTERM = 15
SENDS_RACING_SIGTERM = 10


async def burst(ws: WsClient, event_id: int, prefix: str, count: int) -> list[str]:
    """Send ``count`` messages without waiting; the refs sent before the socket closed."""
    sent = []
    for i in range(count):
        ref = f"{prefix}-{i}"
        try:
            await ws.send(type="send", id=ref, event_id=event_id, client_msg_id=ref, text=ref)
        except ConnectionClosed:
            break
        sent.append(ref)
    return sent


async def answers_until_closed(ws: WsClient) -> tuple[dict[str, Frame], int | None]:
    """Every answer (by ref) the client gets before the server closes; and the close code."""
    answers: dict[str, Frame] = {}
    for frame in ws.frames:
        if "ref" in frame:
            answers[frame["ref"]] = frame
    try:
        while True:
            frame = await ws.expect(lambda f: "ref" in f, wait=DRAIN_SECONDS + TIMEOUT)
            answers[frame["ref"]] = frame
    except ConnectionClosed as closed:
        return answers, closed.rcvd.code if closed.rcvd is not None else None


async def test_sigterm_drains_answers_every_read_send_closes_1001_and_exits_0_in_time(
    settings: Settings, api: Api, tmp_path: Path
) -> None:
    users, event_id = await users_and_event(api, CLIENTS)
    async with (
        serve_process(settings, tmp_path, CHAT_DRAIN_SECONDS=str(DRAIN_SECONDS)) as served,
        contextlib.AsyncExitStack() as stack,
    ):
        clients = [await stack.enter_async_context(client(served.url, api, u)) for u in users]
        read_before: dict[int, list[str]] = {}
        for n, ws in enumerate(clients):
            read_before[n] = await burst(ws, event_id, f"c{n}-early", SENDS_READ_BEFORE_SIGTERM)
            # Frames are read in order: once this pong arrives every send above was read.
            pong = await ws.request(type="ping")
            assert pong["type"] == "pong"
        racing = [
            asyncio.create_task(burst(ws, event_id, f"c{n}-late", SENDS_RACING_SIGTERM))
            for n, ws in enumerate(clients)
        ]
        signalled = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        await asyncio.gather(*racing)
        results = await asyncio.gather(*(answers_until_closed(ws) for ws in clients))
        code = await served.wait_exit(DRAIN_SECONDS + 10)
        elapsed = time.monotonic() - signalled

    assert code == 0, served.log_text()[-3000:]
    assert elapsed < DRAIN_SECONDS + 10, elapsed
    acked: set[str] = set()
    for n, (answers, close_code) in enumerate(results):
        assert close_code == 1001, (n, close_code)
        for ref in read_before[n]:
            assert ref in answers, f"send {ref} was read before SIGTERM but never answered"
        for ref, answer in answers.items():
            if answer["type"] == "ack":
                acked.add(answer["message_id"])
            elif ref.startswith(f"c{n}-"):
                assert answer["type"] == "error", answer
                assert answer["code"] == "unavailable", answer
    assert acked, "the burst should have had acks before the drain"

    # Another node (the session's app on the same stores) reads back every acked message.
    stored: set[str] = set()
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 100}
        if cursor is not None:
            params["before"] = cursor
        response = await api.http.get(
            f"/v1/events/{event_id}/messages", params=params, headers=api.auth(users[0])
        )
        assert response.status_code == 200, response.text
        body = response.json()
        stored.update(m["message_id"] for m in body["items"])
        cursor = body.get("next_cursor")
        if not cursor:
            break
    assert acked <= stored, acked - stored
