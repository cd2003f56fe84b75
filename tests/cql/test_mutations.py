"""The mutation records' byte format: plain tuples led by their kind, ``marshal``-ed."""

from __future__ import annotations

import marshal
from typing import Any

import pytest

from chat.embedded.cql.cells import OP_COLL_ELEM, OP_SET
from chat.embedded.cql.commitlog import read_frames
from chat.embedded.cql.mutations import (
    InsertRow,
    Mutation,
    PartitionDelete,
    RangeDelete,
    RowDelete,
    RowWrite,
    SchemaUpdate,
    SnapshotPartition,
    SnapshotRows,
    Truncate,
    UnreadableRecord,
    decode,
    encode,
)
from tests.cql.commitlog_fixture import FIXTURE

TID = bytes(range(16))
ELEMENT = (OP_COLL_ELEM, 2, b"k", b"v", 5, 0, 0)

# Each record beside the tuple the commit log holds for it.
RECORDS: list[tuple[Mutation, tuple[Any, ...]]] = [
    (
        InsertRow(TID, (b"p",), (b"c",), (5, 0, 0), (0, 1), (b"a", None), [ELEMENT]),
        ("i", TID, (b"p",), (b"c",), (5, 0, 0), (0, 1), (b"a", None), [ELEMENT]),
    ),
    (
        RowWrite(TID, (b"p",), (), None, [(OP_SET, 0, b"x", 5, 0, 0)]),
        ("w", TID, (b"p",), (), None, [(OP_SET, 0, b"x", 5, 0, 0)]),
    ),
    (RowDelete(TID, (b"p",), (b"c",), 7), ("d", TID, (b"p",), (b"c",), 7)),
    (PartitionDelete(TID, (b"p", b"q"), 7), ("p", TID, (b"p", b"q"), 7)),
    (
        RangeDelete(TID, (b"p",), b"lo", True, None, False, 7),
        ("r", TID, (b"p",), b"lo", True, None, False, 7),
    ),
    (Truncate(TID), ("t", TID)),
    (SchemaUpdate(("drop_table", "ks", "t")), ("s", ("drop_table", "ks", "t"))),
    (SnapshotRows(TID, None, [b"row"]), ("rows", TID, None, [b"row"])),
    (
        SnapshotPartition(TID, (b"p",), 9, [(None, True, b"hi", False, 8)]),
        ("part", TID, (b"p",), 9, [(None, True, b"hi", False, 8)]),
    ),
]


@pytest.mark.parametrize(("record", "logged"), RECORDS, ids=lambda r: type(r).__name__)
def test_each_record_is_logged_as_the_tuple_of_its_kind_and_read_back_typed(
    record: Mutation, logged: tuple[Any, ...]
) -> None:
    payload = encode([record])
    assert marshal.loads(payload) == [logged]
    (decoded,) = decode(payload)
    assert type(decoded) is type(record)
    assert decoded == record


def test_an_insert_lists_its_cells_from_its_slots_values_and_marker() -> None:
    record = RECORDS[0][0]
    assert isinstance(record, InsertRow)
    assert record.cells() == [
        (OP_SET, 0, b"a", 5, 0, 0),
        (OP_SET, 1, None, 5, 0, 0),
        ELEMENT,
    ]


def test_a_record_of_an_unknown_kind_is_refused_by_name() -> None:
    with pytest.raises(UnreadableRecord, match="unknown kind 'x'"):
        decode(marshal.dumps([("x", TID)]))


def test_a_record_of_a_known_kind_with_the_wrong_fields_is_refused() -> None:
    with pytest.raises(UnreadableRecord, match="unknown kind 'd'"):
        decode(marshal.dumps([("d", TID, (b"p",))]))


def test_the_kept_data_directory_holds_every_kind_of_record() -> None:
    kinds = {
        type(record)
        for name in ("snapshot-1.bin", "commitlog-1.log")
        for payload in read_frames(FIXTURE / name)
        for record in decode(payload)
    }
    assert kinds == {type(record) for record, _logged in RECORDS}
