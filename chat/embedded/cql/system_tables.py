"""Virtual, read-only ``system`` and ``system_schema`` tables, built on demand.

They exist for the driver (and cqlsh): on connect it reads ``system.local`` and
``system.peers_v2``/``peers``, and builds its schema metadata from ``system_schema.*``. Each
table is an ordinary ``TableMeta`` (so SELECTs, WHERE, paging all go through the normal path)
whose storage is rebuilt from the catalog and ``NodeInfo`` at every read — cheap, since these
tables are small and read rarely. Column sets follow Cassandra 4 (what SchemaParserV4 reads).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chat.embedded.cql.cells import OP_SET
from chat.embedded.cql.errors import InvalidRequest
from chat.embedded.cql.schema import Catalog, KeyspaceMeta, TableMeta, build_table
from chat.embedded.cql.storage import TableData
from chat.embedded.cql.values import PROTOCOL, composite_key

RELEASE_VERSION = "4.0.11"
CQL_VERSION = "3.4.5"
NATIVE_PROTOCOL_VERSION = "4"
PARTITIONER = "org.apache.cassandra.dht.Murmur3Partitioner"
LOCAL_STRATEGY = {"class": "org.apache.cassandra.locator.LocalStrategy"}


@dataclass(frozen=True)
class NodeInfo:
    """Who this node says it is (the server fills it from the address it listens on)."""

    address: str
    port: int
    host_id: uuid.UUID
    cluster_name: str = "timingle-embedded"
    data_center: str = "datacenter1"
    rack: str = "rack1"


# (keyspace, table) -> (partition key, clustering, [(column, type), ...])
_DEFS: dict[tuple[str, str], tuple[list[str], list[str], list[tuple[str, str]]]] = {
    ("system", "local"): (
        ["key"],
        [],
        [
            ("key", "text"),
            ("bootstrapped", "text"),
            ("broadcast_address", "inet"),
            ("broadcast_port", "int"),
            ("cluster_name", "text"),
            ("cql_version", "text"),
            ("data_center", "text"),
            ("gossip_generation", "int"),
            ("host_id", "uuid"),
            ("listen_address", "inet"),
            ("listen_port", "int"),
            ("native_protocol_version", "text"),
            ("partitioner", "text"),
            ("rack", "text"),
            ("release_version", "text"),
            ("rpc_address", "inet"),
            ("rpc_port", "int"),
            ("schema_version", "uuid"),
            ("tokens", "set<text>"),
            ("truncated_at", "map<uuid, blob>"),
        ],
    ),
    ("system", "peers"): (
        ["peer"],
        [],
        [
            ("peer", "inet"),
            ("data_center", "text"),
            ("host_id", "uuid"),
            ("preferred_ip", "inet"),
            ("rack", "text"),
            ("release_version", "text"),
            ("rpc_address", "inet"),
            ("schema_version", "uuid"),
            ("tokens", "set<text>"),
        ],
    ),
    ("system", "peers_v2"): (
        ["peer"],
        ["peer_port"],
        [
            ("peer", "inet"),
            ("peer_port", "int"),
            ("data_center", "text"),
            ("host_id", "uuid"),
            ("native_address", "inet"),
            ("native_port", "int"),
            ("preferred_ip", "inet"),
            ("preferred_port", "int"),
            ("rack", "text"),
            ("release_version", "text"),
            ("schema_version", "uuid"),
            ("tokens", "set<text>"),
        ],
    ),
    ("system", "embedded_stats"): (["name"], [], [("name", "text"), ("value", "bigint")]),
    ("system_schema", "keyspaces"): (
        ["keyspace_name"],
        [],
        [
            ("keyspace_name", "text"),
            ("durable_writes", "boolean"),
            ("replication", "frozen<map<text, text>>"),
        ],
    ),
    ("system_schema", "tables"): (
        ["keyspace_name"],
        ["table_name"],
        [
            ("keyspace_name", "text"),
            ("table_name", "text"),
            ("additional_write_policy", "text"),
            ("bloom_filter_fp_chance", "double"),
            ("caching", "frozen<map<text, text>>"),
            ("cdc", "boolean"),
            ("comment", "text"),
            ("compaction", "frozen<map<text, text>>"),
            ("compression", "frozen<map<text, text>>"),
            ("crc_check_chance", "double"),
            ("default_time_to_live", "int"),
            ("extensions", "frozen<map<text, blob>>"),
            ("flags", "frozen<set<text>>"),
            ("gc_grace_seconds", "int"),
            ("id", "uuid"),
            ("max_index_interval", "int"),
            ("memtable_flush_period_in_ms", "int"),
            ("min_index_interval", "int"),
            ("read_repair", "text"),
            ("speculative_retry", "text"),
        ],
    ),
    ("system_schema", "columns"): (
        ["keyspace_name"],
        ["table_name", "column_name"],
        [
            ("keyspace_name", "text"),
            ("table_name", "text"),
            ("column_name", "text"),
            ("clustering_order", "text"),
            ("column_name_bytes", "blob"),
            ("kind", "text"),
            ("position", "int"),
            ("type", "text"),
        ],
    ),
    ("system_schema", "types"): (
        ["keyspace_name"],
        ["type_name"],
        [
            ("keyspace_name", "text"),
            ("type_name", "text"),
            ("field_names", "frozen<list<text>>"),
            ("field_types", "frozen<list<text>>"),
        ],
    ),
    ("system_schema", "functions"): (
        ["keyspace_name"],
        ["function_name", "argument_types"],
        [
            ("keyspace_name", "text"),
            ("function_name", "text"),
            ("argument_types", "frozen<list<text>>"),
            ("argument_names", "frozen<list<text>>"),
            ("body", "text"),
            ("called_on_null_input", "boolean"),
            ("language", "text"),
            ("return_type", "text"),
        ],
    ),
    ("system_schema", "aggregates"): (
        ["keyspace_name"],
        ["aggregate_name", "argument_types"],
        [
            ("keyspace_name", "text"),
            ("aggregate_name", "text"),
            ("argument_types", "frozen<list<text>>"),
            ("final_func", "text"),
            ("initcond", "text"),
            ("return_type", "text"),
            ("state_func", "text"),
            ("state_type", "text"),
        ],
    ),
    ("system_schema", "indexes"): (
        ["keyspace_name"],
        ["table_name", "index_name"],
        [
            ("keyspace_name", "text"),
            ("table_name", "text"),
            ("index_name", "text"),
            ("kind", "text"),
            ("options", "frozen<map<text, text>>"),
        ],
    ),
    ("system_schema", "views"): (
        ["keyspace_name"],
        ["view_name"],
        [
            ("keyspace_name", "text"),
            ("view_name", "text"),
            ("base_table_id", "uuid"),
            ("base_table_name", "text"),
            ("include_all_columns", "boolean"),
            ("where_clause", "text"),
            ("id", "uuid"),
        ],
    ),
    ("system_schema", "triggers"): (
        ["keyspace_name"],
        ["table_name", "trigger_name"],
        [
            ("keyspace_name", "text"),
            ("table_name", "text"),
            ("trigger_name", "text"),
            ("options", "frozen<map<text, text>>"),
        ],
    ),
}


def _make(ks: str, name: str) -> TableMeta:
    pk, ck, cols = _DEFS[(ks, name)]
    record = {
        "keyspace": ks,
        "name": name,
        "id": uuid.uuid5(uuid.NAMESPACE_OID, f"{ks}.{name}").bytes,
        "columns": [
            (
                c,
                t,
                "partition_key" if c in pk else "clustering" if c in ck else "regular",
                "asc" if c in ck else "none",
            )
            for c, t in sorted(
                cols,
                key=lambda ct: (
                    0 if ct[0] in pk else 1 if ct[0] in ck else 2,
                    pk.index(ct[0]) if ct[0] in pk else ck.index(ct[0]) if ct[0] in ck else 0,
                ),
            )
        ],
        "options": {"comment": f"virtual {ks}.{name}"},
    }
    table = build_table(record)
    table.virtual = True
    return table


TABLES: dict[tuple[str, str], TableMeta] = {key: _make(*key) for key in _DEFS}
SYSTEM_KEYSPACES = {
    "system": KeyspaceMeta("system", dict(LOCAL_STRATEGY), True),
    "system_schema": KeyspaceMeta("system_schema", dict(LOCAL_STRATEGY), True),
}
for (_ks, _name), _table in TABLES.items():
    SYSTEM_KEYSPACES[_ks].tables[_name] = _table


def lookup(keyspace: str, name: str) -> TableMeta | None:
    """The virtual table, None when ``keyspace`` is not a system keyspace; raises otherwise."""
    if keyspace not in (
        "system",
        "system_schema",
        "system_virtual_schema",
        "system_auth",
        "system_distributed",
        "system_traces",
    ):
        return None
    table = TABLES.get((keyspace, name))
    if table is None:
        raise InvalidRequest(f"unconfigured table {name}")
    return table


class Rows:
    """Builds a virtual table's storage from Python values, serialized by the driver's codecs."""

    def __init__(self, table: TableMeta) -> None:
        self.table = table
        self.data = TableData(
            len(table.regular),
            bool(table.clustering),
            clustering_columns=len(table.clustering),
            arity=len(table.partition_key),
        )

    def add(self, **values: Any) -> None:
        t = self.table
        pv = tuple(
            t.partition_key[i].driver.serialize(values[c.name], PROTOCOL)
            for i, c in enumerate(t.partition_key)
        )
        cv = tuple(c.driver.serialize(values[c.name], PROTOCOL) for c in t.clustering)
        ckey = t.clustering_key(cv)
        ops = []
        for c in t.regular:
            v = values.get(c.name)
            if v is not None:
                ops.append((OP_SET, c.slot, bytes(c.driver.serialize(v, PROTOCOL)), 1, 0, 0))
        pkey = pv[0] if len(pv) == 1 else composite_key(pv)
        self.data.apply_write(pkey, pv, ckey, cv, (1, 0, 0), ops)


def _all_keyspaces(catalog: Catalog) -> list[KeyspaceMeta]:
    return [*SYSTEM_KEYSPACES.values(), *catalog.keyspaces.values()]


def build(
    table: TableMeta, catalog: Catalog, node: NodeInfo, stats: Callable[[], dict[str, int]]
) -> TableData:
    """Fresh storage for a virtual table."""
    out = Rows(table)
    key = (table.keyspace, table.name)
    if key == ("system", "local"):
        out.add(
            key="local",
            bootstrapped="COMPLETED",
            broadcast_address=node.address,
            broadcast_port=7000,
            cluster_name=node.cluster_name,
            cql_version=CQL_VERSION,
            data_center=node.data_center,
            gossip_generation=1,
            host_id=node.host_id,
            listen_address=node.address,
            listen_port=7000,
            native_protocol_version=NATIVE_PROTOCOL_VERSION,
            partitioner=PARTITIONER,
            rack=node.rack,
            release_version=RELEASE_VERSION,
            rpc_address=node.address,
            rpc_port=node.port,
            schema_version=catalog.version,
            tokens={"0"},
        )
    elif key == ("system", "embedded_stats"):
        for name, value in stats().items():
            out.add(name=name, value=value)
    elif key == ("system_schema", "keyspaces"):
        for ks in _all_keyspaces(catalog):
            out.add(
                keyspace_name=ks.name, durable_writes=ks.durable_writes, replication=ks.replication
            )
    elif key == ("system_schema", "tables"):
        for ks in _all_keyspaces(catalog):
            for t in ks.tables.values():
                opts = t.options
                out.add(
                    keyspace_name=ks.name,
                    table_name=t.name,
                    id=t.id,
                    flags={"compound"},
                    extensions={},
                    cdc=None,
                    **{k: v for k, v in opts.items() if k in table.columns},
                )
    elif key == ("system_schema", "columns"):
        for ks in _all_keyspaces(catalog):
            for t in ks.tables.values():
                for c in t.columns.values():
                    out.add(
                        keyspace_name=ks.name,
                        table_name=t.name,
                        column_name=c.name,
                        clustering_order=c.order,
                        column_name_bytes=c.name.encode(),
                        kind=c.kind,
                        position=c.slot if c.kind != "regular" else -1,
                        type=c.cql_text,
                    )
    return out.data
