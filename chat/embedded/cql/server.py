"""Connections of the embedded CQL server: bytes from sockets to the engine and back.

Each connection is an ``asyncio.Protocol`` (not streams: a protocol callback per read costs far
less CPU than a reader task per connection), in the manner of the websockets asyncio layer: it
only moves frames between the socket, the pure codec in :mod:`frames` and the engine. Every
request is answered synchronously inside ``data_received``, except that a write's answer waits
for the engine's durability future (group commit): all answers produced by one read are
collected and written with one ``transport.write`` once their fsync has completed.

Stream ids are answered exactly once each; answers of different streams may overtake each other
(a read does not wait for an earlier write's fsync), which the protocol allows.

What a client can make a connection hold is bounded: a request body over ``max_frame`` bytes
is skipped as it arrives and answered with an Invalid error (as ScyllaDB does), an LZ4 body may
not claim to inflate beyond that either, and a frame must arrive whole within
``frame_timeout`` seconds of its first byte — a client that sends part of one and stalls is
disconnected. With an authenticator configured, nothing but OPTIONS, STARTUP and the
AUTH_RESPONSE is served before the client authenticated.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Protocol, cast

from chat.embedded.cql import frames, request_bodies, responses
from chat.embedded.cql.auth import PasswordAuthenticator
from chat.embedded.cql.errors import CqlError, InvalidRequest, ProtocolError, WriteFailure
from chat.embedded.cql.results import Prepared, Rows, SchemaChange, SetKeyspace, Void

if TYPE_CHECKING:
    from chat.embedded.cql.engine import QueryOptions
    from chat.embedded.cql.results import Result

log = logging.getLogger(__name__)

FRAME_TIMEOUT = 30.0
"""Seconds within which a frame must arrive whole once its first byte has."""

# Pause reading from a client whose answers pile up unread beyond this many bytes.
WRITE_HIGH_WATER = 4 * 1024 * 1024
# The write type a Write_failure names, per BATCH type (logged, unlogged, counter).
_BATCH_WRITE_TYPES = ("BATCH", "UNLOGGED_BATCH", "COUNTER")


class EngineApi(Protocol):
    """The slice of ``engine.Engine`` the server calls: all the protocol layer needs of it."""

    def prepare(self, query: str, keyspace: str | None) -> Prepared: ...

    def lookup(self, statement_id: bytes) -> Prepared: ...

    def execute(
        self,
        prepared: Prepared,
        values: Sequence[bytes | None],
        options: QueryOptions,
        keyspace: str | None,
    ) -> Result: ...

    def query(
        self,
        query: str,
        values: Sequence[bytes | None],
        options: QueryOptions,
        keyspace: str | None,
    ) -> Result: ...

    def batch(
        self,
        batch_type: int,
        items: Sequence[tuple[Prepared, Sequence[bytes | None]]],
        options: QueryOptions,
        keyspace: str | None,
    ) -> Result: ...

    def durable(self) -> Awaitable[None] | None: ...


class CqlServer:
    """Accepts connections, tracks them for SCHEMA_CHANGE events and for a graceful close."""

    def __init__(
        self,
        options_type: type[QueryOptions],
        *,
        authenticator: PasswordAuthenticator | None = None,
        max_frame: int = frames.MAX_FRAME_BYTES,
        frame_timeout: float = FRAME_TIMEOUT,
    ) -> None:
        self.options_type = options_type
        self.authenticator = authenticator
        self.max_frame = max_frame
        self.frame_timeout = frame_timeout
        self._engine: EngineApi | None = None
        self.connections: set[CqlConnection] = set()
        self.listeners: set[CqlConnection] = set()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def bind(self, host: str, port: int) -> tuple[str, int]:
        """Bind the listening socket without accepting yet; returns the bound address.

        Binding first lets ``--port 0`` learn its port before the engine (whose
        ``system.local`` reports the address) is started.
        """
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: CqlConnection(self), host, port, start_serving=False, backlog=1024
        )
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    @property
    def engine(self) -> EngineApi:
        if self._engine is None:
            raise RuntimeError("the CQL server has no engine yet: call start_serving() first")
        return self._engine

    async def start_serving(self, engine: EngineApi) -> None:
        """Accept connections, answered by ``engine`` (already started)."""
        if self._server is None:
            raise RuntimeError("cannot start serving: call bind() first")
        self._engine = engine
        await self._server.start_serving()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_stalled())

    async def _sweep_stalled(self) -> None:
        """Disconnect clients that started a frame and did not finish it in time."""
        loop = asyncio.get_running_loop()
        period = max(min(self.frame_timeout / 4, 1.0), 0.01)
        while True:
            await asyncio.sleep(period)
            deadline = loop.time() - self.frame_timeout
            for connection in tuple(self.connections):
                since = connection.partial_since
                if since is not None and since < deadline:
                    connection.drop_stalled(self.frame_timeout)

    def broadcast(self, data: bytes) -> None:
        """Send an already encoded EVENT frame to every registered connection, never waiting."""
        for connection in tuple(self.listeners):
            connection.send(data)

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting, let answers awaiting an fsync go out, then close every connection.

        May be called twice. Connections still busy after ``grace`` seconds are aborted.
        """
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        pending = [c.idle() for c in self.connections]
        if pending:
            await asyncio.wait([asyncio.ensure_future(p) for p in pending], timeout=grace)
        for connection in tuple(self.connections):
            connection.close()
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), grace)
            except TimeoutError:
                for connection in tuple(self.connections):
                    connection.abort()


