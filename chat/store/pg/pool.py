"""Shared PostgreSQL types for the store modules."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A connection as store functions receive it: a bare connection or one borrowed from the pool.
Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"
Record: TypeAlias = asyncpg.Record
