"""The CQL migration runner against the embedded server: splitting, keyspace, lock, status."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from chat.config import Settings, replication_options
from chat.store.cql import migrations as cql_migrations
from chat.store.cql.migrations import CqlMigrationError, discover, migrate_up, split_statements
from chat.store.driver.session import CqlStore, execute_async

_keyspaces = itertools.count()


def _settings_for_fresh_keyspace(settings: Settings) -> Settings:
    return settings.model_copy(update={"cql_keyspace": f"mig_{next(_keyspaces)}_{id(settings)}"})


def test_split_statements_ignores_semicolons_in_strings_identifiers_and_comments() -> None:
    script = """
    -- a comment; with a semicolon
    CREATE TABLE a (k text PRIMARY KEY, "we;ird" int) WITH comment = 'it''s; fine';
    /* block; comment */ INSERT INTO a (k) VALUES ($$dollar; string$$); // trailing;
    ;
    """
    assert split_statements(script) == [
        "CREATE TABLE a (k text PRIMARY KEY, \"we;ird\" int) WITH comment = 'it''s; fine'",
        "INSERT INTO a (k) VALUES ($$dollar; string$$)",
    ]


def test_split_statements_reports_an_unterminated_string_with_its_line() -> None:
    with pytest.raises(CqlMigrationError, match="line 2"):
        split_statements("SELECT 1;\nINSERT INTO a (k) VALUES ('oops);")


def test_every_shipped_migration_file_splits_into_statements() -> None:
    found = discover()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert all(m.statements for m in found)
    assert all("IF NOT EXISTS" in s for m in found for s in m.statements)


def test_a_misnamed_migration_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "1-first.cql").write_text("SELECT 1;")
    with pytest.raises(CqlMigrationError, match=r"NNNNNN_name\.cql"):
        discover(tmp_path)


def test_replication_setting_parses_both_strategies_and_rejects_junk() -> None:
    assert replication_options("SimpleStrategy:1") == {
        "class": "SimpleStrategy",
        "replication_factor": "1",
    }
    assert replication_options("NetworkTopologyStrategy:dc1=3,dc2=3") == {
        "class": "NetworkTopologyStrategy",
        "dc1": "3",
        "dc2": "3",
    }
    for junk in ["SimpleStrategy:0", "Simple:1", "NetworkTopologyStrategy:dc1", "x"]:
        with pytest.raises(ValueError, match="Strategy"):
            replication_options(junk)


async def test_migrate_up_creates_the_keyspace_from_settings_and_every_table(
    cql_store: CqlStore, settings: Settings
) -> None:
    fresh = _settings_for_fresh_keyspace(settings)
    applied = await migrate_up(cql_store, fresh)
    assert [m.version for m in applied] == [m.version for m in discover()]
    tables = await execute_async(
        cql_store.session,
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s",
        [fresh.cql_keyspace],
    )
    names = {r.table_name for r in tables}
    assert {"chat_messages_by_event", "chat_send_claims", "typing_indicators"} <= names
    keyspace = await execute_async(
        cql_store.session,
        "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s",
        [fresh.cql_keyspace],
    )
    assert keyspace[0].replication["class"].endswith("SimpleStrategy")
    assert await migrate_up(cql_store, fresh) == []
    status = await cql_migrations.status(cql_store, fresh)
    assert all(s.applied_at is not None and not s.changed_since_applied for s in status)


async def test_two_runners_at_once_apply_each_migration_exactly_once(
    cql_store: CqlStore, settings: Settings
) -> None:
    fresh = _settings_for_fresh_keyspace(settings)
    first, second = await asyncio.gather(migrate_up(cql_store, fresh), migrate_up(cql_store, fresh))
    assert sorted(m.version for m in [*first, *second]) == [m.version for m in discover()]


async def test_a_held_lock_makes_another_runner_give_up_at_its_deadline(
    cql_store: CqlStore, settings: Settings
) -> None:
    fresh = _settings_for_fresh_keyspace(settings)
    await migrate_up(cql_store, fresh)
    ks = fresh.cql_keyspace
    await execute_async(
        cql_store.session,
        f"INSERT INTO {ks}.cql_migration_lock (name, owner) VALUES ('migrate', uuid()) "
        "USING TTL 60",
    )
    ticks = itertools.count(step=10.0)
    with pytest.raises(CqlMigrationError, match="held the CQL migration lock"):
        await migrate_up(cql_store, fresh, lock_wait_seconds=5, clock=lambda: next(ticks))


async def test_a_new_migration_file_is_applied_and_reported_by_status(
    cql_store: CqlStore, settings: Settings, tmp_path: Path
) -> None:
    fresh = _settings_for_fresh_keyspace(settings)
    (tmp_path / "000001_one.cql").write_text("CREATE TABLE IF NOT EXISTS one (k int PRIMARY KEY);")
    assert [m.name for m in await migrate_up(cql_store, fresh, tmp_path)] == ["one"]
    (tmp_path / "000002_two.cql").write_text(
        "CREATE TABLE IF NOT EXISTS two (k int PRIMARY KEY);\n"
        "CREATE TABLE IF NOT EXISTS three (k int PRIMARY KEY);"
    )
    status = await cql_migrations.status(cql_store, fresh, tmp_path)
    assert [(s.name, s.applied_at is None) for s in status] == [("one", False), ("two", True)]
    assert [m.name for m in await migrate_up(cql_store, fresh, tmp_path)] == ["two"]
    await execute_async(cql_store.session, f"SELECT * FROM {fresh.cql_keyspace}.three")


async def test_a_failing_statement_names_the_file_and_records_nothing(
    cql_store: CqlStore, settings: Settings, tmp_path: Path
) -> None:
    fresh = _settings_for_fresh_keyspace(settings)
    (tmp_path / "000001_bad.cql").write_text("CREATE TABLE IF NOT EXISTS bad (k nosuchtype);")
    with pytest.raises(CqlMigrationError, match=r"000001_bad\.cql"):
        await migrate_up(cql_store, fresh, tmp_path)
    status = await cql_migrations.status(cql_store, fresh, tmp_path)
    assert status[0].applied_at is None
