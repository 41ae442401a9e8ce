"""The broker's figures over one measured window: two scrapes of every worker, subtracted.

Why a module of its own: each worker's ``/metrics`` holds counters since that
worker started (servers/broker_metrics.py), so a point's figures are the
difference of a scrape at the start of the measurement and one at its end,
worker by worker, summed over workers (:mod:`.scrape` reads them). Workers
can come and go in between (a killed worker is restarted by its parent with a
new pid), and that must show, not silently shrink the figures:

- a worker answering both scrapes contributes its difference;
- a worker that answered only the second scrape started inside the window
  (a restart): everything it counted is inside the window, so it contributes
  all of it; it is counted in ``restarted``;
- a worker that answered only the first scrape died inside the window: what it
  observed after the first scrape died with it; it is counted in ``gone``.

The one-process server (``--broker none``) has no broker series: every figure
is then None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from .scrape import Histogram, WorkerMetrics

__all__ = ["BrokerWindow", "window"]


@dataclass(frozen=True)
class BrokerWindow:
    """What the workers' broker series counted between two scrapes (sums over workers)."""

    #: Redis accepting a publish -> a worker's read of it (seconds), per message read.
    transit: Histogram | None
    #: A worker's publish script round trip (seconds), per publish it made.
    publish: Histogram | None
    #: Messages the workers read back from Redis (a message counts once per worker reading it).
    messages_read: float
    #: Workers that answered each scrape.
    workers_before: int
    workers_after: int
    #: Pids of workers that answered only the second scrape (started inside the window).
    restarted: tuple[int, ...] = ()
    #: Pids of workers that answered only the first scrape (ended inside the window).
    gone: tuple[int, ...] = ()

    def quantile_ms(self, which: str, q: float) -> float:
        """``which`` ("transit" or "publish") histogram's q-quantile in ms (NaN without data)."""
        histogram = getattr(self, which)
        if histogram is None or not histogram.count:
            return math.nan
        return histogram.quantile(q) * 1000.0

    def mean_ms(self, which: str) -> float:
        histogram = getattr(self, which)
        if histogram is None or not histogram.count:
            return math.nan
        return histogram.mean * 1000.0


def _histogram(metrics: WorkerMetrics, name: str) -> Histogram | None:
    try:
        return metrics.histogram(name)
    except KeyError:
        return None


def _counter(metrics: WorkerMetrics, name: str) -> float:
    try:
        return metrics.value(name)
    except KeyError:
        return 0.0


def _sum(parts: list[Histogram]) -> Histogram | None:
    if not parts:
        return None
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def window(before: Mapping[int, WorkerMetrics], after: Mapping[int, WorkerMetrics]) -> BrokerWindow:
    """The window between the scrapes ``before`` and ``after`` (``{pid: WorkerMetrics}``,
    as :func:`~duplexbench.broker.scrape.scrape_workers` returns them)."""
    transit: list[Histogram] = []
    publish: list[Histogram] = []
    read = 0.0
    for pid, late in after.items():
        early = before.get(pid)
        for name, into in (("broker_transit_seconds", transit), ("broker_publish_seconds", publish)):
            end = _histogram(late, name)
            if end is None:
                continue
            start = _histogram(early, name) if early is not None else None
            into.append(end - start if start is not None else end)
        read += _counter(late, "broker_messages_read_total") - (
            _counter(early, "broker_messages_read_total") if early is not None else 0.0)
    return BrokerWindow(
        transit=_sum(transit), publish=_sum(publish), messages_read=read,
        workers_before=len(before), workers_after=len(after),
        restarted=tuple(sorted(set(after) - set(before))),
        gone=tuple(sorted(set(before) - set(after))),
    )
