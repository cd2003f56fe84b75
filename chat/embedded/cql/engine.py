"""The engine facade the server calls: prepare, execute, query, batch, durable.

Everything here is synchronous and runs on the event loop; only the commit log's fsyncs run
in a worker thread. A statement is parsed and compiled once (``prepare``; unprepared QUERYs go
through the same cache, keyed by keyspace + text), so EXECUTE runs a precompiled plan.
With a data directory every mutation's record is appended to the commit log before ``execute``
returns, and ``durable()`` hands the server the future of the group fsync covering it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import operator
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

from chat.embedded.cql import ast, consistency
from chat.embedded.cql.bind_metadata import bind_specs
from chat.embedded.cql.binding import bind, bind_checks, bind_rows
from chat.embedded.cql.budget import DEFAULT_BUDGET, format_bytes, parse_budget
from chat.embedded.cql.commitlog import CommitLog, CommitLogFailed, frame
from chat.embedded.cql.errors import InvalidRequest, Overloaded, Unprepared, WriteFailure
from chat.embedded.cql.executor import EngineStats, Executor, StatementPlan
from chat.embedded.cql.insert import InsertPlan
from chat.embedded.cql.mutations import Mutation, SchemaUpdate, decode, encode
from chat.embedded.cql.parser import parse
from chat.embedded.cql.replay import replay
from chat.embedded.cql.results import Prepared, Result
from chat.embedded.cql.schema import Catalog, TableMeta
from chat.embedded.cql.select import SelectPlan
from chat.embedded.cql.system_tables import NodeInfo
from chat.embedded.cql.update import UpdatePlan

log = logging.getLogger(__name__)

__all__ = ["Engine", "EngineStats", "NodeInfo", "QueryOptions"]

SNAPSHOT_CHUNK_ROWS = 2000
MAX_PREPARED = 10_000
SWEEP_INTERVAL_SECONDS = 60.0
SWEEP_OVER_BUDGET_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class QueryOptions:
    consistency: int = 1
    page_size: int | None = None
    paging_state: bytes | None = None
    timestamp: int | None = None
    serial_consistency: int | None = None
    now_in_seconds: int | None = None
    request_bytes: int = 0  # of a BATCH: its bound values, an upper bound of what it writes


class Engine:
    def __init__(
        self,
        data_dir: Path | None,
        node: NodeInfo,
        *,
        commit_sync_ms: float = 2.0,
        segment_bytes: int = 64 << 20,
        memory_budget: int | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.node = node
        self.stats = EngineStats()
        self.memory_budget = (
            parse_budget(DEFAULT_BUDGET) if memory_budget is None else memory_budget
        )
        self.stats.memory_budget_bytes = self.memory_budget
        self._refusing = False
        self._last_sweep = time.monotonic()
        self._sweep_task: asyncio.Task[None] | None = None
        self._sweep_timer: asyncio.TimerHandle | None = None
        self.catalog = Catalog()
        self.executor = Executor(self.catalog, node, self.stats)
        self._prepared: dict[bytes, Prepared] = {}
        self._consistency_ok: set[tuple[bytes, int, int | None]] = set()
        self._consistency_version: uuid.UUID | None = None
        self._log: CommitLog | None = None
        if data_dir is not None:
            self._log = CommitLog(
                Path(data_dir),
                sync_ms=commit_sync_ms,
                segment_bytes=segment_bytes,
                on_fsync=self._count_fsync,
                on_snapshot=self._count_snapshot,
            )

    def _count_fsync(self) -> None:
        self.stats.commit_fsyncs += 1

    def _count_snapshot(self) -> None:
        self.stats.snapshots += 1

    @property
    def schema_version(self) -> uuid.UUID:
        return self.catalog.version

    # ---------------------------------------------------------------------------------------
    # Lifecycle.

    async def start(self) -> None:
        """Load the newest snapshot and replay the commit log after it, then start logging;
        arm the periodic expiry sweep."""
        loop = asyncio.get_running_loop()
        self._sweep_timer = loop.call_later(SWEEP_INTERVAL_SECONDS, self._every_sweep_interval)
        if self._log is None:
            return
        started = time.monotonic()
        n = 0
        for payload in self._log.recover():
            for mutation in decode(payload):
                replay(self.catalog, mutation)
                n += 1
        self.executor.log_sink = self._append
        self._log.open(self._snapshot_chunks)
        log.info(
            "embedded CQL store: replayed %d records from %s in %.3fs",
            n,
            self.data_dir,
            time.monotonic() - started,
        )

    def _append(self, records: list[Mutation]) -> None:
        assert self._log is not None
        payload = encode(records)
        self.stats.commit_records += 1
        self.stats.commit_bytes += len(payload) + 8
        self._log.append(payload)

    async def close(self) -> None:
        """Flush and fsync the log, then snapshot so the next start replays little.

        A log that failed is only closed: what it holds on disk is all that replay can trust.
        """
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
        if self._sweep_task is not None:
            self._sweep_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweep_task
        if self._log is None:
            return
        with contextlib.suppress(WriteFailure):  # those writes were answered with the error
            await self._log.sync()
        if self._log.segment_size > 0 and self._log.failed is None:
            try:
                await self._log.compact()
            except OSError:
                log.exception("final snapshot failed; the commit log will be replayed instead")
        await self._log.close()

    def _consistency_checked(self, prepared: Prepared, options: QueryOptions) -> bool:
        """Whether the statement already passed at these levels since the last schema change."""
        return self._consistency_version is self.catalog.version and (
            (prepared.statement_id, options.consistency, options.serial_consistency)
            in self._consistency_ok
        )

    def _check_consistency(self, prepared: Prepared, options: QueryOptions) -> None:
        """Unavailable when the consistency level needs more replicas than this one node.

        What passed is remembered per (statement, levels) until the next schema change.
        """
        if self._consistency_version is not self.catalog.version:
            self._consistency_ok.clear()
            self._consistency_version = self.catalog.version
        plan: StatementPlan = prepared.plan
        if plan.table is not None:
            self._check_table_consistency(plan.table, options, prepared.is_write, plan.compiled)
        elif isinstance(plan.compiled, list):
            for inner in plan.compiled:
                if inner.table is not None:
                    self._check_table_consistency(inner.table, options, True, inner.compiled)
        self._consistency_ok.add(
            (prepared.statement_id, options.consistency, options.serial_consistency)
        )

    def _check_table_consistency(
        self, table: TableMeta, options: QueryOptions, write: bool, compiled: Any
    ) -> None:
        if table.virtual:
            return
        ks = self.catalog.keyspaces.get(table.keyspace)
        if ks is None:
            return
        total, local = consistency.replicas(ks.replication, self.node.data_center)
        consistency.check(options.consistency, total, local, write=write)
        if getattr(compiled, "conditional", False):
            serial = options.serial_consistency or consistency.SERIAL
            consistency.check(serial, total, local, write=False)

    def _check_writable(self) -> None:
        if self._log is not None and self._log.failed is not None:
            raise CommitLogFailed(self._log.failed)

    async def snapshot(self) -> None:
        """Compact now (tests and operators); normally triggered by the log size."""
        if self._log is not None:
            await self._log.compact()

    async def _snapshot_chunks(self) -> AsyncIterator[bytes]:
        """The store as framed records, a chunk at a time, yielding to the loop in between.

        Rows go in their stored form (``storage.TableData.snapshot_records``), so loading a
        snapshot restores the very bytes; each partition is whole within a chunk; see
        ``commitlog`` for why mutations landing between chunks are safe. Rows whose cells have
        all expired are left out of the snapshot and dropped from memory on the way.
        """
        now = int(time.time())
        schema: list[Mutation] = []
        tables = []
        for ks in list(self.catalog.keyspaces.values()):
            schema.append(SchemaUpdate(("create_keyspace", ks.to_record())))
            for t in ks.tables.values():
                schema.append(SchemaUpdate(("create_table", t.to_record())))
                tables.append(t)
        yield frame(encode(schema))
        for t in tables:
            batch: list[Mutation] = []
            rows = 0
            for records, count in t.data.snapshot_records(t.id.bytes, now):
                batch.extend(records)
                rows += count
                if rows >= SNAPSHOT_CHUNK_ROWS:
                    yield frame(encode(batch))
                    batch, rows = [], 0
                    await asyncio.sleep(0)
            if batch:
                yield frame(encode(batch))

    # ---------------------------------------------------------------------------------------
    # Statements.

    def _statement_id(self, query: str, keyspace: str | None) -> bytes:
        return hashlib.md5(f"{keyspace or ''}\x00{query}".encode()).digest()

    def prepare(self, query: str, keyspace: str | None) -> Prepared:
        sid = self._statement_id(query, keyspace)
        cached = self._prepared.get(sid)
        if cached is not None:
            plan: StatementPlan = cached.plan
            if plan.version is self.catalog.version or not self.executor.is_stale(plan):
                plan.version = self.catalog.version
                return cached
            # DDL changed the table: describe it afresh (bind and result columns may differ).
        stmt = parse(query)
        plan = self.executor.compile(stmt, keyspace)
        self.stats.prepares += 1

        def table_of(ks: str | None, name: str) -> Any:
            return self.executor.table(ks, name, keyspace)

        binds, pk_indexes, unset_ok = bind_specs(stmt, table_of)
        result_columns = (
            list(plan.compiled.columns) if isinstance(plan.compiled, SelectPlan) else None
        )
        prepared = Prepared(
            statement_id=sid,
            query=query,
            keyspace=keyspace,
            bind_columns=binds,
            pk_indexes=pk_indexes,
            result_columns=result_columns,
            is_write=isinstance(stmt, (ast.Insert, ast.Update, ast.Delete, ast.Batch)),
            plan=plan,
            checks=bind_checks(binds, unset_ok),
        )
        if len(self._prepared) >= MAX_PREPARED:
            self._prepared.pop(next(iter(self._prepared)))
        self._prepared[sid] = prepared
        return prepared

    def lookup(self, statement_id: bytes) -> Prepared:
        prepared = self._prepared.get(statement_id)
        if prepared is None:
            raise Unprepared(
                f"Prepared query with ID {statement_id.hex()} not found (either the query was "
                "not prepared on this host (maybe the host has been restarted?) or you have "
                "prepared too many queries and it has been evicted from the internal cache)",
                statement_id,
            )
        return prepared

    def execute(
        self,
        prepared: Prepared,
        values: Sequence[bytes | None],
        options: QueryOptions,
        keyspace: str | None,
    ) -> Result:
        if self._log is not None and self._log.failed is not None and _mutates(prepared):
            raise CommitLogFailed(self._log.failed)
        self._within_budget((prepared.plan,))
        _check_count(prepared.plan, values)
        values = bind(values, prepared.checks)
        if not self._consistency_checked(prepared, options):
            self._check_consistency(prepared, options)
        size_hint = 0
        if isinstance(prepared.plan.stmt, ast.Batch):  # its literals count as what it writes
            size_hint = len(prepared.query) + sum(len(v) for v in values if isinstance(v, bytes))
        return self.executor.run(
            prepared.plan,
            values,
            options.page_size,
            options.paging_state,
            options.timestamp,
            options.now_in_seconds,
            size_hint,
        )

    def query(
        self,
        query: str,
        values: Sequence[bytes | None],
        options: QueryOptions,
        keyspace: str | None,
    ) -> Result:
        return self.execute(self.prepare(query, keyspace), values, options, keyspace)

    def batch(
        self,
        batch_type: int,
        items: Sequence[tuple[Prepared, Sequence[bytes | None]]],
        options: QueryOptions,
        keyspace: str | None,
    ) -> Result:
        self._check_writable()
        self._within_budget(prepared.plan for prepared, _values in items)
        first = items[0][0] if items else None
        compiled: list[tuple[Any, Sequence[bytes | None]]]
        if first is not None and all(map(operator.is_, map(_PREPARED, items), repeat(first))):
            # One statement, many rows (the common batch): checked column by column.
            plan = self.executor.fresh(first.plan)
            rows = list(map(_VALUES, items))
            if set(map(len, rows)) != {plan.bind_count}:
                for values in rows:
                    _check_count(plan, values)
            compiled = list(zip(repeat(plan.compiled), bind_rows(rows, first.checks)))
            if not self._consistency_checked(first, options):
                self._check_consistency(first, options)
        else:
            compiled = []
            checked: Prepared | None = None
            fresh: dict[StatementPlan, StatementPlan] = {}  # a few statements, interleaved
            last: StatementPlan | None = None
            plan = None
            for prepared, values in items:
                if prepared.plan is not last:
                    last = prepared.plan
                    plan = fresh.get(last)
                    if plan is None:
                        plan = fresh[last] = self.executor.fresh(last)
                assert plan is not None
                _check_count(plan, values)
                compiled.append((plan.compiled, bind(values, prepared.checks)))
                if prepared is not checked and not self._consistency_checked(prepared, options):
                    checked = prepared
                    self._check_consistency(prepared, options)
        self.stats.statements += len(items)
        now = int(time.time()) if options.now_in_seconds is None else options.now_in_seconds
        return self.executor.batch(
            batch_type, compiled, options.timestamp, now, size_hint=options.request_bytes
        )

    # ---------------------------------------------------------------------------------------
    # The memory budget.

    def _within_budget(self, plans: Iterable[StatementPlan]) -> None:
        """Refuse a write that adds data while the store is over its memory budget.

        Reads, deletions, TRUNCATE and DDL go on: they are how the store gets back under
        it, with TTL expiry (an expiry sweep runs every second while over, every minute else).
        """
        used = self.catalog.usage.memory
        if used <= self.memory_budget:
            if self._refusing:
                self._refusing = False
                log.info("embedded CQL store back under its memory budget: writes accepted")
            return
        if time.monotonic() - self._last_sweep >= SWEEP_OVER_BUDGET_SECONDS:
            self._sweep_soon()
        if not any(_adds_data(plan) for plan in plans):
            return
        self.stats.writes_refused_overloaded += 1
        if not self._refusing:
            self._refusing = True
            log.warning(
                "embedded CQL store over its memory budget (%s stored, budget %s): writes "
                "are refused until data is deleted or expires",
                format_bytes(used),
                format_bytes(self.memory_budget),
            )
        raise Overloaded(
            f"The embedded CQL server holds {format_bytes(used)} of data, over its memory "
            f"budget of {format_bytes(self.memory_budget)}: writes are refused until data is "
            "deleted or expires (reads and deletions go on). Retry later, raise the budget "
            "(chat cql-server --memory-budget, CHAT_CQL_EMBEDDED_MEMORY_BUDGET), or move to "
            "ScyllaDB."
        )

    def _every_sweep_interval(self) -> None:
        """The periodic expiry sweep (a loop timer, re-armed each time)."""
        self._sweep_soon()
        loop = asyncio.get_running_loop()
        self._sweep_timer = loop.call_later(SWEEP_INTERVAL_SECONDS, self._every_sweep_interval)

    def _sweep_soon(self) -> None:
        """Start an expiry sweep unless one runs (needs a running loop: the server's)."""
        self._last_sweep = time.monotonic()
        if self._sweep_task is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._sweep_task = loop.create_task(self._sweep_expired())

    async def _sweep_expired(self) -> None:
        """Forget rows whose TTL has passed, in the tables that hold expiring data, a piece at
        a time so requests keep being served."""
        try:
            now = int(time.time())
            self.stats.expiry_sweeps += 1
            for table in list(self.catalog.tables_by_id.values()):
                if not table.data.expiring:
                    continue
                for forgotten in table.data.sweep_expired(now):
                    self.stats.expired_rows_forgotten += forgotten
                    await asyncio.sleep(0)
        finally:
            self._sweep_task = None

    def durable(self) -> Awaitable[None] | None:
        if self._log is None:
            return None
        return self._log.durable()


def _adds_data(plan: StatementPlan) -> bool:
    """Whether the statement may store more: an INSERT or UPDATE, or a batch holding one."""
    compiled = plan.compiled
    if isinstance(compiled, list):
        return any(_adds_data(inner) for inner in compiled)
    return isinstance(compiled, (InsertPlan, UpdatePlan))


def _mutates(prepared: Prepared) -> bool:
    """Whether executing the statement writes (data or schema): what a failed log refuses."""
    plan: StatementPlan = prepared.plan
    return not isinstance(plan.compiled, SelectPlan) and not isinstance(plan.stmt, ast.Use)


_PREPARED = operator.itemgetter(0)
_VALUES = operator.itemgetter(1)


def _check_count(plan: StatementPlan, values: Sequence[bytes | None]) -> None:
    if len(values) != plan.bind_count:
        raise InvalidRequest(
            f"There were {plan.bind_count} markers(?) in CQL but {len(values)} bound variables"
        )
