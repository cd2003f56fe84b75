"""Coalescing writer and reader: many concurrent callers, few driver requests.

Why: one Python process cannot push much more than ~5,000 driver requests/s, but a chat node
must accept more sends than that. Every send therefore hands its statements to a
:class:`BatchWriter`, which groups the statements of all sends that arrive within
``max_delay`` (or until ``max_statements`` or ``max_bytes`` of entries are waiting) into one
UNLOGGED batch — one request for many messages. Likewise :class:`BatchReader` turns many
concurrent single-key lookups into one ``WHERE key IN ?`` read.

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
from typing import Any, Protocol

from cassandra import InvalidRequest
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Session
from cassandra.query import UNSET_VALUE, BatchStatement, BatchType, PreparedStatement

from chat.domain.messages import ms_of
from chat.errors import ServiceUnavailable
from chat.metrics import Metrics
from chat.store.driver.session import execute_async, execute_encoded_batch


class Timer(Protocol):
    """A scheduled call that can be called off (``asyncio.TimerHandle`` is one)."""

    def cancel(self) -> None: ...


CallLater = Callable[[float, Callable[[], object]], Timer]
"""The clock a batcher measures its delay on: ``call_later(delay, callback)``. The event
loop's by default; a test passes one it advances by hand, to show what does *not* happen when
the delay is up without waiting for it."""

log = logging.getLogger(__name__)

Write = tuple[PreparedStatement, Sequence[Any]]
Serializer = Callable[[Any], bytes]
"""Value -> its protocol *cell*: the 4-byte length followed by the serialized bytes."""

_int32 = struct.Struct(">i").pack
_short = struct.Struct(">H").pack
_len_int32 = struct.Struct(">ii").pack
_len_int64 = struct.Struct(">iq").pack
_NULL = _int32(-1)
_UNSET = _int32(-2)
_UUID_LEN = _int32(16)
_TRUE = _int32(1) + b"\x01"
_FALSE = _int32(1) + b"\x00"


def _bigint(value: int) -> bytes:
    return _len_int64(8, value)


def _int(value: int) -> bytes:
    return _len_int32(4, value)


def _text(value: str) -> bytes:
    data = value.encode()
    return _int32(len(data)) + data


def _uuid(value: Any) -> bytes:
    data: bytes = value.bytes
    return _UUID_LEN + data


def _boolean(value: Any) -> bytes:
    return _TRUE if value else _FALSE


def _timestamp(value: Any) -> bytes:
    return _len_int64(8, value if type(value) is int else ms_of(value))


def _blob(value: Any) -> bytes:
    data = bytes(value)
    return _int32(len(data)) + data


def _text_list(value: Sequence[str]) -> bytes:
    parts = [b"", _int32(len(value))]
    for item in value:
        parts.append(_text(item))
    parts[0] = _int32(sum(map(len, parts)))
    return b"".join(parts)


def _text_map(value: Any) -> bytes:
    parts = [b"", _int32(len(value))]
    for k, v in value.items():
        parts += (_text(k), _text(v))
    parts[0] = _int32(sum(map(len, parts)))
    return b"".join(parts)


# Keys are the driver's names for the types in a prepared statement's metadata. Protocol v4
# metadata cannot say "frozen", so a frozen<list<text>> column arrives as list<text>; both
# spellings are listed (the serialized form is the same).
_SERIALIZERS: dict[str, Serializer] = {
    "bigint": _bigint,
    "int": _int,
    "text": _text,
    "varchar": _text,
    "timeuuid": _uuid,
    "uuid": _uuid,
    "boolean": _boolean,
    "timestamp": _timestamp,
    "blob": _blob,
    "list<text>": _text_list,
    "frozen<list<text>>": _text_list,
    "map<text, text>": _text_map,
    "frozen<map<text, text>>": _text_map,
}


def _driver_serializer(cql_type: Any) -> Serializer:
    def serialize(value: Any) -> bytes:
        data: bytes = cql_type.serialize(value, 4)
        return _int32(len(data)) + data

    return serialize


# How each type's cell is built inside a generated ``entry`` function ({v}: the value's name).
# Fixed-size types are one C call; the rest call their serializer above.
_INLINE: dict[str, str] = {
    "bigint": "_len_int64(8, {v})",
    "int": "_len_int32(4, {v})",
    "timeuuid": "_UUID_LEN + {v}.int.to_bytes(16, 'big')",
    "uuid": "_UUID_LEN + {v}.int.to_bytes(16, 'big')",
    "timestamp": "(_len_int64(8, {v}) if {v}.__class__ is int else _timestamp({v}))",
    "boolean": "(_TRUE if {v} else _FALSE)",
}


class Encoder:
    """Serializes one prepared statement, bind values and all, into its BATCH-body entry.

    Why not ``PreparedStatement.bind`` + ``BatchStatement.add``: the driver binds each value
    through generic per-type dispatch and then, when the batch is sent, writes every value
    again field by field — together the largest cost of a send in the profile. The chat tables
    use a handful of types, serialized here straight into protocol cells (native protocol v4
    encodings); any other type falls back to the driver's own serializer. A caller's entries
    are joined into one bytes object once, and a batch body is then one join over callers.
    ``timestamp`` accepts Unix milliseconds (int) as well as datetimes.

    Even so, encoding stayed the largest cost of the send path (a loop over values with a
    function call each), so ``entry`` is a function generated per statement, the way
    ``dataclasses`` generates ``__init__``: one tuple unpacking, then one expression per value
    with the fixed-size types inlined. Only type names from the prepared metadata reach the
    generated source, through the fixed templates above.

    ``entry(values)`` returns the statement's entry in a BATCH body: header and one cell per
    bind value. ValueError when the number of values is wrong; a value of the wrong type
    raises whatever its serializer raises (TypeError, struct.error, AttributeError).
    """

    __slots__ = ("_serializers", "entry", "query_id", "routing_indexes")

    def __init__(self, prepared: PreparedStatement) -> None:
        self.query_id: bytes = prepared.query_id
        self.routing_indexes: list[int] = list(prepared.routing_key_indexes or ())
        type_names = [col.type.cql_parameterized_type() for col in prepared.column_metadata]
        self._serializers: list[Serializer] = [
            _SERIALIZERS.get(name) or _driver_serializer(col.type)
            for name, col in zip(type_names, prepared.column_metadata, strict=True)
        ]
        # kind 1 (prepared), [short bytes] id, [short] number of values
        header = b"\x01" + _short(len(self.query_id)) + self.query_id + _short(len(type_names))
        self.entry: Callable[[Sequence[Any]], bytes] = _entry_function(
            header, type_names, self._serializers
        )

    def routing_key(self, values: Sequence[Any]) -> bytes | None:
        """The partition key as the driver's token-aware routing expects it."""
        idx = self.routing_indexes
        if not idx:
            return None
        parts = [self._serializers[i](values[i])[4:] for i in idx]
        if len(parts) == 1:
            return parts[0]
        return b"".join(_short(len(p)) + p + b"\x00" for p in parts)


