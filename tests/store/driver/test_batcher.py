"""The coalescing writer and reader against the real server: grouping, isolation of failures."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from cassandra import InvalidRequest
from cassandra.cluster import Session
from cassandra.protocol import BatchMessage
from cassandra.query import (
    UNSET_VALUE,
    BatchStatement,
    BatchType,
    PreparedStatement,
    ValueSequence,
)

from chat.config import Settings
from chat.domain.messages import ms_of
from chat.embedded.cql.process import EmbeddedCqlServer
from chat.errors import ServiceUnavailable
from chat.store.driver.batcher import BatchReader, BatchWriter, Encoder, WriterClosed
from chat.store.driver.session import CqlStore, execute_async, execute_encoded_batch
from tests.polling import until
from tests.store.clocks import ManualTimers


@pytest.fixture(scope="module")
async def writer_session(cql_store: CqlStore) -> AsyncIterator[Session]:
    """A session without client timestamps, as MessageStore uses (see its start())."""
    session = await asyncio.to_thread(cql_store.cluster.connect)
    session.use_client_timestamp = False
    yield session
    await asyncio.to_thread(session.shutdown)


@pytest.fixture(scope="module")
async def kv_table(cql_store: CqlStore, settings: Settings) -> str:
    table = f"{settings.cql_keyspace}.batcher_test_kv"
    await execute_async(
        cql_store.session, f"CREATE TABLE IF NOT EXISTS {table} (k text PRIMARY KEY, v int)"
    )
    return table


@pytest.fixture(scope="module")
async def insert(writer_session: Session, kv_table: str) -> PreparedStatement:
    prepared = await asyncio.to_thread(
        writer_session.prepare, f"INSERT INTO {kv_table} (k, v) VALUES (?, ?)"
    )
    assert prepared is not None
    return prepared


async def _values(cql: CqlStore, table: str, keys: list[str]) -> dict[str, int]:
    rows = await execute_async(
        cql.session, f"SELECT k, v FROM {table} WHERE k IN %s", [ValueSequence(keys)]
    )
    return {r.k: r.v for r in rows}


async def test_concurrent_writes_share_batches_and_all_land(
    writer_session: Session, insert: PreparedStatement, cql_store: CqlStore, kv_table: str
) -> None:
    writer = BatchWriter(writer_session, max_delay=0.001, max_statements=16)
    keys = [f"share-{i}" for i in range(100)]
    await asyncio.gather(*(writer.write([(insert, (k, i))]) for i, k in enumerate(keys)))
    await writer.close()
    assert await _values(cql_store, kv_table, keys) == {k: i for i, k in enumerate(keys)}
    assert writer.statements_sent == 100
    assert writer.batches_sent <= 100 // 16 + 2


async def test_a_caller_whose_statement_the_server_rejects_fails_alone(
    writer_session: Session, insert: PreparedStatement, cql_store: CqlStore, kv_table: str
) -> None:
    writer = BatchWriter(writer_session, max_delay=0.005, max_statements=1000)
    good = [writer.write([(insert, (f"iso-{i}", i))]) for i in range(5)]
    bad = writer.write([(insert, ("", 1))])  # empty partition key: the server refuses it
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    await writer.close()
    assert results[:5] == [None] * 5
    assert isinstance(results[5], InvalidRequest)
    assert await _values(cql_store, kv_table, [f"iso-{i}" for i in range(5)]) == {
        f"iso-{i}": i for i in range(5)
    }


async def test_one_callers_statements_travel_in_one_batch_even_past_the_limit(
    writer_session: Session, insert: PreparedStatement, cql_store: CqlStore, kv_table: str
) -> None:
    writer = BatchWriter(writer_session, max_delay=0.001, max_statements=2)
    await writer.write([(insert, (f"big-{i}", i)) for i in range(5)])
    await writer.close()
    assert writer.batches_sent == 1
    assert len(await _values(cql_store, kv_table, [f"big-{i}" for i in range(5)])) == 5


async def test_close_answers_every_waiting_caller_and_refuses_new_ones(
    writer_session: Session, insert: PreparedStatement
) -> None:
    writer = BatchWriter(writer_session, max_delay=60.0, max_statements=1000)
    waiting = writer.write([(insert, ("closing", 1))])
    await writer.close()
    assert waiting.done()
    assert waiting.result() is None
    with pytest.raises(WriterClosed) as refused:
        await writer.write([(insert, ("late", 1))])
    # The documented code clients retry on, not a private one.
    assert isinstance(refused.value, ServiceUnavailable)
    assert refused.value.code == "unavailable"


async def test_reader_coalesces_lookups_and_answers_missing_keys_with_none(
    writer_session: Session, insert: PreparedStatement, kv_table: str
) -> None:
    writer = BatchWriter(writer_session, max_delay=0, max_statements=100)
    await writer.write([(insert, ("read-a", 1)), (insert, ("read-b", 2))])
    await writer.close()
    select = await asyncio.to_thread(
        writer_session.prepare, f"SELECT k, v FROM {kv_table} WHERE k IN ?"
    )
    reader = BatchReader(writer_session, select, lambda r: r.k, max_delay=0.001, max_keys=50)
    a, b, a_again, missing = await asyncio.gather(
        reader.get("read-a"), reader.get("read-b"), reader.get("read-a"), reader.get("nope")
    )
    await reader.close()
    assert (a.v, b.v, a_again.v, missing) == (1, 2, 1, None)
    assert reader.reads_sent == 1


async def test_encoded_entries_are_byte_for_byte_what_the_driver_would_send(
    writer_session: Session, cql_store: CqlStore, settings: Settings
) -> None:
    """The generated encoders against the driver's own bind + BATCH serialization, every type
    the chat tables use, a type the encoder leaves to the driver (double), null and unset."""
    table = f"{settings.cql_keyspace}.batcher_test_types"
    await execute_async(
        cql_store.session,
        f"CREATE TABLE IF NOT EXISTS {table} (k bigint, c int, t text, tu timeuuid, u uuid, "
        "b boolean, ts timestamp, bl blob, l frozen<list<text>>, m frozen<map<text, text>>, "
        "d double, PRIMARY KEY ((k, c), t))",
    )
    prepared = await asyncio.to_thread(
        writer_session.prepare,
        f"INSERT INTO {table} (k, c, t, tu, u, b, ts, bl, l, m, d) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?",
    )
    encoder = Encoder(prepared)
    when = datetime(2026, 11, 22, 1, 2, 3, 456000, tzinfo=UTC)
    rows: list[tuple[Any, ...]] = [
        (
            -(2**63),
            -7,
            "héllo",
            uuid.uuid1(),
            uuid.uuid4(),
            True,
            when,
            b"\x00\xff",
            ["a", "ü"],
            {"k": "v", "x": ""},
            1.5,
            2**62,
        ),
        (1, 2, "", uuid.uuid1(), None, False, ms_of(when), b"", [], {}, None, 0),
        (1, 2, "x", UNSET_VALUE, UNSET_VALUE, UNSET_VALUE, None, None, None, None, -0.0, 1),
    ]
    for values in rows:
        bound = prepared.bind(values)
        body = io.BytesIO()
        BatchMessage(BatchType.UNLOGGED, [(True, prepared.query_id, bound.values)], 1).send_body(
            body, 4
        )
        driver_entry = body.getvalue()[3:-3]  # minus type + count, consistency + flags
        assert encoder.entry(values) == driver_entry
        if values[0] is not None:
            assert encoder.routing_key(values) == bound.routing_key
    with pytest.raises(ValueError, match="bind values"):
        encoder.entry(rows[0][:-1])


async def test_writes_through_the_encoded_batch_path_read_back_intact(
    writer_session: Session, insert: PreparedStatement, cql_store: CqlStore, kv_table: str
) -> None:
    writer = BatchWriter(writer_session, max_delay=0.001, max_statements=500)
    keys = [f"enc-{i}-ü" for i in range(300)]
    await asyncio.gather(*(writer.write([(insert, (k, -i))]) for i, k in enumerate(keys)))
    await writer.close()
    assert writer.batches_sent == 1
    assert await _values(cql_store, kv_table, keys) == {k: -i for i, k in enumerate(keys)}


async def test_batches_are_cut_at_the_byte_limit_but_a_caller_is_never_split(
    writer_session: Session, insert: PreparedStatement, cql_store: CqlStore, kv_table: str
) -> None:
    """Large messages make smaller batches (ScyllaDB warns above 128 KiB and rejects above
    1 MiB); one caller's statements still travel together even when they alone exceed it."""
    writer = BatchWriter(writer_session, max_delay=0.005, max_statements=1000, max_bytes=2000)
    big = "x" * 900
    keys = [f"bytes-{i}-{big}" for i in range(10)]
    await asyncio.gather(*(writer.write([(insert, (k, i))]) for i, k in enumerate(keys)))
    assert writer.batches_sent == 5  # two ~950-byte entries per 2,000-byte batch
    together = [f"bytes-alone-{i}-{big}" for i in range(4)]
    await writer.write([(insert, (k, i)) for i, k in enumerate(together)])
    await writer.close()
    assert writer.batches_sent == 6
    assert len(await _values(cql_store, kv_table, keys + together)) == 14


