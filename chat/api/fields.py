"""Field types shared by request models: every value that passes them is storable, and each
type's JSON Schema says exactly what it accepts.

PostgreSQL refuses NUL characters in text and timestamps outside its range, and asyncpg fails
converting aware datetimes near year 1 or 9999 to UTC; these types turn all of that into a 422
with the field's name instead of a 500 from the driver.

The OpenAPI document is generated from these types, and clients and contract fuzzers generate
requests from it, so validation and schema must agree in both directions: what the schema
allows is accepted, and what it refuses is refused. Hence the explicit character classes
(regex engines disagree about what ``\\s`` and ``\\d`` mean), the RFC 3339 pattern checked by
the same regular expression here, and the rule for numbers (:func:`integral`).
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from chat.domain.numbers import integral

MAX_ID = 2**63 - 1

# Years outside this range are a client bug, not an event; it also keeps UTC conversion safe.
MIN_YEAR = 1970
MAX_YEAR = 9000

# Whitespace as both Python's str.isspace() and ECMA-262 regular expressions see it: blank
# names are refused, and surrounding whitespace is stripped, by exactly this set.
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
WHITESPACE_CLASS = (
    r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
NO_NUL_PATTERN = r"^[^\x00]*$"
NOT_BLANK_PATTERN = rf"^[^\x00]*[^\x00{WHITESPACE_CLASS}][^\x00]*$"

# RFC 3339 date-time (upper- or lower-case T and Z, seconds 00-59, at most nine fraction
# digits) within the accepted years. The JSON Schema also says ``format: date-time``, which
# rules out impossible dates (February 30) as the parser below does.
RFC3339_PATTERN = (
    r"^(19[7-9][0-9]|[2-8][0-9]{3}|9000)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?"
    r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
_RFC3339 = re.compile(RFC3339_PATTERN)

# Opaque paging cursors are unpadded base64url.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"

# A JSON number as it may appear in a query string.
_JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def integral_text(value: object) -> object:
    """A query-string integer: a JSON number with no fractional part (``20``, ``20.0``)."""
    if isinstance(value, str) and _JSON_NUMBER.fullmatch(value):
        number = float(value) if any(c in value for c in ".eE") else int(value)
        return integral(number)
    return value


def no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _stripped(value: str) -> str:
    return value.strip(WHITESPACE)


def _rfc3339(value: object) -> datetime:
    """Timestamps arrive as RFC 3339 strings only: a bare number would be read as Unix time,
    which is a different contract from the one documented."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError(
            "must be an RFC 3339 date-time with an offset, like 2031-05-01T09:00:00+09:00, "
            f"in the years {MIN_YEAR} to {MAX_YEAR}"
        )
    try:
        return datetime.fromisoformat(value.upper())
    except ValueError:
        raise ValueError("is not a date that exists") from None


def bounded_utc(value: datetime) -> datetime:
    """The aware ``value`` (from a cursor this API issued) in UTC, or ValueError when out of
    range; a year either side is allowed, for an offset that crosses the new year."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"must be between {MIN_YEAR} and {MAX_YEAR}") from None
    if not MIN_YEAR - 1 <= utc.year <= MAX_YEAR + 1:
        raise ValueError(f"must be between {MIN_YEAR} and {MAX_YEAR}")
    return utc


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class NotNull:
    """An optional field that may be left out but never sent as ``null`` (a PATCH field whose
    column cannot be cleared). The Python value is None only when the field was not sent."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_before_validator_function(_refuse_null, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return without_null(handler(schema))


def without_null(json_schema: JsonSchemaValue) -> JsonSchemaValue:
    """The JSON Schema with its ``null`` alternative (and a ``null`` default) taken out."""
    rest = {k: v for k, v in json_schema.items() if k != "anyOf"}
    if rest.get("default", ...) is None:
        del rest["default"]
    branches = json_schema.get("anyOf")
    if not isinstance(branches, list):
        return rest
    kept = [b for b in branches if b != {"type": "null"}]
    return {**kept[0], **rest} if len(kept) == 1 else {**rest, "anyOf": kept}


