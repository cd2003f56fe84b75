"""The embedded CQL server's garbage-collector policy: collect young cycles, freeze survivors.

Why not just the shared tuning (:func:`chat.gc_tuning.tune_for_server`)? That freezes the
start-up heap once, but everything stored afterwards — partitions and their runs, prepared
plans — stays in the collector's generations. (A stored row is one ``bytes`` object, which
the collector does not track at all; when rows were objects, a ``Row`` and its cells list
each, they were most of what the collector walked.) The store only grows, so
under write load every young collection hands tens of thousands of survivors to the middle
generation, and each middle-generation collection walks all of them again: measured under
``bench/store_write.py`` a 600 ms pause every ~8 s (the one-second throughput dips, ~50 % of a
second's messages), and ~25 % of the server's CPU in the collector over a 30-s replay. A full
collection would walk the whole store and get longer the longer the server runs.

The store's data never needs the cycle collector: rows, cells, partitions and plans are
acyclic containers, freed by reference counting the moment they are overwritten, deleted,
truncated or dropped — frozen or not (a frozen object is only exempt from *cycle detection*;
its memory is released when its last reference goes). So after every collection the survivors
are frozen (``gc.freeze()``): young cycles are still found and freed by the young
collections, but an object that survived one is never examined again, pauses stay bounded by
the young generation's size (~10-20 ms for 50,000 objects) instead of growing with the heap,
and the collector's cost is one look at each surviving object instead of ever more looks.

What this gives up: a reference cycle that is alive during a collection and becomes garbage
later is never collected. None exists on the server's paths: a young collection during
``bench/store_write.py`` finds nothing to collect, prepares and DDL are kept cycle-free
(``bind_metadata.bind_specs``), and ``tests/cql/test_gc_policy.py`` checks through
``system.embedded_stats`` that requests of every kind (EXECUTE, BATCH, QUERY, paged SELECT,
LWT, errors, PREPARE) leave no cyclic garbage behind. The long-lived objects that do form
cycles (a connection and its transport) are unlinked explicitly when they end
(``connection_lost``). Freezing only after a later, middle-generation pass was tried: the
extra look at every survivor cost ~1.4 µs per row, for no cycle ever found.

The counters the policy keeps (pauses, collections, frozen objects) are exposed in
``system.embedded_stats`` as ``gc_*`` so benches and tests can see the collector's share.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from chat.gc_tuning import tune_for_server


class _Counters:
    __slots__ = ("frozen_passes", "pause_max_ns", "pause_total_ns", "started_ns")

    def __init__(self) -> None:
        self.started_ns = 0
        self.pause_total_ns = 0
        self.pause_max_ns = 0
        self.frozen_passes = 0


_counters = _Counters()


def _on_collection(phase: str, info: dict[str, Any]) -> None:
    """gc callback: time every pass; freeze what survived it."""
    if phase == "start":
        _counters.started_ns = time.perf_counter_ns()
        return
    gc.freeze()
    _counters.frozen_passes += 1
    pause = time.perf_counter_ns() - _counters.started_ns
    _counters.pause_total_ns += pause
    if pause > _counters.pause_max_ns:
        _counters.pause_max_ns = pause


def install() -> None:
    """Apply the policy to this process. Call once, after start-up loaded the snapshot/log.

    ``tune_for_server`` first collects and freezes the start-up heap (modules, the replayed
    store) and sets the young threshold; the older generations stay empty from then on.
    """
    tune_for_server()
    if _on_collection not in gc.callbacks:
        gc.callbacks.append(_on_collection)


def stats() -> dict[str, int]:
    """The collector's counters for ``system.embedded_stats`` (all processes, policy or not)."""
    per_generation = gc.get_stats()
    out = {f"gc_collections_gen{i}": s["collections"] for i, s in enumerate(per_generation)}
    out["gc_collected"] = sum(s["collected"] for s in per_generation)
    out["gc_uncollectable"] = sum(s["uncollectable"] for s in per_generation)
    out["gc_frozen_objects"] = gc.get_freeze_count()
    out["gc_freezes"] = _counters.frozen_passes
    out["gc_pause_total_us"] = _counters.pause_total_ns // 1000
    out["gc_pause_max_us"] = _counters.pause_max_ns // 1000
    return out
