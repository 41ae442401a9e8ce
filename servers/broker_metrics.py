"""A worker's broker figures for ``/metrics``: the latency split at the broker, and its work.

Why: with workers behind Redis a delivery's latency has new legs: the
publishing worker's round trip to Redis, and Redis to the delivering worker's
read. Each worker measures, as Prometheus histograms (counters: a harness
takes the difference of two scrapes for a window and reads quantiles off the
buckets, duplexbench/broker/scrape.py):

- ``duplexbench_broker_transit_seconds``, per message it reads: from Redis
  accepting the publish (``TIME`` taken inside the publish script, µs) to this
  worker's read of it (``time.time_ns()`` once per read reply). One clock:
  Redis and the workers run on one host and both read CLOCK_REALTIME; an
  NTP slew is parts per million of a sub-millisecond interval.
- ``duplexbench_broker_sent_seconds``, per message it reads: from the
  publishing worker sending the publish (CLOCK_MONOTONIC, stamped just before
  the script is sent, stored in the entry) to the read, CLOCK_MONOTONIC too:
  transit plus the publish's way into Redis.
- ``duplexbench_broker_publish_seconds``, per publish it made: the script's
  round trip (what a publisher's 200 waits for on top of the in-memory hub).
"""

from __future__ import annotations

import os
from bisect import bisect_left

__all__ = ["BUCKETS_S", "BrokerStats", "Histogram"]

#: Bucket upper bounds, seconds: loopback Redis is tens of microseconds, a busy worker
#: milliseconds, a stalled one seconds.
BUCKETS_S = (0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
             0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Histogram:
    """Observations in ns, rendered in seconds with cumulative ``le`` buckets."""

    __slots__ = ("_bounds_ns", "counts", "count", "sum_ns")

    def __init__(self) -> None:
        self._bounds_ns = [round(b * 1e9) for b in BUCKETS_S]
        self.counts = [0] * (len(BUCKETS_S) + 1)  # the last one: above every bound (+Inf)
        self.count = 0
        self.sum_ns = 0

    def observe(self, ns: int) -> None:
        if ns < 0:
            ns = 0
        self.counts[bisect_left(self._bounds_ns, ns)] += 1
        self.count += 1
        self.sum_ns += ns

    def render(self, name: str, text: str) -> list[str]:
        out = [f"# HELP duplexbench_{name} {text}", f"# TYPE duplexbench_{name} histogram"]
        running = 0
        for bound, n in zip((*(f"{b:g}" for b in BUCKETS_S), "+Inf"), self.counts):
            running += n
            out.append(f'duplexbench_{name}_bucket{{le="{bound}"}} {running}')
        out.append(f"duplexbench_{name}_sum {self.sum_ns / 1e9:.9f}")
        out.append(f"duplexbench_{name}_count {self.count}")
        return out


class BrokerStats:
    """Counters of one worker's broker hub (servers/broker.py), rendered after the rest."""

    __slots__ = ("transit", "sent", "publish", "reads", "entries", "gaps", "errors", "topics",
                 "worker", "workers")

    def __init__(self, worker: int, workers: int) -> None:
        self.transit = Histogram()  # accepted by Redis -> read by this worker, per message
        self.sent = Histogram()  # publish sent by a worker -> read by this worker, per message
        self.publish = Histogram()  # this worker's publish round trips (the script)
        self.reads = 0  # XREAD replies with entries
        self.entries = 0  # messages read from the broker (each once per worker)
        self.gaps = 0  # times the cache fell more than --retention behind (subscribers dropped)
        self.errors = 0  # broker commands that failed (the reader retries)
        self.topics = 0  # topics followed now (set by the hub)
        self.worker, self.workers = worker, workers

    def render(self) -> list[str]:
        out = [
            "# HELP duplexbench_worker_info This worker (labels); /metrics is per worker.",
            "# TYPE duplexbench_worker_info gauge",
            f'duplexbench_worker_info{{worker="{self.worker}",workers="{self.workers}",'
            f'pid="{os.getpid()}",broker="redis"}} 1',
        ]
        out += self.transit.render(
            "broker_transit_seconds",
            "Message accepted by Redis (TIME in the publish script) to this worker's read of it.")
        out += self.sent.render(
            "broker_sent_seconds",
            "Publish sent to Redis by a worker (its monotonic stamp) to this worker's read of it.")
        out += self.publish.render(
            "broker_publish_seconds", "Round trip of this worker's publishes to Redis.")
        for name, kind, text, value in (
            ("broker_reads_total", "counter", "Broker reads (XREAD replies) with messages.", self.reads),
            ("broker_messages_read_total", "counter", "Messages this worker read from the broker.",
             self.entries),
            ("broker_gaps_total", "counter",
             "Times this worker fell behind the broker's retention (its subscribers were dropped).",
             self.gaps),
            ("broker_errors_total", "counter", "Broker commands that failed.", self.errors),
            ("broker_topics_followed", "gauge", "Topics this worker follows.", self.topics),
        ):
            out += [f"# HELP duplexbench_{name} {text}", f"# TYPE duplexbench_{name} {kind}",
                    f"duplexbench_{name} {value}"]
        return out
