"""Open-loop due times: fixed in advance, interleaved across processes, none skipped."""

from __future__ import annotations

import itertools

import pytest

from bench.load.schedule import OpenLoopSchedule, split_evenly

SECOND = 1_000_000_000


def test_processes_interleave_into_one_evenly_spaced_schedule() -> None:
    schedules = [OpenLoopSchedule(1000.0, 3, i, start_ns=SECOND) for i in range(3)]
    due = sorted(s.due_ns(k) for s in schedules for k in range(s.count_before(2 * SECOND)))
    assert len(due) == 1000
    assert due[0] == SECOND
    gaps = {b - a for a, b in itertools.pairwise(due)}
    assert gaps == {1_000_000}  # exactly 1 ms apart at 1000/s


@pytest.mark.parametrize(("rate", "processes"), [(5000.0, 2), (7.0, 3), (1.0, 4), (333.0, 1)])
def test_count_before_matches_the_due_times(rate: float, processes: int) -> None:
    for index in range(processes):
        schedule = OpenLoopSchedule(rate, processes, index, start_ns=0)
        end = 3 * SECOND
        n = schedule.count_before(end)
        assert all(schedule.due_ns(k) < end for k in range(n))
        assert schedule.due_ns(n) >= end


def test_due_times_do_not_depend_on_when_sends_happen() -> None:
    schedule = OpenLoopSchedule(100.0, 1, 0, start_ns=0)
    # A stall cannot move message 50: it is due at 0.5 s, and its latency counts from there.
    assert schedule.due_ns(50) == SECOND // 2


def test_split_evenly_differs_by_at_most_one() -> None:
    assert split_evenly(10, 3) == [4, 3, 3]
    assert split_evenly(2, 4) == [1, 1, 0, 0]
    assert sum(split_evenly(257, 2)) == 257
