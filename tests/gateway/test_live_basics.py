"""Live gateway: every frame type over a real socket, authentication and membership."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chat.app import create_app
from chat.config import Settings
from tests.api_client import Api
from tests.gateway.live import TIMEOUT, WsClient, client, is_message, users_and_event, ws_url
from tests.servers import run_server


async def test_header_auth_then_every_frame_type(base_url: str, api: Api) -> None:
    (ada, bo), event_id = await users_and_event(api, 2)
    async with client(base_url, api, ada) as a, client(base_url, api, bo, hello=True) as b:
        assert a.welcome["limits"]["outgoing_queue_size"] > 0
        assert (await a.request(type="ping"))["type"] == "pong"
        sub_a = await a.subscribe(event_id)
        assert isinstance(sub_a["cursor"], str)  # the event's beginning: no message yet
        await b.subscribe(event_id)
        presence = await a.expect(lambda f: f["type"] == "presence" and f["joined"] == [bo])
        assert presence["user_ids"] == sorted([ada, bo])

        ack = await a.send_message(event_id, "hello Bo")
        assert ack["duplicate"] is False
        assert ack["event_id"] == event_id
        got = await b.expect(is_message(event_id))
        assert got["message"]["message_id"] == ack["message_id"]
        assert got["message"]["text"] == "hello Bo"
        assert got["message"]["sender_id"] == ada
        unread = await b.expect(lambda f: f["type"] == "unread" and f["count"] == 1)
        assert unread["event_id"] == event_id

        edit = await a.request(
            type="edit", event_id=event_id, message_id=ack["message_id"], text="hi Bo"
        )
        assert edit == {"type": "ok", "op": "edit", "ref": edit["ref"]}
        updated = await b.expect("message_updated")
        assert updated["message"]["text"] == "hi Bo"
        assert updated["message"]["edited_at"]

        react = await b.request(
            type="react", event_id=event_id, message_id=ack["message_id"], emoji="👍"
        )
        assert react["op"] == "react"
        reaction = await a.expect("reaction")
        assert reaction["counts"] == {"👍": 1}
        assert reaction["action"] == "add"
        await b.request(type="unreact", event_id=event_id, message_id=ack["message_id"], emoji="👍")
        reaction = await a.expect(lambda f: f["type"] == "reaction" and f["action"] == "remove")
        assert reaction["counts"] == {}

        await a.request(type="typing", event_id=event_id, state="start")
        assert (await b.expect("typing"))["user_ids"] == [ada]
        await a.request(type="typing", event_id=event_id, state="stop")
        assert (await b.expect("typing"))["user_ids"] == []

        history = await b.request(type="history", event_id=event_id, limit=10)
        assert [m["message_id"] for m in history["messages"]] == [ack["message_id"]]
        after = await b.request(type="history", event_id=event_id, after=ack["cursor"])
        assert after["messages"] == []
        everything = await b.request(type="history", event_id=event_id, after=sub_a["cursor"])
        assert [m["message_id"] for m in everything["messages"]] == [ack["message_id"]]

        read = await b.request(type="read", event_id=event_id, message_id=ack["message_id"])
        assert read["type"] == "unread"
        assert read["count"] == 0

        delete = await a.request(type="delete", event_id=event_id, message_id=ack["message_id"])
        assert delete["op"] == "delete"
        deleted = await b.expect(
            lambda f: f["type"] == "message_updated" and f["message"]["is_deleted"]
        )
        assert deleted["message"]["text"] == ""

        answer = await b.request(type="unsubscribe", event_id=event_id)
        assert answer["type"] == "unsubscribed"
        assert answer["reason"] == "requested"
        left = await a.expect(lambda f: f["type"] == "presence" and f["left"] == [bo])
        assert left["user_ids"] == [ada]


async def test_bad_token_is_refused_with_4401(base_url: str) -> None:
    async with connect(ws_url(base_url), additional_headers={"Authorization": "Bearer nope"}) as ws:
        c = WsClient(ws)
        error = await c.expect("error")
        assert error["code"] == "unauthorized"
        with pytest.raises(ConnectionClosed) as closed:
            await c.expect("never")
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


async def test_hello_with_bad_token_and_frames_before_auth(base_url: str) -> None:
    async with connect(ws_url(base_url)) as ws:
        c = WsClient(ws)
        early = await c.request(type="subscribe", event_id=1)
        assert early["code"] == "not_authenticated"
        error = await c.request(type="hello", token="bad")
        assert error["code"] == "unauthorized"
        with pytest.raises(ConnectionClosed) as closed:
            await c.expect("never")
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


async def test_non_participant_gets_not_found_and_never_a_frame(base_url: str, api: Api) -> None:
    (ada,), event_id = await users_and_event(api, 1)
    stranger = (await api.create_user())["id"]
    async with client(base_url, api, ada) as a, client(base_url, api, stranger) as s:
        await a.subscribe(event_id)
        refused = await s.request(type="subscribe", event_id=event_id)
        assert refused["type"] == "error"
        assert refused["code"] == "not_found"
        for frame in (
            {"type": "send", "event_id": event_id, "client_msg_id": "x1", "text": "hi"},
            {"type": "typing", "event_id": event_id, "state": "start"},
            {"type": "history", "event_id": event_id},
        ):
            assert (await s.request(**frame))["code"] == "not_found"
        await a.send_message(event_id, "private")
        await a.request(type="typing", event_id=event_id, state="start")
        await s.drain()
        assert [f for f in s.frames if f.get("event_id") == event_id and "ref" not in f] == []


async def test_removed_participant_loses_the_subscription_at_once(base_url: str, api: Api) -> None:
    (ada, bo), event_id = await users_and_event(api, 2)
    async with client(base_url, api, ada) as a, client(base_url, api, bo) as b:
        await a.subscribe(event_id)
        await b.subscribe(event_id)
        response = await api.http.delete(
            f"/v1/events/{event_id}/participants/{bo}", headers=api.auth(ada)
        )
        assert response.status_code == 204, response.text
        ended = await b.expect("unsubscribed")
        assert ended == {"type": "unsubscribed", "event_id": event_id, "reason": "removed"}
        await a.send_message(event_id, "after removal")
        await b.drain()
        assert b.kept(is_message(event_id)) == []
        again = await b.request(type="subscribe", event_id=event_id)
        assert again["code"] == "not_found"


async def test_malformed_frames_get_errors_and_the_connection_stays_usable(
    base_url: str, api: Api
) -> None:
    (ada,), event_id = await users_and_event(api, 1)
    async with client(base_url, api, ada) as a:
        await a.ws.send("{not json")
        assert (await a.expect("error"))["code"] == "malformed_json"
        await a.ws.send(b"\x00binary")
        assert (await a.expect("error"))["code"] == "binary_not_supported"
        assert (await a.request(type="nope"))["code"] == "unknown_type"
        wrong = await a.request(type="subscribe", event_id="7")
        assert wrong["code"] == "wrong_type"
        assert wrong["field"] == "event_id"
        assert (await a.request(type="ping", extra=1))["code"] == "unknown_field"
        await a.subscribe(event_id)
        await a.send_message(event_id, "still fine")


async def test_rate_limit_answers_retry_after(base_url: str, api: Api) -> None:
    (ada,), event_id = await users_and_event(api, 1)
    async with client(base_url, api, ada) as a:
        burst = a.welcome["limits"]["send_burst"]
        for i in range(burst + 1):
            await a.send(type="send", id=i, event_id=event_id, client_msg_id=f"rl-{i}", text=f"{i}")
        answers = [await a.expect(_ref(i)) for i in range(burst + 1)]
        limited = [f for f in answers if f["type"] == "error"]
        assert limited
        assert limited[0]["code"] == "rate_limited"
        assert limited[0]["retry_after_ms"] > 0
        assert (await a.request(type="ping"))["type"] == "pong"


async def test_big_frame_closes_with_1009(base_url: str, api: Api) -> None:
    (ada,), _ = await users_and_event(api, 1)
    async with client(base_url, api, ada) as a:
        limit = a.welcome["limits"]["max_frame_bytes"]
        await a.ws.send('{"type": "ping", "pad": "' + "x" * limit + '"}')
        with pytest.raises(ConnectionClosed) as closed:
            await a.expect("never", wait=TIMEOUT)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


def _ref(ref: int) -> Callable[[dict[str, Any]], bool]:
    return lambda frame: frame.get("ref") == ref


async def test_a_websocket_not_served_by_the_gateway_protocol_is_refused(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The gateway has one I/O path, its own uvicorn protocol: under uvicorn's stock one the
    handshake is refused (HTTP 403) and the log says which protocol to run."""
    async with run_server(create_app(settings), ws="websockets-sansio") as url:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url(url), open_timeout=TIMEOUT):
                pass
    assert refused.value.response.status_code == 403
    assert "GatewayWebSocketProtocol" in caplog.text
