"""The parsed form of a CQL statement, shared by the parser (which builds it) and the engine.

Literals keep their source text (``Constant.text``) rather than a Python value because only the
engine knows the column type a literal is bound to: ``1`` may become an int, a bigint, a
varint, a double or a counter delta. Identifiers are already normalised (unquoted names
lower-cased, quoted names kept verbatim), so the engine compares them with ``==``.

Every statement carries ``bind_count``: the number of bind markers (``?`` or ``:name``) in the
whole statement. Markers are numbered 0, 1, ... in the order they appear in the text, across
every clause (``USING TTL ?`` and ``LIMIT ?`` included) and across every statement of a batch.
"""

from __future__ import annotations

from dataclasses import dataclass

# --------------------------------------------------------------------------------------------
# Terms: values in statements.


@dataclass(frozen=True, slots=True)
class Constant:
    """A literal, kept as text.

    ``kind`` is one of ``'string'`` (``text`` is the unescaped content), ``'integer'`` and
    ``'float'`` (sign included; floats also ``NaN``, ``Infinity``, ``-Infinity``),
    ``'boolean'`` (``'true'`` / ``'false'``), ``'uuid'``, ``'hex'`` (``text`` keeps the
    ``0x`` prefix), ``'null'`` (``text`` is ``'null'``) and ``'duration'`` (e.g. ``'1h30m'``).
    """

    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class BindMarker:
    """A ``?`` (``name`` is None) or ``:name`` marker; ``index`` counts from 0 in the text."""

    index: int
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ListLiteral:
    items: tuple[Term, ...]


@dataclass(frozen=True, slots=True)
class SetLiteral:
    items: tuple[Term, ...]


@dataclass(frozen=True, slots=True)
class MapLiteral:
    """A ``{k: v, ...}`` literal. ``{}`` is always a MapLiteral, as CQL cannot tell it from an
    empty set; the engine reads it as an empty set when the column is a set."""

    entries: tuple[tuple[Term, Term], ...]


@dataclass(frozen=True, slots=True)
class TupleLiteral:
    items: tuple[Term, ...]


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """``name(args)`` in a value position; the parser accepts any name, the engine decides
    which functions exist. ``name`` is lower-cased unless it was quoted."""

    name: str
    args: tuple[Term, ...]


Term = Constant | BindMarker | ListLiteral | SetLiteral | MapLiteral | TupleLiteral | FunctionCall


# --------------------------------------------------------------------------------------------
# Types.


@dataclass(frozen=True, slots=True)
class CqlType:
    """A column type: ``name`` lower-case (``'bigint'``, ``'list'``, ``'frozen'``), ``params``
    the type parameters of collections, tuples and ``frozen``."""

    name: str
    params: tuple[CqlType, ...] = ()

    def __str__(self) -> str:
        if not self.params:
            return self.name
        return f"{self.name}<{', '.join(str(p) for p in self.params)}>"


# --------------------------------------------------------------------------------------------
# WHERE relations, IF conditions, assignments, selectors.


@dataclass(frozen=True, slots=True)
class Relation:
    """``columns op value``. One column for ``a = ?``; several for ``(a, b) > (?, ?)``, then
    ``value`` is a TupleLiteral or a BindMarker. For ``IN``, ``value`` is a tuple of terms
    (``IN (1, 2)``; for a tuple relation each is a TupleLiteral) or one BindMarker (``IN ?``).

    ``op`` is one of ``=``, ``<``, ``<=``, ``>``, ``>=``, ``!=``, ``IN``, ``CONTAINS``,
    ``CONTAINS KEY``.
    """

    columns: tuple[str, ...]
    op: str
    value: Term | tuple[Term, ...]


@dataclass(frozen=True, slots=True)
class TokenRelation:
    """``token(a, b) op value``: a range over the partitioner's token."""

    columns: tuple[str, ...]
    op: str
    value: Term


WhereClause = tuple[Relation | TokenRelation, ...]


@dataclass(frozen=True, slots=True)
class Condition:
    """``IF column op value`` of a lightweight transaction; ``op`` as in Relation (no CONTAINS).
    For ``IN``, ``value`` is a tuple of terms or one BindMarker."""

    column: str
    op: str
    value: Term | tuple[Term, ...]


@dataclass(frozen=True, slots=True)
class Assignment:
    """One ``SET`` item of an UPDATE.

    ``op``: ``'set'`` for ``c = v`` (or ``c[key] = v`` when ``key`` is set), ``'add'`` for
    ``c = c + v`` (counter increment, list append, set union, map merge), ``'sub'`` for
    ``c = c - v`` and ``'prepend'`` for ``c = v + c`` (lists).
    """

    column: str
    op: str
    value: Term
    key: Term | None = None


@dataclass(frozen=True, slots=True)
class DeleteTarget:
    """A column named in ``DELETE c, m[key] FROM ...``; ``key`` set for an element delete."""

    column: str
    key: Term | None = None


