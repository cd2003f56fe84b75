"""The app on an embedded CQL server past its memory budget: ``/metrics`` shows the store's
figures, ``/readyz`` names the reason, a send is answered ``unavailable`` (retryable) and
nothing is acknowledged, the history still reads; dropping data brings the node back."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from cassandra.cluster import Cluster, NoHostAvailable
from cassandra.protocol import OverloadedErrorMessage

from chat.app import create_app
from chat.config import Settings
from chat.embedded.cql.process import EmbeddedCqlServer
from tests.api_client import Api
from tests.gateway.live import client, users_and_event
from tests.ops.test_metrics_and_readiness import sample
from tests.polling import until
from tests.servers import run_server

BUDGET = 512 * 1024


def fill_until_refused(host: str, port: int) -> int:
    """Rows written into a keyspace of the test's own until the server refuses one."""
    cluster = Cluster([host], port=port)
    try:
        session = cluster.connect()
        session.execute(
            "CREATE KEYSPACE filler WITH replication = "
            "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        session.execute("CREATE TABLE filler.t (p int, c int, v text, PRIMARY KEY (p, c))")
        insert = session.prepare("INSERT INTO filler.t (p, c, v) VALUES (?, ?, ?)")
        for c in range(100_000):
            try:
                session.execute(insert, (1, c, "x" * 1000))
            except NoHostAvailable as exc:
                refusals = list(exc.errors.values())
                break
        else:
            raise AssertionError("the server never refused a write")
        assert all(isinstance(e, OverloadedErrorMessage) for e in refusals), refusals
        return c
    finally:
        cluster.shutdown()


def drop_filler(host: str, port: int) -> None:
    cluster = Cluster([host], port=port)
    try:
        cluster.connect().execute("DROP KEYSPACE filler")
    finally:
        cluster.shutdown()


async def test_a_store_over_its_budget_shows_in_metrics_and_readyz_and_sends_are_refused(
    settings: Settings, api: Api
) -> None:
    (ada, _bo), event_id = await users_and_event(api, 2)
    async with EmbeddedCqlServer(memory_budget=str(BUDGET)) as cql:
        app_settings = settings.model_copy(
            update={"cql_contact_points": cql.host, "cql_port": cql.port}
        )
        async with (
            run_server(create_app(app_settings)) as url,
            httpx.AsyncClient(base_url=url) as http,
        ):
            ready = await http.get("/readyz")
            assert ready.json() == {"status": "ready", "checks": {"postgres": "ok", "cql": "ok"}}
            text = (await http.get("/metrics")).text
            assert sample(text, "chat_cql_embedded_memory_budget_bytes") == BUDGET
            assert sample(text, "chat_cql_embedded_over_memory_budget") == 0
            assert sample(text, "chat_cql_embedded_rows") > 0  # the migrations' own rows
            assert sample(text, "chat_cql_embedded_bytes") > 0
            assert sample(text, "chat_cql_embedded_memory_bytes") < BUDGET
            assert sample(text, "chat_cql_embedded_resident_bytes") > 0

            async with client(url, api, ada) as a:
                await a.send_message(event_id, "stored before", client_msg_id="before-budget")

            filled = await asyncio.to_thread(fill_until_refused, cql.host, cql.port)
            assert filled > 100

            async with client(url, api, ada) as a:
                answer = await a.request(
                    type="send", event_id=event_id, client_msg_id="over-budget", text="refused"
                )
                assert answer["type"] == "error", answer
                assert answer["code"] == "unavailable"
                # Reads go on: the history holds what was stored before, nothing refused.
                page = await a.request(type="history", event_id=event_id)
                assert page["type"] == "history", page
                assert [m["text"] for m in page["messages"]] == ["stored before"]

            async def names_the_budget() -> bool:
                response = await http.get("/readyz")
                return response.status_code == 503 and response.json()["checks"] == {
                    "postgres": "ok",
                    "cql": "over_memory_budget",
                }

            await until(names_the_budget, what="/readyz naming the memory budget")
            problem: dict[str, Any] = (await http.get("/readyz")).json()
            assert problem["failing"] == ["cql"]
            assert "Exception" not in str(problem)
            assert "Overloaded" not in str(problem)
            text = (await http.get("/metrics")).text
            assert sample(text, "chat_cql_embedded_over_memory_budget") == 1
            assert sample(text, "chat_cql_embedded_memory_bytes") > BUDGET
            assert sample(text, "chat_cql_embedded_writes_refused_total") >= 2  # fill + send
            assert sample(text, "chat_store_driver_errors_total", 'type="NoHostAvailable"') >= 1

            await asyncio.to_thread(drop_filler, cql.host, cql.port)

            async def ready_again() -> bool:
                return (await http.get("/readyz")).status_code == 200

            await until(ready_again, what="/readyz ready once the data is gone")
            async with client(url, api, ada) as a:
                ack = await a.send_message(event_id, "accepted", client_msg_id="over-budget")
                assert ack["duplicate"] is False  # the refused attempt left nothing behind
            text = (await http.get("/metrics")).text
            assert sample(text, "chat_cql_embedded_over_memory_budget") == 0
