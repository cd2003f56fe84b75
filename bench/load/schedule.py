"""Open-loop arrival times: when each message *should* be sent, fixed before the run starts.

Message ``i`` of the whole run is due at ``start + i / rate``; process ``p`` of ``P`` owns the
messages ``i = k * P + p``. Latency is measured from that due time, not from when the send
actually happened: if the gateway (or the generator) stalls, the messages due during the stall
are sent late and every one of them carries the stall in its latency — the coordinated-omission
trap of closed-loop tools that only time what they managed to send.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OpenLoopSchedule:
    """The due times of one generator process's share of an open-loop run."""

    rate: float
    """Messages per second, all processes together."""
    processes: int
    index: int
    start_ns: int
    """``time.monotonic_ns()`` of message 0 (system-wide on Linux, so shared by processes)."""

    def due_ns(self, k: int) -> int:
        """When this process's ``k``-th message is due."""
        return self.start_ns + round((k * self.processes + self.index) * 1e9 / self.rate)

    def count_before(self, end_ns: int) -> int:
        """How many of this process's messages are due before ``end_ns``."""
        if end_ns <= self.start_ns:
            return 0
        global_count = math.ceil((end_ns - self.start_ns) * self.rate / 1e9)
        # Global messages 0..global_count-1 are due before end; ours are index, index+P, ...
        return max(0, math.ceil((global_count - self.index) / self.processes))


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` integers that differ by at most one, larger ones first."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]
