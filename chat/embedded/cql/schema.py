"""The catalog: keyspaces, tables and columns, and the schema version that DDL changes.

Each column is resolved once, at DDL time, into everything the hot paths need (the driver's
codec class, its ordering encoder, its storage slot, the result ``ColumnSpec``) so that executing
a prepared statement never looks a type up by name. Tables carry their storage (``TableData``).
Every DDL goes through ``Catalog.apply`` with a plain-data record — the same record the commit
log stores and replays — so a replayed schema is built by exactly the code that built it live.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from chat.embedded.cql import ast
from chat.embedded.cql.errors import AlreadyExists, ConfigurationError, InvalidRequest
from chat.embedded.cql.ordering import Encoder, ordering_encoder
from chat.embedded.cql.results import ColumnSpec
from chat.embedded.cql.storage import StoreUsage, TableData
from chat.embedded.cql.values import (
    COLLECTIONS,
    FIXED_SIZES,
    base_name,
    canonical,
    driver_type,
)

SYSTEM_KEYSPACES = frozenset(
    {"system", "system_schema", "system_auth", "system_distributed", "system_traces"}
)

DEFAULT_TABLE_OPTIONS: dict[str, Any] = {
    "additional_write_policy": "99p",
    "bloom_filter_fp_chance": 0.01,
    "caching": {"keys": "ALL", "rows_per_partition": "ALL"},
    "comment": "",
    "compaction": {
        "class": "SizeTieredCompactionStrategy",
        "max_threshold": "32",
        "min_threshold": "4",
    },
    "compression": {"sstable_compression": "org.apache.cassandra.io.compress.LZ4Compressor"},
    "crc_check_chance": 1.0,
    "default_time_to_live": 0,
    "gc_grace_seconds": 864000,
    "max_index_interval": 2048,
    "memtable_flush_period_in_ms": 0,
    "min_index_interval": 128,
    "read_repair": "BLOCKING",
    "speculative_retry": "99.0PERCENTILE",
}
_INT_OPTIONS = (
    "default_time_to_live",
    "gc_grace_seconds",
    "max_index_interval",
    "memtable_flush_period_in_ms",
    "min_index_interval",
)
_FLOAT_OPTIONS = ("bloom_filter_fp_chance", "crc_check_chance")
_MAP_OPTIONS = ("caching", "compaction", "compression")


@dataclass(eq=False, slots=True)
class ColumnMeta:
    """A column resolved for execution. ``slot``: index among its kind (pk, clustering, regular)."""

    name: str
    type: ast.CqlType
    kind: str  # 'partition_key' | 'clustering' | 'regular'
    slot: int
    order: str = "none"  # 'asc' | 'desc' | 'none'
    driver: Any = None
    spec: ColumnSpec | None = None
    encoder: Encoder | None = None
    collection: str | None = None  # 'list'|'set'|'map' for NON-frozen collections
    is_counter: bool = False
    fixed_size: int | None = None
    element_encoder: Encoder | None = None  # order of set elements / map keys

    @property
    def cql_text(self) -> str:
        return str(self.type)


@dataclass(eq=False, slots=True)
class TableMeta:
    keyspace: str
    name: str
    id: uuid.UUID
    columns: dict[str, ColumnMeta]
    partition_key: list[ColumnMeta]
    clustering: list[ColumnMeta]
    regular: list[ColumnMeta]
    options: dict[str, Any]
    data: TableData
    is_counter: bool = False
    virtual: bool = False
    clustering_encoders: list[Encoder] = field(default_factory=list)
    """The ordering encoder of each clustering column, in order."""

    @property
    def default_ttl(self) -> int:
        return int(self.options.get("default_time_to_live") or 0)

    def clustering_key(self, values: Sequence[bytes]) -> bytes:
        """The storage's key of a row within its partition: each value's ordering encoding."""
        return b"".join([enc(v) for enc, v in zip(self.clustering_encoders, values, strict=True)])

    def column(self, name: str) -> ColumnMeta:
        col = self.columns.get(name)
        if col is None:
            raise InvalidRequest(
                f"Undefined column name {name} in table {self.keyspace}.{self.name}"
            )
        return col

    def to_record(self) -> dict[str, Any]:
        """Plain data (for the commit log and snapshots) from which ``build_table`` rebuilds it."""
        return {
            "keyspace": self.keyspace,
            "name": self.name,
            "id": self.id.bytes,
            "columns": [(c.name, str(c.type), c.kind, c.order) for c in self.columns.values()],
            "options": self.options,
        }


@dataclass(eq=False, slots=True)
class KeyspaceMeta:
    name: str
    replication: dict[str, str]
    durable_writes: bool = True
    tables: dict[str, TableMeta] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "replication": self.replication,
            "durable_writes": self.durable_writes,
        }


def parse_type_text(text: str) -> ast.CqlType:
    """Parse the canonical type text this module writes (``frozen<map<text, int>>``)."""
    text = text.strip()
    if "<" not in text:
        return ast.CqlType(text)
    name, rest = text.split("<", 1)
    inner = rest[: rest.rindex(">")]
    params: list[ast.CqlType] = []
    depth = 0
    start = 0
    for i, ch in enumerate(inner):
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "," and depth == 0:
            params.append(parse_type_text(inner[start:i]))
            start = i + 1
    params.append(parse_type_text(inner[start:]))
    return ast.CqlType(name.strip(), tuple(params))


def _resolve_column(
    keyspace: str, table: str, name: str, t: ast.CqlType, kind: str, slot: int, order: str
) -> ColumnMeta:
    t = canonical(t)
    drv = driver_type(t)
    col = ColumnMeta(
        name=name,
        type=t,
        kind=kind,
        slot=slot,
        order=order,
        driver=drv,
        spec=ColumnSpec(keyspace, table, name, drv),
        is_counter=t.name == "counter",
        fixed_size=FIXED_SIZES.get(t.name),
    )
    if t.name in COLLECTIONS:
        col.collection = t.name
        if t.name in ("set", "map"):
            col.element_encoder = ordering_encoder(t.params[0])
    if kind != "regular":
        if t.name in COLLECTIONS:
            raise InvalidRequest(
                f"Invalid non-frozen collection type for PRIMARY KEY component {name}"
            )
        if t.name == "counter":
            raise InvalidRequest(f"counter type is not supported for PRIMARY KEY column '{name}'")
        col.encoder = ordering_encoder(t, descending=order == "desc")
    return col


def _normalise_options(options: dict[str, object]) -> dict[str, Any]:
    out: dict[str, Any] = dict(DEFAULT_TABLE_OPTIONS)
    for key, value in options.items():
        key = key.lower()
        if key in ("id", "cdc", "paxos_grace_seconds", "tombstone_gc", "extensions"):
            continue
        if key not in DEFAULT_TABLE_OPTIONS:
            raise InvalidRequest(f"Unknown property '{key}'")
        try:
            if key in _INT_OPTIONS:
                value = int(str(value))
            elif key in _FLOAT_OPTIONS:
                value = float(str(value))
            elif key in _MAP_OPTIONS:
                if not isinstance(value, dict):
                    raise InvalidRequest(f"Invalid value for property '{key}': expected a map")
                value = {str(k): str(v) for k, v in value.items()}
            else:
                value = str(value)
        except ValueError as exc:
            raise InvalidRequest(f"Invalid value for property '{key}': {value}") from exc
        out[key] = value
    if out["default_time_to_live"] < 0:
        raise InvalidRequest("default_time_to_live must be greater than or equal to 0")
    return out


def build_table(
    record: dict[str, Any], data: TableData | None = None, usage: StoreUsage | None = None
) -> TableMeta:
    """A TableMeta from plain data; validates the primary key and the column kinds.

    ``data``: the rows to keep (ALTER TABLE, a replayed CREATE of the same table); else the
    table starts empty, its rows counted in ``usage``.
    """
    keyspace, name = record["keyspace"], record["name"]
    columns: dict[str, ColumnMeta] = {}
    pk: list[ColumnMeta] = []
    ck: list[ColumnMeta] = []
    regular: list[ColumnMeta] = []
    for cname, ctype, kind, order in record["columns"]:
        if cname in columns:
            raise InvalidRequest(f"Multiple definition of identifier {cname}")
        group = {"partition_key": pk, "clustering": ck, "regular": regular}[kind]
        col = _resolve_column(
            keyspace, name, cname, parse_type_text(ctype), kind, len(group), order
        )
        group.append(col)
        columns[cname] = col
    if not pk:
        raise InvalidRequest("No PRIMARY KEY specifed (exactly one required)")
    counters = [c for c in regular if c.is_counter]
    if counters and len(counters) != len(regular):
        raise InvalidRequest("Cannot mix counter and non counter columns in the same table")
    ordered = {c.name: c for c in (*pk, *ck, *regular)}
    table = TableMeta(
        keyspace=keyspace,
        name=name,
        id=uuid.UUID(bytes=record["id"]),
        columns=ordered,
        partition_key=pk,
        clustering=ck,
        regular=regular,
        options=_normalise_options(record.get("options", {})),
        data=data
        if data is not None
        else TableData(
            len(regular),
            bool(ck),
            clustering_columns=len(ck),
            arity=len(pk),
            usage=usage,
            lossy_clustering=any("decimal" in str(c.type) for c in ck),
        ),
        is_counter=bool(counters),
        clustering_encoders=[c.encoder for c in ck if c.encoder is not None],
    )
    if table.is_counter and table.default_ttl:
        raise InvalidRequest("Cannot set default_time_to_live on a table with counters")
    return table


def table_record_from_ast(stmt: ast.CreateTable, keyspace: str) -> dict[str, Any]:
    """The plain-data form of a CREATE TABLE (a fresh table id included)."""
    defs = {c.name: c for c in stmt.columns}
    for c in stmt.columns:
        if c.static:
            raise InvalidRequest(
                f"Static column {c.name}: static columns are not supported by the embedded server"
            )
    for key in (*stmt.partition_key, *stmt.clustering):
        if key not in defs:
            raise InvalidRequest(f"Unknown definition {key} referenced in PRIMARY KEY")
    if len(set(stmt.partition_key + stmt.clustering)) != len(stmt.partition_key + stmt.clustering):
        raise InvalidRequest("Duplicate column in PRIMARY KEY")
    orders = {c: o.lower() for c, o in stmt.clustering_order}
    for name in orders:
        if name not in stmt.clustering:
            raise InvalidRequest(f"Missing CLUSTERING ORDER for column {name}")
    cols: list[tuple[str, str, str, str]] = []
    for key in stmt.partition_key:
        cols.append((key, str(canonical(defs[key].type)), "partition_key", "none"))
    for key in stmt.clustering:
        cols.append((key, str(canonical(defs[key].type)), "clustering", orders.get(key, "asc")))
    for c in stmt.columns:
        if c.name not in stmt.partition_key and c.name not in stmt.clustering:
            cols.append((c.name, str(canonical(c.type)), "regular", "none"))
    return {
        "keyspace": keyspace,
        "name": stmt.name,
        "id": uuid.uuid4().bytes,
        "columns": cols,
        "options": dict(stmt.options),
    }


class Catalog:
    """Keyspaces and tables of user data; system tables live in ``system_tables``."""

    def __init__(self) -> None:
        self.keyspaces: dict[str, KeyspaceMeta] = {}
        self.tables_by_id: dict[bytes, TableMeta] = {}
        self.version = uuid.uuid4()
        self.usage = StoreUsage()

    def keyspace(self, name: str) -> KeyspaceMeta:
        ks = self.keyspaces.get(name)
        if ks is None:
            raise InvalidRequest(f"Keyspace '{name}' does not exist")
        return ks

    def table(self, keyspace: str, name: str) -> TableMeta:
        ks = self.keyspaces.get(keyspace)
        if ks is None:
            raise InvalidRequest(f"Keyspace '{keyspace}' does not exist")
        table = ks.tables.get(name)
        if table is None:
            raise InvalidRequest(f"unconfigured table {name}")
        return table

    def apply(self, record: tuple[Any, ...]) -> None:
        """Apply a schema record; used live and on replay.

        Idempotent: a snapshot written while DDL ran may hold a change that the log after it
        holds too, so re-creating an existing keyspace keeps its tables and re-creating a table
        with the same id keeps its rows; dropping what is gone is a no-op.
        """
        op = record[0]
        if op == "create_keyspace":
            info = record[1]
            existing = self.keyspaces.get(info["name"])
            ks = KeyspaceMeta(info["name"], dict(info["replication"]), bool(info["durable_writes"]))
            if existing is not None:
                ks.tables = existing.tables
            self.keyspaces[ks.name] = ks
        elif op == "drop_keyspace":
            dropped_ks = self.keyspaces.pop(record[1], None)
            for t in dropped_ks.tables.values() if dropped_ks is not None else ():
                self.tables_by_id.pop(t.id.bytes, None)
                t.data.truncate()
        elif op in ("create_table", "alter_table"):
            info = record[1]
            ks = self.keyspace(info["keyspace"])
            old = ks.tables.get(info["name"])
            same = old is not None and old.id.bytes == info["id"]
            data = old.data if (old is not None and (same or op == "alter_table")) else None
            table = build_table(info, data, self.usage)
            if data is not None:
                data.widen(len(table.regular))
            if old is not None and not same:
                self.tables_by_id.pop(old.id.bytes, None)
                if old.data is not table.data:
                    old.data.truncate()
            ks.tables[table.name] = table
            self.tables_by_id[table.id.bytes] = table
        elif op == "drop_table":
            ks = self.keyspace(record[1])
            dropped = ks.tables.pop(record[2], None)
            if dropped is not None:
                self.tables_by_id.pop(dropped.id.bytes, None)
                dropped.data.truncate()
        else:  # pragma: no cover - records are written by this module only
            raise ValueError(f"unknown schema record {op!r}")
        self.version = uuid.uuid4()

    # Validation that turns statements into records (raising ScyllaDB's errors).
    def create_keyspace_record(
        self, stmt: ast.CreateKeyspace, datacenters: Sequence[str]
    ) -> tuple[Any, ...] | None:
        check_name(stmt.name, "keyspace")
        if stmt.name in self.keyspaces or stmt.name in SYSTEM_KEYSPACES:
            if stmt.if_not_exists:
                return None
            raise AlreadyExists(f"Keyspace {stmt.name} already exists", stmt.name)
        replication = replication_options(stmt.replication, datacenters)
        durable = True if stmt.durable_writes is None else stmt.durable_writes
        return (
            "create_keyspace",
            {"name": stmt.name, "replication": replication, "durable_writes": durable},
        )

    def create_table_record(self, stmt: ast.CreateTable, keyspace: str) -> tuple[Any, ...] | None:
        ks = self.keyspace(keyspace)
        check_name(stmt.name, "table")
        if stmt.name in ks.tables:
            if stmt.if_not_exists:
                return None
            raise AlreadyExists(
                f'Cannot add already existing table "{stmt.name}" to keyspace "{keyspace}"',
                keyspace,
                stmt.name,
            )
        record = table_record_from_ast(stmt, keyspace)
        build_table(record)  # validate before logging
        return ("create_table", record)

    def alter_add_record(self, stmt: ast.AlterTableAdd, keyspace: str) -> tuple[Any, ...]:
        table = self.table(keyspace, stmt.table)
        record = table.to_record()
        for c in stmt.columns:
            if c.name in table.columns:
                raise InvalidRequest(
                    f"Invalid column name {c.name} because it conflicts with an existing column"
                )
            if c.static:
                raise InvalidRequest("static columns are not supported by the embedded server")
            record["columns"].append((c.name, str(canonical(c.type)), "regular", "none"))
        build_table(record)
        return ("alter_table", record)


NAME_LENGTH = 48
"""The longest keyspace or table name ScyllaDB accepts."""


def check_name(name: str, kind: str) -> None:
    """Keyspace and table names: 1 to 48 word characters (quoted names may start with one)."""
    if not name or not all(c == "_" or (c.isascii() and c.isalnum()) for c in name):
        hint = (
            ""
            if kind == "keyspace"
            else " (must contain alphanumeric character only: [0-9A-Za-z] or the underscore)"
        )
        raise InvalidRequest(f'"{name}" is not a valid {kind} name{hint}')
    if len(name) > NAME_LENGTH:
        raise InvalidRequest(
            f"{kind.capitalize()} names shouldn't be more than {NAME_LENGTH} characters long "
            f'(got "{name}")'
        )


_LOCATOR = "org.apache.cassandra.locator."
_STRATEGIES = frozenset(
    {"SimpleStrategy", "NetworkTopologyStrategy", "LocalStrategy", "EverywhereStrategy"}
)
DEFAULT_STRATEGY = "NetworkTopologyStrategy"


def _replication_factor(value: str) -> str:
    if not (value.isascii() and value.isdigit()):
        raise ConfigurationError(
            f"Replication factor must be numeric and non-negative, found '{value}'"
        )
    return str(int(value))


def replication_options(given: dict[str, str], datacenters: Sequence[str]) -> dict[str, str]:
    """A keyspace's replication map as ScyllaDB stores it.

    The class defaults to NetworkTopologyStrategy and is stored fully qualified. For that
    class, ``replication_factor`` expands into one factor per datacenter, no factor at all
    means one replica per rack of every datacenter (here: 1), and a datacenter this node does
    not know is refused. SimpleStrategy needs ``replication_factor`` and nothing else.
    """
    options = dict(given)
    cls = options.pop("class", DEFAULT_STRATEGY)
    short = cls[len(_LOCATOR) :] if cls.startswith(_LOCATOR) else cls
    if short not in _STRATEGIES:
        raise ConfigurationError(f"Unable to find replication strategy class '{cls}'")
    out: dict[str, str] = {"class": _LOCATOR + short}
    if short == "NetworkTopologyStrategy":
        rf = options.pop("replication_factor", None)
        for dc, value in options.items():
            if dc not in datacenters:
                raise ConfigurationError(f"Unrecognized datacenter name '{dc}'")
            out[dc] = _replication_factor(value)
        if rf is not None:
            rf = _replication_factor(rf)
            for dc in datacenters:
                out.setdefault(dc, rf)
        elif not options:
            for dc in datacenters:
                out[dc] = "1"
        return out
    if short == "SimpleStrategy":
        rf = options.pop("replication_factor", None)
        if rf is None:
            raise ConfigurationError(
                "SimpleStrategy requires a replication_factor strategy option."
            )
        if options:
            raise ConfigurationError(
                f"Unrecognized strategy option {{{', '.join(sorted(options))}}} passed to "
                "SimpleStrategy"
            )
        out["replication_factor"] = _replication_factor(rf)
        return out
    out.update(options)
    return out


def is_frozen_collection(t: ast.CqlType) -> bool:
    return t.name == "frozen" and base_name(t) in COLLECTIONS
