"""The PostgreSQL pool the stores borrow connections from, the connection and row types they
take, and the one way a row becomes a store's dataclass (:func:`from_record`)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from chat.config import Settings

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

# A connection as store functions receive it: a bare connection or one borrowed from the pool.
Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"
Record: TypeAlias = asyncpg.Record


@contextlib.asynccontextmanager
async def open_pool(dsn: str, settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A pool of ``CHAT_PG_POOL_MIN``..``CHAT_PG_POOL_MAX`` connections, closed on exit."""
    pool = await asyncpg.create_pool(
        dsn, min_size=settings.pg_pool_min, max_size=settings.pg_pool_max
    )
    assert pool is not None
    async with pool:
        yield pool


Row = TypeVar("Row", bound="DataclassInstance")


def from_record(cls: type[Row], record: Record, **values: Any) -> Row:
    """``cls`` with each field read from the column of its name, unless given in ``values``.

    Why one helper: a store's dataclass names its fields after its table's columns, so the
    mapping is written once here; ``values`` holds only what a column does not give as is
    (an enum, decoded JSON, a renamed column). Columns without a field are left out.
    """
    return cls(
        **{
            f.name: values[f.name] if f.name in values else record[f.name]
            for f in dataclasses.fields(cls)
        }
    )
