"""Helpers for the live gateway tests: a real ``websockets`` client that waits for frames.

Nothing here sleeps and hopes: :meth:`WsClient.expect` waits (with a timeout) for the first
frame matching a condition, keeping the frames it passed over for later expectations.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.api.events_helpers import create_event
from tests.api_client import Api
from tests.polling import until

Frame = dict[str, Any]
TIMEOUT = 10.0

UNLIMITED_RATES: dict[str, Any] = {
    "ws_frame_rate_per_second": 100000.0,
    "ws_frame_burst": 100000,
    "ws_send_rate_per_second": 100000.0,
    "ws_send_burst": 100000,
    "ws_user_send_rate_per_second": 100000.0,
    "ws_user_send_burst": 100000,
}
"""Settings that take every rate limit out of the way of a test about something else."""

_ids = itertools.count(1)


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://", 1) + "/v1/ws"


class WsClient:
    """One connection; ``frames`` holds received frames not yet claimed by an expectation."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[Frame] = []
        self.welcome: Frame = {}

    async def send(self, **frame: Any) -> None:
        await self.ws.send(orjson.dumps(frame).decode())

    async def request(self, **frame: Any) -> Frame:
        """Send a frame with a fresh ``id``; the direct answer (``ref`` == id)."""
        frame_id = f"r{next(_ids)}"
        await self.send(id=frame_id, **frame)
        return await self.expect(lambda f: f.get("ref") == frame_id)

    async def expect(
        self, condition: Callable[[Frame], bool] | str, wait: float = TIMEOUT
    ) -> Frame:
        """The first frame (kept or new) matching ``condition`` (a predicate or a type)."""
        match = condition if callable(condition) else _of_type(condition)
        for i, frame in enumerate(self.frames):
            if match(frame):
                return self.frames.pop(i)
        async with asyncio.timeout(wait):
            while True:
                received: Frame = orjson.loads(await self.ws.recv())
                if match(received):
                    return received
                self.frames.append(received)

    async def close_code(self, wait: float = TIMEOUT) -> int:
        """Read until the server closes the connection; the code of its close frame."""
        with pytest.raises(ConnectionClosed) as closed:
            await self._keep_everything(wait)
        received = closed.value.rcvd
        assert received is not None, "the connection ended without a close frame"
        return received.code

    async def _keep_everything(self, wait: float) -> None:
        async with asyncio.timeout(wait):
            while True:
                self.frames.append(orjson.loads(await self.ws.recv()))

    async def collect(self, condition: Callable[[Frame], bool], count: int) -> list[Frame]:
        return [await self.expect(condition) for _ in range(count)]

    def kept(self, condition: Callable[[Frame], bool]) -> list[Frame]:
        return [f for f in self.frames if condition(f)]

    async def drain(self, quiet: float = 0.3) -> None:
        """Receive until nothing arrives for ``quiet`` seconds (to prove an absence)."""
        with contextlib.suppress(TimeoutError):
            while True:
                async with asyncio.timeout(quiet):
                    self.frames.append(orjson.loads(await self.ws.recv()))

    async def subscribe(self, event_id: int, since: str | None = None) -> Frame:
        frame: dict[str, Any] = {"type": "subscribe", "event_id": event_id}
        if since is not None:
            frame["since"] = since
        answer = await self.request(**frame)
        assert answer["type"] == "subscribed", answer
        return answer

    async def request_when_ready(self, kind: str, *, within: float = 30.0, **frame: Any) -> Frame:
        """Send ``frame`` until it is answered with ``kind`` rather than ``error unavailable``
        (a node of several that is still joining the others, or cut off from the bus), as
        docs/protocol.md tells clients to."""

        async def attempt() -> Frame | None:
            answer = await self.request(**frame)
            if answer["type"] == kind:
                return answer
            assert answer.get("code") == "unavailable", answer
            return None

        found: Frame = await until(attempt, within=within, interval=0.2, what=f"{kind} {frame}")
        return found

    async def subscribe_when_ready(self, event_id: int, within: float = 30.0) -> Frame:
        return await self.request_when_ready(
            "subscribed", within=within, type="subscribe", event_id=event_id
        )

    async def send_message(self, event_id: int, text: str, **fields: Any) -> Frame:
        cmid = fields.pop("client_msg_id", None) or f"m-{secrets.token_hex(6)}"
        answer = await self.request(
            type="send", event_id=event_id, client_msg_id=cmid, text=text, **fields
        )
        assert answer["type"] == "ack", answer
        return answer


def _of_type(kind: str) -> Callable[[Frame], bool]:
    return lambda frame: frame.get("type") == kind


def answer_to(ref: str | int) -> Callable[[Frame], bool]:
    """The direct answer to the request sent with ``id`` ``ref``."""
    return lambda frame: frame.get("ref") == ref


def is_message(event_id: int) -> Callable[[Frame], bool]:
    return lambda f: f.get("type") == "message" and f["event_id"] == event_id


@contextlib.asynccontextmanager
async def client(
    base_url: str,
    api: Api,
    user_id: int,
    *,
    hello: bool = False,
    **connect_options: Any,
) -> AsyncIterator[WsClient]:
    """A connected, authenticated client (token in the header, or in ``hello``)."""
    token = api.tokens.mint(user_id)
    headers = {} if hello else {"Authorization": f"Bearer {token}"}
    async with connect(
        ws_url(base_url), additional_headers=headers, open_timeout=TIMEOUT, **connect_options
    ) as ws:
        c = WsClient(ws)
        if hello:
            c.welcome = await c.request(type="hello", token=token)
        else:
            c.welcome = await c.expect("welcome")
        assert c.welcome["type"] == "welcome", c.welcome
        assert c.welcome["user_id"] == user_id
        yield c


async def users_and_event(api: Api, count: int) -> tuple[list[int], int]:
    """``count`` new users; the first creates an event with all of them taking part."""
    users = [(await api.create_user())["id"] for _ in range(count)]
    event = await create_event(api, users[0], participants=users[1:])
    return users, int(event["id"])
