"""OAuth tokens are stored as Fernet ciphertext only, and read back with the right key only."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from cryptography.fernet import Fernet

from chat.config import Settings
from chat.store.pg import oauth_tokens as store
from chat.store.pg.oauth_tokens import OAuthTokens, OAuthTokenUnreadable, TokenCipher
from tests.api_client import Api


@pytest.fixture
async def conn(pg_dsn: str, api: Api) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the migrated test database (``api`` makes sure migrations ran)."""
    connection = await asyncpg.connect(pg_dsn)
    try:
        yield connection
    finally:
        await connection.close()


def tokens_for(user_id: int) -> OAuthTokens:
    return OAuthTokens(
        user_id=user_id,
        provider="google",
        access_token="ya29." + secrets.token_urlsafe(24),
        refresh_token="1//" + secrets.token_urlsafe(24),
        expires_at=datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1),
    )


async def test_database_holds_only_ciphertext_and_load_decrypts_it(
    api: Api, conn: asyncpg.Connection, settings: Settings
) -> None:
    user = await api.create_user()
    cipher = TokenCipher.from_settings(settings)
    saved = tokens_for(user["id"])
    await store.save_tokens(conn, cipher, saved)

    row = await conn.fetchrow(
        "SELECT access_token_cipher, refresh_token_cipher, row_to_json(t)::text AS whole "
        "FROM oauth_tokens t WHERE user_id = $1",
        user["id"],
    )
    assert row is not None
    for secret in (saved.access_token, saved.refresh_token):
        assert secret is not None
        assert secret.encode() not in row["access_token_cipher"]
        assert secret.encode() not in row["refresh_token_cipher"]
        assert secret not in row["whole"]
    assert await store.load_tokens(conn, cipher, user["id"], "google") == saved


async def test_saving_again_replaces_the_tokens(
    api: Api, conn: asyncpg.Connection, settings: Settings
) -> None:
    user = await api.create_user()
    cipher = TokenCipher.from_settings(settings)
    await store.save_tokens(conn, cipher, tokens_for(user["id"]))
    newer = OAuthTokens(user["id"], "google", "new-access", None, None)
    await store.save_tokens(conn, cipher, newer)
    assert await store.load_tokens(conn, cipher, user["id"], "google") == newer


async def test_loading_with_a_different_key_fails_clearly(
    api: Api, conn: asyncpg.Connection, settings: Settings
) -> None:
    user = await api.create_user()
    await store.save_tokens(conn, TokenCipher.from_settings(settings), tokens_for(user["id"]))
    other = TokenCipher.from_key(Fernet.generate_key())
    with pytest.raises(OAuthTokenUnreadable, match="CHAT_OAUTH_ENCRYPTION_KEY"):
        await store.load_tokens(conn, other, user["id"], "google")


async def test_unlinked_account_loads_nothing_and_delete_unlinks(
    api: Api, conn: asyncpg.Connection, settings: Settings
) -> None:
    user = await api.create_user()
    cipher = TokenCipher.from_settings(settings)
    assert await store.load_tokens(conn, cipher, user["id"], "kakao") is None
    await store.save_tokens(conn, cipher, tokens_for(user["id"]))
    assert await store.delete_tokens(conn, user["id"], "google") is True
    assert await store.delete_tokens(conn, user["id"], "google") is False
    assert await store.load_tokens(conn, cipher, user["id"], "google") is None
