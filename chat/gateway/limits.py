"""The per-connection limits a client is told in ``welcome.limits``, built once from settings.

The client frame schema (:mod:`chat.gateway.client_frames`) is static and shared by every
connection and by the docs; the limits that depend on settings are checked against a
:class:`Limits` (:func:`chat.gateway.client_frames.check_limits`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pydantic import ConfigDict, with_config

from chat.config import Settings

HISTORY_DEFAULT_LIMIT = 50
HISTORY_MAX_LIMIT = 100


@with_config(ConfigDict(json_schema_extra={"additionalProperties": False}))
@dataclass(frozen=True, slots=True)
class Limits:
    """Every per-connection limit, as the client sees it in ``welcome.limits``."""

    max_frame_bytes: int
    send_rate_per_second: float
    send_burst: int
    max_subscriptions: int
    max_text_chars: int
    max_attachments: int
    max_attachment_bytes: int
    heartbeat_ms: int
    idle_timeout_ms: int
    auth_timeout_ms: int
    outgoing_queue_size: int
    outgoing_queue_bytes: int
    write_stall_ms: int
    frame_rate_per_second: float
    frame_burst: int
    max_connections_per_user: int
    user_send_rate_per_second: float
    user_send_burst: int
    history_max_limit: int = HISTORY_MAX_LIMIT

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_frame_bytes=settings.ws_max_frame_bytes,
            send_rate_per_second=settings.ws_send_rate_per_second,
            send_burst=settings.ws_send_burst,
            max_subscriptions=settings.ws_max_subscriptions,
            max_text_chars=settings.ws_max_text_chars,
            max_attachments=settings.ws_max_attachments,
            max_attachment_bytes=settings.ws_max_attachment_bytes,
            heartbeat_ms=settings.ws_heartbeat_ms,
            idle_timeout_ms=settings.ws_idle_timeout_ms,
            auth_timeout_ms=settings.ws_auth_timeout_ms,
            outgoing_queue_size=settings.ws_outgoing_queue_size,
            outgoing_queue_bytes=settings.ws_outgoing_queue_bytes,
            write_stall_ms=settings.ws_write_stall_ms,
            frame_rate_per_second=settings.ws_frame_rate_per_second,
            frame_burst=settings.ws_frame_burst,
            max_connections_per_user=settings.ws_max_connections_per_user,
            user_send_rate_per_second=settings.ws_user_send_rate_per_second,
            user_send_burst=settings.ws_user_send_burst,
        )

    def as_dict(self) -> dict[str, int | float]:
        return asdict(self)
