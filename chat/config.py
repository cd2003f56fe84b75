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
from pydantic import Field
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
    cql_contact_points: str | None = Field(
        None,
        description="Comma-separated ScyllaDB hosts; unset starts the embedded CQL server.",
    )
    cql_port: int = Field(9042, ge=0, le=65535, description="CQL native protocol port.")
    cql_keyspace: str = Field("timingle", description="Keyspace of the chat tables.")

    @property
    def pg_is_embedded(self) -> bool:
        return self.pg_dsn is None

    @property
    def migrate_on_start(self) -> bool:
        return self.pg_is_embedded if self.auto_migrate is None else self.auto_migrate

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
