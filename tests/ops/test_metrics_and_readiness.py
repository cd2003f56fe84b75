"""``/metrics`` counts what the gateway and the store did; ``/readyz`` proves the write path.

Each test runs its own app instance (its own metrics registry) on the session's databases, so
the numbers it reads are only its own traffic.
"""

from __future__ import annotations

import re

import httpx

from chat.app import create_app
from chat.config import Settings
from tests.api_client import Api
from tests.gateway.live import client, users_and_event
from tests.servers import run_server


def sample(text: str, name: str, labels: str = "") -> float:
    """The value of one sample in the text exposition (``labels`` as written, e.g. type="ack")."""
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" (\S+)"
    found = re.search(r"^" + pattern + r"$", text, flags=re.MULTILINE)
    assert found is not None, f"{name}{{{labels}}} not in /metrics"
    return float(found.group(1))


async def test_metrics_count_frames_acks_batches_and_live_connections(
    settings: Settings, api: Api
) -> None:
    (ada, bo), event_id = await users_and_event(api, 2)
    async with (
        run_server(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url) as http,
        client(url, api, ada) as a,
        client(url, api, bo) as b,
    ):
        await b.subscribe(event_id)
        for i in range(3):
            await a.send_message(event_id, f"metrics {i}")
        response = await http.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        text = response.text
        assert sample(text, "chat_ws_connections") == 2
        assert sample(text, "chat_ws_subscriptions") == 1
        assert sample(text, "chat_messages_acked_total") == 3
        assert sample(text, "chat_ws_frames_in_total", 'type="send"') == 3
        assert sample(text, "chat_ws_frames_in_total", 'type="subscribe"') == 1
        assert sample(text, "chat_ws_frames_out_total", 'type="ack"') == 3
        assert sample(text, "chat_ws_frames_out_total", 'type="welcome"') == 2
        assert sample(text, "chat_store_write_seconds_count") == 3
        assert sample(text, "chat_store_batch_statements_count") >= 1
        assert sample(text, "chat_ws_mailbox_depth_max") >= 0
        assert sample(text, "chat_store_pending_statements") >= 0
        assert sample(text, "chat_ws_slow_consumer_disconnects_total") == 0
        assert sample(text, "chat_nats_published_total") == 0
        # The subscribe read the newest page (for its cursor) and b's unread count.
        for read in ("history_page", "unread_count"):
            assert sample(text, "chat_store_coalesced_reads", f'count="callers",read="{read}"') == 1
            assert sample(text, "chat_store_coalesced_reads", f'count="reads",read="{read}"') == 1


async def test_readyz_round_trips_a_cql_write_and_reports_each_check(settings: Settings) -> None:
    """The failing side (503 problem+json naming the check) is in the outage tests."""
    async with run_server(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as http:
        for _ in range(3):  # repeated probes reuse the prepared statements and the node's row
            ready = await http.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json() == {"status": "ready", "checks": {"postgres": "ok", "cql": "ok"}}