class WriterClosed(ServiceUnavailable):
    """The writer closed before the statements were sent: nothing was written, retry (the
    client hears the documented ``unavailable`` code and retries on another node)."""


def _entry_function(
    header: bytes, type_names: Sequence[str], serializers: Sequence[Serializer]
) -> Callable[[Sequence[Any]], bytes]:
    """Generate ``entry(values) -> bytes`` for one statement (see :class:`Encoder`)."""
    n = len(type_names)
    if n == 0:
        return lambda values: header
    names = [f"v{i}" for i in range(n)]
    cells = []
    for i, (name, v) in enumerate(zip(type_names, names, strict=True)):
        template = _INLINE.get(name, f"_s{i}({{v}})")
        cells.append(
            f"(_NULL if {v} is None else _UNSET if {v} is _UNSET_VALUE else "
            + template.format(v=v)
            + ")"
        )
    source = (
        "def entry(values):\n"
        f"    if len(values) != {n}:\n"
        f"        raise ValueError(f'expected {n} bind values, got {{len(values)}}')\n"
        f"    {', '.join(names)}, = values\n"
        f"    return b''.join((_header, {', '.join(cells)}))\n"
    )
    namespace: dict[str, Any] = {
        "_header": header,
        "_NULL": _NULL,
        "_UNSET": _UNSET,
        "_UNSET_VALUE": UNSET_VALUE,
        "_len_int64": _len_int64,
        "_len_int32": _len_int32,
        "_UUID_LEN": _UUID_LEN,
        "_TRUE": _TRUE,
        "_FALSE": _FALSE,
        "_timestamp": _timestamp,
        **{f"_s{i}": f for i, f in enumerate(serializers)},
    }
    exec(source, namespace)  # fixed templates only, see Encoder
    entry: Callable[[Sequence[Any]], bytes] = namespace["entry"]
    return entry


