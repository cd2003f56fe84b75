"""Sends whose store write failed after the rows were sent: the outcome is unknown to the
gateway, so the message may or may not be stored. Either way, every live subscriber must end
up with it exactly once when it is stored, and never see it when it is not, and the client's
retry (same ``client_msg_id``) must be answered accordingly.

The fault is injected in the store's own write of the message rows (the rows really go to the
CQL server through the driver, or really do not), as a driver timeout would leave it.
"""

from __future__ import annotations

from typing import Any

import pytest
from cassandra import OperationTimedOut

from chat.store.cql.messages import MessageStore
from tests.api_client import Api
from tests.gateway.live import client, is_message, users_and_event

FAILING = "unknown-outcome-"


@pytest.fixture
def rows_time_out(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """Make the rows write of sends whose client_msg_id starts with FAILING fail once with a
    driver timeout: after the rows landed (``landed``) or without writing them."""
    behaviour = {"landed": True}
    failed: set[str] = set()
    real = MessageStore._write_rows

    async def flaky(self: MessageStore, writer: Any, msg: Any, *args: Any) -> None:
        if not msg.client_msg_id.startswith(FAILING) or msg.client_msg_id in failed:
            await real(self, writer, msg, *args)
            return
        failed.add(msg.client_msg_id)
        if behaviour["landed"]:
            await real(self, writer, msg, *args)
        raise OperationTimedOut("injected: the rows write timed out")

    monkeypatch.setattr(MessageStore, "_write_rows", flaky)
    return behaviour


async def test_a_send_that_timed_out_after_its_rows_landed_reaches_subscribers_once(
    base_url: str, api: Api, rows_time_out: dict[str, bool]
) -> None:
    (sender, reader), event_id = await users_and_event(api, 2)
    async with client(base_url, api, sender) as s, client(base_url, api, reader) as r:
        await r.subscribe(event_id)
        frame = {"type": "send", "event_id": event_id, "client_msg_id": FAILING + "1"}
        failed = await s.request(**frame, text="did it land?")
        assert (failed["type"], failed["code"]) == ("error", "unavailable"), failed
        got = await r.expect(is_message(event_id))  # settled from the store: it is there
        retried = await s.request(**frame, text="did it land?")
        assert retried["type"] == "ack", retried
        assert retried["duplicate"] is True
        assert retried["message_id"] == got["message"]["message_id"]
        after = await s.send_message(event_id, "next")
        nxt = await r.expect(is_message(event_id))
        assert nxt["message"]["message_id"] == after["message_id"]
        await r.drain()
        assert not r.kept(is_message(event_id)), "a message arrived twice"


async def test_a_send_that_timed_out_before_its_rows_landed_is_fenced_and_retried_anew(
    base_url: str, api: Api, rows_time_out: dict[str, bool]
) -> None:
    rows_time_out["landed"] = False
    (sender, reader), event_id = await users_and_event(api, 2)
    async with client(base_url, api, sender) as s, client(base_url, api, reader) as r:
        await r.subscribe(event_id)
        frame = {"type": "send", "event_id": event_id, "client_msg_id": FAILING + "2"}
        failed = await s.request(**frame, text="lost?")
        assert failed["code"] == "unavailable", failed
        retried = await s.request(**frame, text="lost?")
        assert (retried["type"], retried["duplicate"]) == ("ack", False), retried
        got = await r.expect(is_message(event_id))
        assert got["message"]["message_id"] == retried["message_id"]
        await r.drain()
        assert not r.kept(is_message(event_id)), "a message arrived twice"
        page = await s.request(type="history", event_id=event_id, limit=10)
        assert [m["message_id"] for m in page["messages"]] == [retried["message_id"]]
