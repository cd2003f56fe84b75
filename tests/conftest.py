"""Shared fixtures: one real PostgreSQL and CQL server per test session, the app served by real
uvicorn, and a message store on the app's keyspace."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from chat.app import create_app
from chat.auth import TokenService
from chat.config import Settings
from chat.embedded.cql.process import EmbeddedCqlServer
from chat.embedded.postgres import embedded_postgres
from chat.store.cql.messages import MessageStore
from chat.store.cql.migrations import migrate_up
from chat.store.driver.session import CqlStore, open_cql
from tests.api_client import TEST_JWT_SECRET, Api
from tests.servers import run_server


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


@pytest.fixture(scope="session")
async def api(base_url: str, tokens: TokenService, pg_dsn: str) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        yield Api(http, tokens, pg_dsn)


@pytest.fixture(scope="session")
async def cql_store(settings: Settings) -> AsyncIterator[CqlStore]:
    """A driver session on the app's CQL server with every CQL migration applied.

    Applying them here (the runner is idempotent and takes a lock) makes the chat tables exist
    whether or not an app under test migrated at start-up.
    """
    async with open_cql(settings) as store:
        await migrate_up(store, settings)
        yield store


@pytest.fixture
async def message_store(cql_store: CqlStore, settings: Settings) -> AsyncIterator[MessageStore]:
    """A started :class:`MessageStore` (its batcher running) on the keyspace the app under test
    reads, closed after the test."""
    async with MessageStore(cql_store, settings) as store:
        yield store


@pytest.fixture
async def other_node(cql_store: CqlStore, settings: Settings) -> AsyncIterator[MessageStore]:
    """A second gateway node's store: its own batcher, id generator and in-flight table."""
    async with MessageStore(cql_store, settings) as store:
        yield store
