"""The gateway's bounded TTL cache without I/O: expiry by an injected clock, the entry bound."""

from __future__ import annotations

import pytest

from chat.gateway.ttl_cache import FOREVER, TtlCache


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_is_found_until_its_ttl_has_passed() -> None:
    clock = _Clock()
    cache = TtlCache[str, int](2.0, 10, clock=clock)
    cache.put("a", 1)
    clock.now += 1.9
    assert cache.get("a") == 1
    clock.now += 0.1
    assert cache.get("a") is None
    assert "a" not in cache
    assert len(cache) == 0  # an expired entry found is dropped


def test_an_entry_put_forever_outlives_the_ttl_and_a_put_again_restarts_it() -> None:
    clock = _Clock()
    cache = TtlCache[str, str](1.0, 10, clock=clock)
    cache.put("canceled", "CANCELED", ttl=FOREVER)
    cache.put("open", "OPEN")
    clock.now += 0.8
    cache.put("open", "CONFIRMED")
    clock.now += 0.8
    assert cache.get("canceled") == "CANCELED"
    assert cache.get("open") == "CONFIRMED"


def test_a_full_cache_drops_expired_entries_then_the_oldest() -> None:
    clock = _Clock()
    cache = TtlCache[int, bool](5.0, 3, clock=clock)
    for key in (1, 2, 3):
        cache.put(key, True)
        clock.now += 1.0
    cache.put(4, True)
    assert len(cache) == 3
    assert 1 not in cache
    assert all(key in cache for key in (2, 3, 4))
    clock.now += 4.5  # 2 and 3 expired, 4 has not
    cache.put(5, True)
    assert len(cache) == 2
    assert 4 in cache
    assert 5 in cache


def test_pop_and_clear_forget_entries() -> None:
    cache = TtlCache[int, bool](5.0, 3)
    cache.put(1, True)
    cache.put(2, True)
    cache.pop(1)
    cache.pop(9)  # not cached: nothing happens
    assert 1 not in cache
    assert 2 in cache
    cache.clear()
    assert len(cache) == 0


def test_a_cache_must_hold_at_least_one_entry() -> None:
    with pytest.raises(ValueError, match="at least one entry"):
        TtlCache[int, bool](1.0, 0)
