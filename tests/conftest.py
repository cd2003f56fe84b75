"""Shared fixtures: one real PostgreSQL per test session, the app served by real uvicorn."""

from __future__ import annotations

import itertools
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from chat.app import create_app
from chat.auth import TokenService
from chat.config import Settings
from chat.embedded.cql.process import EmbeddedCqlServer
from chat.embedded.postgres import embedded_postgres
from chat.store import users
from tests.servers import run_server

TEST_JWT_SECRET = "test-secret-" + "x" * 32


@pytest.fixture(scope="session")
def data_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="chat-test-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="session")
async def pg_dsn(data_dir: Path) -> AsyncIterator[str]:
    """``CHAT_PG_DSN`` when set (a throwaway database is created there), else embedded."""
    configured = os.environ.get("CHAT_PG_DSN")
    if configured:
        yield configured
        return
    async with embedded_postgres(data_dir / "postgres", delete_on_stop=True) as dsn:
        yield dsn


@pytest.fixture(scope="session")
async def cql_server(data_dir: Path) -> AsyncIterator[EmbeddedCqlServer]:
    """One embedded CQL server (in memory) for the app under test, on a free port."""
    async with EmbeddedCqlServer() as server:
        yield server


@pytest.fixture(scope="session")
def settings(pg_dsn: str, data_dir: Path, cql_server: EmbeddedCqlServer) -> Settings:
    return Settings(
        cql_contact_points=cql_server.host,
        cql_port=cql_server.port,
        pg_dsn=pg_dsn,
        data_dir=data_dir,
        auto_migrate=True,
        jwt_secret=TEST_JWT_SECRET,
        event_sweep_seconds=0.2,
        # Every test signs up and calls from 127.0.0.1: the REST limits stay on (every request
        # goes through them) with quotas no test run reaches. tests/api/test_rate_limits.py
        # proves the limits with small quotas on apps of its own.
        rest_address_quota=10_000_000,
        rest_user_quota=10_000_000,
        rest_signup_quota=10_000_000,
    )


@pytest.fixture(scope="session")
def tokens(settings: Settings) -> TokenService:
    return TokenService.from_settings(settings)


@pytest.fixture(scope="session")
async def base_url(settings: Settings) -> AsyncIterator[str]:
    async with run_server(create_app(settings)) as url:
        yield url


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
        """Run an operator's account change (a :mod:`chat.store.users` function) directly on
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


@pytest.fixture(scope="session")
async def api(base_url: str, tokens: TokenService, pg_dsn: str) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        yield Api(http, tokens, pg_dsn)
