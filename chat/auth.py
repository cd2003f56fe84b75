"""Access tokens: JWTs whose ``sub`` is the user id.

HS256 with a shared secret suits a single deployment and local use (``chat token`` mints one);
RS256/ES256 with a public key lets an external identity provider issue tokens that this service
only verifies. Verification failures carry a message that tells the client what to fix.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt

from chat.config import Settings
from chat.errors import Unauthorized

_MAX_USER_ID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A token that passed :meth:`TokenService.verify`: whose it is and when it expires."""

    user_id: int
    expires_at: float
    """The ``exp`` claim, in Unix seconds: a WebSocket session ends then unless refreshed."""


@dataclass(frozen=True, slots=True)
class TokenService:
    """Mints (HS256 only) and verifies access tokens according to the settings."""

    algorithm: str
    verify_key: str
    signing_key: str | None
    issuer: str | None
    audience: str | None
    ttl_seconds: int

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenService:
        if settings.jwt_algorithm == "HS256":
            secret = settings.resolved_jwt_secret()
            return cls(
                "HS256",
                secret,
                secret,
                settings.jwt_issuer,
                settings.jwt_audience,
                settings.token_ttl_seconds,
            )
        public_key = settings.resolved_jwt_public_key()
        if not public_key:
            raise ValueError(
                f"CHAT_JWT_ALGORITHM={settings.jwt_algorithm} needs CHAT_JWT_PUBLIC_KEY "
                "(a PEM public key or a path to one)"
            )
        return cls(
            settings.jwt_algorithm,
            public_key,
            None,
            settings.jwt_issuer,
            settings.jwt_audience,
            settings.token_ttl_seconds,
        )

    def mint(
        self, user_id: int, *, ttl_seconds: int | None = None, now: float | None = None
    ) -> str:
        if self.signing_key is None:
            raise ValueError(f"tokens for {self.algorithm} are issued by your identity provider")
        issued = int(time.time() if now is None else now)
        claims: dict[str, Any] = {
            "sub": str(user_id),
            "iat": issued,
            "exp": issued + (ttl_seconds or self.ttl_seconds),
        }
        if self.issuer:
            claims["iss"] = self.issuer
        if self.audience:
            claims["aud"] = self.audience
        return jwt.encode(claims, self.signing_key, algorithm=self.algorithm)

    def verify(self, token: str) -> int:
        """The user id of a valid token; raises Unauthorized saying what is wrong otherwise."""
        try:
            claims = jwt.decode(
                token,
                self.verify_key,
                algorithms=[self.algorithm],
                # A list, not a string: PyJWT before 2.12.1 compared a string issuer with `in`,
                # so a token whose `iss` was any substring of it passed.
                issuer=[self.issuer] if self.issuer else None,
                audience=self.audience,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the access token has expired; obtain a new one") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"the access token is invalid: {exc}") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject.isdigit():
            raise Unauthorized("the access token's `sub` claim must be a numeric user id")
        user_id = int(subject)
        if not 0 < user_id <= _MAX_USER_ID:
            raise Unauthorized("the access token's `sub` claim is out of range")
        return user_id

    def verify_expiring(self, token: str) -> VerifiedToken:
        """:meth:`verify`, and the token's expiry (a long-lived connection must end with it).

        The claims are read again without checking the signature: :meth:`verify` has just
        checked it (and required ``exp``), and keeping it the one verifying path keeps every
        rule of verification in one place.
        """
        user_id = self.verify(token)
        claims = jwt.decode(token, options={"verify_signature": False})
        return VerifiedToken(user_id, float(claims["exp"]))


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value."""
    if not authorization:
        raise Unauthorized("missing Authorization header; send `Authorization: Bearer <token>`")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be `Bearer <token>`")
    return token.strip()
