"""The message aggregate's write side: send (idempotent), get, edit, soft delete.

How a send stays right under retries (the full story is in ``docs/data-model.md``, "Send
path"):

1. Single-flight in process: a retry racing its original on the same node awaits the original's
   result instead of doing the work twice.
2. Claim: a row in ``chat_send_claims`` keyed by ``(sender_id, client_msg_id)`` records the id
   the attempt chose. It is written ``USING TIMESTAMP K - <attempt time in µs>``, so the
   *earliest* attempt's claim wins whatever order the writes land in, then read back: if another
   attempt's claim won, this send is a retry and answers with that original id and time.
3. Rows: the message row, the per-user index row and (for buckets this process has not written
   yet) the bucket index rows are written ``USING TIMESTAMP <message time in µs>``. A retry
   that finds the earlier attempt's message stored rewrites identical rows (upserts: no
   duplicate) — healing an attempt only partly written — yet never undoes a later edit or
   delete, whose timestamps are newer. A retry that finds the claim but not the message never
   writes the rows at that old id (subscribers may be past it): it waits for the attempt to be
   settled, and claims the next generation once the attempt was given up (``chat_send_aborts``)
   or, after ``CHAT_SEND_SETTLE_SECONDS``, fences it itself (:meth:`MessageStore.fence`).
   The claim is written *before* the rows, so a row never exists without its claim.

Unread state needs no write here: it is derived from each user's read position (see
``chat.store.cql.unread``), which keeps it exact under retries.

Every write goes through the coalescing :class:`~chat.store.driver.batcher.BatchWriter` and
every claim lookup through a :class:`~chat.store.driver.batcher.BatchReader`, so a send costs a
fraction of a driver request; a caller is answered only when its batch is acknowledged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Hashable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from cassandra.cluster import EXEC_PROFILE_DEFAULT, Session
from cassandra.query import UNSET_VALUE, PreparedStatement, tuple_factory

from chat.config import Settings
from chat.domain.messages import (
    Message,
    MessageIdGenerator,
    MessageType,
    NewMessage,
    SendAck,
    bucket_of,
    content_hash,
    created_at_ms_of,
    created_at_of,
    datetime_from_ms,
    validate_new_message,
    validate_text,
)
from chat.errors import (
    Conflict,
    FieldError,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)
from chat.metrics import Metrics
from chat.store.cql.read_routing import MAX_IN_KEYS, replica_grouping
from chat.store.driver.batcher import BatchReader, BatchWriter, Encoder
from chat.store.driver.session import CqlStore, execute_async

log = logging.getLogger(__name__)

# First writer wins: a fast-mode claim is written USING TIMESTAMP (BASE - attempt µs), so an
# earlier attempt writes with a *higher* timestamp. BASE is twice the Unix µs of 2020-09-13, so
# (BASE - now) stays below the wall clock (until 2071): any claim written the ordinary way — a
# strict-mode transaction, an operator's repair — outranks every fast-mode claim.
CLAIM_TIMESTAMP_BASE = 2 * 1_600_000_000_000_000
_KNOWN_BUCKETS_LIMIT = 200_000

MESSAGE_COLUMNS = (
    "event_id, bucket, created_at, message_id, sender_id, sender_name, sender_profile_url, "
    "client_msg_id, message, message_type, attachments, reply_to, edited_at, is_deleted, metadata"
)
"""The columns :func:`message_from_row` reads, for ``SELECT {MESSAGE_COLUMNS} FROM ...``."""


# Columns of a claim row as ``claim_select`` returns it (tuples: see MessageStore.start).
_CLAIM_KEY, _CLAIM_EVENT_ID, _CLAIM_MESSAGE_ID, _CLAIM_CONTENT_HASH = range(4)


def _lwt_winner(row: Any) -> tuple[Any, ...] | None:
    """The claim that beat an ``IF NOT EXISTS`` claim, as a claim tuple; None if it applied."""
    if row[0]:
        return None
    return (row.claim_key, row.event_id, row.message_id, row.content_hash)


def claim_key(sender_id: int, client_msg_id: str) -> str:
    """The claim's partition key; sender ids are digits, so the first ':' splits it."""
    return f"{sender_id}:{client_msg_id}"


