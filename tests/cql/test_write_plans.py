"""INSERT, UPDATE and DELETE plans stage typed mutation records; ``commit`` applies them.

No server: plans are compiled by the engine and run with literal values, so what each one
stages can be read before anything reaches the storage.
"""

from __future__ import annotations

import uuid

import pytest

from chat.embedded.cql.cells import OP_COUNTER
from chat.embedded.cql.delete import DeletePlan
from chat.embedded.cql.engine import Engine, NodeInfo, QueryOptions
from chat.embedded.cql.errors import InvalidRequest
from chat.embedded.cql.insert import InsertPlan
from chat.embedded.cql.mutations import InsertRow, PartitionDelete, RangeDelete, RowDelete, RowWrite
from chat.embedded.cql.results import Rows
from chat.embedded.cql.update import UpdatePlan
from chat.embedded.cql.write import OP_COUNTER_DELTA, Staged, commit

NODE = NodeInfo("127.0.0.1", 9042, uuid.UUID(int=1))
NOW = 1_700_000_000
TS = NOW * 1_000_000


def int32(n: int) -> bytes:
    return n.to_bytes(4, "big", signed=True)


@pytest.fixture
def engine() -> Engine:
    engine = Engine(None, NODE)
    for cql in (
        "CREATE KEYSPACE ks WITH replication = {'class': 'SimpleStrategy', "
        "'replication_factor': 1}",
        "CREATE TABLE ks.t (p int, c int, v text, s set<int>, PRIMARY KEY (p, c))",
        "CREATE TABLE ks.hits (k int PRIMARY KEY, n counter)",
    ):
        engine.query(cql, [], QueryOptions(), None)
    return engine


def staged(engine: Engine, cql: str) -> list[Staged]:
    plan = engine.prepare(cql, "ks").plan.compiled
    assert isinstance(plan, (InsertPlan, UpdatePlan, DeletePlan))
    writes, result = plan.run([], TS, NOW)
    assert result is None
    return writes


def rows(engine: Engine, cql: str) -> list[list[bytes | None]]:
    result = engine.query(cql, [], QueryOptions(), "ks")
    assert isinstance(result, Rows)
    return [list(row) for row in result.rows]


def test_an_insert_stages_its_values_beside_their_slots_and_writes_nothing_until_committed(
    engine: Engine,
) -> None:
    (write,) = staged(engine, "INSERT INTO t (p, c, v, s) VALUES (1, 2, 'x', {7})")
    record = write[3]
    assert isinstance(record, InsertRow)
    assert (record.partition, record.clustering) == ((int32(1),), (int32(2),))
    assert record.marker == (TS, 0, 0)
    assert list(zip(record.slots, record.values, strict=True)) == [(0, b"x")]
    assert [cell[0:3] for cell in record.collections][1:] == [(2, 1, int32(7))]
    assert rows(engine, "SELECT * FROM t") == []
    assert commit(write) is record
    assert rows(engine, "SELECT p, c, v FROM t") == [[int32(1), int32(2), b"x"]]


def test_counter_increments_are_staged_as_deltas_and_logged_as_absolute_values(
    engine: Engine,
) -> None:
    engine.query("UPDATE hits SET n = n + 5 WHERE k = 1", [], QueryOptions(), "ks")
    first, second = (staged(engine, "UPDATE hits SET n = n + 2 WHERE k = 1") for _ in range(2))
    for write in (first, second):
        (only,) = write
        assert isinstance(only[3], RowWrite)
        assert only[3].cells[0][0] == OP_COUNTER_DELTA
    logged = [commit(first[0]), commit(second[0])]
    assert [record.cells for record in logged if isinstance(record, RowWrite)] == [
        [(OP_COUNTER, 0, (7).to_bytes(8, "big"), TS)],
        [(OP_COUNTER, 0, (9).to_bytes(8, "big"), TS)],
    ]


@pytest.mark.parametrize(
    ("cql", "kind"),
    [
        ("DELETE FROM t WHERE p = 1", PartitionDelete),
        ("DELETE FROM t WHERE p = 1 AND c > 2", RangeDelete),
        ("DELETE FROM t WHERE p = 1 AND c = 2", RowDelete),
        ("DELETE v FROM t WHERE p = 1 AND c = 2", RowWrite),
    ],
)
def test_each_delete_stages_the_tombstone_of_what_it_names(
    engine: Engine, cql: str, kind: type
) -> None:
    (write,) = staged(engine, cql)
    record = write[3]
    assert type(record) is kind
    if isinstance(record, RowWrite):
        assert [cell[:4] for cell in record.cells] == [(0, 0, None, TS)]  # v's tombstone
    else:
        assert isinstance(record, (RowDelete, PartitionDelete, RangeDelete))
        assert record.timestamp == TS


def test_a_batch_that_fails_validation_commits_none_of_its_statements(engine: Engine) -> None:
    with pytest.raises(InvalidRequest, match="Invalid null value"):
        engine.query(
            "BEGIN BATCH INSERT INTO t (p, c, v) VALUES (1, 1, 'kept?');"
            " INSERT INTO t (p, c, v) VALUES (null, 1, 'bad'); APPLY BATCH",
            [],
            QueryOptions(),
            "ks",
        )
    assert rows(engine, "SELECT * FROM t") == []