def _refuse_null(value: object) -> object:
    if value is None:
        raise ValueError("may be left out, but not null")
    return value


# A positive 64-bit id (a BIGSERIAL key).
Id = Annotated[int, Field(ge=1, le=MAX_ID, strict=True), BeforeValidator(integral)]


QueryInt = Annotated[int, Field(strict=True), BeforeValidator(integral_text)]

# RFC 3339 with an explicit offset (naive times are rejected), normalised to UTC.
Timestamp = Annotated[
    datetime,
    BeforeValidator(_rfc3339),
    AfterValidator(_to_utc),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": RFC3339_PATTERN}),
]

Cursor = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=CURSOR_PATTERN),
    Field(description="A `next_cursor` value, passed back unchanged."),
]


# Required human-readable names and titles: at least one character that is not whitespace;
# surrounding whitespace is dropped before storing (the length counts as sent).
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100, pattern=NOT_BLANK_PATTERN),
    AfterValidator(_stripped),
]
Title = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=NOT_BLANK_PATTERN),
    AfterValidator(_stripped),
]
ShortText = Annotated[str, StringConstraints(max_length=200, pattern=NO_NUL_PATTERN)]
LongText = Annotated[str, StringConstraints(max_length=10_000, pattern=NO_NUL_PATTERN)]


@dataclass(frozen=True, slots=True)
class DecimalAmount:
    """A money amount (``Annotated[Decimal, DecimalAmount(...)]``): a decimal string
    (``"12000.50"``) or a JSON number, with at most ``places`` decimals, at least 0 (above 0
    when ``positive``), below ``below``.

    The string form is matched by one pattern (no exponents, signs, spaces or underscores,
    which Python's Decimal would otherwise accept); a number is read from its shortest
    decimal representation, so ``0.07`` is 0.07 and not the binary fraction near it.
    """

    positive: bool
    below: int
    places: int
    description: str

    @property
    def pattern(self) -> str:
        digits = len(str(self.below)) - 1
        return rf"^[0-9]{{1,{digits}}}(\.[0-9]{{1,{self.places}}})?$"

    def parse(self, value: object) -> Decimal:
        if isinstance(value, str):
            if not re.fullmatch(self.pattern, value):
                raise ValueError(f"must be a decimal string like 12000.50 (pattern {self.pattern})")
            number = Decimal(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError("must be a finite number")
            number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        else:
            raise ValueError("must be a decimal string or a number")
        if number < 0 or (self.positive and number == 0):
            raise ValueError("must be greater than 0" if self.positive else "must be at least 0")
        if number >= self.below:
            raise ValueError(f"must be less than {self.below}")
        if number != number.quantize(Decimal(1).scaleb(-self.places)):
            raise ValueError(f"must have at most {self.places} decimal places")
        return number

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_before_validator_function(self.parse, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        text: dict[str, Any] = {"type": "string", "pattern": self.pattern}
        if self.positive:
            text["not"] = {"pattern": r"^[0.]+$"}
        number = {
            "type": "number",
            "exclusiveMinimum" if self.positive else "minimum": 0,
            "exclusiveMaximum": self.below,
            "multipleOf": float(Decimal(1).scaleb(-self.places)),
        }
        return {"description": self.description, "oneOf": [text, number]}


UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_UUID = re.compile(UUID_PATTERN)


def _uuid_text(value: object) -> object:
    """Only the hyphenated form JSON Schema's ``format: uuid`` names (not braces, URNs or bare
    hex, which Python's UUID would also read)."""
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise ValueError("must be a UUID like 5f0c1a8e-3b1d-11ef-9a7e-0242ac120002")
    return uuid.UUID(value)


Uuid = Annotated[
    uuid.UUID,
    BeforeValidator(_uuid_text),
    WithJsonSchema({"type": "string", "format": "uuid", "pattern": UUID_PATTERN}),
]