DEFAULT_MAX_IN_FLIGHT = 2
"""Batches (or reads) per replica group that may be unanswered at once before the next one
waits for an answer instead of the delay. Two, not one, so a batch held up by the server does
not stall the group while the other is answered."""

MAX_BATCH_STATEMENTS = 0xFFFF
"""The protocol counts a BATCH's statements in an unsigned short."""

DEFAULT_MAX_BATCH_BYTES = 128 * 1024
"""ScyllaDB's default ``batch_size_warn_threshold_in_kb`` (it *rejects* batches over
``batch_size_fail_threshold_in_kb``, 1024 KiB): a batch is flushed once its entries reach this
many bytes, so large messages (16 KiB of text each) make smaller batches instead of warnings
or rejections. A single caller's statements still travel together, whatever their size."""


@dataclass(slots=True)
class _Group:
    """One caller's statements, encoded and joined, and the future that answers the caller."""

    body: bytes
    count: int
    first: tuple[Encoder, Sequence[Any]] | None  # for the routing key, computed only if needed
    done: asyncio.Future[None]

    def routing_key(self) -> bytes | None:
        return self.first[0].routing_key(self.first[1]) if self.first is not None else None


@dataclass(slots=True)
class _Pending:
    groups: list[_Group] = field(default_factory=list)
    size: int = 0
    nbytes: int = 0


