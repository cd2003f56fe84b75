"""The AsyncAPI document at /v1/asyncapi.json equals the frames the gateway accepts and sends.

Both ways: every client frame type the gateway decodes is in the document and every one the
document lists is accepted (schema and decoder agree on each field); every frame builder's
output conforms to its message schema, and every server message in the document is built by
one; a live session over a real socket exercises every frame type and sends nothing the
document does not describe.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import typing
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, cast

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection

from chat.app import create_app
from chat.config import Settings
from chat.domain.messages import Message, SendAck
from chat.errors import FieldError, FrameError, ValidationFailed
from chat.gateway import client_frames, frames
from chat.gateway.asyncapi import CLIENT_EXAMPLES
from chat.gateway.client_frames import CLIENT_FRAMES
from chat.gateway.codes import CloseCode, ErrorCode
from chat.gateway.limits import Limits
from chat.gateway.server_frames import SERVER_FRAMES
from tests.api_client import Api
from tests.gateway.asyncapi_contract import FrameContract, asyncapi_spec_validator
from tests.gateway.live import Frame, WsClient, client, is_message, users_and_event
from tests.servers import run_server

Document = dict[str, Any]


@pytest.fixture(scope="module")
async def document(api: Api) -> Document:
    response = await api.http.get("/v1/asyncapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    doc: Document = response.json()
    return doc


@pytest.fixture(scope="module")
def contract(document: Document) -> FrameContract:
    return FrameContract(document)


def test_the_document_is_valid_asyncapi_3_0(document: Document, api: Api) -> None:
    validator = asyncapi_spec_validator()
    assert [e.message for e in validator.iter_errors(document)] == []
    assert document["asyncapi"] == "3.0.0"
    server = document["servers"]["gateway"]
    assert (server["protocol"], server["host"]) == ("ws", api.http.base_url.netloc.decode())
    assert document["channels"]["chat"]["address"] == "/v1/ws"


def test_the_specification_schema_rejects_a_broken_document(document: Document) -> None:
    broken = copy.deepcopy(document)
    del broken["operations"]["receive_send"]["action"]
    broken["channels"]["chat"]["adress"] = "/typo"
    assert len(list(asyncapi_spec_validator().iter_errors(broken))) >= 2


def test_every_error_and_close_code_is_listed_with_its_meaning(document: Document) -> None:
    channel = document["channels"]["chat"]
    errors = {entry["code"]: entry["description"] for entry in channel["x-error-codes"]}
    closes = {entry["code"]: entry["description"] for entry in channel["x-close-codes"]}
    assert set(errors) == {code.value for code in ErrorCode}
    assert set(closes) == {int(code) for code in CloseCode}
    assert all(errors.values()), "an error code without a docstring in chat/gateway/codes.py"
    assert all(closes.values()), "a close code without a docstring in chat/gateway/codes.py"
    assert "retry_after_ms" in errors["rate_limited"]  # the docstring, with its markup
    error_schema = document["components"]["schemas"]["ErrorFrame"]["properties"]["code"]
    assert set(error_schema["enum"]) == set(errors)


# --------------------------------------------------------------------------- client frames


def test_the_document_lists_exactly_the_client_frames_the_gateway_decodes(
    contract: FrameContract,
) -> None:
    assert contract.types("client") == set(CLIENT_FRAMES)
    assert set(CLIENT_EXAMPLES) == set(CLIENT_FRAMES), "every client frame needs an example"
    with pytest.raises(FrameError) as refused:
        client_frames.decode_client_frame(b'{"type": "not-in-the-document"}')
    assert refused.value.code is ErrorCode.UNKNOWN_TYPE


def _gateway_accepts(frame: dict[str, Any]) -> bool:
    try:
        client_frames.decode_client_frame(orjson.dumps(frame))
    except FrameError:
        return False
    return True


@pytest.mark.parametrize("kind", sorted(CLIENT_FRAMES))
def test_the_schema_and_the_gateway_agree_on_every_field_of_a_client_frame(
    kind: str, contract: FrameContract
) -> None:
    documented = contract.messages[f"client_{kind}"]["examples"]
    assert documented, f"client_{kind} has no example"
    for example in (e["payload"] for e in documented):
        assert contract.errors("client", example) == []
        assert _gateway_accepts(example), example
        schema = contract.document["components"]["schemas"][CLIENT_FRAMES[kind].__name__]
        variants: list[tuple[str, dict[str, Any]]] = [("an unknown field", {**example, "x": 1})]
        for name in schema.get("required", []):
            variants.append((f"without {name}", {k: v for k, v in example.items() if k != name}))
        for name in schema["properties"]:
            variants.append((f"{name} of the wrong type", {**example, name: True}))
        for what, frame in variants:
            schema_accepts = contract.errors("client", frame) == []
            assert schema_accepts == _gateway_accepts(frame), (what, frame)
            assert not schema_accepts, (what, frame)


# --------------------------------------------------------------------------- server frames

_MESSAGE_ID = uuid.uuid1()
_AT = datetime(2025, 3, 1, 9, 30, 0, 123000, tzinfo=UTC)
_MESSAGE = Message(
    event_id=7,
    message_id=_MESSAGE_ID,
    created_at=_AT,
    sender_id=5,
    sender_name="Bo",
    sender_profile_url=None,
    client_msg_id="bo-1",
    text="hi",
    message_type="text",
    attachments=("https://example.com/a.png",),
    reply_to=uuid.uuid1(),
    edited_at=_AT,
    is_deleted=False,
    metadata={"k": "v"},
)
_LIMITS = Limits.from_settings(Settings.model_construct())

BUILDER_SAMPLES: dict[str, list[Callable[[], bytes]]] = {
    "welcome": [lambda: frames.welcome(user_id=1, session_id="s", limits=_LIMITS, ref=1)],
    "refreshed": [lambda: frames.refreshed(user_id=1, session_id="s", expires_at=2e9, ref=2)],
    "subscribed": [
        lambda: frames.subscribed(7, None, ref="r"),
        lambda: frames.subscribed(7, "cursor"),
    ],
    "unsubscribed": [lambda: frames.unsubscribed(7, "resync")],
    "ack": [lambda: frames.ack("c", SendAck(7, _MESSAGE_ID, _AT, duplicate=True), ref=2)],
    "ok": [lambda: frames.ok("edit", ref=3)],
    "message": [lambda: frames.message(_MESSAGE)],
    "message_updated": [
        lambda: frames.message_updated(
            Message(**{**_message_fields(), "is_deleted": True, "reply_to": None})
        )
    ],
    "reaction": [
        lambda: frames.reaction(
            event_id=7, message_id=_MESSAGE_ID, user_id=1, emoji="👍", action="add", counts={}
        )
    ],
    "typing": [lambda: frames.typing(7, {3, 1})],
    "unread": [lambda: frames.unread(7, 0), lambda: frames.unread(7, 2, ref=4)],
    "presence": [lambda: frames.presence(7, [1, 2], joined=[2], left=[])],
    "history": [lambda: frames.history(7, [_MESSAGE], None, ref=5)],
    "error": [
        lambda: frames.error(ErrorCode.RATE_LIMITED, "slow down", ref=6, retry_after_ms=10),
        lambda: frames.error(ErrorCode.INVALID_VALUE, "bad", field="attachments/2"),
    ],
    "error_from": [
        lambda: frames.error_from(
            ValidationFailed("no", errors=[FieldError("text", "empty")]), ref=7
        )
    ],
    "refused": [
        lambda: frames.refused(
            FrameError(ErrorCode.WRONG_TYPE, "`event_id` must be an integer", ref=8, field="x")
        )
    ],
    "pong": [lambda: frames.pong(ref="p")],
    "ping": [frames.ping],
}
"""A call of every function of chat.gateway.frames that builds a server frame."""


def _message_fields() -> dict[str, Any]:
    return {name: getattr(_MESSAGE, name) for name in Message.__dataclass_fields__}


def _frame_builders() -> set[str]:
    return {
        name
        for name, function in inspect.getmembers(frames, inspect.isfunction)
        if function.__module__ == frames.__name__
        and not name.startswith("_")
        and typing.get_type_hints(function).get("return") is bytes
    }


def test_every_frame_builder_is_sampled() -> None:
    assert _frame_builders() == set(BUILDER_SAMPLES), (
        "a server frame builder was added or removed: declare its frame in "
        "chat/gateway/server_frames.py and sample it in BUILDER_SAMPLES"
    )


def test_every_built_server_frame_conforms_to_the_document_and_every_documented_one_is_built(
    contract: FrameContract,
) -> None:
    built: set[str] = set()
    for name, samples in BUILDER_SAMPLES.items():
        for sample in samples:
            frame = orjson.loads(sample())
            assert contract.errors("server", frame) == [], (name, frame)
            built.add(frame["type"])
    assert built == contract.types("server") == set(SERVER_FRAMES)


def test_every_documented_server_example_conforms(contract: FrameContract) -> None:
    for key, message in contract.messages.items():
        direction = key.split("_", 1)[0]
        for example in message["examples"]:
            assert contract.errors(direction, example["payload"]) == [], key


def test_the_schemas_refuse_a_field_the_gateway_does_not_send(contract: FrameContract) -> None:
    frame = orjson.loads(frames.subscribed(7, None))
    assert contract.errors("server", {**frame, "extra": 1})
    message = orjson.loads(frames.message(_MESSAGE))
    message["message"]["extra"] = 1
    assert contract.errors("server", message)


# --------------------------------------------------------------------------- live


class _Recorder:
    """Wraps a client connection: keeps every frame received and the type of every request."""

    def __init__(self, ws: ClientConnection, received: list[Frame], requests: dict[Any, str]):
        self._ws = ws
        self._received = received
        self._requests = requests

    async def recv(self) -> str | bytes:
        data = await self._ws.recv()
        self._received.append(orjson.loads(data))
        return data

    async def send(self, data: str) -> None:
        frame = orjson.loads(data)
        if isinstance(frame, dict) and "id" in frame:
            self._requests[frame["id"]] = frame.get("type", "")
        await self._ws.send(data)


@contextlib.asynccontextmanager
async def recording(
    url: str, api: Api, user_id: int, received: list[Frame], requests: dict[Any, str], **kw: Any
) -> AsyncIterator[WsClient]:
    async with client(url, api, user_id, **kw) as c:
        received.append(c.welcome)
        if "ref" in c.welcome:
            requests[c.welcome["ref"]] = "hello"
        c.ws = cast(ClientConnection, _Recorder(c.ws, received, requests))
        yield c


async def test_a_live_session_sends_every_documented_frame_and_nothing_else(
    settings: Settings, api: Api, contract: FrameContract
) -> None:
    received: list[Frame] = []
    requests: dict[Any, str] = {}
    fast_heartbeat = settings.model_copy(update={"ws_heartbeat_ms": 300})
    (ada, bo), event_id = await users_and_event(api, 2)
    async with (
        run_server(create_app(fast_heartbeat)) as url,
        recording(url, api, ada, received, requests, hello=True) as a,
        recording(url, api, bo, received, requests) as b,
    ):
        await b.subscribe(event_id)
        await a.subscribe(event_id)
        await a.expect("presence")
        await a.expect("unread")
        assert (await a.request(type="ping"))["type"] == "pong"
        refreshed = await a.request(type="refresh", token=api.tokens.mint(ada))
        assert refreshed["type"] == "refreshed", refreshed
        await a.send(type="pong")
        ack = await a.send_message(event_id, "hello")
        message_id = ack["message_id"]
        await b.expect(is_message(event_id))
        for request in (
            {"type": "edit", "message_id": message_id, "text": "hello!"},
            {"type": "react", "message_id": message_id, "emoji": "👍"},
            {"type": "unreact", "message_id": message_id, "emoji": "👍"},
            {"type": "read", "message_id": message_id},
            {"type": "history", "limit": 5},
            {"type": "delete", "message_id": message_id},
        ):
            answer = await a.request(event_id=event_id, **request)
            assert answer["type"] != "error", answer
        await b.expect("message_updated")
        await b.expect("reaction")
        assert (await b.request(type="typing", event_id=event_id, state="start"))["type"] == "ok"
        await a.expect("typing")
        assert (await a.request(type="send", event_id="7"))["type"] == "error"
        await a.expect("ping")
        async with httpx.AsyncClient(base_url=url) as http:  # this app tells its gateway
            removed = await http.delete(
                f"/v1/events/{event_id}/participants/{bo}", headers=api.auth(ada)
            )
        assert removed.status_code == 204, removed.text
        assert (await b.expect("unsubscribed"))["reason"] == "removed"
        await a.expect(lambda f: f["type"] == "presence" and f["left"] == [bo])
        assert (await a.request(type="unsubscribe", event_id=event_id))["type"] == "unsubscribed"

    for frame in received:
        assert contract.errors("server", frame) == [], frame
        if "ref" in frame:
            request_type = requests[frame["ref"]]
            assert frame["type"] in contract.reply_types(request_type), (request_type, frame)
    assert {f["type"] for f in received} == contract.types("server")
