"""Schema statements and restrictions as ScyllaDB answers them, through the driver.

Written from ScyllaDB's behaviour (its cqlpy suite: test_keyspace.py, test_null.py, and the
ported Cassandra select_order_by / select_multi_column_relation / batch tests) and its error
classes: ConfigurationException for what a keyspace's configuration gets wrong, Invalid for
the rest, Syntax for what the grammar refuses.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cassandra import AlreadyExists, InvalidRequest
from cassandra.cluster import Session
from cassandra.protocol import ConfigurationException, SyntaxException
from cassandra.query import SimpleStatement

from tests.cql.test_driver_statements import rows

NTS = "org.apache.cassandra.locator.NetworkTopologyStrategy"


@pytest.fixture
def scratch(session: Session) -> Iterator[list[str]]:
    """Keyspace names a test creates; dropped afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        session.execute(f'DROP KEYSPACE IF EXISTS "{name}"')


def replication(session: Session, keyspace: str) -> dict[str, str]:
    row = session.execute(
        "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s", [keyspace]
    ).one()
    return dict(row.replication)


def test_keyspace_replication_defaults_as_scylla_stores_them(
    session: Session, scratch: list[str]
) -> None:
    scratch += ["rf_only", "nts_only", "durable_only", "short_class"]
    session.execute("CREATE KEYSPACE rf_only WITH replication = {'replication_factor': '1'}")
    assert replication(session, "rf_only") == {"class": NTS, "datacenter1": "1"}
    session.execute(
        "CREATE KEYSPACE nts_only WITH replication = {'class': 'NetworkTopologyStrategy'}"
    )
    assert replication(session, "nts_only") == {"class": NTS, "datacenter1": "1"}
    session.execute("CREATE KEYSPACE durable_only WITH durable_writes = true")
    assert replication(session, "durable_only") == {"class": NTS, "datacenter1": "1"}
    session.execute(
        "CREATE KEYSPACE short_class WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    assert replication(session, "short_class") == {
        "class": "org.apache.cassandra.locator.SimpleStrategy",
        "replication_factor": "1",
    }


@pytest.mark.parametrize(
    "options",
    [
        "{'class': 'NetworkTopologyStrategy', 'nonexistentdc': 1}",
        "{'class': 'NetworkTopologyStrategy', 'Replication_factor': 1}",
        "{'class': 'NetworkTopologyStrategy', 'replication_factor': 'foo'}",
        "{'class': 'SimpleStrategy'}",
        "{'class': 'NoSuchStrategy'}",
    ],
)
def test_bad_replication_is_a_configuration_error(session: Session, options: str) -> None:
    with pytest.raises(ConfigurationException):
        session.execute(f"CREATE KEYSPACE bad_replication WITH replication = {options}")


def test_keyspace_and_table_names_follow_scylla_s_rules(
    session: Session, scratch: list[str], keyspace: str
) -> None:
    ok = "k" * 48
    scratch += [ok, "_xyz", "123"]
    rep = " WITH replication = {'class': 'NetworkTopologyStrategy', 'datacenter1': 1}"
    session.execute(f"CREATE KEYSPACE {ok}{rep}")
    with pytest.raises(InvalidRequest, match="name"):
        session.execute(f"CREATE KEYSPACE {'k' * 49}{rep}")
    with pytest.raises(InvalidRequest, match="name"):
        session.execute(f'CREATE KEYSPACE "xyz!123"{rep}')
    with pytest.raises(SyntaxException):
        session.execute(f"CREATE KEYSPACE _xyz{rep}")
    session.execute(f'CREATE KEYSPACE "_xyz"{rep}')
    session.execute(f'CREATE KEYSPACE "123"{rep}')
    with pytest.raises(AlreadyExists):
        session.execute(f'CREATE KEYSPACE "123"{rep}')
    session.execute(f"CREATE TABLE {keyspace}.{'t' * 48} (k int PRIMARY KEY)")
    with pytest.raises(InvalidRequest, match="name"):
        session.execute(f"CREATE TABLE {keyspace}.{'t' * 49} (k int PRIMARY KEY)")
    with pytest.raises(InvalidRequest, match="name"):
        session.execute(f'CREATE TABLE {keyspace}."a-b" (k int PRIMARY KEY)')


def test_dropping_what_does_not_exist_errs_as_scylla_does(session: Session, keyspace: str) -> None:
    session.execute("DROP KEYSPACE IF EXISTS nonexistent_keyspace")
    with pytest.raises(
        ConfigurationException, match="Cannot drop non existing keyspace 'nonexistent_keyspace'"
    ):
        session.execute("DROP KEYSPACE nonexistent_keyspace")
    with pytest.raises(ConfigurationException, match="Cannot drop non existing table 'nope'"):
        session.execute(f"DROP TABLE {keyspace}.nope")
    session.execute(f"DROP TABLE IF EXISTS {keyspace}.nope")
    with pytest.raises(InvalidRequest, match="nonexistent_keyspace"):
        session.execute("DROP TABLE nonexistent_keyspace.t")
    with pytest.raises(InvalidRequest, match="nonexistent_keyspace"):
        session.execute("CREATE TABLE nonexistent_keyspace.t (p int PRIMARY KEY)")


def test_bind_markers_cannot_name_a_keyspace_or_table(session: Session, keyspace: str) -> None:
    with pytest.raises(SyntaxException, match="Bind variables cannot be used for keyspace names"):
        session.prepare("USE ?")
    with pytest.raises(SyntaxException, match="Bind variables cannot be used for table names"):
        session.prepare(f"SELECT * FROM {keyspace}.?")


# ------------------------------------------------------------------------------- restrictions


