"""Two gateway processes on one NATS: what one node's clients do reaches the other's."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats as nats_client
import orjson
import pytest

from chat.auth import TokenService
from chat.bus.hub import NODE_SUBJECT
from chat.bus.wire import position_hex
from chat.client import Unsubscribed
from chat.config import Settings
from chat.domain.messages import MessageIdGenerator, NewMessage
from chat.domain.position import Position
from chat.store.cql.messages import MessageStore, SendAttempt, claim_key
from chat.store.driver.session import open_cql
from tests.api_client import Api
from tests.bus.nodes import NatsServer, Node, gateway_node, nats_server
from tests.client.live import chat_client
from tests.gateway.live import Frame, WsClient, client, is_message, users_and_event, ws_url
from tests.polling import until


@pytest.fixture(scope="module")
async def nats() -> AsyncIterator[NatsServer]:
    with nats_server() as server:
        await server.start()
        yield server


@pytest.fixture(scope="module")
async def nodes(
    settings: Settings, nats: NatsServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Node, Node]]:
    log = Path(tmp_path_factory.mktemp("nodes")) / "nodes.log"
    async with (
        gateway_node(settings, nats.url, log) as a,
        gateway_node(settings, nats.url, log) as b,
    ):
        yield a, b


@pytest.fixture(scope="module")
async def node_api(nodes: tuple[Node, Node], tokens: TokenService) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=nodes[0].url, timeout=10) as http:
        yield Api(http, tokens)


def of(kind: str, event_id: int) -> Frame:
    return {"type": kind, "event_id": event_id}


async def test_messages_edits_reactions_typing_and_presence_cross_nodes(
    nodes: tuple[Node, Node], node_api: Api
) -> None:
    a, b = nodes
    (sender, reader), event_id = await users_and_event(node_api, 2)
    async with client(b.url, node_api, reader) as r:
        await r.subscribe(event_id)
        async with client(a.url, node_api, sender) as s:
            await s.subscribe(event_id)
            joined = await r.expect(
                lambda f: f["type"] == "presence" and f.get("joined") == [sender]
            )
            assert joined["user_ids"] == sorted([sender, reader])
            acks = [await s.send_message(event_id, f"m{i}") for i in range(20)]
            got = await r.collect(is_message(event_id), 20)
            assert [f["message"]["message_id"] for f in got] == [x["message_id"] for x in acks]
            assert [f["message"]["text"] for f in got] == [f"m{i}" for i in range(20)]

            first = acks[0]["message_id"]
            assert (await s.request(type="edit", event_id=event_id, message_id=first, text="e"))[
                "type"
            ] == "ok"
            updated = await r.expect("message_updated")
            assert updated["message"]["text"] == "e"
            reacted = await s.request(type="react", event_id=event_id, message_id=first, emoji="👍")
            assert reacted["type"] == "ok", reacted
            reaction = await r.expect("reaction")
            assert reaction["counts"] == {"👍": 1}
            assert reaction["user_id"] == sender
            await s.request(type="typing", event_id=event_id, state="start")
            typing = await r.expect(lambda f: f["type"] == "typing" and f["user_ids"] == [sender])
            assert typing["event_id"] == event_id
        left = await r.expect(lambda f: f["type"] == "presence" and f.get("left") == [sender])
        assert left["user_ids"] == [reader]


async def test_read_reaches_the_users_connection_on_the_other_node(
    nodes: tuple[Node, Node], node_api: Api
) -> None:
    a, b = nodes
    (owner, other), event_id = await users_and_event(node_api, 2)
    async with client(a.url, node_api, other) as s, client(b.url, node_api, owner) as phone:
        ack = await s.send_message(event_id, "hi")
        async with client(a.url, node_api, owner) as laptop:
            answer = await laptop.request(
                type="read", event_id=event_id, message_id=ack["message_id"]
            )
            assert answer["count"] == 0
            pushed = await phone.expect(lambda f: f["type"] == "unread" and "ref" not in f)
            assert pushed == {"type": "unread", "event_id": event_id, "count": 0}


async def test_removal_on_one_node_ends_the_subscription_on_the_other(
    nodes: tuple[Node, Node], node_api: Api
) -> None:
    _a, b = nodes
    (creator, member), event_id = await users_and_event(node_api, 2)
    async with client(b.url, node_api, member) as m:
        await m.subscribe(event_id)
        response = await node_api.http.delete(
            f"/v1/events/{event_id}/participants/{member}", headers=node_api.auth(creator)
        )
        assert response.status_code in (200, 204), response.text
        ended = await m.expect("unsubscribed")
        assert ended == {"type": "unsubscribed", "event_id": event_id, "reason": "removed"}


async def test_concurrent_senders_on_both_nodes_reach_everyone_once(
    nodes: tuple[Node, Node], node_api: Api
) -> None:
    a, b = nodes
    (u1, u2, u3), event_id = await users_and_event(node_api, 3)
    async with (
        client(a.url, node_api, u1) as s1,
        client(b.url, node_api, u2) as s2,
        client(b.url, node_api, u3) as r,
    ):
        await r.subscribe(event_id)
        await s1.subscribe(event_id)
        await s2.subscribe(event_id)

        async def burst(c: WsClient, prefix: str) -> list[Frame]:
            return [await c.send_message(event_id, f"{prefix}{i}") for i in range(10)]

        first, second = await asyncio.gather(burst(s1, "a"), burst(s2, "b"))
        acks = first + second
        got = await r.collect(is_message(event_id), 20)
        ids = [f["message"]["message_id"] for f in got]
        assert sorted(ids) == sorted(x["message_id"] for x in acks)
        # One node's messages keep the store order (a sender's acks' order) among themselves.
        for prefix, sent in (("a", first), ("b", second)):
            mine = [f["message"]["message_id"] for f in got if f["message"]["text"][0] == prefix]
            assert mine == [x["message_id"] for x in sent]


async def test_a_resume_after_a_message_from_the_other_node_arrived_reads_the_store_afresh(
    nodes: tuple[Node, Node], node_api: Api
) -> None:
    """Resumes on one node may share a page read while the event is unchanged; a message that
    arrived over the bus since makes the next resume read again (it is not live for it)."""
    a, b = nodes
    (sender, watcher, first, second), event_id = await users_and_event(node_api, 4)
    async with client(a.url, node_api, sender) as s, client(b.url, node_api, watcher) as w:
        await w.subscribe_when_ready(event_id)  # node b listens to the event from here on
        sent = [await s.send_message(event_id, f"m{i}") for i in range(3)]
        await w.collect(is_message(event_id), 3)
        since = sent[0]["cursor"]

        async def resume(user: int) -> list[str]:
            async with client(b.url, node_api, user) as r:
                await r.subscribe(event_id, since=since)
                return [f["message"]["message_id"] for f in r.kept(is_message(event_id))]

        assert await resume(first) == [m["message_id"] for m in sent[1:]]
        newer = await s.send_message(event_id, "m3")
        await w.collect(is_message(event_id), 1)  # on node b before the next resume asks
        assert await resume(second) == [m["message_id"] for m in (*sent[1:], newer)]


async def test_nats_restart_tells_subscribers_to_resume_refuses_sends_and_loses_nothing(
    nats: NatsServer, nodes: tuple[Node, Node], node_api: Api
) -> None:
    a, b = nodes
    (sender, reader), event_id = await users_and_event(node_api, 2)
    # The reader is the reference client: it resubscribes with `since` on `resync`, and
    # retries after a back-off while the node answers `unavailable` (still reconnecting).
    async with (
        client(a.url, node_api, sender) as s,
        chat_client(ws_url(b.url), node_api, reader) as (r, seen),
    ):
        await r.subscribe(event_id)
        await s.send_message(event_id, "before")
        assert await seen.wait_messages(event_id, 1) == ["before"]
        nats.stop()
        await seen.wait(lambda events: any(isinstance(e, Unsubscribed) for e in events))
        assert [e.reason for e in seen.seen if isinstance(e, Unsubscribed)] == ["resync"]
        during: dict[str, Any] = {
            "type": "send",
            "event_id": event_id,
            "client_msg_id": "during",
            "text": "d",
        }
        refused = await s.request(**during)  # cut off from the other node: must not write
        assert (refused["type"], refused["code"]) == ("error", "unavailable"), refused
        await nats.start()
        acked = await s.request_when_ready("ack", **during)
        assert not acked["duplicate"]
        assert await seen.wait_messages(event_id, 2) == ["before", "d"]  # replayed
        await s.send_message(event_id, "after")
        assert await seen.wait_messages(event_id, 3) == ["before", "d", "after"]


async def test_sigkill_during_a_send_burst_loses_no_ack_and_presence_heals(
    settings: Settings,
    nats: NatsServer,
    nodes: tuple[Node, Node],
    node_api: Api,
    tmp_path: Path,
) -> None:
    a, b = nodes
    (sender, reader), event_id = await users_and_event(node_api, 2)
    async with (
        gateway_node(settings, nats.url, tmp_path / "victim.log") as victim,
        client(b.url, node_api, reader) as r,
    ):
        await r.subscribe(event_id)
        acked: dict[str, str] = {}
        cmids = [f"kill-{i}" for i in range(200)]
        with contextlib.suppress(Exception):
            async with client(victim.url, node_api, sender) as s:
                await s.subscribe(event_id)
                await r.expect(lambda f: f["type"] == "presence" and f["joined"] == [sender])
                for i, cmid in enumerate(cmids):
                    await s.send(
                        id=cmid, type="send", event_id=event_id, client_msg_id=cmid, text="k"
                    )
                    if i == 50:
                        victim.kill()
                    with contextlib.suppress(TimeoutError):
                        while True:
                            f = await s.expect(lambda f: f["type"] == "ack", wait=0.01)
                            acked[f["client_msg_id"]] = f["message_id"]
        assert acked, "no send was acked before the kill"
        # Presence of the killed node's user heals within the TTL.
        left = await r.expect(lambda f: f["type"] == "presence" and f["left"] == [sender])
        assert sender not in left["user_ids"]
        # Every acked message is stored; a retry on another node gets the original ack.
        async with client(a.url, node_api, sender) as s2:
            for cmid in cmids[:60]:
                ack = await s2.send_message(event_id, "k", client_msg_id=cmid)
                if cmid in acked:
                    assert ack["duplicate"]
                    assert ack["message_id"] == acked[cmid]
            page = await s2.request(type="history", event_id=event_id, limit=100)
            ids = [m["client_msg_id"] for m in page["messages"]]
            assert len(ids) == len(set(ids)), "a message was stored twice"
            assert set(acked) <= set(ids)


def nats_sample(text: str, name: str) -> float:
    """One unlabelled sample of a node's ``/metrics`` text (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_metrics_on_both_nodes_count_bus_publishes_deliveries_and_lag(
    nodes: tuple[Node, Node], node_api: Api
) -> None:
    a, b = nodes
    (ua, ub), event_id = await users_and_event(node_api, 2)
    async with client(a.url, node_api, ua) as ca, client(b.url, node_api, ub) as cb:
        await ca.subscribe(event_id)
        await cb.subscribe(event_id)
        from_a = await ca.send_message(event_id, "a to b")
        assert (await cb.expect(is_message(event_id)))["message"]["message_id"] == from_a[
            "message_id"
        ]
        from_b = await cb.send_message(event_id, "b to a")
        got = await ca.expect(
            lambda f: is_message(event_id)(f) and f["message"]["text"] != "a to b"
        )
        assert got["message"]["message_id"] == from_b["message_id"]
    async with httpx.AsyncClient(timeout=10) as http:
        for node in (a, b):
            text = (await http.get(node.url + "/metrics")).text
            assert nats_sample(text, "chat_nats_published_total") > 0
            assert nats_sample(text, "chat_nats_delivered_total") > 0
            assert nats_sample(text, "chat_nats_delivery_lag_seconds_count") > 0
            assert nats_sample(text, "chat_nats_publish_errors_total") == 0


