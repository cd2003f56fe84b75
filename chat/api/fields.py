"""Field types shared by request models: every value that passes them is storable.

PostgreSQL refuses NUL characters in text and timestamps outside its range, and asyncpg fails
converting aware datetimes near year 1 or 9999 to UTC; these types turn all of that into a 422
with the field's name instead of a 500 from the driver.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, StringConstraints

MAX_ID = 2**63 - 1

# Years outside this range are a client bug, not an event; it also keeps UTC conversion safe.
MIN_YEAR = 1970
MAX_YEAR = 9000


def no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def bounded_utc(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"must be between {MIN_YEAR} and {MAX_YEAR}") from None
    if not MIN_YEAR <= utc.year <= MAX_YEAR:
        raise ValueError(f"must be between {MIN_YEAR} and {MAX_YEAR}")
    return utc


def rfc3339_text(value: object) -> object:
    """Timestamps arrive as RFC 3339 strings only: a bare number would be read as Unix time,
    which is a different contract from the one documented."""
    if not isinstance(value, str | datetime):
        raise ValueError(
            "must be an RFC 3339 string with an offset, like 2031-05-01T09:00:00+09:00"
        )
    return value


# A positive 64-bit id (a BIGSERIAL key).
Id = Annotated[int, Field(ge=1, le=MAX_ID, strict=True)]

# RFC 3339 with an explicit offset (naive times are rejected), normalised to UTC.
Timestamp = Annotated[AwareDatetime, BeforeValidator(rfc3339_text), AfterValidator(bounded_utc)]


# Required human-readable names and titles: surrounding whitespace dropped, never empty.
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(no_nul),
]
Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(no_nul),
]
ShortText = Annotated[str, StringConstraints(max_length=200), AfterValidator(no_nul)]
LongText = Annotated[str, StringConstraints(max_length=10_000), AfterValidator(no_nul)]
