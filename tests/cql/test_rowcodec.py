"""The compact row form (``rowcodec``) and the runs that hold it, fed random rows.

The codec must be canonical — the bytes are a function of the row's content alone — because
replay, snapshot load and the live path must build the very same bytes; and its fast paths
(a fresh INSERT's encoding, the generated reader) must agree with the general ones.
"""

from __future__ import annotations

import bisect
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from chat.embedded.cql.cells import NO_TS, OP_SET, CollectionCell, Row
from chat.embedded.cql.rowcodec import (
    NARROW_LIMIT,
    SLOW,
    RowCodec,
    prefix_len,
    token_of_prefix,
    token_prefix,
)
from chat.embedded.cql.runs import LOAD, Run

NOW = 1_000_000
values = st.binary(max_size=40)
timestamps = st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1)
expiries = st.sampled_from([0, 0, NOW - 5, NOW, NOW + 5])
timing = st.tuples(timestamps, expiries, st.sampled_from([0, 10, 300]))


@st.composite
def simple_cells(draw: Any, slot: int) -> tuple[Any, ...]:
    ts, exp, ttl = draw(timing)
    return (OP_SET, slot, draw(st.none() | values), ts, exp, ttl)


@st.composite
def collection_cells(draw: Any, slot: int) -> CollectionCell:
    cleared = draw(st.sampled_from([NO_TS, 5]))
    items = {}
    for key in draw(st.lists(values, max_size=4, unique=True)):
        ts, exp, ttl = draw(timing)
        items[key] = (OP_SET, slot, draw(st.none() | values), ts, exp, ttl)
    return CollectionCell(cleared, items)


@st.composite
def rows(draw: Any, ncv: int | None = None) -> tuple[int, Row]:
    ncv = draw(st.integers(0, 2)) if ncv is None else ncv
    width = draw(st.integers(0, 6))
    cells: list[Any] = []
    for slot in range(width):
        kind = draw(st.sampled_from(["absent", "simple", "simple", "collection"]))
        if kind == "simple":
            cells.append(draw(simple_cells(slot)))
        elif kind == "collection":
            cells.append(draw(collection_cells(slot)))
        else:
            cells.append(None)
    marker = draw(st.none() | timing)
    deleted_at = draw(st.sampled_from([NO_TS, NO_TS, 7]))
    ck = tuple(draw(st.lists(values, min_size=ncv, max_size=ncv)))
    return ncv, Row(ck, width, deleted_at, marker, cells)


def content(row: Row) -> tuple[Any, ...]:
    cells: list[Any] = []
    for c in row.cells:
        if isinstance(c, CollectionCell):
            cells.append(("coll", c.cleared_at, sorted(c.items.items())))
        else:
            cells.append(c)
    while cells and cells[-1] is None:
        cells.pop()
    return (row.ck, row.marker, row.deleted_at, cells)


@settings(max_examples=300, deadline=None)
@given(rows(), st.binary(max_size=30))
def test_a_row_decodes_to_what_was_encoded_and_encodes_to_the_same_bytes_again(
    drawn: tuple[int, Row], prefix: bytes
) -> None:
    ncv, row = drawn
    codec = RowCodec(ncv)
    blob = codec.encode(prefix, row)
    if blob is None:
        assert row.is_empty()
        return
    assert blob[: prefix_len(blob)] == prefix
    decoded = codec.decode(blob, len(row.cells))
    assert content(decoded) == content(row)
    assert codec.encode(prefix, decoded) == blob
    assert codec.clustering(blob) == row.ck
    assert codec.is_live(blob, NOW) == row.is_live(NOW)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 2),
    st.lists(st.none() | values, max_size=6),
    st.data(),
    timing,
)
def test_a_fresh_insert_is_encoded_as_the_general_encoder_encodes_that_row(
    ncv: int, vals: list[bytes | None], data: Any, marker: tuple[int, int, int]
) -> None:
    slots = sorted(data.draw(st.sets(st.integers(0, 8), min_size=len(vals), max_size=len(vals))))
    cv = tuple(data.draw(st.lists(values, min_size=ncv, max_size=ncv)))
    width = (slots[-1] + 1) if slots else 0
    cells: list[Any] = [None] * width
    for slot, v in zip(slots, vals, strict=True):
        cells[slot] = (OP_SET, slot, v, *marker)
    codec = RowCodec(ncv)
    expected = codec.encode(b"key", Row(cv, width, NO_TS, marker, cells))
    assert codec.insert(b"key", cv, marker, slots, vals) == expected