async def readyz_until(http: httpx.AsyncClient, url: str, status: int) -> httpx.Response:
    """The first answer of ``/readyz`` with ``status``."""

    async def answered() -> httpx.Response | None:
        response = await http.get(url + "/readyz")
        return response if response.status_code == status else None

    found: httpx.Response = await until(
        answered, within=25.0, interval=0.1, what=f"/readyz answering {status}"
    )
    return found


async def test_readyz_proves_the_bus_and_fails_naming_it_while_nats_is_down(
    nats: NatsServer, nodes: tuple[Node, Node]
) -> None:
    a, _b = nodes
    async with httpx.AsyncClient(timeout=10) as http, asyncio.timeout(30):
        ready = await readyz_until(http, a.url, 200)
        assert ready.json()["checks"] == {"postgres": "ok", "cql": "ok", "bus": "ok"}
        nats.stop()
        try:
            down = await readyz_until(http, a.url, 503)
            body = down.json()
            assert body["failing"] == ["bus"], body
            assert body["checks"]["postgres"] == "ok"
        finally:
            await nats.start()
        recovered = await readyz_until(http, a.url, 200)
        assert recovered.json()["checks"]["bus"] == "ok"


async def test_a_clean_shutdown_is_not_reported_as_losing_nats(
    settings: Settings, nats: NatsServer, tmp_path: Path
) -> None:
    """Draining its own NATS connection on SIGTERM is not a bus loss: no warning, no resync."""
    log = tmp_path / "quiet.log"
    async with (
        gateway_node(settings, nats.url, log) as node,
        httpx.AsyncClient(timeout=10) as http,
        asyncio.timeout(30),
    ):
        await readyz_until(http, node.url, 200)
    assert node.process.returncode == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "lost NATS" not in text, text[-3000:]
    assert "Traceback" not in text, text[-3000:]


