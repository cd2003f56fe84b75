"""Ordering keys and tokens: the byte encodings the storage sorts by must match CQL order."""

from __future__ import annotations

import math
import uuid
from typing import Any

from cassandra import cqltypes as ct
from cassandra.metadata import Murmur3Token
from hypothesis import given
from hypothesis import strategies as st

from chat.embedded.cql import ast
from chat.embedded.cql.ordering import increment, ordering_encoder
from chat.embedded.cql.values import composite_key, token_of

INT_TYPES = {
    "tinyint": (ct.ByteType, 8),
    "smallint": (ct.ShortType, 16),
    "int": (ct.Int32Type, 32),
    "bigint": (ct.LongType, 64),
}


def key(type_name: str, driver: Any, value: Any, desc: bool = False) -> bytes:
    return ordering_encoder(ast.CqlType(type_name), desc)(driver.serialize(value, 4))


def same_order(a: Any, b: Any, ka: bytes, kb: bytes) -> bool:
    return bool((a < b) == (ka < kb) and (a == b) == (ka == kb))


@given(st.sampled_from(sorted(INT_TYPES)), st.data())
def test_integer_keys_sort_numerically_both_directions(name: str, data: st.DataObject) -> None:
    driver, bits = INT_TYPES[name]
    ints = st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    a, b = data.draw(ints), data.draw(ints)
    assert same_order(a, b, key(name, driver, a), key(name, driver, b))
    assert same_order(b, a, key(name, driver, a, True), key(name, driver, b, True))


@given(st.integers(-(10**40), 10**40), st.integers(-(10**40), 10**40))
def test_varint_keys_sort_numerically(a: int, b: int) -> None:
    assert same_order(a, b, key("varint", ct.IntegerType, a), key("varint", ct.IntegerType, b))


@given(st.floats(allow_nan=False), st.floats(allow_nan=False))
def test_double_keys_sort_numerically(a: float, b: float) -> None:
    if a == 0 or b == 0:  # CQL orders -0.0 before 0.0; Python calls them equal
        a, b = math.copysign(1.0, a) * abs(a) or 0.0, abs(b) or 0.0
    assert same_order(a, b, key("double", ct.DoubleType, a), key("double", ct.DoubleType, b))


@given(st.text(), st.text(), st.text(), st.text())
def test_text_keys_sort_by_utf8_bytes_and_concatenate(a: str, b: str, c: str, d: str) -> None:
    ka = key("text", ct.UTF8Type, a) + key("text", ct.UTF8Type, c)
    kb = key("text", ct.UTF8Type, b) + key("text", ct.UTF8Type, d)
    left = (a.encode(), c.encode())
    right = (b.encode(), d.encode())
    assert same_order(left, right, ka, kb)
    kd_a = key("text", ct.UTF8Type, a, True) + key("text", ct.UTF8Type, c)
    kd_b = key("text", ct.UTF8Type, b, True) + key("text", ct.UTF8Type, d)
    assert same_order((b.encode(), c.encode()), (a.encode(), d.encode()), kd_a, kd_b) or (a == b)


@given(st.binary(), st.binary())
def test_prefix_increment_bounds_every_extension(prefix: bytes, tail: bytes) -> None:
    if prefix:
        upper = increment(prefix)
        assert prefix <= prefix + tail
        assert upper is None or prefix + tail < upper


@given(st.integers(0, 2**60 - 1), st.integers(0, 2**60 - 1), st.binary(min_size=8, max_size=8))
def test_timeuuid_keys_sort_by_time_first(t1: int, t2: int, lsb: bytes) -> None:
    def make(t: int) -> uuid.UUID:
        fields = (t & 0xFFFFFFFF, (t >> 32) & 0xFFFF, ((t >> 48) & 0x0FFF) | 0x1000)
        head = fields[0].to_bytes(4, "big") + fields[1].to_bytes(2, "big")
        return uuid.UUID(bytes=head + fields[2].to_bytes(2, "big") + lsb)

    ka = key("timeuuid", ct.TimeUUIDType, make(t1))
    kb = key("timeuuid", ct.TimeUUIDType, make(t2))
    assert same_order(t1, t2, ka, kb)


@given(st.integers(-(2**31), 2**31 - 1), st.text(max_size=20))
def test_tokens_match_the_drivers_murmur3_for_single_and_composite_keys(n: int, s: str) -> None:
    single = ct.Int32Type.serialize(n, 4)
    assert token_of(single) == Murmur3Token.hash_fn(single)
    parts = [single, s.encode()]
    routing = b"".join(len(p).to_bytes(2, "big") + p + b"\x00" for p in parts)
    assert composite_key(parts) == routing
    assert token_of(composite_key(parts)) == Murmur3Token.hash_fn(routing)