def test_a_row_of_8_kib_and_more_takes_wide_offsets_and_reads_back() -> None:
    codec = RowCodec(1)
    big = b"x" * (NARROW_LIMIT + 10)
    blob = codec.insert(b"k", (b"c",), (1, 0, 0), (0, 1), (b"a", big))
    row = codec.decode(blob, 2)
    assert row.cells[1][2] == big
    read = codec.reader([("ck", 0), ("cell", 1)])
    assert read(blob, NOW, ()) is SLOW  # the general path decodes it


def test_a_prefix_of_32_kib_and_more_has_a_four_byte_trailer() -> None:
    codec = RowCodec(1)
    prefix = b"p" * 40_000
    blob = codec.insert(prefix, (b"c",), (1, 0, 0), (0,), (b"v",))
    assert prefix_len(blob) == len(prefix)
    assert codec.decode(blob, 1).cells[0][2] == b"v"


@settings(max_examples=300, deadline=None)
def stored(drawn: tuple[int, Row], prefix: bytes) -> tuple[RowCodec, Row, bytes]:
    """The codec, the row and its stored form; rows that store nothing are not drawn."""
    ncv, row = drawn
    codec = RowCodec(ncv)
    blob = codec.encode(prefix, row)
    assume(blob is not None)
    assert blob is not None
    return codec, row, blob


@given(rows(), st.data())
def test_the_generated_reader_gives_what_the_decoded_row_holds(
    drawn: tuple[int, Row], data: Any
) -> None:
    codec, row, blob = stored(drawn, b"pre")
    width = len(row.cells)
    columns: list[tuple[str, int]] = [("pk", 0)]
    columns += [("ck", i) for i in range(codec.ncv)]
    columns += [("cell", s) for s in data.draw(st.lists(st.integers(0, max(width, 1) + 1)))]
    got = codec.reader(columns)(blob, NOW, (b"pk",))
    decoded = codec.decode(blob, width + 3)
    if got is SLOW:
        assert any(
            isinstance(c, CollectionCell) or (c is not None and c[3:] != default(row))
            for c in row.cells
        )
        return
    if got is None:
        assert not decoded.is_live(NOW)
        return
    assert decoded.is_live(NOW)
    expected: list[bytes | None] = []
    for kind, i in columns:
        if kind == "pk":
            expected.append(b"pk")
        elif kind == "ck":
            expected.append(decoded.ck[i])
        else:
            c = decoded.cells[i]
            live = c is not None and c[2] is not None and (c[4] == 0 or c[4] > NOW)
            expected.append(c[2] if live else None)
    assert got == expected


def default(row: Row) -> tuple[int, int, int]:
    if row.marker is not None:
        return row.marker
    first = next((c for c in row.cells if type(c) is tuple), None)
    return (first[3], first[4], first[5]) if first is not None else (0, 0, 0)


@settings(max_examples=200, deadline=None)
@given(rows())
def test_a_row_expires_by_a_time_when_forgetting_its_expired_parts_leaves_nothing(
    drawn: tuple[int, Row],
) -> None:
    codec, row, blob = stored(drawn, b"k")
    rest = codec.decode(blob, len(row.cells))
    rest.forget_expired(NOW)
    assert codec.expires_by(blob, NOW) == rest.is_empty()


def test_token_prefixes_sort_as_signed_tokens() -> None:
    tokens = [-(2**63) + 1, -5, 0, 7, 2**63 - 1]
    prefixes = [token_prefix(t, b"key") for t in tokens]
    assert sorted(prefixes) == prefixes
    assert [token_of_prefix(p) for p in prefixes] == tokens


# ------------------------------------------------------------------------------------------
# Runs.


def row_of(key: bytes) -> bytes:
    """A stored row with ``key`` as its prefix (what a run sorts by)."""
    return RowCodec(0).insert(key, (), (1, 0, 0), (0,), (b"v" + key,))


def key_of(row: bytes) -> bytes:
    return row[: prefix_len(row)]