def message_from_row(row: Any) -> Message:
    """A :class:`Message` from a ``chat_messages_by_event`` row selected with MESSAGE_COLUMNS.

    A soft-deleted message shows no content even if an edit raced the delete and its text
    cell won: ``is_deleted`` is authoritative.
    """
    deleted = bool(row.is_deleted)
    edited = row.edited_at
    return Message(
        event_id=row.event_id,
        message_id=row.message_id,
        created_at=created_at_of(row.message_id),
        sender_id=row.sender_id,
        sender_name=row.sender_name,
        sender_profile_url=row.sender_profile_url,
        client_msg_id=row.client_msg_id or "",
        text="" if deleted else (row.message or ""),
        message_type=cast(MessageType, row.message_type or "text"),
        attachments=() if deleted else tuple(row.attachments or ()),
        reply_to=row.reply_to,
        edited_at=edited.replace(tzinfo=UTC) if edited is not None else None,
        is_deleted=deleted,
        metadata={} if deleted else dict(row.metadata or {}),
    )


RACING_ATTEMPT_WAIT_SECONDS = 2.0
"""How long a retry that finds an earlier attempt's claim without its message waits for that
attempt (usually racing it on another node) before answering ``unavailable``."""
MAX_CLAIM_GENERATIONS = 8
"""Claims a send may go through when earlier attempts were fenced (each fence is rare)."""


def _always() -> bool:
    return True


@dataclasses.dataclass(slots=True)
class SendAttempt:
    """One attempt to store a message, as its caller sees it.

    ``message_id`` is the id the attempt claims — assigned before anything is written, so the
    caller can announce it; ``rows_sent`` turns true once the message rows were handed to the
    writer (from then on a failure leaves the outcome unknown); ``may_write`` is asked right
    before that and may refuse (a node that lost its place in the cross-node order). A caller
    whose attempt failed with a claim written and no rows sent abandons it
    (:meth:`MessageStore.abandon`), so that the retry need not wait for it to be settled.
    """

    message_id: uuid.UUID
    rows_sent: bool = False
    may_write: Callable[[], bool] = _always
    claimed: bool = False
    """Whether the attempt has written (or was writing) a claim."""


@dataclasses.dataclass(slots=True)
class _InFlight:
    """A send under way on this node: its content hash and the task doing it.

    The original caller and every retry racing it await the task through
    :func:`asyncio.shield`: cancelling one caller (its connection dropped) neither cancels the
    send nor hands a ``CancelledError`` to the others.
    """

    digest: bytes
    task: asyncio.Task[SendAck]


def _or_unset(value: Any) -> Any:
    """None as UNSET: an INSERT binding null would write a tombstone per empty column."""
    return UNSET_VALUE if value is None else value


