"""Live presence: who is connected and subscribed to an event, with joined and left."""

from __future__ import annotations

from collections.abc import Callable

from tests.api_client import Api
from tests.gateway.live import Frame, client, users_and_event


def presence(**fields: object) -> Callable[[Frame], bool]:
    """A ``presence`` frame whose listed fields have exactly these values."""
    return lambda f: f.get("type") == "presence" and all(f[k] == v for k, v in fields.items())


async def test_first_subscribe_joins_and_a_newcomer_gets_a_snapshot_of_who_is_there(
    base_url: str, api: Api
) -> None:
    (ada, bo, cy), event_id = await users_and_event(api, 3)
    async with client(base_url, api, ada) as a, client(base_url, api, bo) as b:
        await a.subscribe(event_id)
        alone = await a.expect(presence(joined=[ada]))
        assert alone["user_ids"] == [ada]
        await b.subscribe(event_id)
        snapshot = await b.expect(presence(joined=[bo]))
        assert snapshot["user_ids"] == sorted([ada, bo])  # the newcomer sees who was there
        assert snapshot["left"] == []
        told = await a.expect(presence(joined=[bo]))
        assert told["user_ids"] == sorted([ada, bo])
        async with client(base_url, api, cy) as c:
            await c.subscribe(event_id)
            third = await c.expect(presence(joined=[cy]))
            assert third["user_ids"] == sorted([ada, bo, cy])


async def test_a_users_second_connection_neither_joins_again_nor_leaves_while_one_remains(
    base_url: str, api: Api
) -> None:
    (ada, bo), event_id = await users_and_event(api, 2)
    async with client(base_url, api, ada) as a, client(base_url, api, bo) as phone:
        await a.subscribe(event_id)
        await a.expect(presence(joined=[ada]))
        await phone.subscribe(event_id)
        await a.expect(presence(joined=[bo]))
        async with client(base_url, api, bo) as tablet:
            await tablet.subscribe(event_id)
            snapshot = await tablet.expect("presence")
            assert snapshot == {
                "type": "presence",
                "event_id": event_id,
                "user_ids": sorted([ada, bo]),
                "joined": [],
                "left": [],
            }
        # The tablet went away; Bo is still here on the phone: nobody is told anything.
        await a.drain()
        assert a.kept(lambda f: f["type"] == "presence") == []
    # (Bo's phone closed together with Ada's connection; see the next test for `left`.)


async def test_disconnecting_the_users_last_connection_tells_the_others_left(
    base_url: str, api: Api
) -> None:
    (ada, bo), event_id = await users_and_event(api, 2)
    async with client(base_url, api, ada) as a:
        await a.subscribe(event_id)
        async with client(base_url, api, bo) as b:
            await b.subscribe(event_id)
            await a.expect(presence(joined=[bo]))
        left = await a.expect(presence(left=[bo]))
        assert left["user_ids"] == [ada]
        assert left["joined"] == []
