"""Token buckets and the bounded bucket table, driven by a number instead of a clock."""

from __future__ import annotations

import pytest

from chat.ratelimit import BucketTable, Quota, TokenBucket


def test_a_full_bucket_allows_a_burst_then_refuses_with_the_wait_until_the_next_token() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=100.0)
    assert [bucket.try_take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.try_take(100.0) == pytest.approx(0.5)
    assert bucket.try_take(100.25) == pytest.approx(0.25)
    assert bucket.try_take(100.5) == 0.0


def test_a_refused_request_takes_nothing_so_early_retries_do_not_push_the_client_back() -> None:
    bucket = TokenBucket(rate=1.0, burst=1, now=0.0)
    assert bucket.try_take(0.0) == 0.0
    for _ in range(100):
        assert bucket.try_take(0.5) == pytest.approx(0.5)
    assert bucket.try_take(1.0) == 0.0


def test_take_answers_whole_milliseconds_as_the_gateway_reports_them() -> None:
    bucket = TokenBucket(rate=10.0, burst=1, now=0.0)
    assert bucket.take(0.0) == 0
    assert bucket.take(0.0) == 100
    assert bucket.take(0.09999) == 1


def test_a_bucket_never_holds_more_than_its_burst_and_a_clock_going_back_refills_nothing() -> None:
    bucket = TokenBucket(rate=1.0, burst=2, now=0.0)
    assert bucket.tokens(1_000_000.0) == 2.0
    assert bucket.try_take(1_000_000.0, cost=2.0) == 0.0
    assert bucket.tokens(10.0) == 0.0


def test_seconds_to_next_token_counts_from_the_fraction_already_refilled() -> None:
    bucket = TokenBucket(rate=0.5, burst=2, now=0.0)
    bucket.try_take(0.0, cost=2.0)
    assert bucket.seconds_to_next_token(0.5) == pytest.approx(1.5)
    assert bucket.seconds_to_next_token(2.0) == pytest.approx(2.0)


@pytest.mark.parametrize(("units", "window"), [(0, 60), (5, 0)])
def test_a_quota_without_units_or_window_is_refused(units: int, window: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Quota(units, window)


def test_table_decisions_report_the_remaining_quota_and_the_retry_wait() -> None:
    table: BucketTable[str] = BucketTable(Quota(units=5, window_seconds=3600), max_keys=10)
    decisions = [table.take("203.0.113.7", 0.0) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0]
    refused = decisions[-1]
    assert refused.retry_after_seconds == pytest.approx(720.0)
    assert refused.reset_seconds == pytest.approx(720.0)
    assert table.take("198.51.100.1", 0.0).allowed, "another key has its own bucket"


def test_the_table_never_holds_more_than_max_keys_however_many_clients_come() -> None:
    table: BucketTable[int] = BucketTable(Quota(units=1, window_seconds=3600), max_keys=1000)
    for key in range(50_000):
        table.take(key, 0.0)
        assert len(table) <= 1000
    assert len(table) == 1000
    assert table.evictions == 49_000


def test_refilled_buckets_are_forgotten_first_and_not_counted_as_evictions() -> None:
    table: BucketTable[str] = BucketTable(Quota(units=2, window_seconds=2), max_keys=3)
    for key in ("a", "b", "c"):
        table.take(key, 0.0)
    table.take("d", 10.0)  # a, b and c have refilled by now
    assert len(table) == 1
    assert table.evictions == 0


def test_an_active_client_keeps_its_spent_bucket_while_idle_ones_make_room() -> None:
    table: BucketTable[str] = BucketTable(Quota(units=1, window_seconds=100), max_keys=2)
    table.take("attacker", 0.0)
    table.take("idle", 0.0)
    table.take("attacker", 1.0)  # refused, but touched: now the most recently used
    table.take("newcomer", 2.0)  # the least recently used (idle) goes
    assert not table.take("attacker", 3.0).allowed
    assert table.evictions == 1