async def test_a_removal_lost_while_nats_was_down_takes_effect_once_it_is_back(
    nats: NatsServer, nodes: tuple[Node, Node], node_api: Api
) -> None:
    """The removal's news never reaches the other node (the bus is down when REST commits
    it); that node must not trust its cached membership afterwards."""
    _a, b = nodes
    (creator, member), event_id = await users_and_event(node_api, 2)
    async with client(b.url, node_api, member) as m:
        await m.subscribe_when_ready(event_id)  # b caches: member takes part
        await m.send_message(event_id, "cached")
        nats.stop()
        await m.expect("unsubscribed")
        removed = await node_api.http.delete(
            f"/v1/events/{event_id}/participants/{member}", headers=node_api.auth(creator)
        )
        assert removed.status_code == 204, removed.text
        await nats.start()
        answer = await m.request_when_ready("error", type="subscribe", event_id=event_id)
        assert answer["code"] == "not_found", answer
        sent = await m.request(type="send", event_id=event_id, client_msg_id="x", text="x")
        assert sent["code"] == "not_found", sent


async def as_a_node(nats: NatsServer, *bodies: dict[str, Any]) -> None:
    """Publish ``chat.node`` messages as a node would (the bus carries them to every node)."""
    nc = await nats_client.connect(nats.url)
    try:
        for body in bodies:
            await nc.publish(NODE_SUBJECT, orjson.dumps(body))
        await nc.flush()
    finally:
        await nc.close()


