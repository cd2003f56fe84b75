"""OAuth tokens of linked accounts, stored only as Fernet ciphertext.

The key comes from ``CHAT_OAUTH_ENCRYPTION_KEY`` (or the generated one in the data directory,
see :meth:`chat.config.Settings.resolved_oauth_key`). Encryption happens here, before the bytes
reach SQL, so neither the database, its backups nor its logs ever hold a usable token. Fernet
authenticates as well as encrypts: ciphertext read with the wrong key, or tampered with, is
refused with :class:`OAuthTokenUnreadable` instead of yielding garbage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography.fernet import Fernet, InvalidToken

from chat.config import Settings
from chat.errors import ChatError
from chat.store.pg.pool import Connection


class OAuthTokenUnreadable(ChatError):
    """A stored token cannot be decrypted: the key changed, or the ciphertext was altered.

    A server-side fault (500): the client can do nothing about it; the operator must restore
    the key the tokens were written with, or have the users link their accounts again.
    """

    code = "oauth_token_unreadable"
    title = "Stored OAuth token unreadable"


@dataclass(frozen=True, slots=True)
class TokenCipher:
    """Encrypts and decrypts token strings with the configured Fernet key."""

    fernet: Fernet

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenCipher:
        return cls(Fernet(settings.resolved_oauth_key()))

    @classmethod
    def from_key(cls, key: bytes) -> TokenCipher:
        return cls(Fernet(key))

    def encrypt(self, token: str) -> bytes:
        return self.fernet.encrypt(token.encode())

    def decrypt(self, cipher: bytes, *, what: str) -> str:
        try:
            return self.fernet.decrypt(cipher).decode()
        except InvalidToken:
            raise OAuthTokenUnreadable(
                f"the stored {what} cannot be decrypted with the configured "
                "CHAT_OAUTH_ENCRYPTION_KEY: the key differs from the one it was stored with, "
                "or the ciphertext was altered; restore the original key or re-link the account"
            ) from None


@dataclass(frozen=True, slots=True)
class OAuthTokens:
    user_id: int
    provider: str
    access_token: str
    refresh_token: str | None
    expires_at: datetime | None


async def save_tokens(conn: Connection, cipher: TokenCipher, tokens: OAuthTokens) -> None:
    """Store (or replace) a user's tokens for a provider, encrypted."""
    await conn.execute(
        """INSERT INTO oauth_tokens (user_id, provider, access_token_cipher,
               refresh_token_cipher, expires_at)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (user_id, provider) DO UPDATE
           SET access_token_cipher = EXCLUDED.access_token_cipher,
               refresh_token_cipher = EXCLUDED.refresh_token_cipher,
               expires_at = EXCLUDED.expires_at""",
        tokens.user_id,
        tokens.provider,
        cipher.encrypt(tokens.access_token),
        cipher.encrypt(tokens.refresh_token) if tokens.refresh_token is not None else None,
        tokens.expires_at,
    )


async def load_tokens(
    conn: Connection, cipher: TokenCipher, user_id: int, provider: str
) -> OAuthTokens | None:
    """A user's decrypted tokens for a provider, or None if the account is not linked."""
    row = await conn.fetchrow(
        """SELECT access_token_cipher, refresh_token_cipher, expires_at FROM oauth_tokens
           WHERE user_id = $1 AND provider = $2""",
        user_id,
        provider,
    )
    if row is None:
        return None
    refresh = row["refresh_token_cipher"]
    return OAuthTokens(
        user_id=user_id,
        provider=provider,
        access_token=cipher.decrypt(row["access_token_cipher"], what="access token"),
        refresh_token=cipher.decrypt(refresh, what="refresh token") if refresh else None,
        expires_at=row["expires_at"],
    )


async def delete_tokens(conn: Connection, user_id: int, provider: str) -> bool:
    """Unlink an account; False if it was not linked."""
    result = await conn.execute(
        "DELETE FROM oauth_tokens WHERE user_id = $1 AND provider = $2", user_id, provider
    )
    return result != "DELETE 0"