@dataclass(frozen=True, slots=True)
class Selector:
    """One item of a SELECT list.

    ``kind``: ``'column'`` (``column`` names it), ``'count'`` (``COUNT(*)`` / ``count(1)``;
    ``column`` None), ``'writetime'`` and ``'ttl'`` (``column`` names the column), and
    ``'function'`` — then ``column`` holds the function name (lower-cased unless quoted) and
    ``args`` its arguments as selectors; ``count(c)``, which counts non-null values, is such a
    function call. ``alias`` is the ``AS`` name, if any.
    """

    kind: str
    column: str | None
    alias: str | None = None
    args: tuple[Selector, ...] = ()


@dataclass(frozen=True, slots=True)
class ColumnDef:
    name: str
    type: CqlType
    static: bool = False


# --------------------------------------------------------------------------------------------
# Statements. ``keyspace`` is None when the statement named the table without a keyspace.


@dataclass(frozen=True, slots=True)
class Select:
    """``order_by`` pairs a column with ``'ASC'`` or ``'DESC'``; ``selectors == ()`` means ``*``."""

    keyspace: str | None
    table: str
    selectors: tuple[Selector, ...]
    where: WhereClause = ()
    order_by: tuple[tuple[str, str], ...] = ()
    limit: Term | None = None
    per_partition_limit: Term | None = None
    allow_filtering: bool = False
    distinct: bool = False
    bind_count: int = 0


@dataclass(frozen=True, slots=True)
class Insert:
    keyspace: str | None
    table: str
    columns: tuple[str, ...]
    values: tuple[Term, ...]
    if_not_exists: bool = False
    ttl: Term | None = None
    timestamp: Term | None = None
    bind_count: int = 0


@dataclass(frozen=True, slots=True)
class Update:
    keyspace: str | None
    table: str
    assignments: tuple[Assignment, ...]
    where: WhereClause
    conditions: tuple[Condition, ...] = ()
    if_exists: bool = False
    ttl: Term | None = None
    timestamp: Term | None = None
    bind_count: int = 0


@dataclass(frozen=True, slots=True)
class Delete:
    """``columns == ()`` deletes whole rows (or a clustering range) matched by ``where``."""

    keyspace: str | None
    table: str
    columns: tuple[DeleteTarget, ...]
    where: WhereClause
    conditions: tuple[Condition, ...] = ()
    if_exists: bool = False
    timestamp: Term | None = None
    bind_count: int = 0


Modification = Insert | Update | Delete


@dataclass(frozen=True, slots=True)
class Batch:
    """``kind`` is ``'LOGGED'``, ``'UNLOGGED'`` or ``'COUNTER'``. Bind markers of the inner
    statements are numbered across the whole batch; ``bind_count`` is their total."""

    kind: str
    statements: tuple[Modification, ...]
    timestamp: Term | None = None
    bind_count: int = 0


@dataclass(frozen=True, slots=True)
class CreateKeyspace:
    """``replication`` values are text, as Scylla stores them (``{'replication_factor': 1}``
    gives ``{'replication_factor': '1'}``)."""

    name: str
    if_not_exists: bool
    replication: dict[str, str]
    durable_writes: bool | None = None
    bind_count: int = 0


@dataclass(frozen=True, slots=True)
class DropKeyspace:
    name: str
    if_exists: bool = False
    bind_count: int = 0


@dataclass(frozen=True, slots=True)
class CreateTable:
    """``options`` holds the ``WITH name = value`` table options: values are ``str``, ``int``,
    ``float``, ``bool`` or, for map literals such as ``compaction``, ``dict[str, str]``.
    ``clustering_order`` pairs each clustering column with ``'ASC'`` or ``'DESC'`` in clustering
    order (every clustering column appears; ``'ASC'`` when the statement did not say)."""

    keyspace: str | None
    name: str
    if_not_exists: bool
    columns: tuple[ColumnDef, ...]
    partition_key: tuple[str, ...]
    clustering: tuple[str, ...]
    clustering_order: tuple[tuple[str, str], ...]
    options: dict[str, object]
    bind_count: int = 0


@dataclass(frozen=True, slots=True)
class DropTable:
    keyspace: str | None
    name: str
    if_exists: bool = False
    bind_count: int = 0


@dataclass(frozen=True, slots=True)
class AlterTableAdd:
    keyspace: str | None
    table: str
    columns: tuple[ColumnDef, ...]
    bind_count: int = 0


@dataclass(frozen=True, slots=True)
class Truncate:
    keyspace: str | None
    table: str
    bind_count: int = 0


@dataclass(frozen=True, slots=True)
class Use:
    keyspace: str
    bind_count: int = 0


Statement = (
    Select
    | Insert
    | Update
    | Delete
    | Batch
    | CreateKeyspace
    | DropKeyspace
    | CreateTable
    | DropTable
    | AlterTableAdd
    | Truncate
    | Use
)
