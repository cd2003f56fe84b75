"""Everything the bench does over the REST API: create its population, read the store back.

Users sign up (``POST /v1/users`` returns an access token), their first member creates each
event with the others as ``participant_ids`` (at most 100 per request; the rest are added one
by one, as an organizer would). After a run the same API reads what the store holds — every
event's messages through ``GET /v1/events/{id}/messages`` and every user's unread counts
through ``GET /v1/me/unread`` — so verification works against a gateway the bench did not
start (``--url``) exactly as against its own.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import httpx

from bench.load.verify import StoredMessage

T = TypeVar("T")

CREATE_LIMIT = 100
"""Most ``participant_ids`` one event creation takes (``CreateEvent``)."""
PAGE = 200
CONCURRENCY = 32


@dataclass(frozen=True, slots=True)
class User:
    id: int
    token: str


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    participants: tuple[User, ...]
    """The creator first; everyone else in the order they were added."""


@dataclass
class Population:
    users: list[User] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


def api_client(base_url: str) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    return httpx.AsyncClient(base_url=base_url, timeout=60.0, limits=limits)


async def bounded(calls: Sequence[Callable[[], Awaitable[T]]], limit: int = CONCURRENCY) -> list[T]:
    """Run the calls at most ``limit`` at a time; results in call order."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    return list(await asyncio.gather(*(one(c) for c in calls)))


def _check(response: httpx.Response, what: str) -> Any:
    if response.is_error:
        raise RuntimeError(f"{what} failed: {response.status_code} {response.text[:300]}")
    return response.json()


async def sign_up(http: httpx.AsyncClient, run_tag: str, n: int) -> User:
    # Phone numbers must be unique in the database; the run tag keeps runs against one
    # long-lived gateway (--url) apart.
    body = {"phone": f"+9{run_tag}{n:07d}", "name": f"bench {run_tag}-{n}"}
    data = _check(await http.post("/v1/users", json=body), "sign-up")
    token = data.get("access_token")
    if not token:
        raise RuntimeError("sign-up returned no access token (tokens from an external IdP?)")
    return User(int(data["user"]["id"]), str(token))


def _auth(user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token}"}


async def create_event(http: httpx.AsyncClient, members: Sequence[User], title: str) -> Event:
    creator, others = members[0], list(members[1:])
    start = datetime.now(UTC) + timedelta(days=1)
    body = {
        "title": title,
        "start_time": start.isoformat(),
        "end_time": (start + timedelta(hours=1)).isoformat(),
        "participant_ids": [u.id for u in others[:CREATE_LIMIT]],
    }
    data = _check(await http.post("/v1/events", json=body, headers=_auth(creator)), "event")
    event_id = int(data["id"])

    async def add(user: User) -> None:
        path = f"/v1/events/{event_id}/participants"
        response = await http.post(path, json={"user_id": user.id}, headers=_auth(creator))
        _check(response, "adding a participant")

    await bounded([partial(add, u) for u in others[CREATE_LIMIT:]])
    return Event(event_id, tuple(members))


async def populate(
    base_url: str, users: int, event_sizes: Sequence[int], run_tag: str | None = None
) -> Population:
    """``users`` fresh users, and one event per entry of ``event_sizes`` over them in turn."""
    tag = run_tag or f"{secrets.randbelow(10**6):06d}"
    async with api_client(base_url) as http:
        made = await bounded([partial(sign_up, http, tag, n) for n in range(users)])
        plans = []
        cursor = 0
        for size in event_sizes:
            plans.append([made[(cursor + i) % users] for i in range(size)])
            cursor += size
        events = await bounded(
            [partial(create_event, http, m, f"bench {tag} #{i}") for i, m in enumerate(plans)]
        )
    return Population(made, events)


async def read_messages(http: httpx.AsyncClient, event: Event) -> list[StoredMessage]:
    """Every message of the event in store order (oldest first), paging newest first."""
    newest_first: list[StoredMessage] = []
    params: dict[str, Any] = {"limit": PAGE}
    reader = event.participants[0]
    while True:
        page = _check(
            await http.get(f"/v1/events/{event.id}/messages", params=params, headers=_auth(reader)),
            f"reading event {event.id}'s messages",
        )
        newest_first.extend(
            StoredMessage(
                event_id=event.id,
                message_id=str(item["message_id"]),
                sender_id=int(item["sender_id"]),
                client_msg_id=str(item["client_msg_id"]),
                text=str(item["text"]),
            )
            for item in page["items"]
        )
        if not page.get("next_cursor"):
            break
        params = {"limit": PAGE, "before": page["next_cursor"]}
    newest_first.reverse()
    return newest_first


async def read_unread(http: httpx.AsyncClient, user: User) -> dict[int, int]:
    """The user's unread count per event (``GET /v1/me/unread``)."""
    data = _check(await http.get("/v1/me/unread", headers=_auth(user)), "reading unread counts")
    return {int(item["event_id"]): int(item["unread"]) for item in data["items"]}


async def read_back(
    base_url: str, events: Sequence[Event]
) -> tuple[dict[int, list[StoredMessage]], dict[tuple[int, int], int]]:
    """What the store holds for these events: messages per event, unread per (user, event)."""
    async with api_client(base_url) as http:
        pages = await bounded([partial(read_messages, http, e) for e in events])
        users = {u.id: u for e in events for u in e.participants}
        counts = await bounded([partial(read_unread, http, u) for u in users.values()])
    messages = {e.id: page for e, page in zip(events, pages, strict=True)}
    wanted = {e.id for e in events}
    unread = {
        (user_id, event_id): count
        for user_id, per_event in zip(users, counts, strict=True)
        for event_id, count in per_event.items()
        if event_id in wanted
    }
    return messages, unread