def test_order_by_with_in_sorts_across_partitions_only_unpaged(ks_session: Session) -> None:
    ks_session.execute(
        "CREATE TABLE t (my_id text, col1 int, value text, PRIMARY KEY (my_id, col1))"
    )
    for key, col1 in (("key1", 1), ("key2", 3), ("key3", 2), ("key4", 4)):
        ks_session.execute(f"INSERT INTO t (my_id, col1, value) VALUES ('{key}', {col1}, 'v')")
    query = "SELECT col1, my_id FROM t WHERE my_id IN ('key1', 'key2', 'key3') ORDER BY col1"
    unpaged = SimpleStatement(query, fetch_size=None)
    assert [tuple(r) for r in ks_session.execute(unpaged)] == [
        (1, "key1"),
        (2, "key3"),
        (3, "key2"),
    ]
    with pytest.raises(InvalidRequest, match="Cannot page queries with both ORDER BY and a IN"):
        ks_session.execute(SimpleStatement(query, fetch_size=100))
    with pytest.raises(InvalidRequest, match="only supported on the clustered columns"):
        ks_session.execute("SELECT * FROM t WHERE my_id = 'key1' ORDER BY value")
    with pytest.raises(InvalidRequest, match="ORDER BY is only supported when the partition key"):
        ks_session.execute("SELECT * FROM t ORDER BY col1")


def test_clustering_restrictions_need_their_preceding_columns(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (a int, b int, c int, d int, PRIMARY KEY (a, b, c, d))")
    with pytest.raises(
        InvalidRequest,
        match='PRIMARY KEY column "c" cannot be restricted as preceding column "b" is not '
        "restricted",
    ):
        ks_session.execute("SELECT * FROM t WHERE a = 0 AND c = 1")
    with pytest.raises(
        InvalidRequest,
        match=r'Clustering column "c" cannot be restricted \(preceding column "b" is restricted '
        r"by a non-EQ relation\)",
    ):
        ks_session.execute("SELECT * FROM t WHERE a = 0 AND b > 0 AND c = 1")
    assert rows(ks_session, "SELECT * FROM t WHERE a = 0 AND c = 1 ALLOW FILTERING") == []


def test_multi_column_relations_follow_scylla_s_rules(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (a int, b int, c int, d int, PRIMARY KEY (a, b, c))")
    for b in range(2):
        for c in range(3):
            ks_session.execute(f"INSERT INTO t (a, b, c, d) VALUES (0, {b}, {c}, {b * 3 + c})")
    assert rows(ks_session, "SELECT d FROM t WHERE a = 0 AND (b, c) > (0, 1)") == [
        (2,),
        (3,),
        (4,),
        (5,),
    ]
    with pytest.raises(
        InvalidRequest, match="Multi-column relations can only be applied to clustering columns"
    ):
        ks_session.execute("SELECT * FROM t WHERE (a, b) = (0, 0)")
    with pytest.raises(InvalidRequest, match="PRIMARY KEY order"):
        ks_session.execute("SELECT * FROM t WHERE a = 0 AND (c, b) = (0, 0)")
    with pytest.raises(
        InvalidRequest, match=r"Expected 2 elements in value tuple, but got 3: \(0, 0, 0\)"
    ):
        ks_session.execute("SELECT * FROM t WHERE a = 0 AND (b, c) > (0, 0, 0)")
    with pytest.raises(InvalidRequest, match='Unsupported "!=" relation'):
        ks_session.execute("SELECT * FROM t WHERE a = 0 AND (b, c) != (0, 0)")


def test_mixed_clustering_directions_in_a_multi_column_slice(ks_session: Session) -> None:
    ks_session.execute(
        "CREATE TABLE t (a int, b int, c int, PRIMARY KEY (a, b, c)) "
        "WITH CLUSTERING ORDER BY (b ASC, c DESC)"
    )
    for b in range(2):
        for c in range(3):
            ks_session.execute(f"INSERT INTO t (a, b, c) VALUES (0, {b}, {c})")
    assert rows(ks_session, "SELECT b, c FROM t WHERE a = 0 AND (b, c) > (0, 1)") == [
        (0, 2),
        (1, 2),
        (1, 1),
        (1, 0),
    ]


def test_filtering_on_null_matches_nothing(ks_session: Session) -> None:
    ks_session.execute(
        "CREATE TABLE t (p text, c text, v text, i int, s set<int>, m map<int, int>, "
        "PRIMARY KEY (p, c))"
    )
    ks_session.execute(
        "INSERT INTO t (p, c, v, i, s, m) VALUES ('p', '1', 'hello', 7, {1}, {1: 2})"
    )
    ks_session.execute("INSERT INTO t (p, c, v) VALUES ('p', '2', '')")
    ks_session.execute("INSERT INTO t (p, c) VALUES ('p', '3')")
    for relation in ("v = NULL", "i > NULL", "i <= NULL", "s CONTAINS NULL", "m CONTAINS KEY NULL"):
        assert (
            rows(ks_session, f"SELECT c FROM t WHERE p = 'p' AND {relation} ALLOW FILTERING") == []
        )
    with pytest.raises(InvalidRequest, match="ALLOW FILTERING"):
        ks_session.execute("SELECT c FROM t WHERE p = 'p' AND i = NULL")
    assert rows(ks_session, ks_session.prepare("SELECT p FROM t WHERE p IN ?"), [None]) == []
    assert (
        rows(ks_session, ks_session.prepare("SELECT p FROM t WHERE p = 'p' AND c IN ?"), [None])
        == []
    )
    with pytest.raises(InvalidRequest, match=r"null value.*p"):
        ks_session.execute(ks_session.prepare("DELETE FROM t WHERE p IN ?"), [None])
    with pytest.raises(InvalidRequest, match="Invalid null value in condition for column c"):
        ks_session.execute("INSERT INTO t (p, c) VALUES ('p', null)")
