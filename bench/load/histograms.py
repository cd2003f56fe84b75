"""HdrHistograms that cross process boundaries: record in microseconds, ship encoded, merge.

Each generator process records into its own histograms (no locks, no shared memory) and sends
them to the parent as HdrHistogram's compressed encoding; the parent decodes and adds them.
Merging histograms is exact — percentiles of the merged histogram are the percentiles of all
samples — which averaging per-process percentiles would not be.
"""

from __future__ import annotations

from collections.abc import Iterable

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 120_000_000
"""Two minutes: anything slower is recorded as this (and is a failure anyway)."""
SIGNIFICANT_DIGITS = 3
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def record_ns(histogram: HdrHistogram, nanoseconds: int) -> None:
    """Record a latency given in nanoseconds, clamped into the histogram's range."""
    histogram.record_value(min(max(nanoseconds // 1000, LOWEST_US), HIGHEST_US))


def encode(histogram: HdrHistogram) -> bytes:
    return bytes(histogram.encode())


def merge(encoded: Iterable[bytes]) -> HdrHistogram:
    """One histogram holding every sample of the encoded ones."""
    total = new_histogram()
    for blob in encoded:
        total.add(HdrHistogram.decode(blob))
    return total


def summary_ms(histogram: HdrHistogram) -> dict[str, float]:
    """count, p50/p90/p99/p99.9, max and mean in milliseconds (count is a plain number)."""
    count = histogram.get_total_count()
    figures: dict[str, float] = {"count": float(count)}
    for p in PERCENTILES:
        value = histogram.get_value_at_percentile(p) if count else 0
        figures[f"p{p:g}"] = value / 1000.0
    figures["max"] = (histogram.get_max_value() if count else 0) / 1000.0
    figures["mean"] = (histogram.get_mean_value() if count else 0.0) / 1000.0
    return figures
