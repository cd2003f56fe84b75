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

The common cases stay cheap: fixed-size types are a length test, text an ``isascii`` test.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def bind_checks(specs: Sequence[ColumnSpec], unset_ok: frozenset[int]) -> tuple[BindCheck, ...]:
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
    return tuple(out)


def bind(values: Sequence[bytes | None], checks: Sequence[BindCheck]) -> Sequence[bytes | None]:
    """``values`` validated (and normalised); see the module docstring."""
    replaced: list[Any] | None = None
    unset = False
    for position, column, kind, length, check, unset_ok in checks:
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
