"""Read every worker's ``/metrics`` of a multi-worker server, and its broker histograms.

Why: with ``--workers N`` each worker answers ``/metrics`` with its own
counters (the kernel hands each new connection to one worker), so one scrape
is one worker's share. :func:`scrape_workers` opens fresh connections until
every worker (``duplexbench_worker_info{pid=...}``) has answered once; the
harness sums counters over workers and reads the latency split at the broker
(``duplexbench_broker_transit_seconds``, a histogram) as the difference of two
scrapes, one at each edge of the measured window (:meth:`WorkerMetrics.histogram`,
:func:`histogram_quantile`). A worker restarted in between starts from zero:
its counters before the restart are gone (the report should say so).
"""

from __future__ import annotations

import math
import re
import ssl
import time
import urllib.request
from dataclasses import dataclass

__all__ = ["Histogram", "WorkerMetrics", "histogram_quantile", "scrape_workers"]

_INFO = re.compile(r'^duplexbench_worker_info\{([^}]*)\} 1$', re.M)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Histogram:
    """Cumulative buckets ``((le, count), ...)`` (le = inf last), sum (s) and count."""

    buckets: tuple[tuple[float, float], ...]
    sum: float
    count: float

    def __sub__(self, earlier: "Histogram") -> "Histogram":
        """The observations between two scrapes of the same worker."""
        return Histogram(tuple((le, a - b) for (le, a), (_, b) in zip(self.buckets, earlier.buckets)),
                         self.sum - earlier.sum, self.count - earlier.count)

    def __add__(self, other: "Histogram") -> "Histogram":
        """Two workers' observations together (same bucket bounds)."""
        return Histogram(tuple((le, a + b) for (le, a), (_, b) in zip(self.buckets, other.buckets)),
                         self.sum + other.sum, self.count + other.count)

    def quantile(self, q: float) -> float:
        return histogram_quantile(q, self.buckets)

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else math.nan


@dataclass(frozen=True)
class WorkerMetrics:
    pid: int
    worker: int
    text: str

    def value(self, name: str, labels: str = "") -> float:
        """``duplexbench_NAME{labels}``'s value (``labels`` as written, e.g. 'transport="sse"')."""
        series = f"duplexbench_{name}" + (f"{{{labels}}}" if labels else "")
        match = re.search(rf"^{re.escape(series)} (\S+)$", self.text, re.M)
        if match is None:
            raise KeyError(series)
        return float(match.group(1))

    def histogram(self, name: str) -> Histogram:
        """``duplexbench_NAME`` (e.g. ``broker_transit_seconds``) as a :class:`Histogram`."""
        buckets = tuple(
            (math.inf if le == "+Inf" else float(le), float(count))
            for le, count in re.findall(
                rf'^duplexbench_{re.escape(name)}_bucket\{{le="([^"]+)"\}} (\S+)$', self.text, re.M))
        if not buckets:
            raise KeyError(name)
        return Histogram(buckets, self.value(f"{name}_sum"), self.value(f"{name}_count"))


def histogram_quantile(q: float, buckets) -> float:
    """Prometheus's estimate: linear inside the bucket holding the q-th observation
    (NaN without observations; the largest finite bound when it falls in +Inf)."""
    buckets = list(buckets)
    total = buckets[-1][1] if buckets else 0
    if not total:
        return math.nan
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return lower_bound
            if count == lower_count:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = le, count
    return lower_bound


def scrape_workers(url: str, workers: int, *, timeout: float = 10.0,
                   ca_file: str = "") -> dict[int, WorkerMetrics]:
    """``{pid: WorkerMetrics}`` of ``workers`` distinct workers, each from a fresh connection
    (urllib does not keep connections alive). TimeoutError naming those seen if some
    worker never answers in ``timeout`` s."""
    context = ssl.create_default_context(cafile=ca_file or None) if url.startswith("https:") else None
    seen: dict[int, WorkerMetrics] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < workers:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url}/metrics: {len(seen)} of {workers} workers answered "
                               f"in {timeout:.0f} s (pids {sorted(seen)})")
        with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=5, context=context) as r:
            text = r.read().decode()
        match = _INFO.search(text)
        if match is None:  # one process, no broker: it is the only "worker"
            return {0: WorkerMetrics(0, 0, text)}
        labels = dict(_LABEL.findall(match.group(1)))
        pid = int(labels["pid"])
        seen.setdefault(pid, WorkerMetrics(pid, int(labels["worker"]), text))
    return seen