async def test_a_gap_in_another_nodes_frames_rechecks_live_subscriptions(
    settings: Settings, nodes: tuple[Node, Node], node_api: Api, nats: NatsServer
) -> None:
    """A removal whose news was lost without any outage (here: made in the database behind
    the service's back, and a node's frames with a gap): the gap makes every node re-check
    its live subscriptions, and the removed user's subscription ends."""
    _a, b = nodes
    (_creator, member), event_id = await users_and_event(node_api, 2)
    async with client(b.url, node_api, member) as m:
        await m.subscribe_when_ready(event_id)
        conn = await asyncpg.connect(settings.pg_dsn)
        try:
            await conn.execute(
                "DELETE FROM event_participants WHERE event_id = $1 AND user_id = $2",
                event_id,
                member,
            )
        finally:
            await conn.close()
        far = position_hex(Position.after_ticks(MessageIdGenerator().floor_ticks() + 10**12))
        ghost = {"k": "q", "n": f"ghost-{secrets.token_hex(4)}", "c": 0.0, "fl": far, "lo": far}
        await as_a_node(nats, {**ghost, "s": 1}, {**ghost, "s": 3})  # frame 2 was "lost"
        ended = await m.expect("unsubscribed")
        assert ended == {"type": "unsubscribed", "event_id": event_id, "reason": "removed"}


