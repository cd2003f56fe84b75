"""Consistency levels answered as a one-node ScyllaDB cluster answers them.

This server is one node holding one replica of everything. A request whose consistency level
needs more replicas than that — ``TWO`` on any keyspace, ``QUORUM`` or ``ALL`` on a keyspace
with a replication factor of 3 — is answered with Unavailable (required, alive 1), as ScyllaDB
answers it on a single node; an application configured for more replicas than it has finds out
here, not in production. ``ANY`` is for writes only; a conditional statement also needs its
serial consistency (a quorum of the replicas) to be reachable.

The number of replicas a keyspace asks for comes from its replication map (``SimpleStrategy``:
``replication_factor``; ``NetworkTopologyStrategy``: the factor of each datacenter, this node's
being the local one).
"""

from __future__ import annotations

from collections.abc import Mapping

from chat.embedded.cql.errors import InvalidRequest, Unavailable

ANY = 0x0000
ONE = 0x0001
TWO = 0x0002
THREE = 0x0003
QUORUM = 0x0004
ALL = 0x0005
LOCAL_QUORUM = 0x0006
EACH_QUORUM = 0x0007
SERIAL = 0x0008
LOCAL_SERIAL = 0x0009
LOCAL_ONE = 0x000A

NAMES = {
    ANY: "ANY",
    ONE: "ONE",
    TWO: "TWO",
    THREE: "THREE",
    QUORUM: "QUORUM",
    ALL: "ALL",
    LOCAL_QUORUM: "LOCAL_QUORUM",
    EACH_QUORUM: "EACH_QUORUM",
    SERIAL: "SERIAL",
    LOCAL_SERIAL: "LOCAL_SERIAL",
    LOCAL_ONE: "LOCAL_ONE",
}
ALIVE = 1  # this node


def replicas(replication: Mapping[str, str], local_dc: str) -> tuple[int, int]:
    """(all replicas, replicas in the local datacenter) a replication map asks for."""
    cls = replication.get("class", "")
    if cls.endswith("SimpleStrategy"):
        rf = int(replication.get("replication_factor", "1"))
        return rf, rf
    if cls.endswith("NetworkTopologyStrategy"):
        factors = {dc: int(rf) for dc, rf in replication.items() if dc != "class"}
        return sum(factors.values()), factors.get(local_dc, 0)
    return 1, 1  # LocalStrategy, EverywhereStrategy: every node holds a copy


def required(level: int, total: int, local: int) -> int:
    """How many replicas must answer at ``level``."""
    if level in (ANY, ONE, LOCAL_ONE):
        return 1
    if level == TWO:
        return 2
    if level == THREE:
        return 3
    if level in (QUORUM, SERIAL, EACH_QUORUM):
        return total // 2 + 1
    if level in (LOCAL_QUORUM, LOCAL_SERIAL):
        return local // 2 + 1
    if level == ALL:
        return total
    raise InvalidRequest(f"Unknown consistency level 0x{level:04x}")


def check(level: int, total: int, local: int, *, write: bool) -> None:
    """Raise what ScyllaDB answers when ``level`` cannot be met on this one node."""
    if level == ANY and not write:
        raise InvalidRequest("ANY ConsistencyLevel is only supported for writes")
    if level in (SERIAL, LOCAL_SERIAL) and write:
        raise InvalidRequest(
            f"You must use conditional updates for serializable writes (got {NAMES[level]})"
        )
    needed = required(level, total, local)
    alive = ALIVE if (local if level in (LOCAL_QUORUM, LOCAL_SERIAL, LOCAL_ONE) else total) else 0
    if needed > alive:
        raise Unavailable(
            f"Cannot achieve consistency level for cl {NAMES.get(level, level)}. "
            f"Requires {needed}, alive {alive}",
            level,
            needed,
            alive,
        )
