"""Server frame payloads for the client's I/O-free tests."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from chat.config import Settings
from chat.domain.messages import encode_cursor
from chat.gateway.limits import Limits

LIMITS = dataclasses.replace(
    Limits.from_settings(Settings.model_construct()),
    max_frame_bytes=2000,
    send_rate_per_second=10.0,
    send_burst=3,
).as_dict()
"""``welcome.limits``: small frames, a burst of 3 writes, 10 writes per second."""


def message_fields(event_id: int, text: str, message_id: uuid.UUID | None = None) -> dict[str, Any]:
    """A ``message`` object as the gateway sends it."""
    message_id = message_id or uuid.uuid1()
    return {
        "event_id": event_id,
        "message_id": str(message_id),
        "cursor": encode_cursor(message_id),
        "created_at": "2025-03-01T09:30:00+00:00",
        "sender_id": 2,
        "sender_name": None,
        "sender_profile_url": None,
        "client_msg_id": text,
        "message_type": "text",
        "text": text,
        "attachments": [],
        "metadata": {},
        "reply_to": None,
        "edited_at": None,
        "is_deleted": False,
    }