async def test_an_encoded_batch_must_not_carry_statements_of_its_own(
    writer_session: Session, insert: PreparedStatement
) -> None:
    batch = BatchStatement(batch_type=BatchType.UNLOGGED)
    batch.add(insert, ("own", 1))
    entry = Encoder(insert).entry(("x", 1))
    with pytest.raises(ValueError, match="empty"):
        await execute_encoded_batch(writer_session, batch, 1, entry)


@contextlib.contextmanager
def _server_paused(server: EmbeddedCqlServer) -> Iterator[None]:
    """The CQL server stopped (SIGSTOP): requests go out and stay unanswered until the end."""
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.pid, signal.SIGCONT)


async def test_behind_unanswered_batches_the_next_waits_for_an_answer_not_the_delay(
    writer_session: Session,
    insert: PreparedStatement,
    cql_store: CqlStore,
    kv_table: str,
    cql_server: EmbeddedCqlServer,
) -> None:
    timers = ManualTimers()
    writer = BatchWriter(
        writer_session,
        max_delay=0.001,
        max_statements=2,
        max_in_flight=1,
        call_later=timers.call_later,
    )
    with _server_paused(cql_server):
        # Two statements fill a batch: it goes out at once and stays unanswered.
        first = writer.write([(insert, ("inflight-1", 1)), (insert, ("inflight-2", 2))])
        second = writer.write([(insert, ("inflight-3", 3))])
        third = writer.write([(insert, ("inflight-4", 4))])  # 2 waiting: a full batch again
        fourth = writer.write([(insert, ("inflight-5", 5))])
        # Full batches go whatever is in flight.
        await until(lambda: writer.batches_sent == 2, what="the two full batches to go out")
        timers.advance(0.05)  # fifty delays
        assert timers.fired == 1
        await asyncio.sleep(0)  # a batch the timer had sent would start running here
        assert writer.batches_sent == 2  # the fourth still waits behind the others
    await asyncio.gather(first, second, third, fourth)
    assert writer.batches_sent == 3  # the fourth went once an answer came
    await writer.close()
    keys = [f"inflight-{i}" for i in range(1, 6)]
    assert await _values(cql_store, kv_table, keys) == {k: i for i, k in enumerate(keys, 1)}


