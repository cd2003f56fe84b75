"""Histograms merged across processes give the percentiles of all samples together."""

from __future__ import annotations

from bench.load.histograms import HIGHEST_US, encode, merge, new_histogram, record_ns, summary_ms


def test_merging_encoded_histograms_keeps_every_sample() -> None:
    fast, slow = new_histogram(), new_histogram()
    for _ in range(990):
        record_ns(fast, 1_000_000)  # 1 ms
    for _ in range(10):
        record_ns(slow, 100_000_000)  # 100 ms
    merged = merge([encode(fast), encode(slow)])
    assert merged.get_total_count() == 1000
    figures = summary_ms(merged)
    assert abs(figures["p50"] - 1.0) < 0.01
    assert abs(figures["p99"] - 1.0) < 0.01  # the 990th sample
    assert abs(figures["p99.9"] - 100.0) < 0.1
    assert abs(figures["max"] - 100.0) < 0.1


def test_values_outside_the_range_are_clamped_not_lost() -> None:
    histogram = new_histogram()
    record_ns(histogram, -5)
    record_ns(histogram, 10**15)
    assert histogram.get_total_count() == 2
    assert histogram.get_max_value() >= HIGHEST_US * 0.999


def test_an_empty_merge_reports_zeros() -> None:
    figures = summary_ms(merge([]))
    assert figures["count"] == 0
    assert figures["p99"] == 0