class MessageStore:
    """Send, read one, edit and soft-delete chat messages (ScyllaDB)."""

    def __init__(
        self,
        cql: CqlStore,
        settings: Settings,
        *,
        ids: MessageIdGenerator | None = None,
        clock: Callable[[], int] = time.time_ns,
        metrics: Metrics | None = None,
    ) -> None:
        self._cql = cql
        self._metrics = metrics
        self._settings = settings
        self._ks = settings.cql_keyspace
        self._clock = clock
        self._ids = ids or MessageIdGenerator(clock)
        self._strict = settings.send_dedup == "strict"
        self._sending: dict[str, _InFlight] = {}
        self._known_buckets: set[tuple[str, int, int]] = set()
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._session: Session | None = None
        self._writer: BatchWriter | None = None
        self._claims: BatchReader | None = None
        self._stmts: dict[str, PreparedStatement] = {}
        self._encoders: dict[str, Encoder] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> MessageStore:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close(self._settings.drain_seconds)

    async def start(self) -> None:
        """Open the writer session, prepare every statement once, start the batcher."""
        # The writer has its own session with client-side timestamps off: every statement it
        # sends carries USING TIMESTAMP, so a per-request default timestamp would only be noise.
        session = await asyncio.to_thread(self._cql.cluster.connect)
        session.use_client_timestamp = False
        self._session = session
        ks = self._ks
        queries = {
            "claim_insert": (
                f"INSERT INTO {ks}.chat_send_claims (claim_key, sender_id, client_msg_id, "
                "event_id, message_id, created_at, content_hash) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "USING TIMESTAMP ?",
                True,
            ),
            "claim_lwt": (
                f"INSERT INTO {ks}.chat_send_claims (claim_key, sender_id, client_msg_id, "
                "event_id, message_id, created_at, content_hash) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "IF NOT EXISTS",
                False,
            ),
            "claim_select": (
                f"SELECT claim_key, event_id, message_id, content_hash FROM {ks}.chat_send_claims "
                "WHERE claim_key IN ?",
                True,
            ),
            "message_insert": (
                f"INSERT INTO {ks}.chat_messages_by_event (event_id, bucket, created_at, "
                "message_id, sender_id, sender_name, sender_profile_url, client_msg_id, message, "
                "message_type, attachments, reply_to, is_deleted, metadata) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, false, ?) USING TIMESTAMP ?",
                True,
            ),
            "user_insert": (
                f"INSERT INTO {ks}.chat_messages_by_user (user_id, bucket, created_at, message_id, "
                "event_id, message, is_deleted) VALUES (?, ?, ?, ?, ?, ?, false) "
                "USING TIMESTAMP ?",
                True,
            ),
            "event_bucket_insert": (
                f"INSERT INTO {ks}.chat_event_buckets (event_id, bucket) VALUES (?, ?) "
                "USING TIMESTAMP ?",
                True,
            ),
            "user_bucket_insert": (
                f"INSERT INTO {ks}.chat_user_buckets (user_id, bucket) VALUES (?, ?) "
                "USING TIMESTAMP ?",
                True,
            ),
            "abort_insert": (
                f"INSERT INTO {ks}.chat_send_aborts (claim_key, message_id, aborted_at) "
                "VALUES (?, ?, ?) USING TIMESTAMP ?",
                True,
            ),
            "abort_select": (
                f"SELECT message_id FROM {ks}.chat_send_aborts WHERE claim_key = ? "
                "AND message_id = ?",
                True,
            ),
            "message_fence": (
                f"DELETE FROM {ks}.chat_messages_by_event USING TIMESTAMP ? WHERE event_id = ? "
                "AND bucket = ? AND created_at = ? AND message_id = ?",
                True,
            ),
            "user_fence": (
                f"DELETE FROM {ks}.chat_messages_by_user USING TIMESTAMP ? WHERE user_id = ? "
                "AND bucket = ? AND created_at = ? AND message_id = ?",
                True,
            ),
            "message_select": (
                f"SELECT {MESSAGE_COLUMNS} FROM {ks}.chat_messages_by_event "
                "WHERE event_id = ? AND bucket = ? AND created_at = ? AND message_id = ?",
                True,
            ),
            "message_edit": (
                f"UPDATE {ks}.chat_messages_by_event USING TIMESTAMP ? SET message = ?, "
                "edited_at = ? WHERE event_id = ? AND bucket = ? AND created_at = ? "
                "AND message_id = ?",
                True,
            ),
            "user_edit": (
                f"UPDATE {ks}.chat_messages_by_user USING TIMESTAMP ? SET message = ? "
                "WHERE user_id = ? AND bucket = ? AND created_at = ? AND message_id = ?",
                True,
            ),
            "message_delete": (
                f"UPDATE {ks}.chat_messages_by_event USING TIMESTAMP ? SET message = '', "
                "is_deleted = true, attachments = [], metadata = {} WHERE event_id = ? "
                "AND bucket = ? AND created_at = ? AND message_id = ?",
                True,
            ),
            "user_delete": (
                f"UPDATE {ks}.chat_messages_by_user USING TIMESTAMP ? SET message = '', "
                "is_deleted = true WHERE user_id = ? AND bucket = ? AND created_at = ? "
                "AND message_id = ?",
                True,
            ),
        }
        for name, (query, idempotent) in queries.items():
            prepared = await asyncio.to_thread(session.prepare, query)
            prepared.is_idempotent = idempotent
            self._stmts[name] = prepared
        delay = self._settings.write_batch_ms / 1000
        self._writer = BatchWriter(
            session,
            max_delay=delay,
            max_statements=self._settings.write_batch_statements,
            replica_of=self._replica_grouping(),
            keyspace=self._ks,
            metrics=self._metrics,
        )
        if self._metrics is not None:
            writer = self._writer
            self._metrics.observe_writer(
                lambda: writer.pending_statements, lambda: float(self._active)
            )
        self._encoders = {name: self._writer.encoder(stmt) for name, stmt in self._stmts.items()}
        self._claims = BatchReader(
            session,
            self._stmts["claim_select"],
            lambda row: row[_CLAIM_KEY],
            max_delay=delay,
            # Plain tuples: the default factory builds a namedtuple class for every response.
            execution_profile=session.execution_profile_clone_update(
                EXEC_PROFILE_DEFAULT, row_factory=tuple_factory
            ),
            max_keys=min(MAX_IN_KEYS, self._settings.write_batch_statements),
        )

    def _replica_grouping(self) -> Callable[[bytes | None], Hashable] | None:
        """Group batches by the first replica of their routing key — on a multi-node cluster.

        One node (the embedded server) owns every partition, so there is nothing to group.
        """
        replica_of = replica_grouping(self._cql, self._ks)
        if replica_of is None:
            return None
        return lambda routing_key: replica_of(routing_key) if routing_key else None

    async def close(self, drain_seconds: float = 10.0) -> None:
        """Refuse new sends, let the ones under way finish, flush the batcher; idempotent."""
        self._closing = True
        if self._metrics is not None:
            self._metrics.observe_writer(lambda: 0.0, lambda: float(self._active))
        if self._active:
            try:
                await asyncio.wait_for(self._idle.wait(), drain_seconds)
            except TimeoutError:
                log.warning(
                    "%d sends still running after %.1f s at close", self._active, drain_seconds
                )
        if self._writer is not None:
            await self._writer.close()
        if self._claims is not None:
            await self._claims.close()
        if self._session is not None:
            session, self._session = self._session, None
            await asyncio.to_thread(session.shutdown)

    @property
    def stats(self) -> dict[str, int]:
        """Requests sent so far (the bench reports them)."""
        w, r = self._writer, self._claims
        return {
            "batches": w.batches_sent if w else 0,
            "statements": w.statements_sent if w else 0,
            "claim_reads": r.reads_sent if r else 0,
        }

    def _ready(self) -> tuple[Session, BatchWriter, BatchReader]:
        if self._closing:
            raise ServiceUnavailable("the message store is shutting down; retry on another node")
        if self._session is None or self._writer is None or self._claims is None:
            raise RuntimeError("MessageStore.start() has not been awaited")
        return self._session, self._writer, self._claims

    # -- send --------------------------------------------------------------------------------

    def new_message_id(self) -> uuid.UUID:
        """An id for the next send attempt, later than every id this store handed out."""
        return self._ids.next()

    def id_floor_ticks(self) -> int:
        """A promise: every id handed out from now on has a later timestamp than this (see
        :meth:`MessageIdGenerator.floor_ticks`)."""
        return self._ids.floor_ticks()

    async def send(self, msg: NewMessage, attempt: SendAttempt | None = None) -> SendAck:
        """Store a message once, however often it is retried; answer with its id and time.

        ``attempt`` carries the id this attempt claims (the caller announces it before the
        store writes anything) and learns whether the message rows were sent: a failure
        after that leaves the outcome unknown until the caller settles it (:meth:`get`, then
        :meth:`fence`). Raises ValidationFailed (rules, or ``reply_to`` not in this event),
        Conflict (the ``client_msg_id`` was used before for different content),
        ServiceUnavailable (an earlier attempt of this send is not settled yet), or the
        driver's error when a write failed.
        """
        _, writer, _ = self._ready()
        validate_new_message(msg)
        key = claim_key(msg.sender_id, msg.client_msg_id)
        digest = content_hash(msg)
        running = self._sending.get(key)
        if running is not None:
            if running.digest != digest:
                raise _reused_client_msg_id(msg.client_msg_id)
            ack = await asyncio.shield(running.task)
            return dataclasses.replace(ack, duplicate=True)
        if attempt is None:
            attempt = SendAttempt(self._ids.next())
        # The work runs as its own task, so a cancelled caller leaves it (and any retry racing
        # it on this node) to finish: a send the store goes on to acknowledge is not lost.
        task = writer.loop.create_task(self._send(msg, key, digest, attempt))
        self._sending[key] = _InFlight(digest, task)
        self._active += 1
        self._idle.clear()
        task.add_done_callback(lambda done: self._flight_done(key, done))
        return await asyncio.shield(task)

    def _flight_done(self, key: str, task: asyncio.Task[SendAck]) -> None:
        flight = self._sending.get(key)
        if flight is not None and flight.task is task:
            del self._sending[key]
        if not task.cancelled():
            task.exception()  # retrieved: a failure nobody awaited any more is not logged
        self._active -= 1
        if not self._active:
            self._idle.set()

    async def _send(
        self, msg: NewMessage, key: str, digest: bytes, attempt: SendAttempt
    ) -> SendAck:
        _, writer, _ = self._ready()
        if msg.reply_to is not None:
            await self._check_reply_target(msg.event_id, msg.reply_to)
        message_id = attempt.message_id
        created_ms = created_at_ms_of(message_id)
        for generation in range(MAX_CLAIM_GENERATIONS):
            gen_key = key if generation == 0 else f"{key}#{generation}"
            attempt.claimed = True
            winner = await self._claim(msg, gen_key, digest, message_id, created_ms)
            if winner is None:
                break  # this attempt owns the message
            if winner[_CLAIM_CONTENT_HASH] != digest or winner[_CLAIM_EVENT_ID] != msg.event_id:
                raise _reused_client_msg_id(msg.client_msg_id)
            earlier: uuid.UUID = winner[_CLAIM_MESSAGE_ID]
            if await self._settled_stored(msg.event_id, earlier, key):
                # Stored: answer with it (rewriting its rows heals a partly written attempt;
                # same timestamps, so an edit or delete since is never undone).
                earlier_ms = created_at_ms_of(earlier)
                await self._write_rows(writer, msg, earlier, earlier_ms, [])
                return SendAck(msg.event_id, earlier, datetime_from_ms(earlier_ms), True)
            if not await self._aborted(key, earlier):
                age_s = (self._clock() // 1_000_000 - created_at_ms_of(earlier)) / 1000
                if age_s < self._settings.send_settle_seconds:
                    raise ServiceUnavailable(
                        "an earlier attempt of this message is still being settled; retry "
                        "shortly with the same client_msg_id"
                    )
                await self.fence(msg.event_id, earlier, key)
            # The earlier attempt is void: the next generation's claim decides afresh.
        else:
            raise ServiceUnavailable(
                f"{MAX_CLAIM_GENERATIONS} attempts of this message were voided; retry later"
            )
        if not attempt.may_write():
            raise ServiceUnavailable("this node may not write now; retry (on any node)")
        attempt.rows_sent = True
        new_buckets: list[tuple[str, int, int]] = []
        await self._write_rows(writer, msg, message_id, created_ms, new_buckets)
        if new_buckets:
            if len(self._known_buckets) > _KNOWN_BUCKETS_LIMIT:
                self._known_buckets.clear()
            self._known_buckets.update(new_buckets)
        return SendAck(msg.event_id, message_id, datetime_from_ms(created_ms), False)

    async def find_stored(self, msg: NewMessage) -> SendAck | None:
        """The ack of an earlier attempt of this send whose message is stored, if any (for a
        retry the service can no longer take, e.g. after the event was canceled: the client
        must still learn that its message was stored, once). ServiceUnavailable while an
        earlier attempt is neither stored nor given up (it may still be)."""
        _, _, claims = self._ready()
        key = claim_key(msg.sender_id, msg.client_msg_id)
        digest = content_hash(msg)
        for generation in range(MAX_CLAIM_GENERATIONS):
            row = await claims.get(key if generation == 0 else f"{key}#{generation}")
            if row is None:
                return None
            if row[_CLAIM_CONTENT_HASH] != digest or row[_CLAIM_EVENT_ID] != msg.event_id:
                return None
            earlier: uuid.UUID = row[_CLAIM_MESSAGE_ID]
            if await self.get(msg.event_id, earlier) is not None:
                created = datetime_from_ms(created_at_ms_of(earlier))
                return SendAck(msg.event_id, earlier, created, True)
            if not await self._aborted(key, earlier):
                raise ServiceUnavailable(
                    "an earlier attempt of this message is still being settled; retry "
                    "shortly with the same client_msg_id"
                )
        return None

    async def _claim(
        self, msg: NewMessage, key: str, digest: bytes, message_id: uuid.UUID, created_ms: int
    ) -> tuple[Any, ...] | None:
        """Claim ``key`` for ``message_id``: None if this attempt won, else the winning claim."""
        session, writer, claims = self._ready()
        claim_values = (
            key,
            msg.sender_id,
            msg.client_msg_id,
            msg.event_id,
            message_id,
            created_ms,
            digest,
        )
        if self._strict:
            rows = await execute_async(session, self._stmts["claim_lwt"], claim_values)
            return _lwt_winner(rows[0])
        attempt_us = self._clock() // 1000
        row = await self._claim_and_read_back(
            writer, claims, key, (*claim_values, CLAIM_TIMESTAMP_BASE - attempt_us)
        )
        if row is None:
            raise ServiceUnavailable(
                "the send claim was acknowledged but not readable back; retry the send "
                "(check the consistency level: CHAT_CQL_CONSISTENCY)"
            )
        return None if row[_CLAIM_MESSAGE_ID] == message_id else tuple(row)

    async def _settled_stored(self, event_id: int, message_id: uuid.UUID, key: str) -> bool:
        """Whether an earlier attempt's message is stored, waiting briefly for an attempt that
        is still under way (a retry racing its original); False once it was fenced."""
        delay = 0.01
        deadline = time.monotonic() + RACING_ATTEMPT_WAIT_SECONDS
        while True:
            if await self.get(event_id, message_id) is not None:
                return True
            if time.monotonic() + delay > deadline or await self._aborted(key, message_id):
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)

    async def _aborted(self, key: str, message_id: uuid.UUID) -> bool:
        session, _, _ = self._ready()
        rows = await execute_async(session, self._stmts["abort_select"], (key, message_id))
        return bool(rows)

    async def abandon(self, key: str, message_id: uuid.UUID) -> None:
        """Record that the attempt of send ``key`` (:func:`claim_key`, whatever generation it
        claimed in) with ``message_id`` will never store its message (it failed before its
        rows were sent, or was fenced): a retry then claims afresh at once."""
        _, writer, _ = self._ready()
        now_us = self._clock() // 1000
        values = (key, message_id, datetime_from_ms(now_us // 1000), now_us)
        await writer.write([(self._stmts["abort_insert"], values)])

    async def fence(self, event_id: int, message_id: uuid.UUID, key: str) -> None:
        """Make sure the message of a send attempt whose outcome was unknown never appears.

        Row tombstones at the message's own write timestamp shadow its rows whenever they
        land (a tombstone wins a timestamp tie), and the abort record tells a retry that finds
        the attempt's claim (``key``) to claim the next generation with a fresh id. Call it
        only for an attempt that was read back absent: a stored message it would delete.
        """
        _, writer, _ = self._ready()
        sender_id = int(key.split(":", 1)[0])
        created_ms = created_at_ms_of(message_id)
        bucket, created_at = bucket_of(created_ms), datetime_from_ms(created_ms)
        ts = created_ms * 1000
        await writer.write(
            [
                (self._stmts["message_fence"], (ts, event_id, bucket, created_at, message_id)),
                (self._stmts["user_fence"], (ts, sender_id, bucket, created_at, message_id)),
            ]
        )
        await self.abandon(key, message_id)

    def _claim_and_read_back(
        self, writer: BatchWriter, claims: BatchReader, key: str, values: Sequence[Any]
    ) -> asyncio.Future[Any]:
        """Write the claim, then read it back: the claim row that won (or None).

        The read is chained to the write's acknowledgement with a callback, so the sending
        coroutine wakes up once for both round trips instead of once per round trip (a task
        wake-up is one of the larger per-message costs left on this path).
        """
        result: asyncio.Future[Any] = writer.loop.create_future()

        def read_done(read: asyncio.Future[Any]) -> None:
            if result.done():
                return
            if read.cancelled():
                result.cancel()
            elif (exc := read.exception()) is not None:
                result.set_exception(exc)
            else:
                result.set_result(read.result())

        def written(write: asyncio.Future[None]) -> None:
            if result.done():
                return
            if write.cancelled():
                result.cancel()
            elif (exc := write.exception()) is not None:
                result.set_exception(exc)
            else:
                try:
                    claims.get(key).add_done_callback(read_done)
                except Exception as err:  # a callback must never leave the send hanging
                    result.set_exception(err)

        claim = self._encoders["claim_insert"]
        writer.write_entries(claim.entry(values), 1, (claim, values)).add_done_callback(written)
        return result

    def _write_rows(
        self,
        writer: BatchWriter,
        msg: NewMessage,
        message_id: uuid.UUID,
        created_ms: int,
        new_buckets: list[tuple[str, int, int]],
    ) -> asyncio.Future[None]:
        """Queue the message's rows: event row, user-index row, bucket index rows if new."""
        bucket = bucket_of(created_ms)
        ts = created_ms * 1000
        enc = self._encoders
        message_values = (
            msg.event_id,
            bucket,
            created_ms,
            message_id,
            msg.sender_id,
            _or_unset(msg.sender_name),
            _or_unset(msg.sender_profile_url),
            msg.client_msg_id,
            msg.text,
            msg.message_type,
            msg.attachments,  # the encoder takes any sequence / mapping: no copies
            _or_unset(msg.reply_to),
            msg.metadata,
            ts,
        )
        entries = [
            enc["message_insert"].entry(message_values),
            enc["user_insert"].entry(
                (msg.sender_id, bucket, created_ms, message_id, msg.event_id, msg.text, ts)
            ),
        ]
        known = self._known_buckets
        for kind, owner, stmt in (
            ("e", msg.event_id, "event_bucket_insert"),
            ("u", msg.sender_id, "user_bucket_insert"),
        ):
            if (kind, owner, bucket) not in known:
                entries.append(enc[stmt].entry((owner, bucket, ts)))
                new_buckets.append((kind, owner, bucket))
        return writer.write_entries(
            b"".join(entries), len(entries), (enc["message_insert"], message_values)
        )

    async def _check_reply_target(self, event_id: int, reply_to: uuid.UUID) -> None:
        if await self.get(event_id, reply_to) is None:
            raise ValidationFailed(
                "reply_to names no message of this event",
                errors=[FieldError("reply_to", "no such message in this event")],
            )

    # -- read one ----------------------------------------------------------------------------

    async def get(self, event_id: int, message_id: uuid.UUID) -> Message | None:
        """The message, or None if this event has no message with that id."""
        if message_id.version != 1:
            return None
        session, _, _ = self._ready()
        created_ms = created_at_ms_of(message_id)
        rows = await execute_async(
            session,
            self._stmts["message_select"],
            (event_id, bucket_of(created_ms), datetime_from_ms(created_ms), message_id),
        )
        return message_from_row(rows[0]) if rows else None

    async def _get_existing(self, event_id: int, message_id: uuid.UUID) -> Message:
        message = await self.get(event_id, message_id)
        if message is None:
            raise NotFound(f"event {event_id} has no message {message_id}")
        return message

    def _write_ts(self, message: Message) -> tuple[int, datetime]:
        """A write timestamp after the message's own (which its rows were written with)."""
        now_ns = self._clock()
        created_us = created_at_ms_of(message.message_id) * 1000
        return max(now_ns // 1000, created_us + 1), datetime_from_ms(now_ns // 1_000_000)

    # -- edit and delete ---------------------------------------------------------------------

    async def edit(
        self, event_id: int, message_id: uuid.UUID, editor_id: int, text: str
    ) -> Message:
        """Replace a message's text and set ``edited_at``; only its sender may.

        Raises NotFound, Forbidden (not the sender), Conflict (deleted), ValidationFailed.
        """
        errors = validate_text(text)
        if errors:
            raise ValidationFailed("the new text breaks the rules listed in errors", errors=errors)
        message = await self._get_existing(event_id, message_id)
        if message.sender_id != editor_id:
            raise Forbidden("only the sender of a message may edit it")
        if message.is_deleted:
            raise Conflict("the message was deleted; a deleted message cannot be edited")
        if not text.strip() and not message.attachments:
            raise ValidationFailed(
                "a message needs text or at least one attachment",
                errors=[FieldError("text", "must not be empty")],
            )
        _, writer, _ = self._ready()
        ts, edited_at = self._write_ts(message)
        key = _row_key(message)
        await writer.write(
            [
                (self._stmts["message_edit"], (ts, text, edited_at, *key)),
                (self._stmts["user_edit"], (ts, text, message.sender_id, *key[1:])),
            ]
        )
        return dataclasses.replace(message, text=text, edited_at=edited_at)

    async def soft_delete(
        self, event_id: int, message_id: uuid.UUID, actor_id: int, *, may_moderate: bool
    ) -> Message:
        """Clear a message's content and mark it deleted (an update: no tombstones).

        The sender may delete their own message; ``may_moderate`` (the event's creator, decided
        by the caller from PostgreSQL) may delete anyone's. Deleting twice is not an error.
        """
        message = await self._get_existing(event_id, message_id)
        if message.sender_id != actor_id and not may_moderate:
            raise Forbidden("only the sender or the event's creator may delete a message")
        if message.is_deleted:
            return message
        _, writer, _ = self._ready()
        ts, _ = self._write_ts(message)
        key = _row_key(message)
        await writer.write(
            [
                (self._stmts["message_delete"], (ts, *key)),
                (self._stmts["user_delete"], (ts, message.sender_id, *key[1:])),
            ]
        )
        return dataclasses.replace(message, text="", attachments=(), metadata={}, is_deleted=True)


def _row_key(message: Message) -> Sequence[Any]:
    """(event_id, bucket, created_at, message_id) — the message row's primary key."""
    created_ms = created_at_ms_of(message.message_id)
    return (
        message.event_id,
        bucket_of(created_ms),
        datetime_from_ms(created_ms),
        message.message_id,
    )


def _reused_client_msg_id(client_msg_id: str) -> Conflict:
    return Conflict(
        f"client_msg_id {client_msg_id!r} was already used for a different message; "
        "use a new client_msg_id for new content",
        errors=[FieldError("client_msg_id", "reused with different content")],
    )
