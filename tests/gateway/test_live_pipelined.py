"""Frames a client sends back to back, before any answer, are all served, in order.

The gateway takes received frames straight from its uvicorn protocol (no ASGI queue): frames
that arrive right after the upgrade — possibly before the connection registered for them —
and frames that share one TCP segment must each be answered exactly once, in the order sent.
"""

from __future__ import annotations

from typing import Any

import orjson
from websockets.asyncio.client import connect

from tests.api_client import Api
from tests.gateway.live import TIMEOUT, WsClient, users_and_event, ws_url


async def test_frames_sent_at_once_after_connecting_are_answered_in_order(
    base_url: str, api: Api
) -> None:
    (ada, _bo), event_id = await users_and_event(api, 2)
    token = api.tokens.mint(ada)
    sends = [f"m{i}" for i in range(20)]
    frames: list[dict[str, Any]] = [
        {"type": "subscribe", "id": "s", "event_id": event_id},
        *(
            {
                "type": "send",
                "id": ref,
                "event_id": event_id,
                "client_msg_id": f"pipelined-{ref}",
                "text": f"text {ref}",
            }
            for ref in sends
        ),
        {"type": "ping", "id": "p1"},
    ]
    async with connect(ws_url(base_url), open_timeout=TIMEOUT) as ws:
        c = WsClient(ws)
        # Sent the moment the upgrade completes, before the connection may have registered.
        await c.send(type="ping", id="p0")
        await c.send(type="hello", id="h", token=token)
        assert (await c.expect(lambda f: "ref" in f))["ref"] == "p0"
        assert (await c.expect(lambda f: "ref" in f))["type"] == "welcome"
        for frame in frames:  # no await for any answer: they leave back to back
            await ws.send(orjson.dumps(frame).decode())
        answers = [await c.expect(lambda f: "ref" in f) for _ in frames]
        # The ping is answered by the session at once; the worker runs the rest in order.
        assert [a["ref"] for a in answers if a["type"] == "pong"] == ["p1"]
        commands = [(a["ref"], a["type"]) for a in answers if a["type"] != "pong"]
        assert commands == [("s", "subscribed")] + [(ref, "ack") for ref in sends]
        messages = [await c.expect("message") for _ in sends]
        assert [m["message"]["client_msg_id"] for m in messages] == [
            f"pipelined-{ref}" for ref in sends
        ]
        await c.drain()
        assert not [f for f in c.frames if f["type"] in ("ack", "message", "error")]
