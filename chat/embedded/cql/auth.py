"""Password authentication, as ScyllaDB's ``PasswordAuthenticator`` does it on the wire.

With credentials configured, the server answers STARTUP with AUTHENTICATE naming
``org.apache.cassandra.auth.PasswordAuthenticator``; the client answers with AUTH_RESPONSE
carrying a SASL PLAIN token (``authzid \\0 username \\0 password``, the driver's
``PlainTextAuthProvider``), and gets AUTH_SUCCESS or a Bad credentials error (0x0100,
"Username and/or password are incorrect"). No I/O here: the server feeds tokens in.

One user, given to the server at start (a role table and CREATE ROLE are out of scope).
The password is kept only as a SHA-256 digest and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from chat.embedded.cql.errors import BadCredentials

BAD_CREDENTIALS = "Username and/or password are incorrect"


@dataclass(frozen=True, slots=True)
class PasswordAuthenticator:
    username: str
    password_digest: bytes

    @classmethod
    def for_user(cls, username: str, password: str) -> PasswordAuthenticator:
        if not username or not password:
            raise ValueError("password authentication needs a non-empty username and password")
        return cls(username, _digest(password.encode()))

    def authenticate(self, token: bytes) -> str:
        """The authenticated user for a SASL PLAIN token; BadCredentials otherwise."""
        parts = token.split(b"\x00")
        if len(parts) != 3:
            raise BadCredentials("Authentication failed: malformed PLAIN token")
        _authzid, username, password = parts
        user_ok = hmac.compare_digest(_digest(username), _digest(self.username.encode()))
        password_ok = hmac.compare_digest(_digest(password), self.password_digest)
        if not (user_ok and password_ok):
            raise BadCredentials(BAD_CREDENTIALS)
        return self.username


def _digest(secret: bytes) -> bytes:
    return hashlib.sha256(secret).digest()