async def test_behind_an_unanswered_read_the_next_keys_wait_for_its_answer(
    writer_session: Session, insert: PreparedStatement, kv_table: str, cql_server: EmbeddedCqlServer
) -> None:
    writer = BatchWriter(writer_session, max_delay=0, max_statements=100)
    await writer.write([(insert, ("deferred-a", 1)), (insert, ("deferred-b", 2))])
    await writer.close()
    select = await asyncio.to_thread(
        writer_session.prepare, f"SELECT k, v FROM {kv_table} WHERE k IN ?"
    )
    timers = ManualTimers()
    reader = BatchReader(
        writer_session,
        select,
        lambda r: r.k,
        max_delay=0.001,
        max_keys=2,
        max_in_flight=1,
        call_later=timers.call_later,
    )
    with _server_paused(cql_server):
        a, missing = reader.get("deferred-a"), reader.get("deferred-none")  # two keys: sent
        b = reader.get("deferred-b")
        await until(lambda: reader.reads_sent == 1, what="the first read to go out")
        timers.advance(0.05)  # fifty delays
        assert timers.fired == 1
        await asyncio.sleep(0)  # a read the timer had sent would start running here
        assert reader.reads_sent == 1  # still behind the unanswered read
    assert [(await a).v, await missing, (await b).v] == [1, None, 2]
    assert reader.reads_sent == 2
    await reader.close()
