"""Statements to plans (at PREPARE) and plans to results (at EXECUTE).

``compile`` turns a parsed statement into a plan once; ``Executor.run`` executes it with bound
values. Plans hold the ``TableMeta`` they were compiled against; when DDL replaces or drops
that table the plan is recompiled from its query text on next use (so a prepared statement
follows ALTER TABLE, and a dropped table gives Cassandra's "unconfigured table" error).
Mutations go to the storage at once and their records to ``log_sink`` (the commit log).
"""

from __future__ import annotations

import operator
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

from chat.embedded.cql import ast, gc_policy, system_tables
from chat.embedded.cql.delete import DeletePlan
from chat.embedded.cql.errors import ConfigurationError, InvalidRequest
from chat.embedded.cql.insert import InsertPlan
from chat.embedded.cql.lwt import check_batch
from chat.embedded.cql.mutations import Mutation, SchemaUpdate, Truncate
from chat.embedded.cql.results import Result, SchemaChange, SetKeyspace, Void
from chat.embedded.cql.schema import Catalog, TableMeta
from chat.embedded.cql.select import SelectPlan
from chat.embedded.cql.storage import TableData
from chat.embedded.cql.update import UpdatePlan
from chat.embedded.cql.values import (
    driver_type,
    now_micros,
)
from chat.embedded.cql.write import ListClock, Staged, commit, timestamp_getter

WritePlan = InsertPlan | UpdatePlan | DeletePlan

NO_KEYSPACE = (
    "No keyspace has been specified. USE a keyspace, or explicitly specify keyspace.tablename"
)


@dataclass
class EngineStats:
    """Counters exposed through ``system.embedded_stats`` (the bench reads them)."""

    statements: int = 0
    rows_written: int = 0
    batches: int = 0
    rows_read: int = 0
    selects: int = 0
    prepares: int = 0
    ddl: int = 0
    commit_records: int = 0
    commit_bytes: int = 0
    commit_fsyncs: int = 0
    snapshots: int = 0
    memory_budget_bytes: int = 0
    writes_refused_overloaded: int = 0
    expiry_sweeps: int = 0
    expired_rows_forgotten: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        out = {k: v for k, v in vars(self).items() if isinstance(v, int)}
        out.update(self.extra)
        return out


@dataclass(eq=False)
class StatementPlan:
    """What ``Prepared.plan`` holds: the statement and its compiled form."""

    stmt: Any
    keyspace: str | None
    compiled: Any
    table: TableMeta | None
    bind_count: int
    version: Any = None  # the catalog version it was last checked against


def _keyspace_of(stmt_ks: str | None, session_ks: str | None) -> str:
    ks = stmt_ks or session_ks
    if not ks:
        raise InvalidRequest(NO_KEYSPACE)
    return ks


# --------------------------------------------------------------------------------------------


