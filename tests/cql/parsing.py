"""Helpers shared by the parser tests: markers, constants, and typed parse results."""

from __future__ import annotations

from typing import TypeVar

import pytest

from chat.embedded.cql.ast import (
    BindMarker,
    Constant,
    CreateTable,
    Delete,
    Insert,
    Select,
    Update,
)
from chat.embedded.cql.errors import CqlSyntaxError
from chat.embedded.cql.parser import parse

_S = TypeVar("_S")


def q(index: int, name: str | None = None) -> BindMarker:
    return BindMarker(index, name)


def const(kind: str, text: str) -> Constant:
    return Constant(kind, text)


def parse_as(kind: type[_S], text: str) -> _S:
    """Parse ``text`` and check it is a ``kind`` statement."""
    statement = parse(text)
    assert isinstance(statement, kind), f"{text!r} parsed as {type(statement).__name__}"
    return statement


def parse_select(text: str) -> Select:
    return parse_as(Select, text)


def parse_insert(text: str) -> Insert:
    return parse_as(Insert, text)


def parse_update(text: str) -> Update:
    return parse_as(Update, text)


def parse_delete(text: str) -> Delete:
    return parse_as(Delete, text)


def parse_table(text: str) -> CreateTable:
    return parse_as(CreateTable, text)


def error_of(text: str) -> str:
    """The message of the syntax error ``text`` raises."""
    with pytest.raises(CqlSyntaxError) as caught:
        parse(text)
    return caught.value.message
