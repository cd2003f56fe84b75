"""Settings: every knob is an environment variable ``CHAT_*`` with a default that works on a
fresh machine, so ``chat serve`` needs no configuration to start.

Secrets that have no safe default (the JWT signing secret, the OAuth-token encryption key) are
generated once and kept in the data directory when not given, so tokens minted by ``chat token``
keep working across restarts of a local install without anyone choosing a secret.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import platformdirs
from cryptography.fernet import Fernet
from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("timingle-chat", appauthor=False))


class Settings(BaseSettings):
    """The service's configuration, read from ``CHAT_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="CHAT_", extra="ignore", frozen=True)

    host: str = Field("127.0.0.1", description="Address the HTTP/WebSocket server binds to.")
    port: int = Field(8000, ge=0, le=65535, description="Port of the HTTP/WebSocket server.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level of the service."
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description=(
            "`text` for a terminal; `json` (one object per line, with request and connection "
            "ids) for production log pipelines."
        ),
    )
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where embedded servers keep their data and where generated secrets live.",
    )
    pg_dsn: str | None = Field(
        None, description="PostgreSQL DSN; unset starts a private embedded PostgreSQL."
    )
    pg_pool_min: int = Field(1, ge=0, description="Minimum PostgreSQL pool connections.")
    pg_pool_max: int = Field(10, ge=1, description="Maximum PostgreSQL pool connections.")
    auto_migrate: bool | None = Field(
        None,
        description="Apply pending migrations at start-up; unset means on for embedded databases.",
    )
    jwt_secret: str | None = Field(
        None,
        description="HS256 signing secret; unset generates one in the data directory.",
    )
    jwt_algorithm: Literal["HS256", "RS256", "ES256"] = Field(
        "HS256", description="Algorithm access tokens are signed with."
    )
    jwt_public_key: str | None = Field(
        None, description="PEM public key (or a path to one) for RS256/ES256 verification."
    )
    jwt_issuer: str | None = Field(None, description="Required `iss` claim, when set.")
    jwt_audience: str | None = Field(None, description="Required `aud` claim, when set.")
    token_ttl_seconds: int = Field(
        3600, ge=60, description="Lifetime of tokens minted by `chat token`."
    )
    oauth_encryption_key: str | None = Field(
        None,
        description="Fernet key encrypting stored OAuth tokens; unset generates one.",
    )
    event_sweep_seconds: float = Field(
        30.0, gt=0, description="How often CONFIRMED events past their end are marked DONE."
    )
    event_history_relay_seconds: float = Field(
        2.0, gt=0, description="How often audit records left in the outbox are relayed to CQL."
    )
    cql_contact_points: str | None = Field(
        None,
        description="Comma-separated ScyllaDB hosts; unset starts the embedded CQL server.",
    )
    cql_port: int = Field(9042, ge=0, le=65535, description="CQL native protocol port.")
    cql_keyspace: str = Field(
        "timingle",
        pattern=r"^[a-z][a-z0-9_]{0,47}$",
        description="Keyspace of the chat tables.",
    )
    cql_replication: str = Field(
        "SimpleStrategy:1",
        description=(
            "Keyspace replication when the migrations create it: `SimpleStrategy:RF` or "
            "`NetworkTopologyStrategy:dc1=3,dc2=3`."
        ),
    )
    cql_consistency: Literal["ONE", "LOCAL_ONE", "LOCAL_QUORUM", "QUORUM", "EACH_QUORUM", "ALL"] = (
        Field("LOCAL_QUORUM", description="Consistency level of every chat read and write.")
    )
    cql_request_timeout_seconds: float = Field(
        10.0, gt=0, description="Driver timeout of one CQL request (a batch counts as one)."
    )
    cql_read_page_size: int = Field(
        5000,
        ge=100,
        le=100_000,
        description=(
            "Rows per page of the history and unread reads (the driver's fetch size); every "
            "read is sized to fit one page, so a smaller value only splits grouped reads."
        ),
    )
    cql_read_speculative_delay_ms: float = Field(
        20.0,
        gt=0,
        description=(
            "History and unread reads not answered within this many ms are sent to the next "
            "replica as well (client-side speculative execution; multi-node clusters only)."
        ),
    )
    cql_read_speculative_attempts: int = Field(
        1,
        ge=0,
        le=3,
        description="Extra replicas a slow read may be sent to; 0 turns speculation off.",
    )
    cql_reactor: Literal["libev", "app-loop"] = Field(
        "app-loop",
        description=(
            "Driver reactor: `libev` (its own I/O thread) or `app-loop` (socket I/O on the "
            "application's event loop)."
        ),
    )
    cql_auto_migrate: bool | None = Field(
        None,
        description=(
            "Apply pending CQL migrations at start-up; unset follows CHAT_AUTO_MIGRATE, "
            "and when both are unset it is on for the embedded CQL server."
        ),
    )
    write_batch_ms: float = Field(
        1.0,
        ge=0,
        description="How long the message writer waits to coalesce concurrent sends into a batch.",
    )
    write_batch_statements: int = Field(
        200, ge=1, le=1000, description="Statements per batch that make the writer flush at once."
    )
    send_dedup: Literal["fast", "strict"] = Field(
        "fast",
        description=(
            "Duplicate-send protection: `fast` (claim row, first writer wins by timestamp) or "
            "`strict` (lightweight-transaction claim, closes the cross-node race)."
        ),
    )

    ws_max_frame_bytes: int = Field(
        65536,
        ge=1024,
        description="Largest WebSocket frame a client may send (bigger: close 1009).",
    )
    ws_send_rate_per_second: float = Field(
        10.0,
        gt=0,
        description="Sustained writes (send/edit/delete/react) per connection per second.",
    )
    ws_send_burst: int = Field(
        20, ge=1, description="Writes a connection may make at once before the rate applies."
    )
    ws_max_subscriptions: int = Field(
        100, ge=1, description="Events one WebSocket connection may subscribe to at a time."
    )
    ws_max_text_chars: int = Field(
        4000, ge=1, le=4000, description="Longest message text a client may send, in characters."
    )
    ws_max_attachments: int = Field(
        10, ge=0, le=10, description="Most attachments one message may carry."
    )
    ws_max_attachment_bytes: int = Field(
        2048, ge=16, le=2048, description="Longest attachment reference (URL), in UTF-8 bytes."
    )
    ws_heartbeat_ms: int = Field(
        20000, ge=100, description="How often the server sends a `ping` frame to each client."
    )
    ws_idle_timeout_ms: int = Field(
        60000, ge=200, description="A client silent this long is closed with 4408."
    )
    ws_auth_timeout_ms: int = Field(
        10000, ge=100, description="Time a new connection has to authenticate (else close 4401)."
    )
    ws_outgoing_queue_size: int = Field(
        1000, ge=16, description="Frames queued for one client before it is closed as too slow."
    )
    ws_per_message_deflate: bool = Field(
        False,
        description=(
            "Offer WebSocket permessage-deflate to clients that ask for it. Off: it costs "
            "about 3 µs of gateway CPU per frame and about 40 KiB of zlib state per "
            "connection (zlib's estimate; see bench/README.md), for small JSON frames."
        ),
    )
    drain_seconds: float = Field(
        20.0,
        gt=0,
        le=600,
        description=(
            "On SIGTERM, how long `chat serve` lets connections answer their pending sends "
            "and close (1001) before it cuts them off; the stores then flush."
        ),
    )
    nats_url: str | None = Field(
        None,
        description=(
            "NATS server (`nats://host:4222`) the gateway processes fan out through; unset "
            "keeps fan-out in process (`chat serve --workers N` starts a private one)."
        ),
    )
    nats_presence_heartbeat_seconds: float = Field(
        1.0, gt=0, description="How often a node tells the others who is subscribed on it."
    )
    nats_presence_ttl_seconds: float = Field(
        5.0,
        gt=0,
        description="A node silent this long is taken for dead: its users leave every event.",
    )
    typing_ttl_seconds: int = Field(
        10,
        ge=1,
        le=60,
        description="A `typing start` shows for this long unless refreshed (then it expires).",
    )

    @field_validator("ws_idle_timeout_ms")
    @classmethod
    def _check_idle_timeout(cls, value: int, info: ValidationInfo) -> int:
        heartbeat = info.data.get("ws_heartbeat_ms")
        if isinstance(heartbeat, int) and value <= heartbeat:
            raise ValueError(
                f"CHAT_WS_IDLE_TIMEOUT_MS ({value}) must exceed CHAT_WS_HEARTBEAT_MS ({heartbeat}) "
                "so that a client has time to answer a ping"
            )
        return value

    @field_validator("cql_replication")
    @classmethod
    def _check_replication(cls, value: str) -> str:
        replication_options(value)
        return value

    @property
    def pg_is_embedded(self) -> bool:
        return self.pg_dsn is None

    @property
    def migrate_on_start(self) -> bool:
        return self.pg_is_embedded if self.auto_migrate is None else self.auto_migrate

    @property
    def cql_is_embedded(self) -> bool:
        return not self.cql_contact_points

    @property
    def cql_migrate_on_start(self) -> bool:
        """Whether ``open_cql`` applies the CQL migrations (embedded server: yes by default)."""
        if self.cql_auto_migrate is not None:
            return self.cql_auto_migrate
        if self.auto_migrate is not None:
            return self.auto_migrate
        return self.cql_is_embedded

    def resolved_jwt_secret(self) -> str:
        if self.jwt_secret:
            return self.jwt_secret
        return _persistent_secret(self.data_dir / "jwt-secret", lambda: secrets.token_urlsafe(48))

    def resolved_oauth_key(self) -> bytes:
        if self.oauth_encryption_key:
            return self.oauth_encryption_key.encode()
        key = _persistent_secret(
            self.data_dir / "oauth-key", lambda: Fernet.generate_key().decode()
        )
        return key.encode()

    def resolved_jwt_public_key(self) -> str | None:
        key = self.jwt_public_key
        if key and not key.lstrip().startswith("-----BEGIN"):
            return Path(key).read_text()
        return key