class Executor:
    def __init__(self, catalog: Catalog, node: system_tables.NodeInfo, stats: EngineStats) -> None:
        self.catalog = catalog
        self.node = node
        self.stats = stats
        self.clock = ListClock()
        self.log_sink: Callable[[list[Mutation]], None] | None = None

    def table(self, stmt_ks: str | None, name: str, session_ks: str | None) -> TableMeta:
        ks = _keyspace_of(stmt_ks, session_ks)
        virtual = system_tables.lookup(ks, name)
        if virtual is not None:
            return virtual
        return self.catalog.table(ks, name)

    def compile(self, stmt: Any, keyspace: str | None) -> StatementPlan:
        if isinstance(stmt, (ast.Select, ast.Insert, ast.Update, ast.Delete)):
            table = self.table(stmt.keyspace, stmt.table, keyspace)
            compiled = self._compile_dml(stmt, table)
            version = self.catalog.version
            return StatementPlan(stmt, keyspace, compiled, table, stmt.bind_count, version)
        if isinstance(stmt, ast.Batch):
            plans = [self.compile(s, keyspace) for s in stmt.statements]
            version = self.catalog.version
            return StatementPlan(stmt, keyspace, plans, None, stmt.bind_count, version)
        count = getattr(stmt, "bind_count", 0)
        return StatementPlan(stmt, keyspace, None, None, count, self.catalog.version)

    def _compile_dml(self, stmt: Any, table: TableMeta) -> SelectPlan | WritePlan:
        if isinstance(stmt, ast.Select):
            return SelectPlan(table, stmt)
        if isinstance(stmt, ast.Insert):
            return InsertPlan(table, stmt, self.clock)
        if isinstance(stmt, ast.Update):
            return UpdatePlan(table, stmt, self.clock)
        return DeletePlan(table, stmt)

    def fresh(self, plan: StatementPlan) -> StatementPlan:
        """The plan, recompiled in place if DDL replaced or dropped the table it was built on.

        The common case (no DDL since the last check) is one identity comparison.
        """
        version = self.catalog.version
        if plan.version is version:
            return plan
        if self.is_stale(plan):
            new = self.compile(plan.stmt, plan.keyspace)
            plan.compiled, plan.table = new.compiled, new.table
        plan.version = version
        return plan

    def is_stale(self, plan: StatementPlan) -> bool:
        if isinstance(plan.compiled, list):
            return any(self.is_stale(p) for p in plan.compiled)
        t = plan.table
        return not (t is None or t.virtual or self.catalog.tables_by_id.get(t.id.bytes) is t)

    # ---------------------------------------------------------------------------------------

    def run(
        self,
        plan: StatementPlan,
        values: Sequence[bytes | None],
        page_size: int | None,
        paging_state: bytes | None,
        timestamp: int | None,
        now: int | None,
        size_hint: int = 0,
    ) -> Result:
        """Execute a plan with ``values`` bound and validated (the engine's binding)."""
        self.stats.statements += 1
        plan = self.fresh(plan)
        compiled = plan.compiled
        now_s = int(time.time()) if now is None else now
        if isinstance(compiled, SelectPlan):
            self.stats.selects += 1
            table = compiled.table
            if not table.virtual:
                # Per table, so a bench can tell which reads a workload costs (each page counts).
                per_table = self.stats.extra
                key = f"selects:{table.keyspace}.{table.name}"
                per_table[key] = per_table.get(key, 0) + 1
            data: TableData = (
                system_tables.build(table, self.catalog, self.node, self.stats_snapshot)
                if table.virtual
                else table.data
            )
            rows = compiled.run(data, values, page_size, paging_state, now_s)
            self.stats.rows_read += len(rows.rows)
            return rows
        if isinstance(compiled, (InsertPlan, UpdatePlan, DeletePlan)):
            ts = timestamp if timestamp is not None else now_micros()
            staged, result = compiled.run(values, ts, now_s)
            if staged:
                self.apply_staged(staged)
            return result if result is not None else Void()
        if isinstance(compiled, list):
            stmt: ast.Batch = plan.stmt
            batch_ts = timestamp
            if stmt.timestamp is not None:
                batch_ts = timestamp_getter(stmt.timestamp)(values)
            kind = {"LOGGED": 0, "UNLOGGED": 1, "COUNTER": 2}[stmt.kind]
            items = [(p.compiled, values) for p in compiled]
            explicit = stmt.timestamp is not None
            return self.batch(kind, items, batch_ts, now_s, explicit=explicit, size_hint=size_hint)
        return self.ddl(plan.stmt, plan.keyspace)

    def stats_snapshot(self) -> dict[str, int]:
        usage = self.catalog.usage
        store = {
            "store_rows": usage.rows,
            "store_bytes": usage.bytes,
            "store_partitions": usage.partitions,
            "store_memory_bytes": usage.memory,
            "over_memory_budget": int(usage.memory > self.stats.memory_budget_bytes),
            "process_rss_bytes": process_rss_bytes(),
        }
        return {**self.stats.as_dict(), **gc_policy.stats(), **store}

    def batch(
        self,
        kind: int,
        items: Sequence[tuple[Any, Sequence[bytes | None]]],
        timestamp: int | None,
        now: int,
        *,
        explicit: bool = False,
        size_hint: int = 0,
    ) -> Result:
        """Apply every statement with one timestamp; log them as one record (all or nothing).

        ``timestamp`` is the default for statements without ``USING TIMESTAMP`` (the frame's
        client timestamp); only a ``BEGIN BATCH USING TIMESTAMP`` (``explicit``) conflicts with
        per-statement timestamps, as in Cassandra. ``size_hint``: the request's bytes, an upper
        bound of the values it writes; only above the fail threshold are they counted.
        """
        self.stats.batches += 1
        plans: list[tuple[WritePlan, Sequence[bytes | None]]] = []
        has_counter = has_other = False
        checked: set[int] = set()  # batches repeat a few statements: check each once
        last: Any = None
        for compiled, values in items:
            if compiled is not last and id(compiled) not in checked:
                last = compiled
                checked.add(id(compiled))
                if not isinstance(compiled, (InsertPlan, UpdatePlan, DeletePlan)):
                    raise InvalidRequest(
                        "Only INSERT, UPDATE and DELETE statements are allowed in a batch"
                    )
                if compiled.table.is_counter and not isinstance(compiled, DeletePlan):
                    has_counter = True
                else:
                    has_other = True
                if explicit and compiled.has_ts:
                    raise InvalidRequest(
                        "Timestamp must be set either on BATCH or individual statements"
                    )
            plans.append((compiled, values))
        if kind == 0 and has_counter:
            raise InvalidRequest("Cannot include a counter statement in a logged batch")
        if kind == 2 and has_other:
            raise InvalidRequest("Cannot include non-counter statement in a counter batch")
        if has_counter and has_other:
            raise InvalidRequest("Counter and non-counter mutations cannot exist in the same batch")
        ts = timestamp if timestamp is not None else now_micros()
        if any(p.conditional for p, _ in plans):
            return self._conditional_batch(plans, ts, now)
        if size_hint > BATCH_FAIL_BYTES:
            _refuse_large_batch(plans)
        # Every statement is staged (and validated) before any is applied: a batch that fails
        # leaves nothing behind.
        first = plans[0][0] if plans else None
        if type(first) is InsertPlan and all(map(operator.is_, map(_PLAN, plans), repeat(first))):
            # One INSERT, many rows (the common batch): staged by one C-level map.
            self.apply_staged(list(map(first.stage, map(_VALUES, plans), repeat(ts), repeat(now))))
            return Void()
        staged: list[Staged] = []
        append = staged.append
        extend = staged.extend
        for compiled, values in plans:
            if type(compiled) is InsertPlan:  # unconditional here: one row, no result
                append(compiled.stage(values, ts, now))
            else:
                extend(compiled.run(values, ts, now)[0])
        self.apply_staged(staged)
        return Void()

    def apply_staged(self, staged: list[Staged]) -> None:
        """Apply staged writes to the memtable and hand their records to the commit log."""
        records: list[Mutation] = []
        append = records.append
        try:
            for pending in staged:
                append(commit(pending))
        finally:
            # Applying cannot fail on a request's values (staging validated them); should it
            # fail anyway, what reached the memtable is logged, or a restart would drop rows
            # clients could already read.
            if records:
                self.stats.rows_written += len(records)
                if self.log_sink is not None:
                    self.log_sink(records)

    def _conditional_batch(
        self, plans: list[tuple[WritePlan, Sequence[bytes | None]]], ts: int, now: int
    ) -> Result:
        # Every condition is checked against the state before the batch, as in ScyllaDB, and
        # all of them before anything is staged or applied.
        applied, result = check_batch(plans, now)
        if not applied:
            return result
        staged: list[Staged] = []
        for compiled, values in plans:
            if isinstance(compiled, InsertPlan):
                staged.append(compiled.stage(values, ts, now))
            else:
                staged.extend(compiled.run(values, ts, now, checked=True)[0])
        self.apply_staged(staged)
        return result

    # ---------------------------------------------------------------------------------------

    def ddl(self, stmt: Any, keyspace: str | None) -> Result:
        catalog = self.catalog
        record: tuple[Any, ...] | None
        if isinstance(stmt, ast.Use):
            if (
                stmt.keyspace not in catalog.keyspaces
                and stmt.keyspace not in system_tables.SYSTEM_KEYSPACES
            ):
                raise InvalidRequest(f"Keyspace '{stmt.keyspace}' does not exist")
            return SetKeyspace(stmt.keyspace)
        if isinstance(stmt, ast.CreateKeyspace):
            record = catalog.create_keyspace_record(stmt, (self.node.data_center,))
            change = SchemaChange("CREATED", "KEYSPACE", stmt.name)
        elif isinstance(stmt, ast.DropKeyspace):
            if stmt.name not in catalog.keyspaces:
                if stmt.if_exists:
                    return Void()
                raise ConfigurationError(f"Cannot drop non existing keyspace '{stmt.name}'.")
            record = ("drop_keyspace", stmt.name)
            change = SchemaChange("DROPPED", "KEYSPACE", stmt.name)
        elif isinstance(stmt, ast.CreateTable):
            ks = _keyspace_of(stmt.keyspace, keyspace)
            record = catalog.create_table_record(stmt, ks)
            change = SchemaChange("CREATED", "TABLE", ks, stmt.name)
        elif isinstance(stmt, ast.DropTable):
            ks = _keyspace_of(stmt.keyspace, keyspace)
            if stmt.name not in catalog.keyspace(ks).tables:
                if stmt.if_exists:
                    return Void()
                raise ConfigurationError(
                    f"Cannot drop non existing table '{stmt.name}' in keyspace '{ks}'."
                )
            record = ("drop_table", ks, stmt.name)
            change = SchemaChange("DROPPED", "TABLE", ks, stmt.name)
        elif isinstance(stmt, ast.AlterTableAdd):
            ks = _keyspace_of(stmt.keyspace, keyspace)
            record = catalog.alter_add_record(stmt, ks)
            change = SchemaChange("UPDATED", "TABLE", ks, stmt.table)
        elif isinstance(stmt, ast.Truncate):
            table = self.table(stmt.keyspace, stmt.table, keyspace)
            if table.virtual:
                raise InvalidRequest(f"{table.keyspace} keyspace is not user-modifiable.")
            table.data.truncate()
            if self.log_sink is not None:
                self.log_sink([Truncate(table.id.bytes)])
            return Void()
        else:
            raise InvalidRequest(f"Unsupported statement {type(stmt).__name__}")
        if record is None:
            return Void()
        catalog.apply(record)
        self.stats.ddl += 1
        if self.log_sink is not None:
            self.log_sink([SchemaUpdate(record)])
        return change


def process_rss_bytes() -> int:
    """This process's resident set size, from /proc (0 where there is none)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


BATCH_FAIL_BYTES = 1024 * 1024
"""ScyllaDB's default ``batch_size_fail_threshold_in_kb`` (1024), in bytes."""


def _refuse_large_batch(plans: Sequence[tuple[WritePlan, Sequence[bytes | None]]]) -> None:
    """ScyllaDB refuses a batch over the threshold when it spans more than one partition.

    Called only when the request's size is over the threshold: a batch of one partition
    passes whatever its size, as in ScyllaDB (which counts the memory of the mutations; the
    request's bytes are the measure here).
    """
    first: tuple[bytes, bytes] | None = None
    for plan, values in plans:
        if isinstance(plan, InsertPlan):
            keys = [plan.target(values)[1]]
        else:
            keys = [key for key, _pv in plan.keys.partitions(values)]
        for key in keys:
            if first is None:
                first = (plan.tid, key)
            elif (plan.tid, key) != first:
                raise InvalidRequest("Batch too large")


_PLAN = operator.itemgetter(0)
_VALUES = operator.itemgetter(1)

__all__ = ["EngineStats", "Executor", "StatementPlan", "driver_type"]
