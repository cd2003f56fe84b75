"""What the engine hands back to the server: plain data, no wire encoding.

The boundary between the engine (parser, storage, execution) and the server (frames,
connections) is these classes; values cross it as CQL-serialized ``bytes`` (or ``None`` for
null), exactly as they travel on the wire, so neither side re-encodes what it does not need.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One column of a result or one bind variable: where it comes from and its type.

    ``cql_type`` is a class from ``cassandra.cqltypes`` (e.g. ``LongType`` or a parameterized
    ``ListType.apply_parameters([UTF8Type])``); the server encodes it as a protocol [option].
    """

    keyspace: str
    table: str
    name: str
    cql_type: Any


@dataclass(frozen=True, slots=True)
class Void:
    pass


@dataclass(frozen=True, slots=True)
class Rows:
    """A page of rows; ``paging_state`` is set when more pages follow."""

    columns: Sequence[ColumnSpec]
    rows: Sequence[Sequence[bytes | None]]
    paging_state: bytes | None = None


@dataclass(frozen=True, slots=True)
class SetKeyspace:
    keyspace: str


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """A DDL outcome. ``change``: CREATED | UPDATED | DROPPED; ``target``: KEYSPACE | TABLE."""

    change: str
    target: str
    keyspace: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A prepared statement as the server describes it to the client.

    ``statement_id`` depends on the query text and the keyspace it was prepared in.
    ``pk_indexes`` are the positions of the partition-key bind variables, in partition-key
    order, so that token-aware drivers can route. ``result_columns`` is None for statements
    that return no rows.
    """

    statement_id: bytes
    query: str
    keyspace: str | None
    bind_columns: Sequence[ColumnSpec]
    pk_indexes: Sequence[int]
    result_columns: Sequence[ColumnSpec] | None
    is_write: bool = False
    plan: Any = field(default=None, compare=False, repr=False)
    checks: Any = field(default=None, compare=False, repr=False)
    """How the bound values are validated (a ``binding.Binding``)."""


Result = Void | Rows | SetKeyspace | SchemaChange