def replication_options(text: str) -> dict[str, str]:
    """The CQL replication map for ``CHAT_CQL_REPLICATION``; ValueError says what is wrong.

    ``SimpleStrategy:1`` is the single-node default; production uses
    ``NetworkTopologyStrategy:dc1=3,dc2=3`` (a replication factor per datacenter).
    """
    strategy, _, rest = text.partition(":")
    strategy, rest = strategy.strip(), rest.strip()
    if strategy == "SimpleStrategy":
        if not rest.isdigit() or int(rest) < 1:
            raise ValueError(
                "SimpleStrategy needs a replication factor >= 1, e.g. 'SimpleStrategy:1', "
                f"got {text!r}"
            )
        return {"class": "SimpleStrategy", "replication_factor": rest}
    if strategy == "NetworkTopologyStrategy":
        options = {"class": "NetworkTopologyStrategy"}
        for item in rest.split(","):
            dc, eq, rf = item.strip().partition("=")
            dc, rf = dc.strip(), rf.strip()
            if (
                not eq
                or not dc
                or not rf.isdigit()
                or not all(c.isalnum() or c in "_-." for c in dc)
            ):
                raise ValueError(
                    f"NetworkTopologyStrategy needs dc=RF pairs, e.g. "
                    f"'NetworkTopologyStrategy:dc1=3,dc2=3', got {text!r}"
                )
            options[dc] = rf
        return options
    raise ValueError(
        "replication must be 'SimpleStrategy:RF' or 'NetworkTopologyStrategy:dc=RF,...', "
        f"got {text!r}"
    )


def _persistent_secret(path: Path, make: Callable[[], str]) -> str:
    """Read a generated secret, creating it (mode 0600) on first use.

    Several processes may start at once (``chat serve --workers``); the secret is written to a
    private temporary file and hard-linked into place, so exactly one value ever wins.
    """
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    tmp.write_text(make())
    tmp.chmod(0o600)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()
