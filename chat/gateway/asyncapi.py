"""The AsyncAPI 3.0 document of the WebSocket protocol, served at ``/v1/asyncapi.json``.

It is generated, as the OpenAPI document is from the REST routes, from the declarations the
gateway itself works with: the client frame models it validates every incoming frame with
(:data:`chat.gateway.client_frames.CLIENT_FRAMES`), the server frame models that describe what its
builders send (:data:`chat.gateway.server_frames.SERVER_FRAMES`), which answer each request
gets (:data:`~chat.gateway.server_frames.ANSWERS`), the error codes and the close codes. A test
keeps the document and the gateway equal both ways.

In AsyncAPI terms the document describes the server application: it *receives* the client
frames (each operation with its ``reply``) and *sends* the pushed frames, all on one channel,
the WebSocket at ``/v1/ws``. Messages are named ``client_<type>`` and ``server_<type>``
because some types (``ping``, ``pong``, ``typing``, ``history``) exist in both directions.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Mapping
from enum import Enum
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from chat import __version__
from chat.gateway.client_frames import CLIENT_FRAMES
from chat.gateway.codes import CloseCode, ErrorCode
from chat.gateway.server_frames import (
    ANSWERS,
    EXAMPLE_CURSOR,
    EXAMPLE_MESSAGE_ID,
    PUSHED,
    SERVER_FRAMES,
)

CHANNEL = "chat"
WS_PATH = "/v1/ws"
_SCHEMA_REF = "#/components/schemas/{model}"

CLIENT_EXAMPLES: Mapping[str, dict[str, Any]] = {
    "hello": {"type": "hello", "id": 1, "token": "eyJhbGciOiJIUzI1NiJ9.e30.c2ln"},
    "refresh": {"type": "refresh", "id": 13, "token": "eyJhbGciOiJIUzI1NiJ9.e30.c2ln"},
    "ping": {"type": "ping", "id": "p1"},
    "pong": {"type": "pong"},
    "subscribe": {"type": "subscribe", "id": 2, "event_id": 7, "since": EXAMPLE_CURSOR},
    "unsubscribe": {"type": "unsubscribe", "id": 8, "event_id": 7},
    "send": {"type": "send", "id": 4, "event_id": 7, "client_msg_id": "ada-1", "text": "yes!"},
    "edit": {
        "type": "edit",
        "id": 5,
        "event_id": 7,
        "message_id": EXAMPLE_MESSAGE_ID,
        "text": "yes, at 10:30",
    },
    "delete": {"type": "delete", "id": 6, "event_id": 7, "message_id": EXAMPLE_MESSAGE_ID},
    "react": {
        "type": "react",
        "id": 9,
        "event_id": 7,
        "message_id": EXAMPLE_MESSAGE_ID,
        "emoji": "👍",
    },
    "unreact": {
        "type": "unreact",
        "id": 10,
        "event_id": 7,
        "message_id": EXAMPLE_MESSAGE_ID,
        "emoji": "👍",
    },
    "typing": {"type": "typing", "id": 3, "event_id": 7, "state": "start"},
    "read": {"type": "read", "id": 11, "event_id": 7, "message_id": EXAMPLE_MESSAGE_ID},
    "history": {"type": "history", "id": 12, "event_id": 7, "before": EXAMPLE_CURSOR, "limit": 20},
}
"""One frame of each client type that the gateway accepts (a test decodes each)."""

_DESCRIPTION = """\
The timingle chat protocol: one WebSocket at `/v1/ws`, one JSON object per text frame, each
with a `type`. docs/protocol.md is the prose contract; docs/clients.md the client algorithm.

- Authenticate with `Authorization: Bearer <token>` on the upgrade request, or with `hello`
  as the first frame.
