"""What the client hands to the application: typed server frames and connection events.

Every server frame is parsed into its declaration in :mod:`chat.gateway.server_frames` (the
models the AsyncAPI document is generated from), ignoring fields this version does not know.
A frame of an unknown ``type`` - or one that does not match its declaration - becomes
:class:`UnknownFrame` rather than an exception: a newer server may send frames an older
client has never heard of, and the client must keep working.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from chat.gateway.server_frames import SERVER_FRAMES, ServerFrame

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UnknownFrame:
    """A frame this client cannot interpret (a newer server's, or a malformed one)."""

    raw: Any
    reason: str


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection ended; the client reconnects after ``reconnect_in`` seconds (None: it
    stopped for good, e.g. closed by the application or refused authentication)."""

    close_code: int | None
    reason: str
    reconnect_in: float | None


Event = ServerFrame | UnknownFrame | Disconnected
"""Everything :meth:`chat.client.ChatClient.events` yields."""


def parse_frame(text: str | bytes) -> ServerFrame | UnknownFrame:
    """One received text frame as its typed model, or :class:`UnknownFrame`."""
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return UnknownFrame(text, f"not JSON: {exc}")
    if not isinstance(raw, dict):
        return UnknownFrame(raw, "not a JSON object")
    model = SERVER_FRAMES.get(raw.get("type"))  # type: ignore[arg-type]
    if model is None:
        return UnknownFrame(raw, f"unknown frame type {raw.get('type')!r}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        log.warning("a %r frame does not match its declaration: %s", raw.get("type"), exc)
        return UnknownFrame(raw, f"does not match the {raw.get('type')!r} frame: {exc}")