keys = st.lists(st.binary(min_size=1, max_size=3).map(lambda b: b + b"\x00"), unique=True)
# Keys ending in 0x00 and holding none before it: prefix-free, like clustering ordering keys.
prefix_free = st.lists(
    st.binary(min_size=1, max_size=3).filter(lambda b: b"\x00" not in b).map(lambda b: b + b"\x00"),
    unique=True,
    max_size=3000,
)


@settings(max_examples=60, deadline=None)
@given(prefix_free, st.data())
def test_a_run_keeps_rows_in_key_order_through_adds_removals_and_merges(
    ks: list[bytes], data: Any
) -> None:
    run = Run()
    model: list[bytes] = []
    half = len(ks) // 2
    for k in ks[:half]:
        run.add(row_of(k))
        bisect.insort(model, k)
    rest = sorted(ks[half:])
    run.merge([row_of(k) for k in rest if not model or k > model[-1]])
    model.extend(k for k in rest if not model or k > model[-1])
    model.sort()
    for k in data.draw(st.lists(st.sampled_from(model), unique=True)) if model else []:
        where = run.find(k, key_of)
        assert where is not None
        run.remove(where)
        model.remove(k)
    assert [key_of(r) for r in run] == model
    assert len(run) == len(model)
    assert all(len(chunk) <= 2 * LOAD for chunk in run.chunks)
    assert run.maxes == [chunk[-1] for chunk in run.chunks]
    if len(model) >= 2:
        lo, hi = sorted(data.draw(st.lists(st.sampled_from(model), min_size=2, max_size=2)))
        lo_inc, hi_inc = data.draw(st.booleans()), data.draw(st.booleans())
        want = [
            k
            for k in model
            if (k > lo or (lo_inc and k == lo)) and (k < hi or (hi_inc and k == hi))
        ]
        got = [key_of(r) for r in run.span(lo, lo_inc, hi, hi_inc, key_of)]
        assert got == want
        back = [key_of(r) for r in run.span(lo, lo_inc, hi, hi_inc, key_of, reverse=True)]
        assert back == want[::-1]


def test_a_batch_before_every_row_is_merged_in_front() -> None:
    run = Run()
    run.merge([row_of(b"%05d\x00" % n) for n in range(5000, 6000)])
    run.merge([row_of(b"%05d\x00" % n) for n in range(0, 3000)])
    assert [key_of(r) for r in run] == [b"%05d\x00" % n for n in (*range(3000), *range(5000, 6000))]
    assert all(len(chunk) <= 2 * LOAD for chunk in run.chunks)


@st.composite
def inserted_rows(draw: Any) -> tuple[int, Row]:
    """Rows as one INSERT leaves them: every cell with the marker's timing."""
    marker = draw(timing)
    cells: list[Any] = [
        (OP_SET, slot, draw(st.none() | values), *marker) if draw(st.booleans()) else None
        for slot in range(draw(st.integers(0, 6)))
    ]
    return 1, Row((draw(values),), len(cells), NO_TS, marker, cells)


@settings(max_examples=300, deadline=None)
@given(rows(ncv=1) | inserted_rows(), st.data())
def test_an_insert_said_to_supersede_a_row_is_what_merging_the_two_gives(
    drawn: tuple[int, Row], data: Any
) -> None:
    _ncv, old = drawn
    codec = RowCodec(1)
    stored = codec.encode(b"key", old)
    if stored is None:
        return
    present = {slot for slot, c in enumerate(old.cells) if c is not None}
    extra = data.draw(st.sets(st.integers(0, 8)))
    slots = sorted(extra | present if data.draw(st.booleans()) else extra)
    vals = data.draw(st.lists(st.none() | values, min_size=len(slots), max_size=len(slots)))
    newer = default(old)[0] + data.draw(st.integers(1, 10))
    ts = newer if data.draw(st.booleans()) and newer < 2**63 else data.draw(timestamps)
    marker = (ts, *data.draw(st.sampled_from([(0, 0), (NOW + 5, 5)])))
    new = codec.insert(b"key", old.ck, marker, slots, vals)
    if not codec.superseded(stored, marker[0], slots):
        return
    merged = codec.decode(stored, 9)
    merged.apply(marker, [(OP_SET, s, v, *marker) for s, v in zip(slots, vals, strict=True)])
    assert codec.encode(b"key", merged) == new
