"""Helpers shared by the event API tests: times relative to now, and creating events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.api_client import Api


def at(hours: float = 0, *, seconds: float = 0) -> str:
    """An RFC 3339 UTC timestamp ``hours`` + ``seconds`` from now."""
    return (datetime.now(UTC) + timedelta(hours=hours, seconds=seconds)).isoformat()


async def create_event(
    api: Api,
    creator_id: int,
    *,
    participants: Sequence[int] = (),
    start: str | None = None,
    end: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Creates an event as ``creator_id``; starts in a day, lasts an hour unless told."""
    body: dict[str, Any] = {
        "title": "Coffee",
        "start_time": start or at(24),
        "end_time": end or at(25),
        "participant_ids": list(participants),
    }
    body.update(fields)
    response = await api.http.post("/v1/events", json=body, headers=api.auth(creator_id))
    assert response.status_code == 201, response.text
    event: dict[str, Any] = response.json()
    return event


async def set_status(api: Api, user_id: int, event_id: int, status: str) -> Any:
    return await api.http.post(
        f"/v1/events/{event_id}/status", json={"status": status}, headers=api.auth(user_id)
    )


async def confirm(api: Api, user_id: int, event_id: int) -> Any:
    return await api.http.post(f"/v1/events/{event_id}/confirm", headers=api.auth(user_id))


async def get_event(api: Api, user_id: int, event_id: int) -> dict[str, Any]:
    response = await api.http.get(f"/v1/events/{event_id}", headers=api.auth(user_id))
    assert response.status_code == 200, response.text
    event: dict[str, Any] = response.json()
    return event
