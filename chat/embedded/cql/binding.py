"""Bound values checked against what they bind to, once per execution, as ScyllaDB binds them.

At PREPARE every bind marker gets a :class:`BindCheck` from the type of its receiver (a column,
a collection element, ``[ttl]``...). At EXECUTE each value is validated (bounded work, see
:mod:`marshal`) before any plan reads it, so the plans can trust what they are given:

* a malformed value is answered "Exception while binding column X: marshaling error: ..."
  (InvalidRequest), ScyllaDB's message;
* sets and maps are replaced by their normalised form (sorted, without duplicates);
* an UNSET value is refused where it cannot mean "leave alone" (keys, WHERE restrictions, IF
  conditions: "Invalid unset value for column X"), and otherwise passed on for the write
  paths to skip; values with an unset among them come back as :class:`ValuesWithUnset`.

The common cases stay cheap: fixed-size types are a length test, text an ``isascii`` test, and
a statement whose markers are all of those (and none null or unset) is checked with a few
C-level calls for all its values at once — and the rows of a batch of one statement column by
column, across all rows at once (:func:`bind_rows`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from chat.embedded.cql import ast
from chat.embedded.cql.errors import InvalidRequest
from chat.embedded.cql.marshal import MarshalCheck, MarshalError, check_for
from chat.embedded.cql.results import ColumnSpec
from chat.embedded.cql.values import FIXED_SIZES, UNSET, ValuesWithUnset

# How a value is checked: its length only, text (ASCII fast path), or the type's full check.
FIXED = 0
TEXT = 1
FULL = 2


class BindCheck(NamedTuple):
    position: int
    column: str
    kind: int
    length: int  # the fixed size of a FIXED value
    check: MarshalCheck | None
    unset_ok: bool


def _cql_type(driver: Any) -> ast.CqlType:
    """The CQL type of a driver type class (``ListType(Int32Type)`` -> ``list<int>``)."""
    return ast.CqlType(driver.typename, tuple(_cql_type(s) for s in driver.subtypes))


Picker = Callable[[Sequence[Any]], Sequence[Any]]


def _picker(positions: Sequence[int]) -> Picker:
    """The values at ``positions``, as a sequence (one C-level call)."""
    if len(positions) == 1:
        (only,) = positions
        return lambda values: (values[only],)
    if not positions:
        return lambda values: ()
    return operator.itemgetter(*positions)


class Binding:
    """The checks of a statement's markers, with the fast path worked out once at PREPARE."""

    __slots__ = (
        "checks",
        "count",
        "fixed",
        "fixed_columns",
        "lengths",
        "simple",
        "text_columns",
        "texts",
    )

    def __init__(self, checks: Sequence[BindCheck]) -> None:
        self.checks = tuple(checks)
        self.count = len(self.checks)
        fixed = [c for c in self.checks if c.kind == FIXED]
        texts = [c for c in self.checks if c.kind == TEXT]
        self.simple = len(fixed) + len(texts) == self.count  # the fast path covers them all
        self.fixed = _picker([c.position for c in fixed])
        self.lengths = tuple(c.length for c in fixed)
        self.texts = _picker([c.position for c in texts])
        self.fixed_columns = tuple((c.position, {c.length}) for c in fixed)
        self.text_columns = tuple(c.position for c in texts)


def bind_checks(specs: Sequence[ColumnSpec], unset_ok: frozenset[int]) -> Binding:
    """The checks of a statement's markers, in marker order."""
    out = []
    for index, spec in enumerate(specs):
        t = _cql_type(spec.cql_type)
        check = check_for(t)
        size = FIXED_SIZES.get(t.name)
        if size is not None and t.name != "timeuuid":
            kind = FIXED
        elif t.name in ("text", "varchar"):
            kind = TEXT
        else:
            kind = FULL
        out.append(BindCheck(index, spec.name, kind, size or 0, check, index in unset_ok))
    return Binding(out)


def bind(values: Sequence[bytes | None], binding: Binding) -> Sequence[bytes | None]:
    """``values`` validated (and normalised); see the module docstring."""
    if binding.simple:
        try:
            if (
                tuple(map(len, binding.fixed(values))) == binding.lengths
                and b"".join(binding.texts(values)).isascii()
            ):
                return values
        except TypeError:  # a null or unset value: checked one by one below
            pass
    replaced: list[Any] | None = None
    unset = False
    for position, column, kind, length, check, unset_ok in binding.checks:
        v = values[position]
        if v is None:
            continue
        if v is UNSET:
            if not unset_ok:
                raise InvalidRequest(f"Invalid unset value for column {column}")
            unset = True
            continue
        if kind == FIXED:
            if len(v) == length or not v:
                continue
        elif kind == TEXT and v.isascii():
            continue
        if check is None:
            continue
        try:
            fixed = check(v)
        except MarshalError as exc:
            raise InvalidRequest(
                f"Exception while binding column {column}: marshaling error: {exc}"
            ) from None
        if fixed is not v:
            if replaced is None:
                replaced = list(values)
            replaced[position] = fixed
    if unset:
        return ValuesWithUnset(replaced if replaced is not None else values)
    return replaced if replaced is not None else values


def bind_rows(rows: list[Sequence[bytes | None]], binding: Binding) -> list[Sequence[bytes | None]]:
    """The rows of a batch of one statement (each of ``binding.count`` values), validated.

    :func:`bind` for each row; but when every marker is fixed-size or text, first a check of
    each marker's column across all rows at once, a few C-level calls per column.
    """
    if binding.simple and rows:
        columns = list(zip(*rows, strict=True))
        try:
            if all(
                set(map(len, columns[position])) == length
                for position, length in binding.fixed_columns
            ) and all(b"".join(columns[position]).isascii() for position in binding.text_columns):
                return rows
        except TypeError:  # a null or unset value: checked row by row below
            pass
    return [bind(values, binding) for values in rows]
