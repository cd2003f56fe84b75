"""PostgreSQL storage of users.

Phone and email are unique among live (not soft-deleted) users, email case-insensitively; the
partial unique indexes in ``sql/000001`` enforce it, and a violation becomes a 409 naming the
field, so two concurrent sign-ups with one phone number cannot both succeed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from chat.errors import Conflict, FieldError, ValidationFailed
from chat.store.pg.pool import Connection, Record, from_record

_USER_COLUMNS = (
    "id, phone, email, name, display_name, profile_image_url, region, interests, role, "
    "is_active, created_at, updated_at"
)

# Profile fields PATCH /users/me may change (also the whitelist for the dynamic UPDATE).
PROFILE_FIELDS = (
    "phone",
    "email",
    "name",
    "display_name",
    "profile_image_url",
    "region",
    "interests",
)

# The CHECK constraint on users.role; a new account is always USER.
ROLES = ("USER", "BUSINESS")

_UNIQUE_FIELD = {"users_phone_key": "phone", "users_email_key": "email"}


@dataclass(frozen=True, slots=True)
class User:
    id: int
    phone: str
    email: str | None
    name: str
    display_name: str | None
    profile_image_url: str | None
    region: str | None
    interests: tuple[str, ...]
    role: str
    is_active: bool
    created_at: datetime
    updated_at: datetime


def _user(row: Record) -> User:
    return from_record(User, row, interests=tuple(row["interests"]))


def _duplicate(exc: asyncpg.UniqueViolationError) -> Conflict:
    field = _UNIQUE_FIELD.get(exc.constraint_name or "", "phone or email")
    return Conflict(f"another user already has this {field}", field=field)


def _rejected(exc: asyncpg.CheckViolationError) -> ValidationFailed:
    """The API validates the same rules first; this catches any difference between pydantic's
    and PostgreSQL's regex dialects (what counts as whitespace, say) as a 422, not a 500."""
    field = (exc.constraint_name or "").removeprefix("users_").removesuffix("_check") or "body"
    return ValidationFailed(
        f"the database refused the {field}",
        errors=[FieldError(f"body/{field}", "not an acceptable value")],
    )


async def get_user(conn: Connection, user_id: int) -> User | None:
    """A live user by id; None when unknown or soft-deleted."""
    row = await conn.fetchrow(
        f"SELECT {_USER_COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL", user_id
    )
    return _user(row) if row else None


async def is_active_user(conn: Connection, user_id: int) -> bool:
    """Whether ``user_id`` is a live, active account: what every authenticated request needs."""
    active: bool | None = await conn.fetchval(
        "SELECT is_active FROM users WHERE id = $1 AND deleted_at IS NULL", user_id
    )
    return bool(active)


async def count_addable(conn: Connection, user_ids: Sequence[int]) -> int:
    """How many of the distinct ``user_ids`` are live, active users (who may join events)."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM users WHERE id = ANY($1::bigint[]) AND deleted_at IS NULL "
        "AND is_active",
        list(set(user_ids)),
    )
    return count


async def set_role(conn: Connection, user_id: int, role: str) -> User | None:
    """The operator's path to a role (``chat user set-role``); None for an unknown user."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    return await _set_account_column(conn, user_id, "role", role)


async def set_active(conn: Connection, user_id: int, active: bool) -> User | None:
    """Deactivate (or reactivate) an account; a deactivated user's tokens are refused."""
    return await _set_account_column(conn, user_id, "is_active", active)


async def _set_account_column(
    conn: Connection, user_id: int, column: Literal["role", "is_active"], value: object
) -> User | None:
    row = await conn.fetchrow(
        f"UPDATE users SET {column} = $2 WHERE id = $1 AND deleted_at IS NULL "
        f"RETURNING {_USER_COLUMNS}",
        user_id,
        value,
    )
    return _user(row) if row else None


async def insert_user(
    conn: Connection,
    *,
    phone: str,
    email: str | None,
    name: str,
    display_name: str | None,
    profile_image_url: str | None,
    region: str | None,
    interests: Sequence[str],
) -> User:
    """Create a USER; 409 naming the field when the phone or email is taken. Only an operator
    makes an account BUSINESS (:func:`set_role`)."""
    try:
        row = await conn.fetchrow(
            f"""
            INSERT INTO users (phone, email, name, display_name, profile_image_url, region,
                               interests)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            RETURNING {_USER_COLUMNS}
            """,
            phone,
            email,
            name,
            display_name,
            profile_image_url,
            region,
            list(interests),
        )
    except asyncpg.UniqueViolationError as exc:
        raise _duplicate(exc) from None
    except asyncpg.CheckViolationError as exc:
        raise _rejected(exc) from None
    assert row is not None
    return _user(row)


async def update_profile(conn: Connection, user_id: int, changes: Mapping[str, Any]) -> User | None:
    """Apply the given profile fields; None when the user does not exist (any more)."""
    unknown = set(changes) - set(PROFILE_FIELDS)
    if unknown:
        raise ValueError(f"not profile fields: {sorted(unknown)}")
    if not changes:
        return await get_user(conn, user_id)
    fields = [f for f in PROFILE_FIELDS if f in changes]
    values = [list(changes[f]) if f == "interests" else changes[f] for f in fields]
    assignments = ", ".join(f"{f} = ${i}" for i, f in enumerate(fields, start=2))
    try:
        row = await conn.fetchrow(
            f"""
            UPDATE users SET {assignments} WHERE id = $1 AND deleted_at IS NULL
            RETURNING {_USER_COLUMNS}
            """,
            user_id,
            *values,
        )
    except asyncpg.UniqueViolationError as exc:
        raise _duplicate(exc) from None
    except asyncpg.CheckViolationError as exc:
        raise _rejected(exc) from None
    return _user(row) if row else None
