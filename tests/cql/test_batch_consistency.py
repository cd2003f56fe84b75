"""Batches are applied, answered and logged consistently, on the fast path as on the general one.

* A conditional batch checks every ``IF`` against the state before the batch, then applies all
  of it: a statement never fails on what an earlier one in the same batch wrote (nor answers
  ``[applied] = false`` while keeping that earlier write in memory, unlogged).
* A batch that fails validation part-way logs what it already applied: the memtable and the
  commit log never disagree, so a restart rebuilds exactly what clients could read.
* A BATCH item with an empty prepared id is looked up like any id (UNPREPARED), never taken
  for the query-string item before it.
"""

from __future__ import annotations

import socket
import struct
import uuid
from pathlib import Path

import pytest
from cassandra import InvalidRequest
from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType

from chat.embedded.cql.engine import Engine, NodeInfo, QueryOptions
from chat.embedded.cql.process import EmbeddedCqlServer
from chat.embedded.cql.results import Rows

NODE = NodeInfo("127.0.0.1", 9042, uuid.uuid4())


def test_conditional_batch_checks_every_condition_before_applying(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (p int, c int, v text, w int, PRIMARY KEY (p, c))")
    ks_session.execute("INSERT INTO t (p, c, v) VALUES (1, 1, 'a')")
    set_v = ks_session.prepare("UPDATE t SET v = ? WHERE p = 1 AND c = 1 IF v = 'a'")
    set_w = ks_session.prepare("UPDATE t SET w = ? WHERE p = 1 AND c = 1 IF v = 'a'")
    batch = BatchStatement(batch_type=BatchType.LOGGED)
    batch.add(set_v, ("b",))
    batch.add(set_w, (2,))
    assert ks_session.execute(batch).was_applied
    row = ks_session.execute("SELECT v, w FROM t WHERE p = 1 AND c = 1").one()
    assert (row.v, row.w) == ("b", 2)


def test_conditional_batch_inserting_one_row_twice_applies_both(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (p int, c int, v text, w int, PRIMARY KEY (p, c))")
    insert = ks_session.prepare("INSERT INTO t (p, c, v) VALUES (?, ?, ?) IF NOT EXISTS")
    batch = BatchStatement(batch_type=BatchType.LOGGED)
    batch.add(insert, (1, 1, "first"))
    batch.add(insert, (1, 1, "second"))
    assert ks_session.execute(batch).was_applied
    # Same timestamp: the greater value wins the reconciliation, as in Cassandra.
    assert ks_session.execute("SELECT v FROM t WHERE p = 1 AND c = 1").one().v == "second"
    # A failed IF NOT EXISTS applies nothing of the batch.
    batch = BatchStatement(batch_type=BatchType.LOGGED)
    batch.add(insert, (1, 2, "new"))
    batch.add(insert, (1, 1, "again"))
    assert not ks_session.execute(batch).was_applied
    assert ks_session.execute("SELECT v FROM t WHERE p = 1 AND c = 2").one() is None


def dump(engine: Engine) -> list[list[bytes | None]]:
    rows = engine.query("SELECT * FROM t", [], QueryOptions(), "ks")
    assert isinstance(rows, Rows)
    return [list(r) for r in rows.rows]


async def test_batch_failing_part_way_logs_what_it_applied(tmp_path: Path) -> None:
    engine = Engine(tmp_path, NODE)
    await engine.start()
    engine.query(
        "CREATE KEYSPACE ks WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}",
        [],
        QueryOptions(),
        None,
    )
    engine.query(
        "CREATE TABLE ks.t (p int, c int, v text, PRIMARY KEY (p, c))", [], QueryOptions(), None
    )
    insert = engine.prepare("INSERT INTO t (p, c, v) VALUES (?, ?, ?)", "ks")
    one, two = b"\x00\x00\x00\x01", b"\x00\x00\x00\x02"
    with pytest.raises(Exception, match="null value"):
        engine.batch(
            1, [(insert, [one, one, b"x"]), (insert, [one, None, b"y"])], QueryOptions(), "ks"
        )
    lwt = engine.prepare("INSERT INTO t (p, c, v) VALUES (?, ?, ?) IF NOT EXISTS", "ks")
    with pytest.raises(Exception, match="null value"):
        engine.batch(
            1, [(lwt, [two, one, b"w"]), (insert, [two, None, b"y"])], QueryOptions(), "ks"
        )
    engine.batch(1, [(insert, [two, two, b"z"])], QueryOptions(), "ks")
    durable = engine.durable()
    assert durable is not None
    await durable
    live = dump(engine)
    # No close(): the process "dies" here; the log alone must rebuild what was readable.
    revived = Engine(tmp_path, NODE)
    await revived.start()
    assert dump(revived) == live
    await revived.close()


def test_empty_prepared_id_after_a_query_item_is_unprepared(
    cql_server: EmbeddedCqlServer, session: Session, keyspace: str
) -> None:
    session.execute(f"CREATE TABLE {keyspace}.t (p int PRIMARY KEY, v int)")
    query = f"UPDATE {keyspace}.t SET v = 1 WHERE p = 1".encode()
    body = (
        struct.pack(">BH", 1, 2)  # UNLOGGED, two items
        + struct.pack(">Bi", 0, len(query))
        + query
        + struct.pack(">H", 0)  # the query string, no values
        + struct.pack(">BH", 1, 0)  # a prepared id of length 0 ...
        + struct.pack(">H", 0)  # ... no values
        + struct.pack(">HB", 1, 0)  # consistency ONE, no flags
    )
    with socket.create_connection((cql_server.host, cql_server.port), timeout=5) as sock:
        startup = struct.pack(">H", 1) + b"\x00\x0bCQL_VERSION\x00\x053.0.0"
        sock.sendall(struct.pack(">BBhBi", 4, 0, 0, 0x01, len(startup)) + startup)
        assert read_frame(sock)[1] == 0x02  # READY
        sock.sendall(struct.pack(">BBhBi", 4, 0, 1, 0x0D, len(body)) + body)
        opcode, reply = read_frame(sock)[1:]
    assert opcode == 0x00  # ERROR ...
    assert struct.unpack_from(">i", reply)[0] == 0x2500  # ... UNPREPARED
    assert session.execute(f"SELECT v FROM {keyspace}.t WHERE p = 1").one() is None


def read_frame(sock: socket.socket) -> tuple[int, int, bytes]:
    """(stream, opcode, body) of the next response frame."""
    data = b""
    while len(data) < 9 or len(data) < 9 + struct.unpack_from(">i", data, 5)[0]:
        chunk = sock.recv(4096)
        assert chunk, "connection closed before the answer"
        data += chunk
    _version, _flags, stream, opcode, length = struct.unpack_from(">BBhBi", data)
    return stream, opcode, data[9 : 9 + length]


def test_invalid_statement_in_batch_still_rejects(ks_session: Session) -> None:
    """The per-batch plan checks still run for every distinct statement, interleaved."""
    ks_session.execute("CREATE TABLE t (p int, c int, v text, PRIMARY KEY (p, c))")
    ks_session.execute("CREATE TABLE n (k int PRIMARY KEY, hits counter)")
    insert = ks_session.prepare("INSERT INTO t (p, c, v) VALUES (?, ?, ?)")
    bump = ks_session.prepare("UPDATE n SET hits = hits + 1 WHERE k = ?")
    batch = BatchStatement(batch_type=BatchType.UNLOGGED)
    batch.add(insert, (1, 1, "a"))
    batch.add(insert, (1, 2, "b"))
    batch.add(bump, (1,))
    batch.add(insert, (1, 3, "c"))
    with pytest.raises(InvalidRequest, match="Counter and non-counter"):
        ks_session.execute(batch)
