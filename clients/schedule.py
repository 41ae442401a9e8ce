"""Open-loop send times: when each message of a load point is *due*.

Publishing is open loop (wrk2-style): message i is due at its scheduled time
whether or not earlier ones went out, and latency is measured from that
intended time as well as from the actual send time, so a stalled publisher or
server shows up as latency instead of silently lowering the load
(coordinated omission). The schedule is computed up front, so the hot loop
only compares integers, and is reproducible from ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Schedule", "make_schedule"]


@dataclass(frozen=True, slots=True)
class Schedule:
    #: Nanoseconds from the point's start at which message i is due (non-decreasing).
    offsets_ns: np.ndarray
    #: The first index of the measurement window (earlier ones are warm-up).
    first_measured: int
    warmup_ns: int
    total_ns: int

    def __len__(self) -> int:
        return len(self.offsets_ns)

    @property
    def measured(self) -> int:
        return len(self.offsets_ns) - self.first_measured


def make_schedule(rate: float, warmup_s: float, duration_s: float,
                  arrival: str = "uniform", seed: int = 1) -> Schedule:
    """Send times over warm-up + measurement at ``rate`` messages/s in total.

    ``uniform``: every 1/rate s. ``poisson``: exponential gaps with mean 1/rate
    (seeded), the arrival process of many independent users.
    """
    warmup_ns = round(warmup_s * 1e9)
    total_ns = warmup_ns + round(duration_s * 1e9)
    if rate <= 0:
        offsets = np.zeros(0, dtype=np.int64)
    elif arrival == "uniform":
        count = int(total_ns * rate / 1e9 + 1e-9)
        offsets = (np.arange(count, dtype=np.float64) * (1e9 / rate)).astype(np.int64)
    elif arrival == "poisson":
        rng = np.random.default_rng(seed)
        expected = total_ns * rate / 1e9
        # Draw a few standard deviations more than needed, then cut at the end.
        gaps = rng.exponential(1e9 / rate, size=int(expected + 6 * expected ** 0.5 + 16))
        times = np.cumsum(gaps) - gaps[0]  # the first message is due at once
        offsets = times[times < total_ns].astype(np.int64)
    else:
        raise ValueError(f"arrival: expected uniform or poisson, got {arrival!r}")
    first = int(np.searchsorted(offsets, warmup_ns, side="left"))
    return Schedule(offsets, first, warmup_ns, total_ns)
