"""The test suite's HTTP client of the app under test, and the data it signs users up with."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from chat.auth import TokenService
from chat.store.pg import users

TEST_JWT_SECRET = "test-secret-" + "x" * 32
"""The signing secret of every app the suite starts (long enough for HS256's minimum)."""


@dataclass
class Api:
    """An HTTP client for the served app that knows how to act as a given user."""

    http: httpx.AsyncClient
    tokens: TokenService
    pg_dsn: str | None = None

    def auth(self, user_id: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.mint(user_id)}"}

    async def create_user(self, role: str = "USER", **fields: Any) -> dict[str, Any]:
        """Signs up a fresh user with a unique phone number; returns the created user.

        Sign-up always makes a USER; another role is then given as an operator gives it
        (the store function behind ``chat user set-role``).
        """
        body = {"phone": unique_phone(), "name": f"user {secrets.token_hex(3)}"}
        body.update(fields)
        response = await self.http.post("/v1/users", json=body)
        assert response.status_code == 201, response.text
        user: dict[str, Any] = response.json()["user"]
        if role != "USER":
            await self.operator(users.set_role, user["id"], role)
            user["role"] = role
        return user

    async def operator(self, change: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Run an operator's account change (a :mod:`chat.store.pg.users` function) directly on
        the app's database, as the ``chat user`` command does."""
        assert self.pg_dsn, "this Api was built without the app's database"
        conn = await asyncpg.connect(self.pg_dsn)
        try:
            return await change(conn, *args)
        finally:
            await conn.close()


_phones = itertools.count(1)


def unique_phone() -> str:
    """Phone numbers unique within this run and across runs on a shared database."""
    return f"+82{secrets.randbelow(10**6):06d}{next(_phones):04d}"
