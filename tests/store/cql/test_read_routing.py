"""Grouping partitions by replica for grouped reads, and the routing keys they are sent with."""

from __future__ import annotations

from collections.abc import Hashable

from chat.config import Settings
from chat.domain.messages import datetime_from_ms, message_id_at
from chat.store.cql.read_routing import (
    bigint_key,
    chunks_by_replica,
    event_bucket_key,
    replica_grouping,
    routed,
)
from chat.store.driver.session import CqlStore


def test_one_replica_group_is_plain_chunks_without_a_routing_key() -> None:
    chunks = chunks_by_replica(list(range(250)), bigint_key, None, size=100)
    assert [len(c) for c, _ in chunks] == [100, 100, 50]
    assert all(key is None for _, key in chunks)


def test_partitions_are_chunked_by_their_first_replica_and_routed_to_it() -> None:
    def replica_of(key: bytes) -> Hashable:
        return int.from_bytes(key, "big", signed=True) % 3

    chunks = chunks_by_replica(list(range(20)), bigint_key, replica_of, size=4)
    for members, key in chunks:
        assert len(members) <= 4
        assert {m % 3 for m in members} == {m % 3 for m in members[:1]}
        assert key == bigint_key(members[0])
    assert sorted(m for members, _ in chunks for m in members) == list(range(20))


async def test_routing_keys_are_the_ones_the_driver_computes(
    cql_store: CqlStore, settings: Settings
) -> None:
    ks = settings.cql_keyspace
    by_event_bucket = await cql_store.prepare_read(
        f"SELECT message_id FROM {ks}.chat_messages_by_event"
        " WHERE event_id = ? AND bucket = ? AND created_at = ? AND message_id = ?"
    )
    by_event = await cql_store.prepare_read(
        f"SELECT bucket FROM {ks}.chat_event_buckets WHERE event_id = ?"
    )
    moment = 1_700_000_000_000
    bound = by_event_bucket.bind((-42, 2001, datetime_from_ms(moment), message_id_at(moment)))
    assert bound.routing_key == event_bucket_key(-42, 2001)
    assert by_event.bind((2**40,)).routing_key == bigint_key(2**40)
    # A grouped read carries the routing key it is given; one node needs none.
    grouped = await cql_store.prepare_read(
        f"SELECT bucket FROM {ks}.chat_event_buckets WHERE event_id IN ?"
    )
    assert grouped.bind(([1, 2],)).routing_key is None
    assert routed(grouped, ([1, 2],), bigint_key(1)).routing_key == bigint_key(1)
    assert replica_grouping(cql_store, ks) is None  # the embedded server is one node