class BatchWriter:
    """Groups the statements of concurrent callers into UNLOGGED batches.

    Create it on the event loop it will serve (it binds to the running loop).

    ``replica_of`` maps a routing key to a hashable replica id (None: one group for all);
    a caller's statements follow the routing key of the caller's first statement.
    """

    def __init__(
        self,
        session: Session,
        *,
        max_delay: float,
        max_statements: int,
        max_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        replica_of: Callable[[bytes | None], Hashable] | None = None,
        keyspace: str | None = None,
        metrics: Metrics | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        call_later: CallLater | None = None,
    ) -> None:
        self._session = session
        # Bound once: ``asyncio.get_running_loop()`` costs a getpid() system call in Python
        # 3.11, and the send path would pay it for every statement group.
        self._loop = asyncio.get_running_loop()
        self._call_later: CallLater = call_later or self._loop.call_later
        self._metrics = metrics
        self._max_delay = max_delay
        self._max_statements = min(max_statements, MAX_BATCH_STATEMENTS)
        self._max_bytes = max_bytes
        self._replica_of = replica_of
        self._keyspace = keyspace
        self._encoders: dict[int, tuple[PreparedStatement, Encoder]] = {}
        self._pending: dict[Hashable, _Pending] = {}
        self._timer: Timer | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._max_in_flight = max(1, max_in_flight)
        self._flying: dict[Hashable, int] = {}
        self._deferred: set[Hashable] = set()
        self._closed = False
        self.batches_sent = 0
        self.statements_sent = 0
        self._in_flight_statements = 0

    def write(self, writes: Sequence[Write]) -> asyncio.Future[None]:
        """Queue one caller's statements; the future resolves when their batch is acknowledged.

        Values are serialized here, in the caller's context, so a value that cannot be encoded
        fails this caller at once instead of poisoning a batch.
        """
        try:
            encoder = self.encoder
            body = b"".join([encoder(stmt).entry(values) for stmt, values in writes])
        except Exception as exc:
            done: asyncio.Future[None] = self._loop.create_future()
            done.set_exception(exc)
            return done
        first = (encoder(writes[0][0]), writes[0][1]) if writes else None
        return self.write_entries(body, len(writes), first)

    def write_entries(
        self, body: bytes, count: int, first: tuple[Encoder, Sequence[Any]] | None
    ) -> asyncio.Future[None]:
        """:meth:`write` for statements the caller encoded itself with :meth:`encoder`.

        ``body`` holds ``count`` entries (``Encoder.entry`` results, joined); ``first`` is the
        first statement's encoder and values, for its routing key. The send path uses this to
        skip the per-statement encoder lookup.
        """
        loop = self._loop
        done: asyncio.Future[None] = loop.create_future()
        if self._closed:
            done.set_exception(WriterClosed("the message writer is shutting down; retry"))
            return done
        if count > MAX_BATCH_STATEMENTS:
            done.set_exception(
                ValueError(f"a batch holds at most {MAX_BATCH_STATEMENTS} statements")
            )
            return done
        group = _Group(body, count, first, done)
        key = self._replica_of(group.routing_key()) if self._replica_of is not None else None
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending()
        elif (
            pending.size + count > MAX_BATCH_STATEMENTS
            or pending.nbytes + len(body) > self._max_bytes
        ):
            self._send(key, pending.groups)
            pending = self._pending[key] = _Pending()
        pending.groups.append(group)
        pending.size += count
        pending.nbytes += len(body)
        if pending.size >= self._max_statements or pending.nbytes >= self._max_bytes:
            del self._pending[key]
            self._deferred.discard(key)
            self._send(key, pending.groups)
        elif self._timer is None and key not in self._deferred:
            if self._max_delay > 0:
                self._timer = self._call_later(self._max_delay, self._flush_all)
            else:
                self._timer = loop.call_soon(self._flush_all)
        return done

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop this writer serves (and answers its callers on)."""
        return self._loop

    @property
    def pending_statements(self) -> float:
        """Statements queued for a batch or sent and not yet answered (a queue depth)."""
        return float(sum([p.size for p in self._pending.values()]) + self._in_flight_statements)

    def encoder(self, stmt: PreparedStatement) -> Encoder:
        """The (cached) encoder of a prepared statement."""
        entry = self._encoders.get(id(stmt))
        if entry is None or entry[0] is not stmt:
            entry = self._encoders[id(stmt)] = (stmt, Encoder(stmt))
        return entry[1]

    def _flush_all(self, *, force: bool = False) -> None:
        """The delay is up: send what waits — except behind a full set of batches in flight.

        A group whose ``max_in_flight`` batches are all still unanswered is *deferred*: it
        goes when one of them is answered (``_landed``), by then holding everything that
        arrived meanwhile. So at moderate load a send costs a share of one request instead of
        a request per delay period: the driver's per-request cost (building the request, its
        future, timer and answer — ~0.1-0.25 ms of this thread each) had made a gateway at
        2,000 messages/s spend more CPU per message than one at 4,000.
        """
        self._timer = None
        for key in list(self._pending):
            if force or self._flying.get(key, 0) < self._max_in_flight:
                self._deferred.discard(key)
                self._send(key, self._pending.pop(key).groups)
            else:
                self._deferred.add(key)

    def _send(self, key: Hashable, groups: list[_Group]) -> None:
        self._flying[key] = self._flying.get(key, 0) + 1
        task = self._loop.create_task(self._run(groups))
        self._in_flight.add(task)
        task.add_done_callback(lambda done: self._landed(key, done))

    def _landed(self, key: Hashable, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        left = self._flying[key] - 1
        if left:
            self._flying[key] = left
        else:
            del self._flying[key]
        if key in self._deferred:
            self._deferred.discard(key)
            pending = self._pending.pop(key, None)
            if pending is not None:
                self._send(key, pending.groups)

    async def _run(self, groups: list[_Group]) -> None:
        count = sum([g.count for g in groups])
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        batch.routing_key = groups[0].routing_key()
        batch.keyspace = self._keyspace
        batch.is_idempotent = True
        self.batches_sent += 1
        self.statements_sent += count
        self._in_flight_statements += count
        if self._metrics is not None:
            self._metrics.batch_statements.observe(count)
        try:
            try:
                await execute_encoded_batch(
                    self._session, batch, count, b"".join([g.body for g in groups])
                )
            finally:
                self._in_flight_statements -= count
        except InvalidRequest as exc:
            if self._metrics is not None:
                self._metrics.driver_error(exc)
            if len(groups) == 1:
                _fail(groups, exc)
                return
            log.warning("batch of %d sends rejected (%s); re-sending each alone", len(groups), exc)
            await asyncio.gather(*(self._run([g]) for g in groups))
        except BaseException as exc:
            if self._metrics is not None and not isinstance(exc, asyncio.CancelledError):
                self._metrics.driver_error(exc)
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
        self._flush_all(force=True)
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
    ``execution_profile`` (a name or an ``ExecutionProfile``) may choose e.g. the row factory.
    """

    def __init__(
        self,
        session: Session,
        statement: PreparedStatement,
        key_of: Callable[[Any], Hashable],
        *,
        max_delay: float,
        max_keys: int,
        execution_profile: Any = EXEC_PROFILE_DEFAULT,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        call_later: CallLater | None = None,
    ) -> None:
        self._session = session
        self._loop = asyncio.get_running_loop()  # once: see BatchWriter.__init__
        self._call_later: CallLater = call_later or self._loop.call_later
        self._max_in_flight = max(1, max_in_flight)
        self._deferred = False
        self._execution_profile = execution_profile
        self._statement = statement
        self._key_of = key_of
        self._max_delay = max_delay
        self._max_keys = max_keys
        self._waiting: dict[Hashable, list[asyncio.Future[Any]]] = {}
        self._timer: Timer | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self.reads_sent = 0

    def get(self, key: Hashable) -> asyncio.Future[Any]:
        loop = self._loop
        result: asyncio.Future[Any] = loop.create_future()
        waiters = self._waiting.get(key)
        if waiters is None:
            self._waiting[key] = [result]
        else:
            waiters.append(result)
        if len(self._waiting) >= self._max_keys:
            self._flush(force=True)
        elif self._timer is None and not self._deferred:
            if self._max_delay > 0:
                self._timer = self._call_later(self._max_delay, self._flush)
            else:
                self._timer = loop.call_soon(self._flush)
        return result

    def _flush(self, *, force: bool = False) -> None:
        """Send the waiting keys — or, behind ``max_in_flight`` unanswered reads, defer them
        to the next answer (the writer's rule, see ``BatchWriter._flush_all``)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not force and len(self._in_flight) >= self._max_in_flight:
            self._deferred = True
            return
        self._deferred = False
        waiting, self._waiting = self._waiting, {}
        if waiting:
            task = self._loop.create_task(self._run(waiting))
            self._in_flight.add(task)
            task.add_done_callback(self._landed)

    def _landed(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if self._deferred:
            self._flush()

    async def _run(self, waiting: dict[Hashable, list[asyncio.Future[Any]]]) -> None:
        self.reads_sent += 1
        try:
            rows = await execute_async(
                self._session,
                self._statement,
                (list(waiting),),
                execution_profile=self._execution_profile,
            )
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
        self._flush(force=True)
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