- Every client frame may carry an `id`; every client frame except `pong` gets exactly one
  direct answer (the operation's `reply`, or `error`) carrying that `id` back as `ref`.
- Unknown fields in a client frame are rejected (`unknown_field`). Clients should ignore
  fields and frame types they do not know: newer servers may add them.
- Sends are idempotent on `client_msg_id`; resume a subscription with `since` (a cursor).
- Error codes (the `code` of `error`) and close codes are listed with their meaning in the
  channel's `x-error-codes` and `x-close-codes`.
"""


def build_asyncapi(host: str, *, secure: bool = False) -> dict[str, Any]:
    """The document, with the server named by ``host`` (``host:port`` the client used)."""
    close_docs, error_docs = member_docs(CloseCode), member_docs(ErrorCode)
    _, schemas = models_json_schema(
        [(model, "validation") for model in (*CLIENT_FRAMES.values(), *SERVER_FRAMES.values())],
        ref_template=_SCHEMA_REF,
    )
    messages = {
        **{
            f"client_{kind}": _message(kind, model, "request", _client_examples(kind))
            for kind, model in CLIENT_FRAMES.items()
        },
        **{
            f"server_{kind}": _message(kind, model, "answer", _server_examples(model))
            for kind, model in SERVER_FRAMES.items()
        },
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "timingle chat WebSocket protocol",
            "version": __version__,
            "description": _DESCRIPTION,
        },
        "defaultContentType": "application/json",
        "servers": {
            "gateway": {
                "host": host,
                "protocol": "wss" if secure else "ws",
                "description": "This service's WebSocket gateway.",
                "security": [{"$ref": "#/components/securitySchemes/bearer"}],
            }
        },
        "channels": {
            CHANNEL: {
                "address": WS_PATH,
                "title": "Chat session",
                "description": "One authenticated client connection.",
                "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in messages},
                "bindings": {
                    "ws": {
                        "method": "GET",
                        "headers": {
                            "type": "object",
                            "properties": {
                                "Authorization": {
                                    "type": "string",
                                    "description": "`Bearer <token>`; or send `hello` instead.",
                                }
                            },
                        },
                        "bindingVersion": "0.1.0",
                    }
                },
                "x-close-codes": [
                    {"code": int(code), "name": code.name, "description": close_docs[code.name]}
                    for code in CloseCode
                ],
                "x-error-codes": [
                    {"code": code.value, "description": error_docs[code.name]} for code in ErrorCode
                ],
            }
        },
        "operations": {**_receive_operations(), **_send_operations()},
        "components": {
            "schemas": schemas["$defs"],
            "messages": messages,
            "correlationIds": {
                "request": {
                    "description": "The client's `id`, echoed as `ref` on the direct answer.",
                    "location": "$message.payload#/id",
                },
                "answer": {
                    "description": "The `id` of the client frame this frame answers.",
                    "location": "$message.payload#/ref",
                },
            },
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "The access token (signup returns one; `chat token` mints one).",
                }
            },
        },
    }


def _message(
    kind: str, model: type[BaseModel], correlation: str, examples: list[Any]
) -> dict[str, Any]:
    doc = " ".join((model.__doc__ or "").split()).replace("``", "`")
    message: dict[str, Any] = {
        "name": kind,
        "title": kind,
        "contentType": "application/json",
        "payload": {"$ref": _SCHEMA_REF.format(model=model.__name__)},
        "correlationId": {"$ref": f"#/components/correlationIds/{correlation}"},
        "examples": [{"name": kind, "payload": payload} for payload in examples],
    }
    if doc:
        message["summary"] = doc
    return message


def _client_examples(kind: str) -> list[Any]:
    return [CLIENT_EXAMPLES[kind]] if kind in CLIENT_EXAMPLES else []


def _server_examples(model: type[BaseModel]) -> list[Any]:
    extra = model.model_config.get("json_schema_extra")
    examples = extra.get("examples") if isinstance(extra, dict) else None
    return list(examples) if isinstance(examples, list) else []


def _ref(direction: str, kind: str) -> dict[str, str]:
    return {"$ref": f"#/channels/{CHANNEL}/messages/{direction}_{kind}"}


def _receive_operations() -> dict[str, Any]:
    operations: dict[str, Any] = {}
    for kind in CLIENT_FRAMES:
        operation: dict[str, Any] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{CHANNEL}"},
            "title": f"Client sends {kind}",
            "messages": [_ref("client", kind)],
        }
        answers = ANSWERS.get(kind, ())
        if kind != "pong":
            operation["reply"] = {
                "channel": {"$ref": f"#/channels/{CHANNEL}"},
                "messages": [_ref("server", answer) for answer in (*answers, "error")],
            }
        operations[f"receive_{kind}"] = operation
    return operations


def _send_operations() -> dict[str, Any]:
    return {
        f"send_{kind}": {
            "action": "send",
            "channel": {"$ref": f"#/channels/{CHANNEL}"},
            "title": f"Server pushes {kind}",
            "messages": [_ref("server", kind)],
        }
        for kind in PUSHED
    }


@cache
def member_docs(enum: type[Enum]) -> dict[str, str]:
    """The docstring under each member of ``enum`` (read from its source with ``ast``): the
    meaning of each error and close code, written once beside the code itself."""
    docs = {member.name: "" for member in enum}
    body = ast.parse(inspect.getsource(enum)).body[0]
    assert isinstance(body, ast.ClassDef)
    for statement, following in zip(body.body, body.body[1:], strict=False):
        if (
            isinstance(statement, ast.Assign)
            and isinstance(statement.targets[0], ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            text = " ".join(following.value.value.split())
            docs[statement.targets[0].id] = text.replace("``", "`")
    return docs
