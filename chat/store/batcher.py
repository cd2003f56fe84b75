"""Coalescing writer and reader: many concurrent callers, few driver requests.

Why: one Python process cannot push much more than ~5,000 driver requests/s, but a chat node
must accept more sends than that. Every send therefore hands its statements to a
:class:`BatchWriter`, which groups the statements of all sends that arrive within
``max_delay`` (or until ``max_statements`` are waiting) into one UNLOGGED batch — one request
for many messages. Likewise :class:`BatchReader` turns many concurrent single-key lookups into
one ``WHERE key IN ?`` read.

Contracts:

- A caller's statements always travel together in one batch, and the caller is answered when
  that batch is answered: success only once the server acknowledged the whole batch, an error
  otherwise — never a false success.
- A failed batch fails only its own callers. When the server *rejects* a batch (an invalid
  statement), the batch is split and every caller's statements are re-sent on their own, so one
  bad send does not take its batch-mates down with it. That re-send is safe because everything
  the writer carries is an idempotent upsert with fixed values. Timeouts and unavailability are
  not split (that would multiply load on a struggling cluster): those callers get the error.
- Batches may span partitions. On the embedded server (one node) every partition has the same
  replica, so a multi-partition batch costs the coordinator nothing extra. On a ScyllaDB
  cluster such a batch makes its coordinator fan out to other replicas; the writer then groups
  statements by the replica of their routing key (``group_by_replica``), so each batch lands
  on — and is coordinated by — a replica that owns most of it.
- ``close()`` flushes everything still waiting and waits for every batch in flight, so no
  caller is left hanging at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cassandra import InvalidRequest
from cassandra.cluster import Session
from cassandra.query import UNSET_VALUE, BatchStatement, BatchType, PreparedStatement

from chat.domain.messages import ms_of
from chat.errors import ServiceUnavailable
from chat.store.cql import execute_async

log = logging.getLogger(__name__)

Write = tuple[PreparedStatement, Sequence[Any]]
Encoded = list[Any]  # serialized bind values (bytes), None (null) or UNSET_VALUE
Serializer = Callable[[Any], bytes]

_int64 = struct.Struct(">q").pack
_int32 = struct.Struct(">i").pack


def _timestamp(value: Any) -> bytes:
    return _int64(value if type(value) is int else ms_of(value))


def _text_list(value: Sequence[str]) -> bytes:
    parts = [_int32(len(value))]
    for item in value:
        data = item.encode()
        parts += (_int32(len(data)), data)
    return b"".join(parts)


def _text_map(value: Any) -> bytes:
    parts = [_int32(len(value))]
    for k, v in value.items():
        kd, vd = k.encode(), v.encode()
        parts += (_int32(len(kd)), kd, _int32(len(vd)), vd)
    return b"".join(parts)


_SERIALIZERS: dict[str, Serializer] = {
    "bigint": _int64,
    "int": _int32,
    "text": str.encode,
    "varchar": str.encode,
    "timeuuid": lambda v: v.bytes,
    "uuid": lambda v: v.bytes,
    "boolean": lambda v: b"\x01" if v else b"\x00",
    "timestamp": _timestamp,
    "blob": bytes,
    "frozen<list<text>>": _text_list,
    "frozen<map<text, text>>": _text_map,
}


def _driver_serializer(cql_type: Any) -> Serializer:
    def serialize(value: Any) -> bytes:
        data: bytes = cql_type.serialize(value, 4)
        return data

    return serialize


class Encoder:
    """Serializes one prepared statement's bind values (the send path's hottest code).

    The driver's ``PreparedStatement.bind`` builds a BoundStatement and goes through generic
    per-type dispatch; the bench showed it as the largest single cost of a send. The chat
    tables use a handful of types, serialized here directly (native protocol v4 encodings);
    any other type falls back to the driver's own serializer. ``timestamp`` accepts Unix
    milliseconds (int) as well as datetimes.
    """

    __slots__ = ("_serializers", "query_id", "routing_indexes")

    def __init__(self, prepared: PreparedStatement) -> None:
        self.query_id: bytes = prepared.query_id
        self.routing_indexes: list[int] = list(prepared.routing_key_indexes or ())
        self._serializers: list[Serializer] = [
            _SERIALIZERS.get(col.type.cql_parameterized_type()) or _driver_serializer(col.type)
            for col in prepared.column_metadata
        ]

    def encode(self, values: Sequence[Any]) -> Encoded:
        serializers = self._serializers
        if len(values) != len(serializers):
            raise ValueError(f"expected {len(serializers)} bind values, got {len(values)}")
        return [
            v if v is None or v is UNSET_VALUE else f(v)
            for f, v in zip(serializers, values, strict=True)
        ]

    def routing_key(self, encoded: Encoded) -> bytes | None:
        """The partition key as the driver's token-aware routing expects it."""
        idx = self.routing_indexes
        if not idx:
            return None
        if len(idx) == 1:
            value: bytes = encoded[idx[0]]
            return value
        return b"".join(struct.pack(">H", len(encoded[i])) + encoded[i] + b"\x00" for i in idx)


class WriterClosed(ServiceUnavailable):
    code = "writer_closed"
    title = "Writer closed"


@dataclass(slots=True)
class _Group:
    statements: list[tuple[bytes, Encoded]]
    routing_key: bytes | None
    done: asyncio.Future[None]


@dataclass(slots=True)
class _Pending:
    groups: list[_Group] = field(default_factory=list)
    size: int = 0


