"""Coalesced reads: shared by callers who ask together, never older than a caller's question.

The coalescer's rules are checked with a read function over an in-memory dict (what matters is
when reads start and who gets which answer); the history store's use of it is checked against
the real CQL server, counting its requests.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from chat.domain.messages import encode_cursor
from chat.store.cql.message_history import MessageHistory
from chat.store.cql.messages import MessageStore
from chat.store.cql.read_coalescing import ReadCoalescer
from tests.store.cql.messages import new_event_id, new_user_id, post
from tests.store.cql.server_reads import ServerReads


class Store:
    """Values by key; each read can be held open until the test releases it."""

    def __init__(self) -> None:
        self.values: dict[str, int] = {}
        self.reads: list[list[str]] = []
        self.gate: asyncio.Event | None = None
        self.failure: Exception | None = None

    async def read(self, group: str, keys: list[str]) -> dict[str, int]:
        snapshot = dict(self.values)  # what the store holds when the read starts
        self.reads.append(sorted(keys))
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return {k: snapshot.get(k, 0) for k in keys}


async def test_callers_asking_in_the_same_loop_pass_share_one_read() -> None:
    store = Store()
    store.values = {"a": 1, "b": 2}
    reads: ReadCoalescer[str, str, int] = ReadCoalescer(store.read)
    answers = await asyncio.gather(*(reads.get("g", k) for k in ("a", "b", "a", "a")))
    assert answers == [1, 2, 1, 1]
    assert store.reads == [["a", "b"]]
    assert (reads.reads_sent, reads.callers) == (1, 4)


async def test_a_caller_asking_while_a_read_is_under_way_gets_a_read_made_after_it_asked() -> None:
    store = Store()
    store.values["a"] = 1
    store.gate = asyncio.Event()
    reads: ReadCoalescer[str, str, int] = ReadCoalescer(store.read)
    early = reads.get("g", "a")
    await asyncio.sleep(0)  # the first read goes out
    await asyncio.sleep(0)
    assert len(store.reads) == 1
    store.values["a"] = 2  # written after the first read started
    late = [reads.get("g", "a") for _ in range(3)]
    store.gate.set()
    assert await early == 1
    assert await asyncio.gather(*late) == [2, 2, 2]  # one more read, after they asked
    assert len(store.reads) == 2


async def test_different_groups_are_read_separately_and_at_once() -> None:
    store = Store()
    store.values = {"a": 1}
    store.gate = asyncio.Event()
    reads: ReadCoalescer[str, str, int] = ReadCoalescer(store.read)
    first, second = reads.get("g1", "a"), reads.get("g2", "a")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(store.reads) == 2  # neither waits for the other
    store.gate.set()
    assert list(await asyncio.gather(first, second)) == [1, 1]


async def test_a_cancelled_caller_does_not_cancel_the_read_of_the_others() -> None:
    store = Store()
    store.values = {"a": 7}
    store.gate = asyncio.Event()
    reads: ReadCoalescer[str, str, int] = ReadCoalescer(store.read)
    leaving = asyncio.ensure_future(reads.get("g", "a"))
    staying = reads.get("g", "a")
    await asyncio.sleep(0)
    leaving.cancel()
    store.gate.set()
    assert await staying == 7
    with pytest.raises(asyncio.CancelledError):
        await leaving


async def test_a_failed_read_fails_every_caller_and_the_next_read_is_fresh() -> None:
    store = Store()
    store.failure = ConnectionError("the store is down")
    reads: ReadCoalescer[str, str, int] = ReadCoalescer(store.read)
    results = await asyncio.gather(*(reads.get("g", k) for k in ("a", "b")), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    store.failure = None
    store.values = {"a": 3}
    assert await reads.get("g", "a") == 3


async def test_a_cancelled_read_cancels_its_callers_and_the_next_read_is_fresh() -> None:
    cancelled = True

    async def read(group: str, keys: list[str]) -> dict[str, int]:
        if cancelled:
            raise asyncio.CancelledError
        return {k: 5 for k in keys}

    reads: ReadCoalescer[str, str, int] = ReadCoalescer(read)
    waiting = [reads.get("g", k) for k in ("a", "b")]
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    assert all(future.cancelled() for future in waiting)
    cancelled = False
    assert await reads.get("g", "a") == 5


async def test_a_read_that_returns_no_value_for_a_key_fails_that_caller_only() -> None:
    async def partial(group: str, keys: list[str]) -> dict[str, int]:
        return {k: 1 for k in keys if k != "missing"}

    reads: ReadCoalescer[str, str, int] = ReadCoalescer(partial)
    found, missing = await asyncio.gather(
        reads.get("g", "a"), reads.get("g", "missing"), return_exceptions=True
    )
    assert found == 1
    assert isinstance(missing, LookupError)


def kept_reads(
    store: Store, seconds: float = 10.0, weight: int = 100
) -> ReadCoalescer[str, str, int]:
    """A coalescer that keeps answers; a value weighs what it is."""
    return ReadCoalescer(store.read, keep_seconds=seconds, keep_weight=weight, weigh=lambda v: v)


async def test_a_caller_whose_data_is_unchanged_since_a_read_began_joins_it() -> None:
    store = Store()
    store.values["a"] = 1
    store.gate = asyncio.Event()
    reads = kept_reads(store)
    unchanged = time.monotonic()
    early = reads.get("g", "a")
    await asyncio.sleep(0)  # the read goes out
    await asyncio.sleep(0)
    joining = reads.get("g", "a", unchanged_since=unchanged)
    store.gate.set()
    assert [await early, await joining] == [1, 1]
    assert len(store.reads) == 1


async def test_a_caller_whose_data_changed_after_a_read_began_waits_for_a_new_one() -> None:
    store = Store()
    store.values["a"] = 1
    store.gate = asyncio.Event()
    reads = kept_reads(store)
    early = reads.get("g", "a")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    store.values["a"] = 2
    changed = time.monotonic()
    late = reads.get("g", "a", unchanged_since=changed)
    store.gate.set()
    assert [await early, await late] == [1, 2]
    assert len(store.reads) == 2


async def test_a_caller_asking_again_as_soon_as_it_is_answered_gets_a_new_read() -> None:
    store = Store()
    store.values["a"] = 1
    reads: ReadCoalescer[str, str, int] = ReadCoalescer(store.read)  # nothing kept
    since = time.monotonic()
    assert await reads.get("g", "a") == 1
    # The read is answered but not yet cleared away: too late to join it.
    async with asyncio.timeout(5):
        assert await reads.get("g", "a", unchanged_since=since) == 1
    assert len(store.reads) == 2


async def test_a_kept_answer_serves_callers_unchanged_since_its_read_began_and_nobody_else() -> (
    None
):
    store = Store()
    store.values["a"] = 1
    reads = kept_reads(store)
    before_read = time.monotonic()
    assert await reads.get("g", "a") == 1
    store.values["a"] = 2  # a change the next callers' instants say whether they know of
    assert await reads.get("g", "a", unchanged_since=before_read) == 1  # kept
    assert len(store.reads) == 1
    assert await reads.get("g", "a", unchanged_since=time.monotonic()) == 2  # changed since
    assert await reads.get("g", "a") == 2  # no instant given: a read of its own
    assert len(store.reads) == 3
    assert reads.callers == 4


async def test_kept_answers_expire_and_stay_within_their_weight() -> None:
    store = Store()
    store.values = {"light": 10, "other": 10, "heavy": 101}
    reads = kept_reads(store, seconds=0.05, weight=15)
    since = time.monotonic()
    for group, key in (("g1", "light"), ("g2", "other"), ("g3", "heavy")):
        await reads.get(group, key)
    assert reads.kept_weight == 10  # "light" dropped for "other"; "heavy" never kept
    assert await reads.get("g2", "other", unchanged_since=since) == 10
    assert len(store.reads) == 3
    await asyncio.sleep(0.06)  # past keep_seconds
    assert await reads.get("g2", "other", unchanged_since=since) == 10
    assert len(store.reads) == 4
    await reads.get("g1", "light", unchanged_since=since)
    assert len(store.reads) == 5


async def test_a_resume_storm_on_one_event_costs_one_read_per_page(
    history: MessageHistory, message_store: MessageStore, server_reads: ServerReads
) -> None:
    event_id, sender = new_event_id(), new_user_id()
    sent = [await post(message_store, event_id, sender) for _ in range(120)]
    since = encode_cursor(sent[9])
    await server_reads.start()

    async def resume() -> list[uuid.UUID]:
        page = await history.after(event_id, since, 50)
        seen = [m.message_id for m in page.messages]
        while page.next_cursor is not None:
            page = await history.after(event_id, page.next_cursor, 50)
            seen += [m.message_id for m in page.messages]
        return seen

    replays = await asyncio.gather(*(resume() for _ in range(300)))
    reads = await server_reads.since_start()
    assert all(replay == sent[10:] for replay in replays)
    assert reads["chat_messages_by_event"] == 3  # 110 messages: pages of 50, 50 and 10
    assert history.pages.callers - history.pages.reads_sent >= 897


async def test_each_caller_of_a_shared_page_gets_its_own_list(
    history: MessageHistory, message_store: MessageStore
) -> None:
    event_id = new_event_id()
    await post(message_store, event_id, new_user_id())
    first, second = await asyncio.gather(history.latest(event_id, 10), history.latest(event_id, 10))
    first.messages.clear()
    assert len(second.messages) == 1
