"""REST operations: users (sign up, read and update one's own profile)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from chat.api.endpoint import Api, Call
from chat.api.fields import NO_NUL_PATTERN, WHITESPACE_CLASS, Name, NotNull
from chat.api.record_out import RecordOut
from chat.errors import Unauthorized
from chat.store.pg import users as store

api = Api(prefix="")

TAG = "users"

# At least the CHECK constraints in sql/000001 (so a bad value is a 422, not a DB error), with
# control characters and every kind of whitespace spelled out instead of a regex's \s.
_NOT_IN_ADDRESSES = rf"@\x00-\x20\x7f{WHITESPACE_CLASS}"
Phone = Annotated[
    str, StringConstraints(pattern=r"^\+?[0-9]{6,15}$"), Field(examples=["+821012345678"])
]
Email = Annotated[
    str,
    StringConstraints(
        max_length=255, pattern=rf"^[^{_NOT_IN_ADDRESSES}]+@[^{_NOT_IN_ADDRESSES}]+$"
    ),
    Field(examples=["kim@example.com"]),
]
DisplayName = Annotated[str, StringConstraints(max_length=100, pattern=NO_NUL_PATTERN)]
ImageUrl = Annotated[
    str,
    StringConstraints(max_length=2048, pattern=rf"^https?://[^\x00-\x20\x7f{WHITESPACE_CLASS}]+$"),
]
Region = Annotated[str, StringConstraints(max_length=50, pattern=NO_NUL_PATTERN)]
Interest = Annotated[Name, StringConstraints(max_length=50)]
Interests = Annotated[list[Interest], Field(max_length=20)]


class CreateUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: Phone
    email: Email | None = None
    name: Name
    display_name: DisplayName | None = None
    profile_image_url: ImageUrl | None = None
    region: Region | None = None
    interests: Interests = []
    role: Literal["USER"] = Field(
        "USER",
        description="Always USER: an operator makes an account BUSINESS "
        "(`chat user set-role USER_ID BUSINESS`).",
    )

    @field_validator("role", mode="before")
    @classmethod
    def _only_user(cls, value: Any) -> Any:
        if value != "USER":
            raise ValueError(
                "a new account is always USER; business accounts are granted by an operator"
            )
        return value


class UpdateProfile(BaseModel):
    """Only the fields sent change; ``null`` clears email, display_name, profile_image_url or
    region (phone, name and interests may be left out but not cleared)."""

    model_config = ConfigDict(extra="forbid")

    phone: Annotated[Phone | None, NotNull()] = None
    email: Email | None = None
    name: Annotated[Name | None, NotNull()] = None
    display_name: DisplayName | None = None
    profile_image_url: ImageUrl | None = None
    region: Region | None = None
    interests: Annotated[Interests | None, NotNull()] = None


class UserOut(RecordOut):
    id: int
    phone: str
    email: str | None
    name: str
    display_name: str | None
    profile_image_url: str | None
    region: str | None
    interests: list[str]
    role: Literal["USER", "BUSINESS"]
    created_at: datetime
    updated_at: datetime


class SignedUp(BaseModel):
    user: UserOut
    access_token: str | None = Field(
        description="A bearer token for the new user; null when tokens come from an external "
        "identity provider (RS256/ES256 configuration)."
    )


def _gone(user_id: int) -> Unauthorized:
    return Unauthorized(f"the token's user {user_id} does not exist (or was deleted)")


@api.operation(
    "POST",
    "/users",
    summary="Sign up",
    tag=TAG,
    body=CreateUser,
    response=SignedUp,
    status=201,
    errors=(409, 422),
    auth=False,
)
async def create_user(call: Call) -> SignedUp:
    """Create a user and return them with an access token, so a client can act right away.

    Phone verification (SMS codes) is out of scope for this service: the phone number is taken
    as given, and uniqueness is all that is enforced. A duplicate phone or email (emails compare
    case-insensitively) is a 409 naming the field.
    """
    body: CreateUser = call.body
    async with call.state.pg.acquire() as conn:
        user = await store.insert_user(
            conn,
            phone=body.phone,
            email=body.email,
            name=body.name,
            display_name=body.display_name,
            profile_image_url=body.profile_image_url,
            region=body.region,
            interests=body.interests,
        )
    token: str | None
    try:
        token = call.state.tokens.mint(user.id)
    except ValueError:
        token = None
    return SignedUp(user=UserOut.model_validate(user), access_token=token)


@api.operation("GET", "/users/me", summary="My profile", tag=TAG, response=UserOut, errors=(401,))
async def get_me(call: Call) -> UserOut:
    """The caller's own profile (the only one visible: others appear as event participants)."""
    async with call.state.pg.acquire() as conn:
        user = await store.get_user(conn, call.user_id)
    if user is None:
        raise _gone(call.user_id)
    return UserOut.model_validate(user)


@api.operation(
    "PATCH",
    "/users/me",
    summary="Update my profile",
    tag=TAG,
    body=UpdateProfile,
    response=UserOut,
    errors=(401, 409, 422),
)
async def update_me(call: Call) -> UserOut:
    """Change profile fields; a phone or email already used by someone else is a 409.

    The role is not a profile field: an operator grants BUSINESS (``chat user set-role``).
    """
    body: UpdateProfile = call.body
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    async with call.state.pg.acquire() as conn:
        user = await store.update_profile(conn, call.user_id, changes)
    if user is None:
        raise _gone(call.user_id)
    return UserOut.model_validate(user)
