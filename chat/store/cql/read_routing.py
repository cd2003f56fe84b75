"""Grouped requests on a cluster: which partitions share a replica, and routing to it.

Why group: one request for many partitions (``WHERE event_id IN ?``, or a batch) instead of
one per partition — the Python driver costs this process about 0.1-0.3 ms of CPU per request,
far more than a replica spends on a small partition. Why by replica: on a multi-node cluster
the coordinator of such a request must ask every replica of its partitions, so a group takes
partitions that share their first replica (from the driver's token metadata) and is sent to
that replica, which answers from its own data. On one node (the embedded server) every
partition has the same replica and all of them form one group.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

from cassandra.query import BoundStatement, PreparedStatement

from chat.store.driver.session import CqlStore

T = TypeVar("T")

MAX_IN_KEYS = 100
"""ScyllaDB refuses an ``IN`` over more keys than ``max_partition_key_restrictions_per_query``
(and ``max_clustering_key_restrictions_per_query`` for clustering keys), both 100 by default."""

ReplicaOf = Callable[[bytes], Hashable]
"""A routing key's first replica (any hashable id of it)."""

_bigint = struct.Struct(">q").pack
_int = struct.Struct(">i").pack
_short = struct.Struct(">H").pack


def bigint_key(value: int) -> bytes:
    """The routing key of a partition keyed by one ``bigint``."""
    return _bigint(value)


def composite_key(*parts: bytes) -> bytes:
    """The routing key of a compound partition key, as the driver and ScyllaDB encode it."""
    return b"".join(_short(len(part)) + part + b"\x00" for part in parts)


def event_bucket_key(event_id: int, bucket: int) -> bytes:
    """The routing key of a ``((event_id, bucket))`` partition."""
    return composite_key(_bigint(event_id), _int(bucket))


def replica_grouping(cql: CqlStore, keyspace: str) -> ReplicaOf | None:
    """The first-replica lookup on a multi-node cluster; None on one node (one group)."""
    metadata = cql.cluster.metadata
    if len(metadata.all_hosts()) <= 1:
        return None

    def replica_of(routing_key: bytes) -> Hashable:
        replicas = metadata.get_replicas(keyspace, routing_key)
        return replicas[0].host_id if replicas else None

    return replica_of


def chunks_by_replica(
    items: Sequence[T],
    key_of: Callable[[T], bytes],
    replica_of: ReplicaOf | None,
    size: int = MAX_IN_KEYS,
) -> list[tuple[list[T], bytes | None]]:
    """``items`` in chunks of at most ``size`` whose partitions share a first replica, each
    with the routing key of its first item — None when there is only one replica group."""
    if replica_of is None:
        return [(list(items[i : i + size]), None) for i in range(0, len(items), size)]
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        groups.setdefault(replica_of(key_of(item)), []).append(item)
    return [
        (chunk, key_of(chunk[0]))
        for members in groups.values()
        for chunk in (members[i : i + size] for i in range(0, len(members), size))
    ]


class _RoutedStatement(BoundStatement):  # type: ignore[misc]  # the driver is untyped
    """A bound statement with an explicit routing key.

    The driver derives a bound statement's routing key from the partition-key values, and has
    none when the partition key is bound with ``IN`` (a list): such a read would go to any
    node. The key given here sends it to the replica of the group's partitions instead.
    """

    def __init__(self, prepared: PreparedStatement, routing_key: bytes) -> None:
        super().__init__(prepared)
        self._explicit_routing_key = routing_key

    @property
    def routing_key(self) -> bytes:
        return self._explicit_routing_key


def routed(prepared: PreparedStatement, values: Sequence[Any], routing_key: bytes | None) -> Any:
    """``prepared`` bound to ``values``, sent to the replica of ``routing_key`` if given."""
    if routing_key is None:
        return prepared.bind(values)
    return _RoutedStatement(prepared, routing_key).bind(values)