async def test_a_cancellation_on_one_node_makes_the_event_read_only_on_the_other(
    nodes: tuple[Node, Node], node_api: Api
) -> None:
    _a, b = nodes
    (creator, member), event_id = await users_and_event(node_api, 2)
    async with client(b.url, node_api, member) as m:
        await m.subscribe_when_ready(event_id)
        await m.send_message(event_id, "before")  # b caches the event's status
        canceled = await node_api.http.post(  # node_api speaks to node a
            f"/v1/events/{event_id}/status",
            json={"status": "CANCELED"},
            headers=node_api.auth(creator),
        )
        assert canceled.status_code == 200, canceled.text

        async def refused() -> Frame | None:
            answer = await m.request(
                type="send",
                event_id=event_id,
                client_msg_id=f"after-{secrets.token_hex(3)}",
                text="x",
            )
            return answer if answer.get("code") == "conflict" else None

        answer = await until(refused, within=10, what="the other node to refuse writes")
        assert "CANCELED" in answer["message"]


async def test_messages_a_node_stored_and_never_published_reach_every_subscriber_once_in_order(
    settings: Settings, nats: NatsServer, nodes: tuple[Node, Node], node_api: Api
) -> None:
    """A node (played here by the test on the bus and the store) stores two messages and dies
    before publishing either: one whose opening it announced, one it never spoke of. Both
    reach the subscribers on both live nodes from the store, once each, in store order
    ahead of a later live message."""
    a, b = nodes
    (sender, on_a_user, on_b_user, ghost_user), event_id = await users_and_event(node_api, 4)
    ids = MessageIdGenerator()
    ghost = f"ghost-{secrets.token_hex(4)}"
    floor = position_hex(Position.after_ticks(ids.floor_ticks()))
    heard = {"n": ghost, "c": 0.0, "fl": floor, "lo": floor}
    async with (
        client(a.url, node_api, on_a_user) as on_a,
        client(b.url, node_api, on_b_user) as on_b,
        client(a.url, node_api, sender) as s,
        open_cql(settings) as cql,
    ):
        for reader in (on_a, on_b):
            await reader.subscribe_when_ready(event_id)
        beat = {"k": "beat", "s": 1, "b": 1, "i": 0, "m": 1, "ttl": 1.5}
        await as_a_node(nats, {**heard, **beat, "events": {str(event_id): [ghost_user]}})
        for reader in (on_a, on_b):  # both nodes now know the ghost and its floor
            await reader.expect(lambda f: f["type"] == "presence" and ghost_user in f["joined"])
        announced, unannounced = ids.next(), ids.next()
        key = claim_key(ghost_user, "announced")
        opened = [[event_id, position_hex(Position.of(announced)), key]]
        await as_a_node(nats, {**heard, "k": "q", "s": 2, "o": opened})
        store = MessageStore(cql, settings)
        await store.start()
        try:
            for message_id, text in ((announced, "announced"), (unannounced, "unannounced")):
                new = NewMessage(event_id, ghost_user, text, text)
                await store.send(new, SendAttempt(message_id))
        finally:
            await store.close()
        live = await s.send_message(event_id, "live")  # held behind the ghost's floor
        expected = [str(announced), str(unannounced), live["message_id"]]
        for reader in (on_a, on_b):  # the ghost falls silent: taken for dead after the TTL
            got = await reader.collect(is_message(event_id), 3)
            assert [f["message"]["message_id"] for f in got] == expected
        for reader in (on_a, on_b):
            await reader.drain()
            assert not reader.kept(is_message(event_id)), "a message arrived twice"