class BatchWriter:
    """Groups the statements of concurrent callers into UNLOGGED batches.

    ``replica_of`` maps a routing key to a hashable replica id (None: one group for all);
    a caller's statements follow the routing key of the caller's first statement.
    """

    def __init__(
        self,
        session: Session,
        *,
        max_delay: float,
        max_statements: int,
        replica_of: Callable[[bytes | None], Hashable] | None = None,
        keyspace: str | None = None,
    ) -> None:
        self._session = session
        self._max_delay = max_delay
        self._max_statements = max_statements
        self._replica_of = replica_of
        self._keyspace = keyspace
        self._encoders: dict[int, tuple[PreparedStatement, Encoder]] = {}
        self._pending: dict[Hashable, _Pending] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._closed = False
        self.batches_sent = 0
        self.statements_sent = 0

    def write(self, writes: Sequence[Write]) -> asyncio.Future[None]:
        """Queue one caller's statements; the future resolves when their batch is acknowledged.

        Values are serialized here, in the caller's context, so a value that cannot be encoded
        fails this caller at once instead of poisoning a batch.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        if self._closed:
            done.set_exception(WriterClosed("the message writer is shutting down; retry"))
            return done
        try:
            encoded = [self._encode(stmt, values) for stmt, values in writes]
        except Exception as exc:
            done.set_exception(exc)
            return done
        routing_key = self._encoder(writes[0][0]).routing_key(encoded[0][1]) if writes else None
        key = self._replica_of(routing_key) if self._replica_of is not None else None
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending()
        pending.groups.append(_Group(encoded, routing_key, done))
        pending.size += len(encoded)
        if pending.size >= self._max_statements:
            del self._pending[key]
            self._send(pending.groups)
        elif self._timer is None:
            if self._max_delay > 0:
                self._timer = loop.call_later(self._max_delay, self._flush_all)
            else:
                self._timer = loop.call_soon(self._flush_all)  # type: ignore[assignment]
        return done

    def _encoder(self, stmt: PreparedStatement) -> Encoder:
        entry = self._encoders.get(id(stmt))
        if entry is None or entry[0] is not stmt:
            entry = self._encoders[id(stmt)] = (stmt, Encoder(stmt))
        return entry[1]

    def _encode(self, stmt: PreparedStatement, values: Sequence[Any]) -> tuple[bytes, Encoded]:
        encoder = self._encoder(stmt)
        return encoder.query_id, encoder.encode(values)

    def _flush_all(self) -> None:
        self._timer = None
        pending, self._pending = self._pending, {}
        for p in pending.values():
            self._send(p.groups)

    def _send(self, groups: list[_Group]) -> None:
        task = asyncio.get_running_loop().create_task(self._run(groups))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    def _batch(self, groups: list[_Group]) -> BatchStatement:
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        # The statements are already serialized: append them the way BatchStatement.add does
        # for a BoundStatement, minus the re-binding.
        items = batch._statements_and_parameters
        for group in groups:
            for query_id, values in group.statements:
                items.append((True, query_id, values))
        if len(items) > 0xFFFF:
            raise ValueError(f"a batch holds at most 65535 statements, not {len(items)}")
        batch.routing_key = groups[0].routing_key
        batch.keyspace = self._keyspace
        batch.is_idempotent = True
        return batch

    async def _run(self, groups: list[_Group]) -> None:
        batch = self._batch(groups)
        self.batches_sent += 1
        self.statements_sent += len(batch)
        try:
            await execute_async(self._session, batch)
        except InvalidRequest as exc:
            if len(groups) == 1:
                _fail(groups, exc)
                return
            log.warning("batch of %d sends rejected (%s); re-sending each alone", len(groups), exc)
            await asyncio.gather(*(self._run([g]) for g in groups))
        except BaseException as exc:
            _fail(groups, exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            for group in groups:
                if not group.done.done():
                    group.done.set_result(None)

    async def close(self) -> None:
        """Stop taking writes, flush what waits, and wait until every batch is answered."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._flush_all()
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)


def _fail(groups: list[_Group], exc: BaseException) -> None:
    for group in groups:
        if not group.done.done():
            group.done.set_exception(exc)


class BatchReader:
    """Coalesces concurrent single-key reads into ``SELECT ... WHERE key IN ?``.

    ``statement`` must take one bind value, the list of keys, and return rows whose
    ``key_of(row)`` is the key they answer. Each caller gets its row, or None.
    """

    def __init__(
        self,
        session: Session,
        statement: PreparedStatement,
        key_of: Callable[[Any], Hashable],
        *,
        max_delay: float,
        max_keys: int,
    ) -> None:
        self._session = session
        self._statement = statement
        self._key_of = key_of
        self._max_delay = max_delay
        self._max_keys = max_keys
        self._waiting: dict[Hashable, list[asyncio.Future[Any]]] = {}
        self._timer: asyncio.Handle | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self.reads_sent = 0

    def get(self, key: Hashable) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        result: asyncio.Future[Any] = loop.create_future()
        waiters = self._waiting.get(key)
        if waiters is None:
            self._waiting[key] = [result]
        else:
            waiters.append(result)
        if len(self._waiting) >= self._max_keys:
            self._flush()
        elif self._timer is None:
            if self._max_delay > 0:
                self._timer = loop.call_later(self._max_delay, self._flush)
            else:
                self._timer = loop.call_soon(self._flush)
        return result

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting, self._waiting = self._waiting, {}
        if waiting:
            task = asyncio.get_running_loop().create_task(self._run(waiting))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _run(self, waiting: dict[Hashable, list[asyncio.Future[Any]]]) -> None:
        self.reads_sent += 1
        try:
            rows = await execute_async(self._session, self._statement, (list(waiting),))
        except BaseException as exc:
            for futures in waiting.values():
                for f in futures:
                    if not f.done():
                        f.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        found = {self._key_of(row): row for row in rows}
        for key, futures in waiting.items():
            row = found.get(key)
            for f in futures:
                if not f.done():
                    f.set_result(row)

    async def close(self) -> None:
        self._flush()
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