class CqlConnection(asyncio.Protocol):
    """One client connection: decoder, negotiated version, current keyspace (USE)."""

    def __init__(self, server: CqlServer) -> None:
        self.server = server
        self.engine = server.engine
        self.options_type = server.options_type
        self.authenticator = server.authenticator
        self.decoder = frames.FrameDecoder(server.max_frame)
        self.transport: asyncio.Transport | None = None
        self.version = 0  # set by the first frame in a supported version
        self.started = False
        self.ready = False  # STARTUP done and, if required, authenticated
        self.user: str | None = None
        self.partial_since: float | None = None  # loop time the unfinished frame began
        self.compressed = False  # lz4 negotiated in STARTUP
        self.keyspace: str | None = None
        self._deferred: list[bytes] = []
        self._deferred_streams: list[tuple[int, str]] = []  # (stream, write type) per answer
        self._deferred_future: Awaitable[None] | None = None
        self._in_flight = 0  # answers awaiting an fsync
        self._idle: asyncio.Future[None] | None = None

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.server.listeners.discard(self)
        self.transport = None
        if self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        decoder = self.decoder
        try:
            received = decoder.feed(data)
        except ProtocolError as exc:
            self.send(responses.encode_cql_error(0, exc))
            self.close()
            return
        if decoder.pending:
            if self.partial_since is None or received:
                self.partial_since = asyncio.get_running_loop().time()
        else:
            self.partial_since = None
        out: list[bytes] = []
        for frame in received:
            if isinstance(frame, frames.Frame):
                self._handle(frame, out)
            else:
                self._refuse_too_large(frame, out)
        if out:
            self.send(b"".join(out))
        if self._deferred:
            self._flush_after_durable()

    # -- sending

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def drop_stalled(self, timeout: float) -> None:
        """The client sent part of a frame and nothing more for ``timeout`` seconds."""
        peer = self.transport.get_extra_info("peername") if self.transport is not None else None
        log.warning(
            "closing connection from %s: a frame was left unfinished for %.0f s", peer, timeout
        )
        self.partial_since = None
        self.abort()

    def _refuse_too_large(self, frame: frames.FrameTooLarge, out: list[bytes]) -> None:
        version = frame.version if frames.MIN_VERSION <= frame.version <= frames.MAX_VERSION else 0
        message = frames.too_large_message(frame.length, self.decoder.max_frame)
        log.info("refused an oversized request on stream %d: %s", frame.stream, message)
        out.append(
            responses.encode_error(
                frame.stream, InvalidRequest.code, message, b"", version or frames.MAX_VERSION
            )
        )

    def idle(self) -> Awaitable[None]:
        """Completes when no answer of this connection waits for an fsync."""
        loop = asyncio.get_running_loop()
        if self._in_flight == 0 or self.transport is None:
            done: asyncio.Future[None] = loop.create_future()
            done.set_result(None)
            return done
        if self._idle is None or self._idle.done():
            self._idle = loop.create_future()
        return self._idle

    def _flush_after_durable(self) -> None:
        """Send the answers collected in this read once the engine's fsync covering them is done."""
        answers = b"".join(self._deferred)
        streams = self._deferred_streams
        awaitable = self._deferred_future
        self._deferred = []
        self._deferred_streams = []
        self._deferred_future = None
        self._in_flight += 1
        if isinstance(awaitable, asyncio.Future):
            future: asyncio.Future[None] = awaitable
        else:
            assert awaitable is not None
            future = asyncio.ensure_future(awaitable)

        def done(completed: asyncio.Future[None]) -> None:
            self._in_flight -= 1
            if completed.cancelled() or completed.exception() is not None:
                # Without the fsync the writes are not acknowledged: each is answered with a
                # Write_failure instead, never a false success.
                reason = "commit log sync failed"
                if not completed.cancelled():
                    reason = str(completed.exception()) or reason
                version = self.version or frames.MAX_VERSION
                self.send(
                    b"".join(
                        responses.encode_cql_error(
                            stream, WriteFailure(f"{reason}; not applied durably", kind), version
                        )
                        for stream, kind in streams
                    )
                )
            else:
                self.send(answers)
            if self._in_flight == 0 and self._idle is not None and not self._idle.done():
                self._idle.set_result(None)

        future.add_done_callback(done)

    def _answer_write(
        self, answer: bytes, out: list[bytes], stream: int, write_type: str = "SIMPLE"
    ) -> None:
        """Queue a write's answer behind the engine's durability future, if one is pending."""
        durable = self.engine.durable()
        if durable is None:
            out.append(answer)
            return
        if self._deferred and durable is not self._deferred_future:
            self._flush_after_durable()
        self._deferred_future = durable
        self._deferred.append(answer)
        self._deferred_streams.append((stream, write_type))

    # -- dispatch

    def _handle(self, frame: frames.Frame, out: list[bytes]) -> None:
        stream = frame.stream
        try:
            if frame.version != self.version:
                frames.check_version(frame)
                if self.version:
                    raise ProtocolError(
                        f"frame in protocol v{frame.version} on a v{self.version} connection"
                    )
                self.version = frame.version
            if frame.flags & frames.FLAG_COMPRESSED:
                if not self.compressed:
                    raise ProtocolError("compressed frame before COMPRESSION was negotiated")
                frame = frames.decompress(frame, self.decoder.max_frame)
            opcode = frame.opcode
            if opcode == frames.OP_EXECUTE:
                self._execute(frame, out)
            elif opcode == frames.OP_BATCH:
                self._batch(frame, out)
            elif opcode == frames.OP_QUERY:
                self._query(frame, out)
            elif opcode == frames.OP_PREPARE:
                self._require_started()
                query = request_bodies.decode_prepare(frame)
                prepared = self.engine.prepare(query, self.keyspace)
                out.append(responses.encode_prepared(stream, prepared, self.version))
            elif opcode == frames.OP_OPTIONS:
                out.append(responses.encode_supported(stream, self.version))
            elif opcode == frames.OP_STARTUP:
                self._startup(frame, out)
            elif opcode == frames.OP_AUTH_RESPONSE:
                self._authenticate(frame, out)
            elif opcode == frames.OP_REGISTER:
                self._require_started()
                if "SCHEMA_CHANGE" in request_bodies.decode_register(frame):
                    self.server.listeners.add(self)
                out.append(responses.encode_ready(stream, self.version))
            else:
                raise ProtocolError(f"unexpected opcode 0x{opcode:02x} in a request")
        except CqlError as exc:
            out.append(responses.encode_cql_error(stream, exc, self.version or frames.MAX_VERSION))
        except Exception:
            log.exception("internal error answering opcode 0x%02x", frame.opcode)
            out.append(
                responses.encode_error(
                    stream,
                    0x0000,
                    "internal server error; see the server log",
                    b"",
                    self.version or frames.MAX_VERSION,
                )
            )

    def _require_started(self) -> None:
        if not self.ready:
            if self.started:
                raise ProtocolError("Unexpected message, expecting AUTH_RESPONSE (authenticate)")
            raise ProtocolError("send STARTUP before any other request but OPTIONS")

    def _authenticate(self, frame: frames.Frame, out: list[bytes]) -> None:
        if self.authenticator is None or not self.started or self.ready:
            raise ProtocolError("Unexpected message AUTH_RESPONSE")
        token = request_bodies.decode_auth_response(frame)
        self.user = self.authenticator.authenticate(token)
        self.ready = True
        out.append(responses.encode_auth_success(frame.stream, self.version))

    def _startup(self, frame: frames.Frame, out: list[bytes]) -> None:
        options = request_bodies.decode_startup(frame)
        compression = options.get("COMPRESSION")
        if compression:
            if compression.lower() not in frames.COMPRESSIONS:
                raise ProtocolError(
                    f"compression {compression!r} is not supported; "
                    f"SUPPORTED lists COMPRESSION: {list(frames.COMPRESSIONS)}"
                )
            self.compressed = True
        self.started = True
        if self.authenticator is not None:
            out.append(responses.encode_authenticate(frame.stream, self.version))
            return
        self.ready = True
        out.append(responses.encode_ready(frame.stream, self.version))

    def _options(self, params: request_bodies.QueryParameters) -> QueryOptions:
        return self.options_type(
            params.consistency,
            params.page_size,
            params.paging_state,
            params.timestamp,
            params.serial_consistency,
        )

    def _execute(self, frame: frames.Frame, out: list[bytes]) -> None:
        self._require_started()
        request = request_bodies.decode_execute(frame)
        prepared = self.engine.lookup(request.statement_id)
        params = request.params
        values: Sequence[bytes | None] = params.values
        if params.names is not None:
            values = _by_position(prepared, params.names, params.values)
        result = self.engine.execute(prepared, values, self._options(params), self.keyspace)
        if type(result) is Void:
            answer = responses.encode_void(frame.stream, self.version)
        else:
            answer = self._encode_result(frame.stream, result, params.skip_metadata)
        if prepared.is_write:
            self._answer_write(answer, out, frame.stream)
        else:
            out.append(answer)

    def _batch(self, frame: frames.Frame, out: list[bytes]) -> None:
        self._require_started()
        request = request_bodies.decode_batch(frame)
        engine = self.engine
        keyspace = self.keyspace
        items: list[tuple[Prepared, Sequence[bytes | None]]] = []
        seen: dict[bytes, Prepared] = {}  # batches repeat a few statements, interleaved
        prepared: Prepared | None = None
        # None, not b"": an empty id is a (malformed) id like any other and must be looked up,
        # never mistaken for "same as the query-string item before".
        last_id: bytes | None = None
        for query, values in request.items:
            if type(query) is bytes:
                if query != last_id or prepared is None:
                    found = seen.get(query)
                    if found is None:
                        found = seen[query] = engine.lookup(query)
                    prepared, last_id = found, query
            else:
                assert isinstance(query, str)
                prepared, last_id = engine.prepare(query, keyspace), None
            items.append((prepared, values))
        options = self.options_type(
            request.consistency,
            None,
            None,
            request.timestamp,
            request.serial_consistency,
            request_bytes=request.value_bytes,
        )
        result = engine.batch(request.batch_type, items, options, keyspace)
        if type(result) is Void:
            answer = responses.encode_void(frame.stream, self.version)
        else:
            answer = self._encode_result(frame.stream, result, False)
        self._answer_write(answer, out, frame.stream, _BATCH_WRITE_TYPES[request.batch_type])

    def _query(self, frame: frames.Frame, out: list[bytes]) -> None:
        self._require_started()
        request = request_bodies.decode_query(frame)
        params = request.params
        options = self._options(params)
        if params.names is not None:
            prepared = self.engine.prepare(request.query, self.keyspace)
            values = _by_position(prepared, params.names, params.values)
            result = self.engine.execute(prepared, values, options, self.keyspace)
        else:
            result = self.engine.query(request.query, params.values, options, self.keyspace)
        self._answer_write(self._encode_result(frame.stream, result, False), out, frame.stream)

    def _encode_result(self, stream: int, result: Result, skip_metadata: bool) -> bytes:
        if isinstance(result, Rows):
            encoded = responses.encode_rows(stream, result, skip_metadata, self.version)
            return frames.compress(encoded) if self.compressed else encoded
        if isinstance(result, Void):
            return responses.encode_void(stream, self.version)
        if isinstance(result, SetKeyspace):
            self.keyspace = result.keyspace
            return responses.encode_set_keyspace(stream, result.keyspace, self.version)
        if isinstance(result, SchemaChange):
            self.server.broadcast(responses.encode_schema_change_event(result, self.version))
            return responses.encode_schema_change(stream, result, self.version)
        raise TypeError(f"engine returned an unknown result type {type(result).__name__}")


def _by_position(
    prepared: Prepared, names: Sequence[str], values: Sequence[bytes | None]
) -> list[bytes | None]:
    """Order named values by the statement's bind markers (a name may fill several markers)."""
    by_name: dict[str, bytes | None] = dict(zip(names, values, strict=True))
    ordered: list[bytes | None] = []
    for column in prepared.bind_columns:
        if column.name not in by_name:
            raise InvalidRequest(f"no value given for the bind marker named {column.name!r}")
        ordered.append(by_name[column.name])
    return ordered
