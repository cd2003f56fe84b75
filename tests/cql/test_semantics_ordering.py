"""Clustering order per type, through the driver: rows come back in Scylla's order."""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal
from typing import Any

import pytest
from cassandra.cluster import Session

UTC = datetime.UTC
CASES: list[tuple[str, list[Any]]] = [
    ("int", [-(2**31), -5, 0, 7, 2**31 - 1]),
    ("bigint", [-(2**63), -1, 0, 1, 2**63 - 1]),
    ("smallint", [-(2**15), -1, 0, 300]),
    ("tinyint", [-128, -1, 0, 127]),
    ("double", [float("-inf"), -2.5, -0.0, 0.5, 1e300, float("inf")]),
    ("float", [-3.5, -1.0, 0.25, 2.0]),
    ("varint", [-(10**30), -1, 0, 5, 10**30]),
    ("text", ["", "A", "a", "ab", "b", "é", "日本"]),
    ("ascii", ["", "Z", "a", "aa"]),
    ("blob", [b"", b"\x00", b"\x00\x01", b"\x7f", b"\x80", b"\xff"]),
    ("boolean", [False, True]),
    (
        "timestamp",
        [
            datetime.datetime(1900, 1, 1, tzinfo=UTC),
            datetime.datetime(1970, 1, 1, tzinfo=UTC),
            datetime.datetime(2024, 2, 29, 12, tzinfo=UTC),
        ],
    ),
    ("date", [datetime.date(1, 1, 1), datetime.date(1969, 12, 31), datetime.date(2024, 2, 29)]),
    ("inet", ["::1", "1.2.3.4", "10.0.0.1", "fe80::1"]),  # byte order, as Scylla
]


@pytest.mark.parametrize(("cql_type", "ascending"), CASES, ids=[c[0] for c in CASES])
def test_clustering_columns_sort_like_scylla_in_both_directions(
    ks_session: Session, cql_type: str, ascending: list[Any]
) -> None:
    s = ks_session
    s.execute(f"CREATE TABLE asc_t (p int, c {cql_type}, PRIMARY KEY (p, c))")
    s.execute(
        f"CREATE TABLE desc_t (p int, c {cql_type}, PRIMARY KEY (p, c))"
        " WITH CLUSTERING ORDER BY (c DESC)"
    )
    for table in ("asc_t", "desc_t"):
        insert = s.prepare(f"INSERT INTO {table} (p, c) VALUES (0, ?)")
        for value in reversed(ascending):
            s.execute(insert, (value,))
    expected = [normalise(v) for v in ascending]
    assert [normalise(r.c) for r in s.execute("SELECT c FROM asc_t WHERE p = 0")] == expected
    got = [normalise(r.c) for r in s.execute("SELECT c FROM desc_t WHERE p = 0")]
    assert got == expected[::-1]
    reversed_asc = s.execute("SELECT c FROM asc_t WHERE p = 0 ORDER BY c DESC")
    assert [normalise(r.c) for r in reversed_asc] == expected[::-1]
    middle = ascending[len(ascending) // 2]
    above = s.execute(s.prepare("SELECT c FROM desc_t WHERE p = 0 AND c > ?"), (middle,))
    assert [normalise(r.c) for r in above] == expected[len(ascending) // 2 + 1 :][::-1]


def normalise(value: Any) -> Any:
    """Driver values comparable across reads (naive UTC datetimes, plain dates, floats)."""
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return value.replace(tzinfo=None)
    if hasattr(value, "date") and not isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, float):
        return (value, str(value))  # tells -0.0 from 0.0
    return value


def test_timeuuid_clustering_sorts_by_embedded_time(ks_session: Session) -> None:
    s = ks_session
    s.execute("CREATE TABLE events (p int, at timeuuid, PRIMARY KEY (p, at))")
    base = datetime.datetime(2024, 1, 1, tzinfo=UTC).timestamp()
    # Node/clock bytes deliberately sort opposite to the time order.
    stamps = [uuid.UUID(fields=(*uuid_fields(base + i), 0x3F - i, 0xFFFFFF - i)) for i in range(5)]
    insert = s.prepare("INSERT INTO events (p, at) VALUES (0, ?)")
    for u in reversed(stamps):
        s.execute(insert, (u,))
    assert [r.at for r in s.execute("SELECT at FROM events WHERE p = 0")] == stamps


def uuid_fields(seconds: float) -> tuple[int, int, int, int]:
    """time_low, time_mid, time_hi_version, clock_seq_hi for a version-1 uuid at ``seconds``."""
    t = int(seconds * 1e7) + 0x01B21DD213814000
    return t & 0xFFFFFFFF, (t >> 32) & 0xFFFF, ((t >> 48) & 0x0FFF) | 0x1000, 0x80


def test_decimal_values_round_trip_exactly(ks_session: Session) -> None:
    s = ks_session
    s.execute("CREATE TABLE money (k int PRIMARY KEY, amount decimal)")
    s.execute("INSERT INTO money (k, amount) VALUES (1, 12.345)")
    s.execute(s.prepare("INSERT INTO money (k, amount) VALUES (2, ?)"), (Decimal("-0.001"),))
    rows = dict(s.execute("SELECT k, amount FROM money").all())
    assert rows == {1: Decimal("12.345"), 2: Decimal("-0.001")}
