"""Stores whose statements are prepared together, once.

Why a base class: the reaction, typing and unread stores each prepare a handful of
statements at start-up (``prepare()``, so a broken statement fails the start, not the first
user) and must also work when nobody called it (tests, tools); the caching of that one set
of statements is the same for all of them, so it lives here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Generic, TypeVar

from chat.config import Settings
from chat.store.driver.session import CqlStore

Statements = TypeVar("Statements")


class PreparedOnce(ABC, Generic[Statements]):
    """Holds the CQL session, the keyspace and the store's prepared statements.

    Subclasses implement :meth:`_prepare_statements`; their queries call :meth:`_prepared`.
    Two first uses racing each other both prepare — harmless, ``CqlStore.prepare`` caches by
    query text, so they get the same statements.
    """

    def __init__(self, cql: CqlStore, settings: Settings) -> None:
        self._cql = cql
        self._keyspace = settings.cql_keyspace
        self._statements: Statements | None = None

    async def prepare(self) -> None:
        """Prepare every statement this store runs (also done on first use)."""
        await self._prepared()

    async def _prepared(self) -> Statements:
        if self._statements is None:
            self._statements = await self._prepare_statements()
        return self._statements

    @abstractmethod
    async def _prepare_statements(self) -> Statements:
        """Prepare this store's statements (``self._cql.prepare``) and return them."""
